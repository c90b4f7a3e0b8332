"""Logical axes: every parameter dimension has a name, declared by the module that owns it.

A module declares ``param_axes``, a class attribute mapping the path of each of its array
leaves (relative to the module, e.g. ``("linear_x", "weight")``) to one logical name per
dimension (None: never split). A leaf is named by the outermost module above it that
declares its path, so a kind names the leaves of the generic layers it holds (a `Linear`
is column- or row-parallel depending on where it sits), and a generic layer's own
declaration (an `RMSNorm` over the model width) is the fallback. Sharding rules map logical names
to mesh axes; a user's kind declares its own, like the built-in ones.
"""

from __future__ import annotations

from typing import Any

import jax

#: The logical names the built-in kinds use.
VOCAB = "vocab"  # the token vocabulary
EMBED = "embed"  # the model width D
MLP = "mlp"  # an MLP's hidden width
HEADS = "heads"  # query heads, or Mamba-2 heads (times head_dim, where heads and head_dim share one axis)
KV = "kv"  # what several heads share: key/value heads (times head_dim), Mamba-2's B/C groups (times state)
LRU = "lru"  # the RG-LRU width L (split in whole gate blocks, so with LRU_BLOCKS)
LRU_BLOCKS = "lru_blocks"  # the RG-LRU's gate blocks H

Axes = tuple[str | None, ...]


def logical_axes(tree: Any) -> dict[tuple[str | int, ...], Axes]:
    """The logical axes of every array leaf of `tree` (a model or any module), by leaf path.

    Raises a ValueError naming the first leaf no module declares, or whose declared axes do
    not match its rank.
    """
    out: dict[tuple[str | int, ...], Axes] = {}
    for key_path, leaf in jax.tree_util.tree_flatten_with_path(tree)[0]:
        path = tuple(_name(k) for k in key_path)
        axes = _declared(tree, path)
        if axes is None:
            raise ValueError(
                f"parameter {'.'.join(map(str, path))} has no logical axes: the module holding it must declare "
                "it in its `param_axes` (see hybrid_seq.blocks.axes)"
            )
        extra = len(leaf.shape) - len(axes)
        if extra < 0:
            raise ValueError(f"parameter {'.'.join(map(str, path))} has shape {leaf.shape} but axes {axes}")
        out[path] = (None,) * extra + axes  # leading axes beyond the declaration: stacked layers
    return out


def _declared(tree: Any, path: tuple[str | int, ...]) -> Axes | None:
    """The declaration for `path` of the outermost module on it that has one."""
    node = tree
    for depth in range(len(path)):
        declared = getattr(type(node), "param_axes", None)
        if declared is not None and tuple(path[depth:]) in declared:
            return declared[tuple(path[depth:])]
        node = node[path[depth]] if isinstance(path[depth], int) else getattr(node, path[depth])
    return None


def _name(key: Any) -> str | int:
    if isinstance(key, jax.tree_util.GetAttrKey):
        return key.name
    if isinstance(key, jax.tree_util.SequenceKey):
        return key.idx
    if isinstance(key, jax.tree_util.DictKey):
        return key.key
    raise TypeError(f"unexpected key {key!r} in a parameter path")
