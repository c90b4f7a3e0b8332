"""Per-device memory of training on a mesh: parameters and optimizer state from shardings, activations from XLA.

* **Parameters and optimizer state** are exact and need no devices: every leaf of the
  abstract model (`eqx.filter_eval_shape`, never allocated) and of the optimizer state
  `optimizer.init` would make, at the shard shape its sharding gives, on an
  `AbstractMesh` of any size.
* **Activations** are the temporary buffers of the compiled train step (XLA's
  `memory_analysis().temp_size_in_bytes`: activations kept for the backward pass,
  gradients in flight, gathered weights, workspace), lowered from abstract arrays on a
  mesh of real devices (fake CPU devices will do). On CPU that is XLA:CPU's buffer
  assignment; GPU and TPU compilers fuse and schedule differently, so treat it as an
  estimate of the same program elsewhere.
"""

from __future__ import annotations

import dataclasses
import math
from typing import Any

import equinox as eqx
import jax
import jax.numpy as jnp
from jax.sharding import AbstractMesh, AxisType, NamedSharding

from hybrid_seq.distributed.layout import Layout, is_array_like
from hybrid_seq.distributed.mesh import MeshSpec


@dataclasses.dataclass(frozen=True)
class StateBytes:
    """Bytes per device (the largest shard of every leaf, summed)."""

    params: int
    optimizer: int


def abstract_mesh(spec: str | MeshSpec, devices: int) -> AbstractMesh:
    """The mesh of `spec` over `devices` devices, without devices."""
    sizes = (MeshSpec.parse(spec) if isinstance(spec, str) else spec).resolve(devices)
    return AbstractMesh(tuple(sizes.values()), tuple(sizes), axis_types=(AxisType.Auto,) * len(sizes))


def abstract_model(config: Any, *, dtype: Any = jnp.float32, scan_layers: bool = True) -> Any:
    """The model of `config` as `jax.ShapeDtypeStruct` leaves (nothing allocated)."""
    from hybrid_seq.model import Model

    return eqx.filter_eval_shape(Model, config, key=jax.random.key(0), dtype=dtype, scan_layers=scan_layers)


def _floating(leaf: Any) -> bool:
    return is_array_like(leaf) and jnp.issubdtype(leaf.dtype, jnp.inexact)


def shard_bytes(tree: Any, shardings: Any) -> int:
    """Bytes of the largest shard of every array leaf of `tree` on the sharding of the same leaf, summed."""
    leaves = jax.tree_util.tree_leaves(eqx.filter(tree, is_array_like))
    placed = jax.tree_util.tree_leaves(shardings, is_leaf=lambda x: isinstance(x, NamedSharding))
    return sum(math.prod(s.shard_shape(tuple(leaf.shape))) * jnp.dtype(leaf.dtype).itemsize for leaf, s in zip(leaves, placed))


def state_bytes(model: Any, optimizer: Any, layout: Layout) -> StateBytes:
    """Per-device bytes of `model`'s parameters and of `optimizer`'s state for them (abstract or concrete)."""
    params = eqx.filter(model, _floating)
    opt_state = jax.eval_shape(optimizer.init, params)
    return StateBytes(
        params=shard_bytes(model, layout.model_shardings(model)),
        optimizer=shard_bytes(opt_state, layout.state_shardings(opt_state, params)),
    )


def step_temp_bytes(model: Any, optimizer: Any, layout: Layout, *, batch: int, seq_len: int, step_config: Any) -> int:
    """Temporary bytes per device of the compiled train step on `layout`'s (real) mesh, from abstract arrays.

    `model` is abstract (`abstract_model`); the batch is `batch` rows of `seq_len` tokens.
    """
    from hybrid_seq.training.data import Batch
    from hybrid_seq.training.step import train_step_function

    step = train_step_function(optimizer, step_config, layout=layout)
    params, static = eqx.partition(model, is_array_like)
    opt_state = jax.eval_shape(optimizer.init, eqx.filter(model, _floating))
    opt_arrays, opt_static = eqx.partition(opt_state, is_array_like)

    def placed(tree: Any, shardings: Any) -> Any:
        return jax.tree_util.tree_map(lambda leaf, s: jax.ShapeDtypeStruct(leaf.shape, leaf.dtype, sharding=s), tree, shardings)

    rows = jax.ShapeDtypeStruct((batch, seq_len), jnp.int32, sharding=layout.batch_sharding())
    mask = jax.ShapeDtypeStruct((batch, seq_len), jnp.bool_, sharding=layout.batch_sharding())

    def on_arrays(tokens, positions, targets, loss_mask, params, opt_arrays):
        model, opt = eqx.combine(params, static), eqx.combine(opt_arrays, opt_static)
        model, opt, metrics = step(Batch(tokens, positions, targets, loss_mask), model, opt)
        return eqx.filter(model, eqx.is_array), eqx.filter(opt, eqx.is_array), metrics

    with jax.set_mesh(layout.mesh):
        lowered = jax.jit(on_arrays, donate_argnums=(4, 5)).lower(
            rows, rows, rows, mask,
            placed(params, layout.model_shardings(model)),
            placed(opt_arrays, layout.state_shardings(opt_state, model)),
        )
    return int(lowered.compile().memory_analysis().temp_size_in_bytes)
