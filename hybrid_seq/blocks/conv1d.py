"""Causal depthwise 1-D convolution with document masking and an explicit state."""

from __future__ import annotations

import equinox as eqx
import jax.numpy as jnp
from jax.sharding import PartitionSpec as P
from jax.typing import DTypeLike
from jaxtyping import Array, Bool, Float, Int, PRNGKeyArray

from hybrid_seq.blocks.numerics import promote, variance_scaling
from hybrid_seq.distributed import sequence
from hybrid_seq.distributed.mesh import SEQ


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
        """Taps K of the convolution."""
        return self.weight.shape[0]

    def init_state(self, batch_size: int, dtype: DTypeLike) -> Float[Array, "B K1 L"]:
        """The last K - 1 inputs before any token: zeros."""
        return jnp.zeros((batch_size, self.temporal_width - 1, self.weight.shape[1]), dtype)

    def __call__(
        self,
        x: Float[Array, "B T L"],
        positions: Int[Array, "B T"],
        state: Float[Array, "B K1 L"] | None = None,
    ) -> tuple[Float[Array, "B T L"], Float[Array, "B K1 L"]]:
        """Under a mesh with a ``seq`` axis, a full-sequence call (no `state`) splits time over it
        and each shard takes the `K - 1` inputs before it from the shards before (the halo)."""
        x, w, b = promote(x, self.weight, self.bias)
        if state is None:
            split = sequence.current(x)
            if split is not None:
                return _split_convolve(split, x, positions, w, b)
        state_dtype = x.dtype if state is None else state.dtype
        if state is None:
            state = self.init_state(x.shape[0], x.dtype)
        out, next_state = _convolve(x, positions, state.astype(x.dtype), w, b)
        return out, next_state.astype(state_dtype)


def _convolve(
    x: Float[Array, "B T L"], positions: Int[Array, "B T"], state: Float[Array, "B K1 L"], w: Float[Array, "K L"],
    b: Float[Array, " L"],
) -> tuple[Float[Array, "B T L"], Float[Array, "B K1 L"]]:
    """The convolution of `x` after `state` (all in one dtype), and the state after `x`."""
    batch, length, _ = x.shape
    k = w.shape[0]
    z = jnp.concatenate([state, x], axis=1)
    starts = positions == 0
    keep = jnp.ones((batch, length), bool)
    out = jnp.zeros_like(x)
    for shift in range(k):
        if shift:
            keep = keep & ~_shift_right(starts, shift - 1)
        window = z[:, k - 1 - shift : k - 1 - shift + length]
        out = out + (window * keep[..., None].astype(x.dtype)) * w[k - 1 - shift]
    out = out + b
    return out, _next_state(z, starts, k)


def _split_convolve(
    split: sequence.SequenceSplit, x: Float[Array, "B T L"], positions: Int[Array, "B T"], w: Float[Array, "K L"],
    b: Float[Array, " L"],
) -> tuple[Float[Array, "B T L"], Float[Array, "B K1 L"]]:
    """`_convolve` from a zero state with time split over the mesh's ``seq`` axis.

    Each shard convolves its block preceded by its halo (the `K - 1` inputs before it, with
    their positions; zeros "inside a document" before the sequence starts, which add
    nothing), so every tap and every document mask sees what it sees unsplit.
    """
    batch, length, width = x.shape
    split.check_length(length, "Conv1D")
    k = w.shape[0]
    rows, channels = split.rows(batch), split.channels(width)

    def shard(x: Array, positions: Array, w: Array, b: Array) -> tuple[Array, Array]:
        xs = jnp.concatenate([sequence.halo(x, k - 1), x], axis=1)
        ps = jnp.concatenate([sequence.halo(positions, k - 1, fill=1), positions], axis=1)
        zeros = jnp.zeros((x.shape[0], k - 1, x.shape[2]), x.dtype)
        out, state = _convolve(xs, ps, zeros, w, b)
        return out[:, k - 1 :], sequence.from_last_shard(state)

    mapped = split.run(
        shard,
        in_specs=(P(rows, SEQ, channels), P(rows, SEQ), P(None, channels), P(channels)),
        out_specs=(P(rows, SEQ, channels), P(rows, None, channels)),
    )
    return mapped(x, positions, w, b)


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


