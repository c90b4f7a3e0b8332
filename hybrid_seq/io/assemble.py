"""Assemble a `Model` from any checkpoint: the config from shapes, preset and overrides, then the leaves one by one.

Every format's reader ends here: `resolve_config` settles the ModelConfig, `build_model`
fills an abstract model leaf by leaf (shape-checked, cast, placed on a sharding), and
`model_from_leaves` does the same for readers that speak the reference Flax layout.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Union

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np

from hybrid_seq import presets
from hybrid_seq.architecture import HybridConfig
from hybrid_seq.config import ModelConfig
from hybrid_seq.io.flax_layout import FlaxLeaf, flax_leaf, leaf_path
from hybrid_seq.model import Config, Model
from hybrid_seq.pattern import parse_pattern
from hybrid_seq.quantize import quantization_of, quantize

#: Settings the weights cannot tell; they come from `config_overrides`, `preset`, or a preset whose shapes match.
NON_INFERABLE = ("embeddings_scale_by_sqrt_dim", "attention_window_size", "logits_soft_cap")


def resolve_config(inferred: dict[str, Any], *, preset: str | None, overrides: dict[str, Any], source: str) -> ModelConfig:
    """Combine shapes, an optional preset and explicit overrides into a ModelConfig.

    Inferred fields must agree with `overrides`, and the architecture with `preset` (see
    `check_preset`); non-inferable fields come from `overrides`, else `preset`, else a
    preset with the same architecture; anything still missing is an error naming the field.
    """
    for name, value in overrides.items():
        if name in inferred and not _same_field(name, value, inferred[name]):
            raise ValueError(f"{source}: {name}={value!r} contradicts the weights, which have {name}={inferred[name]!r}")
    given = ModelConfig(**{**inferred, **overrides})
    if preset is not None:
        check_preset(given, preset, source=source)
    settings_from = preset if preset is not None else matching_preset(given)
    base = {} if settings_from is None else {name: getattr(presets.get(settings_from), name) for name in NON_INFERABLE}
    fields = {**inferred, **base, **{k: v for k, v in overrides.items() if k not in inferred}}
    needed = [n for n in NON_INFERABLE if n not in fields]
    if "attention" not in given.layer_kinds and "attention_window_size" in needed:
        needed.remove("attention_window_size")
    if needed:
        raise ValueError(
            f"{source}: the weights do not determine {', '.join(needed)} and they match no preset; "
            f"pass them as keyword arguments (or preset=...)"
        )
    return ModelConfig(**fields)


def architecture(config: Config) -> dict[str, Any]:
    """What the weights of `config` fix, vocab_size aside, spelled canonically (layer kinds, resolved LRU width).

    Two configs with equal architectures have the same leaf shapes up to the vocabulary;
    this is what a preset given on load, or found by `matching_preset`, is compared on. A
    `HybridConfig` is compared field by field (its whole dict but the vocabulary).
    """
    if isinstance(config, HybridConfig):
        return {name: value for name, value in config.to_dict().items() if name != "vocab_size"}
    return {
        "width": config.width,
        "mlp_expanded_width": config.mlp_expanded_width,
        "num_heads": config.num_heads,
        "lru_width": config.resolved_lru_width,
        "conv1d_temporal_width": config.conv1d_temporal_width,
        "block_pattern": config.layer_kinds,
    }


def check_preset(config: Config, preset: str, *, source: str) -> None:
    """Raise unless `config` has the architecture of `preset`, naming `source` and each differing field with both values."""
    reference = _like(presets.get(preset), config)
    config = _like(config, reference)
    ours, theirs = architecture(config), architecture(reference)
    wrong = [name for name in ours if ours[name] != theirs[name]]
    if wrong:
        raise ValueError(
            f"{source} does not match preset {preset!r}: "
            + "; ".join(
                f"{name} is {_show(config, name)} in the checkpoint but {_show(reference, name)} in the preset"
                for name in wrong
            )
        )


def matching_preset(config: Config) -> str | None:
    """The preset with the architecture of `config` (see `architecture`), or None."""
    ours = architecture(config)
    return next((name for name in presets.names() if architecture(_like(presets.get(name), config)) == ours), None)


def _like(preset: Config, config: Config) -> Config:
    """`preset` in the config class of `config` (a `ModelConfig` as a `HybridConfig`), so that their architectures compare."""
    return preset.to_hybrid() if isinstance(config, HybridConfig) and isinstance(preset, ModelConfig) else preset


def check_structure(model: Model, *, source: str, quantization: str | None = None) -> None:
    """Raise unless `model` (one block per layer) has the leaves its config builds, quantized with
    `quantization` (None: float), naming the first difference.

    A writer passes the quantization its format holds (RecurrentGemma's formats: none). A
    module swapped in by hand (`eqx.tree_at`) is not in the config, so a checkpoint of it
    could not be loaded back; `Model.with_config` swaps modules and config together.
    """
    found = quantization_of(model)
    if found is not None and quantization is None:
        raise ValueError(f"{source} is quantized ({found}); only the hybrid_seq format holds quantized weights")
    want, got = shapes_of(skeleton(model.config, quantization=quantization)), shapes_of(model)
    if want == got:
        return
    builds, hint = "the config builds", "put the change in the config and rebuild with Model.with_config(config, key=...)"
    if quantization is not None:
        builds = f"the config builds in {quantization}"
        hint = "quantize the whole float model with hybrid_seq.quantize.quantize(model, scheme)"
    for path in dict.fromkeys([*got, *want]):
        if path not in want:
            raise ValueError(f"{source} does not match its config: {dotted(path)} is not what {builds}; {hint}")
        if path not in got:
            raise ValueError(f"{source} does not match its config: it lacks {dotted(path)}; {hint}")
        if got[path] != want[path]:
            raise ValueError(
                f"{source} does not match its config: {dotted(path)} has shape {got[path]}, {builds} "
                f"{want[path]}; {hint}"
            )


def _same_field(name: str, a: Any, b: Any) -> bool:
    if name == "block_pattern":
        return parse_pattern(a).layer_kinds == parse_pattern(b).layer_kinds
    return a == b


def _show(config: Config, name: str) -> str:
    return str(config.block_pattern) if name == "block_pattern" and isinstance(config, ModelConfig) else repr(architecture(config)[name])


#: Where each leaf goes: one `jax.sharding.Sharding` for all, or a function of the dotted leaf path
#: (e.g. ``"blocks.0.temporal.linear_x.weight"``) returning one; None keeps JAX's default device.
ShardingSpec = Union[jax.sharding.Sharding, Callable[[str], jax.sharding.Sharding], None]


def dotted(path: tuple[str | int, ...]) -> str:
    """Our leaf path as one name, e.g. ``blocks.0.mlp.gate.weight``."""
    return ".".join(map(str, path))


def place(value: Any, *, dtype: Any, sharding: jax.sharding.Sharding | None) -> jax.Array:
    """`value` (numpy, memory map or array) cast to `dtype` and put on `sharding`.

    With a sharding each device's shard is read and cast on its own
    (`jax.make_array_from_callback`), so the full leaf is never gathered on one device.
    """
    if sharding is None:
        return jnp.asarray(value, dtype=dtype)
    return jax.make_array_from_callback(
        tuple(value.shape), sharding, lambda index: np.asarray(value[index]).astype(dtype)
    )


def skeleton(config: Config, dtype: Any = jnp.float32, quantization: str | None = None) -> Model:
    """The Model of `config` with `jax.ShapeDtypeStruct` leaves: its structure, paths, shapes and dtypes, allocating nothing.

    With `quantization` (a scheme of `hybrid_seq.quantize`), the quantized model's: int8
    weights, and scales and every other float leaf in `dtype`.
    """

    def build() -> Model:
        model = Model(config, key=jax.random.key(0), dtype=dtype)
        return model if quantization is None else quantize(model, quantization)

    return eqx.filter_eval_shape(build)


def shapes_of(model: Model) -> dict[tuple[str | int, ...], tuple[int, ...]]:
    """The leaf paths (`leaf_path` form, in flattening order) of `model` (or of a `skeleton`) and their shapes."""
    return {leaf_path(p): tuple(s.shape) for p, s in jax.tree_util.tree_flatten_with_path(model)[0]}


def leaf_shapes(config: Config) -> dict[tuple[str | int, ...], tuple[int, ...]]:
    """Our leaf paths (`leaf_path` form, in flattening order) and their shapes for `config`, without allocating."""
    return shapes_of(skeleton(config))


def build_model(
    skeleton: Model,
    fetch: Callable[[tuple[str | int, ...]], Any],
    *,
    source: str,
    name: Callable[[tuple[str | int, ...]], str] = dotted,
    sharding: ShardingSpec = None,
) -> Model:
    """The Model shaped like `skeleton` whose leaf at each path (`leaf_path` form) is `fetch(path)`.

    Each leaf is shape-checked, cast to the skeleton's dtype and placed on `sharding`. Leaves are fetched and converted one at a
    time, so a lazy `fetch` (memory maps, per-tensor file reads) never holds more than one
    source tensor besides the model. `name(path)` is how error messages call the tensor in
    the file.
    """
    flat, treedef = jax.tree_util.tree_flatten_with_path(skeleton)
    leaves = []
    for key_path, spec in flat:
        path = leaf_path(key_path)
        value = fetch(path)
        if tuple(value.shape) != tuple(spec.shape):
            raise ValueError(
                f"{source}: tensor {name(path)} has shape {tuple(value.shape)} (in our layout), but the config "
                f"needs {tuple(spec.shape)} for {dotted(path)}"
            )
        target = sharding(dotted(path)) if callable(sharding) else sharding
        leaves.append(place(value, dtype=spec.dtype, sharding=target))
    return jax.tree_util.tree_unflatten(treedef, leaves)


def model_from_leaves(
    config: ModelConfig,
    fetch: Callable[[FlaxLeaf], Any],
    *,
    dtype: Any,
    source: str,
    name: Callable[[FlaxLeaf], str] | None = None,
    sharding: ShardingSpec = None,
) -> Model:
    """A Model whose every leaf is `fetch(FlaxLeaf)` (shape-checked, cast to `dtype`, placed on `sharding`)."""

    def describe(where: FlaxLeaf) -> str:
        index = "" if where.index is None else str(list(where.index))
        return "/".join(where.path) + index

    name = name or describe
    abstract = skeleton(config, dtype or jnp.float32)
    return build_model(
        abstract,
        lambda path: fetch(flax_leaf(abstract, path)),
        source=source,
        name=lambda path: name(flax_leaf(abstract, path)),
        sharding=sharding,
    )


__all__ = [
    "NON_INFERABLE",
    "ShardingSpec",
    "architecture",
    "build_model",
    "check_preset",
    "check_structure",
    "dotted",
    "leaf_shapes",
    "matching_preset",
    "model_from_leaves",
    "place",
    "resolve_config",
    "shapes_of",
    "skeleton",
]
