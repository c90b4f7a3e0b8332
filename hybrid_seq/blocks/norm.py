"""RMSNorm with a zero-centred scale (Gemma style)."""

from __future__ import annotations

import equinox as eqx
import jax
import jax.numpy as jnp
from jax.typing import DTypeLike
from jaxtyping import Array, Float

from hybrid_seq.blocks.numerics import promote


class RMSNorm(eqx.Module):
    """`y = x * rsqrt(mean(x^2) + eps) * (1 + scale)` over the last axis.

    `scale` starts at zeros (identity). Computed in the promoted dtype of `x` and `scale`
    with no fp32 upcast, as the reference does (HuggingFace upcasts; only bf16 differs).
    """

    scale: Float[Array, " D"]
    eps: float = eqx.field(static=True)

    def __init__(self, width: int, *, eps: float = 1e-6, dtype: DTypeLike = jnp.float32):
        self.scale = jnp.zeros((width,), dtype)
        self.eps = eps

    def __call__(self, x: Float[Array, "*batch D"]) -> Float[Array, "*batch D"]:
        x, scale = promote(x, self.scale)
        var = jnp.mean(jnp.square(x), axis=-1, keepdims=True)
        return x * jax.lax.rsqrt(var + self.eps) * (scale + 1)
