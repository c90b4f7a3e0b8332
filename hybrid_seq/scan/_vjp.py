"""The memory-efficient backward pass shared by every backend.

The transpose of a linear scan is the same scan run backwards in time: with
``g_t = dL/dh_t``, ``g_t = a_{t+1} * g_{t+1} + dy_t`` and ``g_{T-1} = dy_{T-1} + dh_last``.
Then ``dx = g``, ``da_t = g_t * h_{t-1}`` and ``dh0 = a_0 * g_0``. The only residuals are
``a``, ``y`` (which the caller keeps anyway) and ``h0``: no per-step state is stored.
The reverse scan reuses the backend's own forward kernel on time-flipped inputs.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

from hybrid_seq.scan.contract import Kernel, Sequence, State


def reverse_scan(kernel: Kernel, x: Sequence, a_next: Sequence, carry: State) -> tuple[Sequence, State]:
    """``g_t = a_next_t * g_{t+1} + x_t`` with ``g_T = carry``; returns ``(g, g_0)``.

    ``g`` is in ``x.dtype``; ``g_0`` is float32 (the kernel's ``h_last``).
    """
    g, g0 = kernel(jnp.flip(x, axis=1), jnp.flip(a_next, axis=1), carry)
    return jnp.flip(g, axis=1), g0


def with_scan_vjp(kernel: Kernel) -> Kernel:
    """Wrap a forward kernel in a custom VJP built from `reverse_scan`."""

    def forward(x: Sequence, a: Sequence, h0: State) -> tuple[tuple[Sequence, State], tuple]:
        y, h_last = kernel(x, a, h0)
        return (y, h_last), (a, y, h0)

    def backward(residuals: tuple, cotangents: tuple) -> tuple[Sequence, Sequence, State]:
        a, y, h0 = residuals
        dy, dh_last = cotangents
        # a_next_t = a_{t+1}; the final 1 lets dh_last enter g_{T-1} unscaled.
        a_next = jnp.concatenate([a[:, 1:], jnp.ones_like(a[:, :1])], axis=1)
        g, g0 = reverse_scan(kernel, dy.astype(y.dtype), a_next, dh_last.astype(jnp.float32))
        # h_{t-1}: y delayed by one step with h0 in front; the product is taken in float32.
        h_prev = jnp.concatenate([h0[:, None, :], y[:, :-1].astype(jnp.float32)], axis=1)
        da = (g.astype(jnp.float32) * h_prev).astype(a.dtype)
        dh0 = a[:, 0].astype(jnp.float32) * g0
        return g.astype(y.dtype), da, dh0

    differentiable = jax.custom_vjp(kernel)
    differentiable.defvjp(forward, backward)
    return differentiable
