"""Numerics shared by the blocks: dtype promotion and initialisers.

Compute dtype policy (as in the reference): every layer promotes its inputs and parameters
to their common dtype, so the compute dtype follows the parameter dtype (bf16 parameters
give bf16 activations). Matmuls and einsums (`Linear`, attention scores, the MoE experts)
take inputs in that dtype and leave the accumulation to XLA's default precision, which
accumulates in float32 on CPU, GPU and TPU and rounds the result to the promoted dtype.
Exceptions, stated where they happen: recurrence states and scan carries (fp32), the
Mamba-2 dt, decay, SSD and gated norm (fp32), attention softmax (fp32), RoPE angles (fp32,
exact), MoE routing weights (fp32), RG-LRU gates optionally (`gate_dtype`).
"""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp
from jax.typing import DTypeLike
from jaxtyping import Array, PRNGKeyArray


def promote(*arrays: Array) -> tuple[Array, ...]:
    """Cast all `arrays` to their common result dtype."""
    dtype = jnp.result_type(*arrays)
    return tuple(jnp.asarray(a, dtype) for a in arrays)


def variance_scaling(
    key: PRNGKeyArray, shape: tuple[int, ...], fan_in: int, scale: float, dtype: DTypeLike
) -> Array:
    """Untruncated normal with std `sqrt(scale / fan_in)` (JAX's `variance_scaling`, fan_in, normal)."""
    std = math.sqrt(scale / fan_in)
    return (std * jax.random.normal(key, shape, jnp.float32)).astype(dtype)
