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
from hybrid_seq.config import ModelConfig
from hybrid_seq.io.flax_layout import FlaxLeaf, flax_leaf, leaf_path
from hybrid_seq.model import Model
from hybrid_seq.pattern import parse_pattern

#: Settings the weights cannot tell; they come from `config_overrides`, `preset`, or a preset whose shapes match.
NON_INFERABLE = ("embeddings_scale_by_sqrt_dim", "attention_window_size", "logits_soft_cap")


def resolve_config(inferred: dict[str, Any], *, preset: str | None, overrides: dict[str, Any], source: str) -> ModelConfig:
    """Combine shapes, an optional preset and explicit overrides into a ModelConfig.

    Inferred fields must agree with `preset` (except `vocab_size`) and with `overrides`;
    non-inferable fields come from `overrides`, else `preset`, else a preset with the same
    architecture; anything still missing is an error naming the field.
    """
    for name, value in overrides.items():
        if name in inferred and not _same_field(name, value, inferred[name]):
            raise ValueError(f"{source}: {name}={value!r} contradicts the weights, which have {name}={inferred[name]!r}")
    base: dict[str, Any] = {}
    if preset is not None:
        reference = presets.get(preset, vocab_size=inferred["vocab_size"])
        for name, value in inferred.items():
            if not _same_field(name, getattr(reference, name), value):
                raise ValueError(
                    f"{source} does not match preset {preset!r}: {name} is {_show(name, value)} in the weights "
                    f"but {_show(name, getattr(reference, name))} in the preset"
                )
        base = {name: getattr(reference, name) for name in NON_INFERABLE}
    else:
        match = matching_preset(inferred)
        if match is not None:
            reference = presets.get(match)
            base = {name: getattr(reference, name) for name in NON_INFERABLE}
    fields = {**inferred, **base, **{k: v for k, v in overrides.items() if k not in inferred}}
    needed = [n for n in NON_INFERABLE if n not in fields]
    if "attention" not in parse_pattern(inferred["block_pattern"]).unit and "attention_window_size" in needed:
        needed.remove("attention_window_size")
    if needed:
        raise ValueError(
            f"{source}: the weights do not determine {', '.join(needed)} and they match no preset; "
            f"pass them as keyword arguments (or preset=...)"
        )
    return ModelConfig(**fields)


def matching_preset(inferred: dict[str, Any]) -> str | None:
    """The preset whose architecture (all inferable fields but vocab_size) equals `inferred`."""
    for name in presets.names():
        reference = presets.get(name)
        if all(_same_field(k, getattr(reference, k), v) for k, v in inferred.items() if k != "vocab_size"):
            return name
    return None


def _same_field(name: str, a: Any, b: Any) -> bool:
    if name == "block_pattern":
        return parse_pattern(a).layer_kinds == parse_pattern(b).layer_kinds
    return a == b


def _show(name: str, value: Any) -> str:
    return str(parse_pattern(value)) if name == "block_pattern" else repr(value)


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


def leaf_shapes(config: ModelConfig) -> dict[tuple[str | int, ...], tuple[int, ...]]:
    """Our leaf paths (`leaf_path` form, in flattening order) and their shapes for `config`, without allocating."""
    skeleton = eqx.filter_eval_shape(lambda: Model(config, key=jax.random.key(0)))
    return {leaf_path(p): tuple(s.shape) for p, s in jax.tree_util.tree_flatten_with_path(skeleton)[0]}


def build_model(
    config: ModelConfig,
    fetch: Callable[[tuple[str | int, ...]], Any],
    *,
    dtype: Any,
    source: str,
    name: Callable[[tuple[str | int, ...]], str] = dotted,
    sharding: ShardingSpec = None,
) -> Model:
    """A Model whose leaf at each path (`leaf_path` form) is `fetch(path)`, shape-checked, cast and placed.

    Leaves are fetched and converted one at a time, so a lazy `fetch` (memory maps,
    per-tensor file reads) never holds more than one source tensor besides the model.
    `name(path)` is how error messages call the tensor in the file.
    """
    skeleton = eqx.filter_eval_shape(lambda: Model(config, key=jax.random.key(0), dtype=dtype))
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
        leaves.append(place(value, dtype=dtype, sharding=target))
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
    return build_model(
        config,
        lambda path: fetch(flax_leaf(config, path)),
        dtype=dtype or jnp.float32,
        source=source,
        name=lambda path: name(flax_leaf(config, path)),
        sharding=sharding,
    )


__all__ = [
    "NON_INFERABLE",
    "ShardingSpec",
    "build_model",
    "dotted",
    "leaf_shapes",
    "matching_preset",
    "model_from_leaves",
    "place",
    "resolve_config",
]
