"""Gated-GeLU MLP (the channel mixer of every residual block)."""

from __future__ import annotations

import equinox as eqx
import jax
import jax.numpy as jnp
from jax.typing import DTypeLike
from jaxtyping import Array, Float, PRNGKeyArray

from hybrid_seq.blocks.linear import Linear


class GatedMLP(eqx.Module):
    """`down(gelu(gate(x)) * up(x))` with the tanh-approximate GeLU.

    `gate` and `up` are the reference's `ffw_up.w[0]` and `w[1]`; both are initialised with
    variance `1 / (2 * width)` (the reference's fan-in counts the two branches), `down` with
    `final_init_scale / expanded_width`.
    """

    gate: Linear
    up: Linear
    down: Linear

    def __init__(
        self,
        width: int,
        expanded_width: int,
        *,
        final_init_scale: float,
        key: PRNGKeyArray,
        dtype: DTypeLike = jnp.float32,
    ):
        k_gate, k_up, k_down = jax.random.split(key, 3)
        self.gate = Linear(width, expanded_width, use_bias=True, init_scale=0.5, key=k_gate, dtype=dtype)
        self.up = Linear(width, expanded_width, use_bias=True, init_scale=0.5, key=k_up, dtype=dtype)
        self.down = Linear(
            expanded_width, width, use_bias=True, init_scale=final_init_scale, key=k_down, dtype=dtype
        )

    def __call__(self, x: Float[Array, "*batch D"]) -> Float[Array, "*batch D"]:
        return self.down(jax.nn.gelu(self.gate(x), approximate=True) * self.up(x))
