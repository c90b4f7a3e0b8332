"""`sharded`: sequence parallelism for any local backend, via `jax.shard_map`.

The time axis is split over one mesh axis. Each shard scans its slice from a zero
state with the local backend and, with the same backend, the running decay product
``A_t = a_0 * ... * a_t`` of its slice (a scan of ``x = 0`` from ``h = 1``). The
shards' ``(h_last, A_last)`` are all-gathered and folded in shard order,
``h_in[k+1] = A_last[k] * h_in[k] + h_last[k]`` with ``h_in[0] = h0``; each shard then
corrects ``y += A_t * h_in[k]``. Every shard returns the same global ``h_last``.
Gradients flow through the local backends' custom VJPs and the all-gather's transpose.
Numerics: the local scans run on float32 copies of ``x`` and ``a`` so the correction is
applied before the single rounding of ``y`` to ``x.dtype``.
"""

from __future__ import annotations

import dataclasses

import jax
import jax.numpy as jnp
from jax import lax
from jax.sharding import AbstractMesh, AxisType, Mesh, NamedSharding, PartitionSpec
from jaxtyping import Array

from hybrid_seq.scan.contract import Sequence, State, check_inputs
from hybrid_seq.scan.registry import BoundScan, get


@dataclasses.dataclass(frozen=True)
class ShardedScan:
    """A `Scan` whose time axis is split over ``mesh.shape[axis_name]`` shards."""

    mesh: Mesh | AbstractMesh
    axis_name: str
    local: BoundScan
    batch_axis: str | tuple[str, ...] | None = None
    channel_axis: str | None = None

    @property
    def name(self) -> str:
        return f"sharded[{self.local.name}]"

    def _local_step(self, x: Sequence, a: Sequence, h0: State) -> tuple[Sequence, State]:
        a32 = a.astype(jnp.float32)
        zeros = jnp.zeros_like(h0)
        y_local, h_local = self.local(x.astype(jnp.float32), a32, zeros)
        decay, decay_last = self.local(jnp.zeros_like(a32), a32, jnp.ones_like(h0))
        h_locals = lax.all_gather(h_local, self.axis_name)
        decay_lasts = lax.all_gather(decay_last, self.axis_name)
        incoming = [h0]
        for k in range(h_locals.shape[0]):
            incoming.append(decay_lasts[k] * incoming[-1] + h_locals[k])
        h_in = jnp.stack(incoming[:-1])[lax.axis_index(self.axis_name)]
        y = y_local + decay * h_in[:, None, :]
        return y.astype(x.dtype), incoming[-1]

    def __call__(self, x: Array, a: Array, h0: Array | None = None) -> tuple[Sequence, State]:
        check_inputs(x, a, h0)
        shards = self.mesh.shape[self.axis_name]
        if x.shape[1] % shards:
            raise ValueError(
                f"scan.sharded: T = {x.shape[1]} must be divisible by the {shards} shards "
                f"of mesh axis {self.axis_name!r}"
            )
        for dim, name, axes in ((0, "B", self.batch_axis), (2, "D", self.channel_axis)):
            size = _size(self.mesh, axes)
            if x.shape[dim] % size:
                raise ValueError(f"scan.sharded: {name} = {x.shape[dim]} must be divisible by mesh axes {axes!r} of size {size}")
        if h0 is None:
            h0 = jnp.zeros((x.shape[0], x.shape[2]), jnp.float32)
        seq = PartitionSpec(self.batch_axis, self.axis_name, self.channel_axis)
        state = PartitionSpec(self.batch_axis, self.channel_axis)
        explicit = AxisType.Explicit in self.mesh.axis_types
        if explicit:
            # Explicit meshes type-check shardings: place the inputs as the specs say, and
            # give the outputs back sharded as `x` and `h0` came in.
            x_sharding, h0_sharding = jax.typeof(x).sharding, jax.typeof(h0).sharding
            x, a = (jax.reshard(v, NamedSharding(self.mesh, seq)) for v in (x, a))
            h0 = jax.reshard(h0, NamedSharding(self.mesh, state))
        mapped = jax.shard_map(
            self._local_step,
            mesh=self.mesh,
            in_specs=(seq, seq, state),
            out_specs=(seq, state),
            # Local backends build loop carries from invariant zeros; the global h_last
            # is computed identically on every shard from all-gathered values.
            check_vma=False,
        )
        y, h_last = mapped(x, a, h0)
        if explicit and not x_sharding.mesh.empty:
            y = jax.reshard(y, x_sharding)
        if explicit and not h0_sharding.mesh.empty:
            h_last = jax.reshard(h_last, h0_sharding)
        return y, h_last


def _size(mesh: Mesh | AbstractMesh, axes: str | tuple[str, ...] | None) -> int:
    names = () if axes is None else (axes,) if isinstance(axes, str) else axes
    size = 1
    for name in names:
        size *= mesh.shape[name]
    return size


#: The mesh axis that the backend name 'sharded' splits time over.
SEQUENCE_AXIS = "seq"


def from_context() -> ShardedScan:
    """The backend named 'sharded': time split over the 'seq' axis of the mesh in context."""
    mesh = jax.sharding.get_abstract_mesh()
    if mesh.empty or SEQUENCE_AXIS not in mesh.shape:
        found = "no mesh is set" if mesh.empty else f"the mesh has axes {list(mesh.shape)}"
        raise ValueError(
            f"scan backend 'sharded' needs a mesh with a {SEQUENCE_AXIS!r} axis in context ({found}): call the "
            f"model under `jax.set_mesh(mesh)`, or pass `hybrid_seq.scan.sharded(mesh, axis_name)` as the backend"
        )
    return ShardedScan(mesh, SEQUENCE_AXIS, get("auto"))


def sharded(
    mesh: Mesh | AbstractMesh,
    axis_name: str,
    *,
    local: str = "sequential",
    batch_axis: str | tuple[str, ...] | None = None,
    channel_axis: str | None = None,
) -> ShardedScan:
    """A scan that splits time over ``axis_name`` of ``mesh`` (batch over ``batch_axis``, one
    axis or several, and channels over ``channel_axis``: both need no communication).

    ``local`` names the registered backend each shard runs ('auto' allowed).
    """
    named = [axis_name, *((batch_axis,) if isinstance(batch_axis, str) else batch_axis or ()), channel_axis]
    for name in named:
        if name is not None and name not in mesh.shape:
            raise ValueError(f"scan.sharded: mesh has no axis {name!r}; axes: {list(mesh.shape)}")
    return ShardedScan(mesh, axis_name, get(local), batch_axis, channel_axis)
