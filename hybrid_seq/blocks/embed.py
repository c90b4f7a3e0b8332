"""Tied input/output token embedding."""

from __future__ import annotations

from typing import ClassVar

import equinox as eqx
import jax
import jax.numpy as jnp
from jax.typing import DTypeLike
from jaxtyping import Array, Float, Int

from hybrid_seq.blocks.axes import EMBED, VOCAB, Axes
from hybrid_seq.blocks.numerics import promote, variance_scaling
from hybrid_seq.distributed import context


class Embedder(eqx.Module):
    """Token embedding `[V, D]`, shared by `encode` (lookup) and `decode` (logits).

    Out-of-range token ids give NaN embeddings (and so NaN logits) rather than silently
    reading a clamped row; `hybrid_seq.Model` also rejects them eagerly when it can see them.
    """

    weight: Float[Array, "V D"]
    scale_by_sqrt_dim: bool = eqx.field(static=True)

    param_axes: ClassVar[dict[tuple[str, ...], Axes]] = {("weight",): (VOCAB, EMBED)}

    def __init__(
        self,
        vocab_size: int,
        width: int,
        *,
        scale_by_sqrt_dim: bool,
        key: jax.Array,
        dtype: DTypeLike = jnp.float32,
    ):
        self.weight = variance_scaling(key, (vocab_size, width), width, 1.0, dtype)
        self.scale_by_sqrt_dim = scale_by_sqrt_dim

    @property
    def dtype(self) -> jnp.dtype:
        """The table's (and so the model's activation) dtype."""
        return self.weight.dtype

    @property
    def vocab_size(self) -> int:
        """Rows of the table."""
        return self.weight.shape[0]

    def encode(self, tokens: Int[Array, "*batch"]) -> Float[Array, "*batch D"]:
        """Embedding rows, times `bf16(sqrt(D))` when scaling (the constant is rounded to
        bfloat16 as in training, then applied in the embedding dtype: 50.5 for D=2560)."""
        x = context.lookup_table(self.weight).at[tokens].get(mode="fill", fill_value=jnp.nan, wrap_negative_indices=False)
        if self.scale_by_sqrt_dim:
            x = x * jnp.sqrt(jnp.float32(self.weight.shape[1])).astype(jnp.bfloat16)
        return x

    def decode(self, x: Float[Array, "*batch D"]) -> Float[Array, "*batch V"]:
        """Logits `x @ weight.T` in the promoted dtype."""
        x, w = promote(x, self.weight)
        return x @ w.T
