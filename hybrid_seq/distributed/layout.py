"""A layout: a mesh plus the rules placing parameters on it, and the shardings it gives a model, its optimizer state and its batches.

* Parameters: `rules.partition_specs` of their logical axes.
* Optimizer state: a leaf whose path ends with a parameter's path and has its shape
  (Adam's `mu` and `nu`) gets that parameter's sharding, so FSDP shards the optimizer
  state as it shards the weights; every other leaf (step counts, factored statistics of
  another shape) is replicated.
* Batches `[B, T]`: rows over the batch axes (``data``, ``fsdp``), time over ``seq``.

Placing works across processes: every process passes the same global values and each
fills only its own devices (`jax.make_array_from_callback`).
"""

from __future__ import annotations

import dataclasses
import math
from typing import Any

import equinox as eqx
import jax
import numpy as np
from jax.experimental import multihost_utils
from jax.sharding import AbstractMesh, Mesh, NamedSharding, PartitionSpec

from hybrid_seq.distributed.mesh import BATCH_AXES, SEQ, MeshSpec
from hybrid_seq.distributed.rules import Rules, partition_specs


@dataclasses.dataclass(frozen=True)
class Layout:
    """Where everything of a run lives: `mesh` and the parameter `rules`.

    An `AbstractMesh` (no devices) gives every sharding (to count bytes per device); placing needs a `Mesh`.
    """

    mesh: Mesh | AbstractMesh
    rules: Rules = dataclasses.field(default_factory=Rules)

    @classmethod
    def from_spec(cls, spec: str | MeshSpec, rules: Rules | None = None, *, devices: Any = None) -> Layout:
        """A layout over a mesh spec such as `"data=2,fsdp=2,tensor=2"` (see `hybrid_seq.distributed.mesh`)."""
        spec = MeshSpec.parse(spec) if isinstance(spec, str) else spec
        return cls(spec.make(devices), Rules() if rules is None else rules)

    @property
    def batch_axes(self) -> tuple[str, ...]:
        """The mesh axes that split the batch rows."""
        return tuple(a for a in BATCH_AXES if self.mesh.shape.get(a, 1) > 1)

    @property
    def sequence_axis(self) -> str | None:
        """``seq`` if the mesh splits time, else None."""
        return SEQ if self.mesh.shape.get(SEQ, 1) > 1 else None

    def describe(self) -> str:
        """The mesh's axes of size > 1, e.g. ``data=2,fsdp=2,tensor=2``."""
        return ",".join(f"{name}={size}" for name, size in self.mesh.shape.items() if size > 1) or "one device"


    def model_shardings(self, model: Any) -> Any:
        """A `NamedSharding` for every array leaf of `model` (concrete or abstract), in its structure."""
        specs = partition_specs(eqx.filter(model, is_array_like), self.mesh.shape, self.rules)
        return jax.tree_util.tree_map(lambda spec: NamedSharding(self.mesh, spec), specs)

    def state_shardings(self, opt_state: Any, model: Any) -> Any:
        """A `NamedSharding` for every array leaf of `opt_state`, following the parameters of `model` (module docstring)."""
        params = eqx.filter(model, is_array_like)
        by_path = {
            _names(path): (tuple(leaf.shape), sharding)
            for (path, leaf), sharding in zip(
                jax.tree_util.tree_leaves_with_path(params), jax.tree_util.tree_leaves(self.model_shardings(params))
            )
        }
        replicated = NamedSharding(self.mesh, PartitionSpec())

        def follow(path: Any, leaf: Any) -> NamedSharding:
            names = _names(path)
            for start in range(len(names)):
                found = by_path.get(names[start:])
                if found is not None and found[0] == tuple(leaf.shape):
                    return found[1]
            return replicated

        return jax.tree_util.tree_map_with_path(follow, eqx.filter(opt_state, is_array_like))

    def batch_sharding(self) -> NamedSharding:
        """Rows over the batch axes, time over ``seq``: `[B, T]` arrays."""
        batch = self.batch_axes
        return NamedSharding(self.mesh, PartitionSpec(batch if len(batch) > 1 else (batch[0] if batch else None), self.sequence_axis))


    def shard_model(self, model: Any) -> Any:
        """`model` with every array placed on its sharding."""
        return place(model, self.model_shardings(model))

    def shard_state(self, opt_state: Any, model: Any) -> Any:
        """`opt_state` (of `model`'s parameters) with every array placed on its sharding."""
        return place(opt_state, self.state_shardings(opt_state, model))

    def init_state(self, optimizer: Any, model: Any) -> Any:
        """`optimizer.init` of `model`'s floating parameters, created directly on its shardings (never whole on one device)."""
        params = eqx.filter(model, eqx.is_inexact_array)
        abstract = jax.eval_shape(optimizer.init, params)
        _, static = eqx.partition(abstract, is_array_like)
        init = jax.jit(lambda p: eqx.filter(optimizer.init(p), eqx.is_array), out_shardings=self.state_shardings(abstract, params))
        return eqx.combine(init(params), static)

    def shard_batch(self, batch: Any) -> Any:
        """Every `[B, T]` array of `batch` split as `batch_sharding` says; B and T must divide the axes."""
        sharding = self.batch_sharding()
        rows = math.prod(self.mesh.shape[a] for a in self.batch_axes)
        time = self.mesh.shape.get(SEQ, 1)

        def one(path: Any, leaf: Any) -> jax.Array:
            if not eqx.is_array(leaf):
                return leaf
            where = jax.tree_util.keystr(path) or "batch"
            if leaf.ndim != 2 or leaf.shape[0] % rows or leaf.shape[1] % time:
                raise ValueError(
                    f"batch{where} has shape {tuple(leaf.shape)}: the mesh {self.describe()} needs [B, T] with B divisible "
                    f"by {rows} (axes {list(self.batch_axes)}) and T divisible by {time} (axis {SEQ!r})"
                )
            if getattr(leaf, "sharding", None) == sharding:
                return leaf
            return _put(leaf, sharding)

        return jax.tree_util.tree_map_with_path(one, batch)

    def constrain(self, model: Any, opt_state: Any) -> tuple[Any, Any]:
        """Inside a jitted step: keep the updated model and optimizer state on their shardings."""
        model = _constrain(model, self.model_shardings(model))
        opt_state = _constrain(opt_state, self.state_shardings(opt_state, model))
        return model, opt_state


