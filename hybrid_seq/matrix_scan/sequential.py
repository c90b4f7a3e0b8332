"""`sequential`: the recurrence one step at a time, with its gradient rematerialised per chunk.

Each step clears the state where a document starts, scales its rows by
``exp(log_decay_t)``, adds ``k_t v_t^T`` and reads ``y_t = q_t^T h_t``: the contract
literally, in float32, with heads viewed as ``[G, H // G]`` so a group's ``q``/``k`` is
broadcast to its heads instead of copied.

Gradient memory: plain autodiff of a loop over time would store one ``[K, V]`` state per
token (``B*T*H*K*V`` floats). Here an outer `lax.scan` runs over chunks of
``REMAT_CHUNK`` steps and the inner loop over a chunk is wrapped in `jax.checkpoint`: the
backward pass keeps only the state entering each chunk (``T / REMAT_CHUNK`` states) and
recomputes one chunk's states at a time (``REMAT_CHUNK`` more), for the price of one extra
forward pass. A hand-written VJP would need the same states: running the recurrence
backwards to recover ``h_{t-1}`` from ``h_t`` divides by ``exp(log_decay_t)`` and is
unstable for strong decay and undefined across resets.
Numerics: inputs are upcast to float32; state and ``y`` are float32, ``y`` is rounded to
``v.dtype`` once. Time is padded to whole chunks with zeros, which leaves the state as is.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
from jax import lax
from jaxtyping import Array, Float32

from hybrid_seq.matrix_scan._padding import pad_time, round_up
from hybrid_seq.matrix_scan.contract import Keys, LogDecay, Reset, State, Values

REMAT_CHUNK = 64

StepInputs = tuple[Array, Array, Array, Array, Array]
GroupedState = Float32[Array, "B G R K V"]


def _step(h: GroupedState, inputs: StepInputs) -> tuple[GroupedState, Float32[Array, "B G R V"]]:
    q_t, k_t, v_t, log_decay_t, reset_t = inputs
    h = jnp.where(reset_t[:, None, None, None, None], 0.0, h)
    h = jnp.exp(log_decay_t)[..., None] * h + k_t[:, :, None, :, None] * v_t[:, :, :, None, :]
    return h, jnp.einsum("bgk,bgrkv->bgrv", q_t, h)


@jax.checkpoint
def _chunk(h: GroupedState, inputs: StepInputs) -> tuple[GroupedState, Float32[Array, "C B G R V"]]:
    return lax.scan(_step, h, inputs)


def sequential_matrix_scan(
    q: Keys, k: Keys, v: Values, log_decay: LogDecay, h0: State, reset: Reset | None
) -> tuple[Values, State]:
    """Kernel of the `sequential` backend (see the module docstring)."""
    batch, length, groups, key = q.shape
    heads, value = v.shape[2], v.shape[3]
    per_group = heads // groups
    chunk = min(REMAT_CHUNK, length)
    padded = round_up(length, chunk)
    if reset is None:
        reset = jnp.zeros((batch, length), jnp.bool_)
    decay_rows = key if log_decay.ndim == 4 else 1

    def chunks(x: Array, *inner: int) -> Array:
        """``[B, T, ...]`` -> float32/bool ``[N, C, B, *inner]``: time-major, in chunks."""
        x = pad_time(x, padded).reshape(batch, padded // chunk, chunk, *inner)
        return jnp.moveaxis(x, 0, 2)

    inputs = (
        chunks(q.astype(jnp.float32), groups, key),
        chunks(k.astype(jnp.float32), groups, key),
        chunks(v.astype(jnp.float32), groups, per_group, value),
        chunks(log_decay, groups, per_group, decay_rows),
        chunks(reset),
    )
    h_last, ys = lax.scan(_chunk, h0.reshape(batch, groups, per_group, key, value), inputs)
    y = jnp.moveaxis(ys, 2, 0).reshape(batch, padded, heads, value)[:, :length]
    return y.astype(v.dtype), h_last.reshape(batch, heads, key, value)
