"""`sequential`: one loop over time, slicing the time axis in place.

Tuned for XLA:CPU. The loop indexes ``x[:, t]`` directly instead of scanning over a
transposed ``[T, B, D]`` copy, and it writes every step into a float32 ``[B, T, D]``
buffer that is cast to ``x.dtype`` once at the end: a per-step write into a bf16/fp16
buffer makes XLA:CPU copy the whole buffer every step (quadratic time).
Numerics: each ``x_t``, ``a_t`` is upcast to float32, the carry is float32, ``y`` is
rounded to ``x.dtype`` once.
"""

from __future__ import annotations

import jax.numpy as jnp
from jax import lax

from hybrid_seq.scan.contract import Sequence, State


def sequential_scan(x: Sequence, a: Sequence, h0: State) -> tuple[Sequence, State]:
    """Forward kernel of the `sequential` backend (see the module docstring)."""
    batch, length, width = x.shape

    def step(t, carry):
        h, ys = carry
        x_t = lax.dynamic_index_in_dim(x, t, axis=1, keepdims=False).astype(jnp.float32)
        a_t = lax.dynamic_index_in_dim(a, t, axis=1, keepdims=False).astype(jnp.float32)
        h = a_t * h + x_t
        return h, lax.dynamic_update_index_in_dim(ys, h, t, axis=1)

    ys = jnp.zeros((batch, length, width), jnp.float32)
    h_last, ys = lax.fori_loop(0, length, step, (h0, ys))
    return ys.astype(x.dtype), h_last
