"""`chunked`: the chunkwise-parallel (SSD) form: matmuls inside chunks, a scan across them.

Time is split into N chunks of C steps (the tail is padded with zeros, which leaves the
state unchanged). Inside a chunk, with ``h_in`` the state entering it::

    y_t   = sum_{s <= t} M[t, s] v_s  +  (q_t * D_t)^T h_in      M[t, s] = sum_i q_t[i] k_s[i] W_i[t, s]
    h_out = D_last * h_in  +  sum_s (k_s * W[last, s]) v_s^T

where ``W[t, s] = exp(sum_{s < r <= t} log_decay_r)`` is the decay from s to t and
``D_t = exp(sum_{r <= t} log_decay_r)`` the decay from the chunk's start. The ``[C, C]``
matrices ``M`` are built for all chunks at once; only the ``[K, V]`` states entering each
chunk pass through a `lax.scan` over chunks, so no per-token state is ever formed.
Every exponent is a direct sum of the steps it spans (masked or reverse cumulative sums,
never differences of running totals): ``<= 0``, and as precise as a short sum.

Resets: with ``d_t`` the number of document starts in the chunk up to t, ``M[t, s]`` is
kept only where ``d_t == d_s`` (no start in ``(s, t]``), ``D_t`` only where ``d_t == 0``
(no start since the chunk began) and ``W[last, s]`` only where ``d_s == d_last``; a chunk
holding a start thus drops ``h_in`` from its outputs and its ``h_out``. The masks select
with `jnp.where` among finite values, so a reset is an exact zero with no ``exp(-inf)``
and no NaN in either pass.

Scalar decay (Mamba-2) uses chunks of ``chunk`` = 64 steps: ``W`` is one ``[C, C]`` matrix
per head and ``M = (q k^T) * W`` with ``q k^T`` computed once per group. Per-key decay
(GLA) needs ``W`` per key row; `_key_decay` builds ``M`` one diagonal at a time (C passes
over ``[B, T, H, K]``, so ``C * K`` work per token and head), hence shorter chunks of
``key_chunk`` = 32 steps, at the price of storing twice as many chunk states (32 was as
fast as 16 and 64 at (2, 2048, 8, 64, 64) on CPU, with less memory than 16).

Gradient memory: plain autodiff, except the per-key ``M`` (hand-written VJP whose
residuals are its inputs). Residuals are ``M`` (``B*H*T*C``), the states entering each
chunk (``B*H*K*V*T/C``) and float32 copies of the inputs; compiled numbers in
docs/matrix_scan.md.
Numerics: inputs are upcast to float32; every sum and product is float32 and ``y`` is
rounded to ``v.dtype`` once.
"""

from __future__ import annotations

import dataclasses

import jax.numpy as jnp
from jax import lax
from jaxtyping import Array, Float32

from hybrid_seq.matrix_scan._key_decay import key_decay_scores
from hybrid_seq.matrix_scan._padding import pad_time, round_up
from hybrid_seq.matrix_scan.contract import Keys, LogDecay, Reset, State, Values

CHUNK = 64
KEY_CHUNK = 32


def _segment_sums(x: Float32[Array, "*batch L"]) -> Float32[Array, "*batch L L"]:
    """``out[..., t, s] = sum_{s < r <= t} x[..., r]`` for ``t > s``, else 0 (summed directly)."""
    length = x.shape[-1]
    later = jnp.tril(jnp.ones((length, length), jnp.bool_), -1)
    return jnp.cumsum(jnp.where(later, x[..., :, None], 0.0), axis=-2)


def _keep(mask: Array, x: Float32[Array, "*shape"]) -> Float32[Array, "*shape"]:
    """``x`` where ``mask`` (broadcast over the trailing axes of ``x``), else exactly 0."""
    return jnp.where(mask.reshape(mask.shape + (1,) * (x.ndim - mask.ndim)), x, 0.0)


