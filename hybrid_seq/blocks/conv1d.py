"""Causal depthwise 1-D convolution with document masking and an explicit state."""

from __future__ import annotations

import equinox as eqx
import jax.numpy as jnp
from jax.typing import DTypeLike
from jaxtyping import Array, Bool, Float, Int, PRNGKeyArray

from hybrid_seq.blocks.numerics import promote, variance_scaling


class Conv1D(eqx.Module):
    """`y[t] = b + sum_s w[K-1-s] * x[t-s]`, never mixing documents.

    A tap reaching back over a document start (position 0) is dropped. The state holds the
    last `K-1` inputs, with rows from before the newest document start zeroed, so chunked
    calls (any chunk size, including decoding one token) equal one call on the whole
    sequence. This also fixes the reference's decode path, which has no document mask and
    leaks left-padding into short prompts. Computed in the promoted dtype of `x`, `w`, `b`;
    the state is stored in that dtype.
    """

    weight: Float[Array, "K L"]
    bias: Float[Array, " L"]

    def __init__(self, width: int, temporal_width: int = 4, *, key: PRNGKeyArray, dtype: DTypeLike = jnp.float32):
        self.weight = variance_scaling(key, (temporal_width, width), temporal_width, 0.01, dtype)
        self.bias = jnp.zeros((width,), dtype)

    @property
    def temporal_width(self) -> int:
        return self.weight.shape[0]

    def init_state(self, batch_size: int, dtype: DTypeLike) -> Float[Array, "B K1 L"]:
        return jnp.zeros((batch_size, self.temporal_width - 1, self.weight.shape[1]), dtype)

    def __call__(
        self,
        x: Float[Array, "B T L"],
        positions: Int[Array, "B T"],
        state: Float[Array, "B K1 L"] | None = None,
    ) -> tuple[Float[Array, "B T L"], Float[Array, "B K1 L"]]:
        x, w, b = promote(x, self.weight, self.bias)
        batch, length, width = x.shape
        k = self.temporal_width
        state_dtype = x.dtype if state is None else state.dtype
        if state is None:
            state = self.init_state(batch, x.dtype)
        z = jnp.concatenate([state.astype(x.dtype), x], axis=1)
        starts = positions == 0
        keep = jnp.ones((batch, length), bool)
        out = jnp.zeros_like(x)
        for shift in range(k):
            if shift:
                keep = keep & ~_shift_right(starts, shift - 1)
            window = z[:, k - 1 - shift : k - 1 - shift + length]
            out = out + (window * keep[..., None].astype(x.dtype)) * w[k - 1 - shift]
        out = out + b
        return out, _next_state(z, starts, k).astype(state_dtype)


def _shift_right(flags: Bool[Array, "B T"], shift: int) -> Bool[Array, "B T"]:
    """`flags[:, t - shift]`, False where `t - shift < 0`."""
    if shift == 0:
        return flags
    return jnp.pad(flags, ((0, 0), (shift, 0)))[:, : flags.shape[1]]


def _next_state(z: Float[Array, "B S L"], starts: Bool[Array, "B T"], k: int) -> Float[Array, "B K1 L"]:
    """The last `k-1` rows of `z`, zeroed where a later token of this chunk starts a document."""
    length = starts.shape[1]
    padded = jnp.pad(starts, ((0, 0), (k - 1, 0)))
    rows = []
    for r in range(k - 1):
        later_start = jnp.any(padded[:, length + r + 1 : length + k - 1], axis=1)
        rows.append(jnp.where(later_start[:, None], 0, z[:, length + r]))
    return jnp.stack(rows, axis=1) if rows else z[:, :0]


