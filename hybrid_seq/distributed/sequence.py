"""Sequence parallelism: the time axis split over the ``seq`` axis of the mesh in context, and what its shards exchange.

Under `jax.set_mesh(mesh)` with a ``seq`` axis of size S > 1, the blocks that mix along
time run their full-sequence pass (no incoming state) with time split in S shards, each
inside one `jax.shard_map` (rows over ``data``/``fsdp``, channels over ``tensor`` where
they divide):

* the RG-LRU through `hybrid_seq.scan.sharded`: local scans, then an all-gather of every
  shard's final state and decay product;
* the Conv1D and local attention with a **halo**: the last `K - 1` inputs, or the last
  `window` keys and values, before the shard, taken from as many previous shards as they
  span (`halo`, one `ppermute` per shard back). The Conv1D's halo brings its positions,
  attention gets each row's latest document start before the shard (`previous_max`), so
  no tap or key crosses a position 0, wherever the shard boundary falls.

The state each returns is the one after the whole sequence (taken from the last shard,
`from_last_shard`), so a sequence-parallel prefill can be continued. Calls that continue
from a state (chunked prefill, decoding) run unsplit, as do eager calls (outside `jit`).
Everything else in the model is
per token and is split over time by XLA's partitioner.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp
from jax import lax
from jax.sharding import AbstractMesh, AxisType, NamedSharding, PartitionSpec

from hybrid_seq.distributed import context
from hybrid_seq.distributed.mesh import SEQ


@dataclasses.dataclass(frozen=True)
class SequenceSplit:
    """Time split over `mesh`'s ``seq`` axis (`size` shards)."""

    mesh: AbstractMesh

    @property
    def size(self) -> int:
        """The number of time shards."""
        return self.mesh.shape[SEQ]

    def check_length(self, length: int, what: str) -> None:
        """A ValueError (naming `what`) unless the shards divide `length`."""
        if length % self.size:
            raise ValueError(
                f"{what}: sequence parallelism splits time over the {self.size} shards of mesh axis {SEQ!r}, "
                f"so T must be divisible by {self.size}; got T = {length}"
            )

    def rows(self, batch: int) -> context.Entry:
        """The spec entry splitting `batch` rows (see `context.rows`)."""
        return context.rows(self.mesh, batch)

    def channels(self, count: int) -> context.Entry:
        """The spec entry splitting `count` independent channels or heads (see `context.channels`)."""
        return context.channels(self.mesh, count)

    def run(self, fn: Callable[..., Any], in_specs: tuple[PartitionSpec, ...], out_specs: Any) -> Callable[..., Any]:
        """`fn` mapped over the shards (`jax.shard_map` over every mesh axis).

        On a mesh of explicit axes (`jax.make_mesh`'s default), whose shardings are part of
        the types, the inputs are resharded to `in_specs` and the first output is given back
        sharded as the first input came in.
        """
        # Values that every shard computes alike (the state from the last shard) are not
        # marked as such for JAX's replication checker, hence check_vma=False.
        mapped = jax.shard_map(fn, mesh=self.mesh, in_specs=in_specs, out_specs=out_specs, check_vma=False)
        if AxisType.Explicit not in self.mesh.axis_types:
            return mapped

        def explicit(*args: Any) -> Any:
            came_in = jax.typeof(args[0]).sharding
            args = tuple(jax.reshard(a, NamedSharding(self.mesh, s)) for a, s in zip(args, in_specs))
            first, *rest = mapped(*args)
            return (first if came_in.mesh.empty else jax.reshard(first, came_in), *rest)

        return explicit


def current(x: jax.Array) -> SequenceSplit | None:
    """The split of the mesh in context (`jax.set_mesh`) for a call on `x`, or None: no mesh, no ``seq``
    axis, size 1, already inside a shard_map over it, or `x` is not traced (eager calls run unsplit)."""
    if not isinstance(x, jax.core.Tracer):
        return None
    mesh = jax.sharding.get_abstract_mesh()
    if mesh.empty or mesh.shape.get(SEQ, 1) == 1:
        return None
    if dict(zip(mesh.axis_names, mesh.axis_types))[SEQ] == AxisType.Manual:
        return None
    return SequenceSplit(mesh)


def halo(x: jax.Array, size: int, *, fill: Any = 0) -> jax.Array:
    """Inside the shard_map: the `size` entries along axis 1 that come before this shard's block, oldest first.

    They come from as many previous shards as `size` spans, one `ppermute` per shard back,
    each sending only the rows needed (the last `K - 1` of a block for a convolution);
    where the sequence has none (before its start) they are `fill`.
    """
    shards = lax.axis_size(SEQ)
    length = x.shape[1]
    back = min(-(-size // length), shards - 1)
    index = lax.axis_index(SEQ)
    pieces = []
    for j in range(back, 0, -1):
        need = min(length, size - (j - 1) * length)
        moved = lax.ppermute(x[:, length - need :], SEQ, perm=[(s, s + j) for s in range(shards - j)])
        pieces.append(jnp.where(index >= j, moved, jnp.asarray(fill, x.dtype)))
    have = sum(piece.shape[1] for piece in pieces)
    if have < size:
        pieces.insert(0, jnp.full((x.shape[0], size - have, *x.shape[2:]), fill, x.dtype))
    return jnp.concatenate(pieces, axis=1) if pieces else x[:, :0]


def previous_max(value: jax.Array, fill: Any) -> jax.Array:
    """Inside the shard_map: the elementwise max of `value` over the shards before this one (`fill` on the first)."""
    gathered = lax.all_gather(value, SEQ)
    before = jnp.arange(gathered.shape[0]) < lax.axis_index(SEQ)
    before = before.reshape(-1, *(1,) * value.ndim)
    return jnp.max(jnp.where(before, gathered, jnp.asarray(fill, value.dtype)), axis=0)


def from_last_shard(tree: Any) -> Any:
    """Inside the shard_map: the last shard's values of `tree`, on every shard (exact: the others add zeros)."""
    last = lax.axis_index(SEQ) == lax.axis_size(SEQ) - 1
    return jax.tree_util.tree_map(lambda v: lax.psum(jnp.where(last, v, jnp.zeros_like(v)), SEQ), tree)