def is_array_like(leaf: Any) -> bool:
    """An array or an abstract one (`jax.ShapeDtypeStruct`): the leaves that get a sharding."""
    return eqx.is_array(leaf) or isinstance(leaf, jax.ShapeDtypeStruct)


def place(tree: Any, shardings: Any) -> Any:
    """Every array leaf of `tree` on the sharding of the same leaf of `shardings` (the structure of `eqx.filter(tree, eqx.is_array)`)."""
    arrays, static = eqx.partition(tree, eqx.is_array)
    return eqx.combine(jax.tree_util.tree_map(_put, arrays, shardings), static)


def fetch(tree: Any) -> Any:
    """`tree` with every array copied to host numpy, also when it spans other processes' devices:
    a replicated array (a metric) is read from a local copy, any other is gathered (a
    collective, so every process calls it)."""

    def one(leaf: Any) -> Any:
        if not isinstance(leaf, jax.Array):
            return leaf
        if leaf.is_fully_addressable:
            return np.asarray(leaf)
        if leaf.is_fully_replicated:
            return np.asarray(leaf.addressable_data(0))
        return np.asarray(multihost_utils.process_allgather(leaf, tiled=True))

    return jax.tree_util.tree_map(one, tree)


def _put(leaf: Any, sharding: NamedSharding) -> jax.Array:
    if jax.process_count() == 1:
        return jax.device_put(leaf, sharding)
    host = np.asarray(leaf)
    return jax.make_array_from_callback(host.shape, sharding, lambda index: host[index])


def _constrain(tree: Any, shardings: Any) -> Any:
    arrays, static = eqx.partition(tree, eqx.is_array)
    return eqx.combine(jax.lax.with_sharding_constraint(arrays, shardings), static)


def _names(path: Any) -> tuple[Any, ...]:
    return tuple(key_name(k) for k in path)


def key_name(key: Any) -> Any:
    """The attribute name, dict key or index of one step of a pytree path."""
    return getattr(key, "name", getattr(key, "key", getattr(key, "idx", key)))
