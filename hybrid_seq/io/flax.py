"""Build a `Model` from DeepMind's reference Flax parameter tree, and write one back."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Mapping
from typing import Any

import equinox as eqx
import jax
import jax.numpy as jnp

from hybrid_seq.io.assemble import model_from_leaves, resolve_config
from hybrid_seq.io.flax_layout import FlaxLeaf, flax_leaf, get_path, infer_architecture, leaf_path, unwrap_params
from hybrid_seq.model import Model


def from_flax_params(
    tree: Mapping[str, Any], *, preset: str | None = None, dtype: Any = None, **config_overrides: Any
) -> Model:
    """A Model from the reference's Flax parameter tree (bare or wrapped in `{"params": ...}`).

    The architecture is read from the shapes and checked against `preset` when given.
    `dtype` casts the weights (default: keep the checkpoint's dtype).
    """
    params = unwrap_params(tree)
    config = resolve_config(infer_architecture(params), preset=preset, overrides=config_overrides, source="Flax params")

    def fetch(where: FlaxLeaf) -> Any:
        value = get_path(params, where.path)
        return value if where.index is None else value[where.index]

    if dtype is None:
        dtype = jnp.asarray(get_path(params, ("embedder", "input_embedding"))).dtype
    return model_from_leaves(config, fetch, dtype=dtype, source="Flax params")


def to_flax_params(model: Model) -> dict[str, Any]:
    """The reference's bare Flax parameter tree holding `model`'s weights."""
    model = model.unstack_layers()
    groups: dict[tuple[str, ...], dict[tuple[int, ...], Any]] = defaultdict(dict)
    for path, value in jax.tree_util.tree_flatten_with_path(eqx.filter(model, eqx.is_array))[0]:
        where = flax_leaf(model, leaf_path(path))
        groups[where.path][where.index or ()] = value
    tree: dict[str, Any] = {}
    for path, parts in groups.items():
        if list(parts) == [()]:
            value = parts[()]
        else:
            ordered = [parts[index] for index in sorted(parts)]
            depth = len(next(iter(parts)))
            value = jnp.stack(ordered).reshape(len(ordered), *([1] * (depth - 1)), *ordered[0].shape)
        node = tree
        for name in path[:-1]:
            node = node.setdefault(name, {})
        node[path[-1]] = value
    return tree


__all__ = ["from_flax_params", "to_flax_params"]
