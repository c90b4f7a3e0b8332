"""Per-row state snapshots: take rows out of a state, put them back, fork one across rows, stack, merge.

The state interface makes these tree maps: every array leaf of every layer's state has the
batch on axis 0 and nothing is shared across rows. A snapshot is itself a state (of fewer
rows), so it can be fed to the model, saved, or forked, e.g. to pay a long prompt's prefill
once for many continuations. The functions take any state pytree (a whole `Cache` or one
layer's state) and are compiled once per structure and shape.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from jaxtyping import Bool

Rows = int | Sequence[int] | np.ndarray


def batch_size(state: Any) -> int:
    """The number of rows of `state`; a ValueError naming the leaf if they disagree."""
    leaves = jax.tree_util.tree_leaves_with_path(state)
    if not leaves:
        raise ValueError("the state has no array leaves")
    rows = np.shape(leaves[0][1])[:1]
    for path, leaf in leaves:
        if np.shape(leaf)[:1] != rows or not rows:
            raise ValueError(
                f"state leaf {jax.tree_util.keystr(path)} has shape {list(np.shape(leaf))}, but every leaf must have "
                f"the batch on axis 0 (the first leaf's shape is {list(np.shape(leaves[0][1]))})"
            )
    return rows[0]


def take(state: Any, rows: Rows) -> Any:
    """The state of `rows` (an int is one row, kept as a batch of 1), in that order; repeats allowed."""
    return _take(state, _indices(state, rows))


def put(state: Any, rows: Rows, snapshot: Any) -> Any:
    """`state` with the distinct `rows` replaced by the rows of `snapshot` (one per entry of `rows`)."""
    index = _indices(state, rows)
    if len(set(index.tolist())) != len(index):
        raise ValueError(f"put needs distinct rows, got {index.tolist()}")
    if batch_size(snapshot) != len(index):
        raise ValueError(f"the snapshot has {batch_size(snapshot)} rows for {len(index)} rows to put")
    return _put(state, index, snapshot)


def fork(snapshot: Any, n: int) -> Any:
    """Each row of `snapshot` repeated `n` times in place (rows `r0 … r0, r1 … r1, …`)."""
    if isinstance(n, bool) or not isinstance(n, int) or n < 1:
        raise ValueError(f"fork needs n >= 1, got {n!r}")
    return take(snapshot, np.repeat(np.arange(batch_size(snapshot)), n))


def stack(snapshots: Sequence[Any]) -> Any:
    """Snapshots of one structure, their rows one after another."""
    if not snapshots:
        raise ValueError("stack needs at least one snapshot")
    structures = {jax.tree_util.tree_structure(s) for s in snapshots}
    if len(structures) != 1:
        raise ValueError("stack needs snapshots of one structure (states of the same model)")
    for snapshot in snapshots:
        batch_size(snapshot)
    return _stack(tuple(snapshots))


def where(rows: Bool[np.ndarray, " B"] | Sequence[bool], new: Any, old: Any) -> Any:
    """Row by row, `new` where `rows` is true and `old` elsewhere (two states of one structure and batch)."""
    mask = np.asarray(rows, bool)
    if mask.shape != (batch_size(old),) or batch_size(new) != len(mask):
        raise ValueError(f"where needs one flag per row and states of {len(mask)} rows")
    return _where(jnp.asarray(mask), new, old)


def _indices(state: Any, rows: Rows) -> np.ndarray:
    count = batch_size(state)
    index = np.atleast_1d(np.asarray(rows))
    if index.ndim != 1 or not np.issubdtype(index.dtype, np.integer) or len(index) == 0:
        raise ValueError(f"rows must be an int or a non-empty sequence of ints, got {rows!r}")
    if index.min() < 0 or index.max() >= count:
        raise ValueError(f"rows {index.tolist()} out of range for a state of {count} rows")
    return index.astype(np.int32)


@jax.jit
def _take(state: Any, index: jax.Array) -> Any:
    return jax.tree_util.tree_map(lambda leaf: leaf[index], state)


@jax.jit
def _put(state: Any, index: jax.Array, snapshot: Any) -> Any:
    return jax.tree_util.tree_map(lambda leaf, new: leaf.at[index].set(new.astype(leaf.dtype)), state, snapshot)


@jax.jit
def _where(mask: jax.Array, new: Any, old: Any) -> Any:
    return jax.tree_util.tree_map(
        lambda n, o: jnp.where(mask.reshape((-1,) + (1,) * (o.ndim - 1)), n.astype(o.dtype), o), new, old
    )


@jax.jit
def _stack(snapshots: tuple[Any, ...]) -> Any:
    return jax.tree_util.tree_map(lambda *leaves: jnp.concatenate(leaves, axis=0), *snapshots)
