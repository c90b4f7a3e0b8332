"""Dense and block-diagonal linear layers with `[in, out]` weights."""

from __future__ import annotations

import equinox as eqx
import jax.numpy as jnp
from jax.typing import DTypeLike
from jaxtyping import Array, Float, PRNGKeyArray

from hybrid_seq.blocks.numerics import promote, variance_scaling


class Linear(eqx.Module):
    """`y = x @ weight + bias` on the last axis; weight `[in, out]` (the Flax kernel layout).

    Computed in the promoted dtype of `x` and the weights, accumulated in float32 by XLA, the
    result rounded to the promoted dtype. Initialised with variance scaling
    `scale / in_features`, bias zeros.
    """

    weight: Float[Array, "I O"]
    bias: Float[Array, " O"] | None

    def __init__(
        self,
        in_features: int,
        out_features: int,
        *,
        use_bias: bool,
        key: PRNGKeyArray,
        init_scale: float = 1.0,
        dtype: DTypeLike = jnp.float32,
    ):
        self.weight = variance_scaling(key, (in_features, out_features), in_features, init_scale, dtype)
        self.bias = jnp.zeros((out_features,), dtype) if use_bias else None

    def __call__(self, x: Float[Array, "*batch I"]) -> Float[Array, "*batch O"]:
        """`x @ weight (+ bias)` on the last axis."""
        if self.bias is None:
            x, w = promote(x, self.weight)
            return x @ w
        x, w, b = promote(x, self.weight, self.bias)
        return x @ w + b


class BlockDiagonalLinear(eqx.Module):
    """Independent square linear maps on `num_blocks` contiguous chunks of the last axis.

    Chunk `h` is features `h*n .. (h+1)*n - 1` with `n = width / num_blocks`.
    Weight `[H, n, n]` initialised with variance `1 / width` (the reference's fan-in counts
    all blocks), bias `[H, n]` zeros.
    """

    weight: Float[Array, "H N N"]
    bias: Float[Array, "H N"]

    def __init__(self, width: int, num_blocks: int, *, key: PRNGKeyArray, dtype: DTypeLike = jnp.float32):
        if width % num_blocks:
            raise ValueError(f"width={width} is not divisible by num_blocks={num_blocks}")
        n = width // num_blocks
        self.weight = variance_scaling(key, (num_blocks, n, n), width, 1.0, dtype)
        self.bias = jnp.zeros((num_blocks, n), dtype)

    def __call__(self, x: Float[Array, "*batch W"]) -> Float[Array, "*batch W"]:
        """Each contiguous chunk of the last axis through its own square map."""
        x, w, b = promote(x, self.weight, self.bias)
        num_blocks, n, _ = w.shape
        x = x.reshape(*x.shape[:-1], num_blocks, n)
        y = jnp.einsum("...hi,hij->...hj", x, w) + b
        return y.reshape(*y.shape[:-2], num_blocks * n)
