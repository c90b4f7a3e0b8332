"""The mesh in context (`jax.set_mesh`) and the layout of activations on it.

Activations `[B, T, ...]` have their rows over the batch axes (``data``, ``fsdp``, as
many as divide B), time over ``seq`` and one channel dimension over ``tensor`` (where it
divides the channels). `constrain` pins that on a mesh of `AxisType.Auto` axes, so XLA's
partitioner never has to guess between the batch split of the inputs and the tensor split
of the weights (it otherwise replicates the activation to move between them). Without a
mesh, on explicit axes (shardings are then part of the types) and inside a `shard_map`,
it does nothing, as it does outside `jit` (eager arrays keep their own placement).
"""

from __future__ import annotations

import math

import jax
from jax.sharding import AbstractMesh, AxisType, PartitionSpec

from hybrid_seq.distributed.mesh import BATCH_AXES, SEQ, TENSOR

Entry = str | tuple[str, ...] | None


def auto_mesh() -> AbstractMesh | None:
    """The mesh in context if it has only `AxisType.Auto` axes, else None."""
    mesh = jax.sharding.get_abstract_mesh()
    if mesh.empty or any(t != AxisType.Auto for t in mesh.axis_types):
        return None
    return mesh


def rows(mesh: AbstractMesh, batch: int) -> Entry:
    """The spec entry splitting `batch` rows: the batch axes of `mesh`, as many (in order) as divide it."""
    axes = tuple(a for a in BATCH_AXES if mesh.shape.get(a, 1) > 1)
    while axes and batch % math.prod(mesh.shape[a] for a in axes):
        axes = axes[:-1]
    return None if not axes else axes[0] if len(axes) == 1 else axes


def channels(mesh: AbstractMesh, count: int) -> Entry:
    """The spec entry splitting `count` independent channels (or heads): ``tensor`` where it divides them."""
    size = mesh.shape.get(TENSOR, 1)
    return TENSOR if size > 1 and count % size == 0 else None


def time(mesh: AbstractMesh, length: int) -> Entry:
    """The spec entry splitting `length` steps of time: ``seq`` where it divides them."""
    size = mesh.shape.get(SEQ, 1)
    return SEQ if size > 1 and length % size == 0 else None


def constrain(x: jax.Array, *, channel_dim: int | None = None, units: int | None = None) -> jax.Array:
    """`x [B, T, ...]` pinned to the activation layout of the auto mesh in context (identity without one).

    `channel_dim` is the dimension split over ``tensor``, in whole `units` (default: its size).
    """
    mesh = auto_mesh()
    if mesh is None or not isinstance(x, jax.core.Tracer):
        return x
    entries: list[Entry] = [rows(mesh, x.shape[0]), time(mesh, x.shape[1])] + [None] * (x.ndim - 2)
    if channel_dim is not None:
        entries[channel_dim] = channels(mesh, x.shape[channel_dim] if units is None else units)
    return jax.lax.with_sharding_constraint(x, PartitionSpec(*entries))


def lookup_table(table: jax.Array) -> jax.Array:
    """An embedding table `[V, D]` as a lookup wants it on the auto mesh in context: the width
    whole, the rows as they are.

    Under FSDP the width is split over ``fsdp``; gathering it here, just before the lookup,
    is FSDP's all-gather of a weight before its use. Left split, the lookup's output would
    be split along the width and XLA would replicate it to move it onto the batch split.
    """
    if auto_mesh() is None or not isinstance(table, jax.core.Tracer):
        return table
    return jax.lax.with_sharding_constraint(table, PartitionSpec(PartitionSpec.UNCONSTRAINED, None))