def _suffix_sums(x: Float32[Array, "B N C *rest"]) -> Float32[Array, "B N C *rest"]:
    """``out[:, :, s] = sum_{r > s} x[:, :, r]`` within each chunk (exclusive of s, summed directly)."""
    shifted = jnp.concatenate([x[:, :, 1:], jnp.zeros_like(x[:, :, :1])], axis=2)
    return lax.cumsum(shifted, axis=2, reverse=True)


@dataclasses.dataclass(frozen=True)
class Chunked:
    """Kernel of the `chunked` backend (see the module docstring).

    ``chunk``: steps per chunk under scalar decay; ``key_chunk``: under per-key decay.
    Inputs shorter than a chunk use one chunk of their own length.
    """

    chunk: int = CHUNK
    key_chunk: int = KEY_CHUNK

    def __post_init__(self) -> None:
        if self.chunk < 1 or self.key_chunk < 1:
            raise ValueError(f"matrix_scan.Chunked: chunk = {self.chunk} and key_chunk = {self.key_chunk} must be >= 1")

    def __call__(
        self, q: Keys, k: Keys, v: Values, log_decay: LogDecay, h0: State, reset: Reset | None
    ) -> tuple[Values, State]:
        """The kernel: `(y, h_last)` on checked inputs, chunk by chunk (see the module docstring)."""
        batch, length, groups, key = q.shape
        heads, value = v.shape[2], v.shape[3]
        per_group = heads // groups
        per_key = log_decay.ndim == 4
        chunk = min(self.key_chunk if per_key else self.chunk, length)
        padded = round_up(length, chunk)
        n_chunks = padded // chunk

        def chunks(x: Array, *inner: int) -> Array:
            return pad_time(x, padded).reshape(batch, n_chunks, chunk, *inner)

        qc = chunks(q.astype(jnp.float32), groups, key)
        kc = chunks(k.astype(jnp.float32), groups, key)
        vc = chunks(v.astype(jnp.float32), heads, value)
        ld = chunks(log_decay, heads, *((key,) if per_key else ()))
        # Head h reads group h // per_group: repeat each group for its heads.
        qh, kh = jnp.repeat(qc, per_group, axis=3), jnp.repeat(kc, per_group, axis=3)

        # D_t (from the chunk's start to t), W[last, s] (from s to the chunk's end), M[t, s].
        from_start = jnp.exp(jnp.cumsum(ld, axis=2))
        if per_key:
            scores = key_decay_scores(qh, kh, ld)
            to_end = jnp.exp(_suffix_sums(ld))
        else:
            causal = jnp.tril(jnp.ones((chunk, chunk), jnp.bool_))
            within = jnp.where(causal, jnp.exp(_segment_sums(jnp.moveaxis(ld, 2, -1))), 0.0)
            # q k^T once per group, then weighted per head.
            scores = jnp.repeat(jnp.einsum("bntgk,bnsgk->bngts", qc, kc), per_group, axis=2) * within
            to_end = jnp.moveaxis(within[..., -1, :], -1, 2)

        if reset is not None:
            starts = jnp.cumsum(chunks(reset).astype(jnp.int32), axis=2)
            same_doc = starts[:, :, :, None] == starts[:, :, None, :]
            scores = jnp.where(same_doc[:, :, None], scores, 0.0)
            from_start = _keep(starts == 0, from_start)
            to_end = _keep(starts == starts[:, :, -1:], to_end)
        if not per_key:
            from_start, to_end = from_start[..., None], to_end[..., None]

        states = jnp.einsum("bnshk,bnshv->nbhkv", kh * to_end, vc)

        def carry(h: Float32[Array, "B H K V"], step: tuple[Array, Array]) -> tuple[Array, Array]:
            decay, state = step
            return decay[..., None] * h + state, h

        h_last, h_in = lax.scan(carry, h0, (jnp.moveaxis(from_start[:, :, -1], 1, 0), states))
        y = jnp.einsum("bnhts,bnshv->bnthv", scores, vc) + jnp.einsum("bnthk,nbhkv->bnthv", qh * from_start, h_in)
        y = y.reshape(batch, padded, heads, value)[:, :length]
        return y.astype(v.dtype), h_last
