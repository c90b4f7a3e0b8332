"""Float64 NumPy loops: the ground truth for matrix scans and their gradients.

The most direct transcription of the contract (`hybrid_seq.matrix_scan.contract`), one
time step at a time, so a disagreement points at the implementation under test. Head
``h`` reads group ``h // (H // G)`` of ``q`` and ``k``; a scalar decay per head scales
the whole ``[K, V]`` state, a per-key decay scales its rows.
"""

from __future__ import annotations

import numpy as np


def _f64(x: object) -> np.ndarray:
    return np.asarray(x, dtype=np.float64)


def _inputs(q: object, k: object, v: object, log_decay: object, h0: object | None, reset: object | None):
    """Float64 per-head views: ``q``, ``k`` ``[B, T, H, K]``, ``decay`` ``[B, T, H, K or 1]``."""
    q, k, v, log_decay = _f64(q), _f64(k), _f64(v), _f64(log_decay)
    batch, length, groups, key = q.shape
    heads, value = v.shape[2], v.shape[3]
    group_of_head = np.arange(heads) // (heads // groups)
    decay = np.exp(log_decay if log_decay.ndim == 4 else log_decay[..., None])
    h0 = np.zeros((batch, heads, key, value)) if h0 is None else _f64(h0)
    reset = np.zeros((batch, length), bool) if reset is None else np.asarray(reset, bool)
    return q[:, :, group_of_head], k[:, :, group_of_head], v, decay, h0, reset


def _sum_heads_into_groups(x: np.ndarray, groups: int) -> np.ndarray:
    """``[B, T, H, K]`` -> ``[B, T, G, K]``: a group's gradient sums over its heads (contiguous)."""
    batch, length, heads, key = x.shape
    return x.reshape(batch, length, groups, heads // groups, key).sum(axis=3)


def _states(q, k, v, decay, h0, reset) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``(y, h, h_prev)``: every output, every state ``h_t`` and ``h_{t-1}`` after resets."""
    batch, length, heads, key = q.shape
    h = np.empty((batch, length, heads, key, v.shape[3]))
    h_prev = np.empty_like(h)
    y = np.empty_like(v)
    state = h0.copy()
    for t in range(length):
        state = np.where(reset[:, t, None, None, None], 0.0, state)
        h_prev[:, t] = state
        state = decay[:, t, :, :, None] * state + k[:, t, :, :, None] * v[:, t, :, None, :]
        h[:, t] = state
        y[:, t] = np.einsum("bhk,bhkv->bhv", q[:, t], state)
    return y, h, h_prev


def matrix_scan_oracle(
    q: object, k: object, v: object, log_decay: object, h0: object | None = None, reset: object | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """The matrix scan in float64; returns ``(y [B, T, H, V], h_last [B, H, K, V])``."""
    y, h, _ = _states(*_inputs(q, k, v, log_decay, h0, reset))
    return y, h[:, -1]


def matrix_scan_oracle_vjp(
    q: object,
    k: object,
    v: object,
    log_decay: object,
    h0: object | None,
    dy: object,
    dh_last: object,
    *,
    reset: object | None = None,
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Float64 gradients ``(dq, dk, dv, dlog_decay, dh0)`` of ``<dy, y> + <dh_last, h_last>``.

    A reverse loop over time: ``g_t = dL/dh_t = q_t dy_t^T + [not reset_{t+1}] a_{t+1} * g_{t+1}``
    (``g_{T-1}`` adds ``dh_last``), then ``dq_t = h_t dy_t``, ``dk_t = g_t v_t``,
    ``dv_t = g_t^T k_t``, ``dlog_decay_t = a_t * <g_t, h_{t-1}>`` over the rows it scales.
    """
    groups = np.shape(q)[2]
    per_key = np.ndim(log_decay) == 4
    q, k, v, decay, h0, reset = _inputs(q, k, v, log_decay, h0, reset)
    dy = _f64(dy)
    _, h, h_prev = _states(q, k, v, decay, h0, reset)
    dq, dk, dv = np.empty_like(q), np.empty_like(k), np.empty_like(v)
    d_decay = np.empty_like(decay)
    g_next = _f64(dh_last).copy()
    for t in reversed(range(q.shape[1])):
        g = g_next + q[:, t, :, :, None] * dy[:, t, :, None, :]
        dq[:, t] = np.einsum("bhkv,bhv->bhk", h[:, t], dy[:, t])
        dk[:, t] = np.einsum("bhkv,bhv->bhk", g, v[:, t])
        dv[:, t] = np.einsum("bhkv,bhk->bhv", g, k[:, t])
        rows = np.sum(g * h_prev[:, t], axis=-1)
        d_decay[:, t] = decay[:, t] * (rows if per_key else rows.sum(axis=-1, keepdims=True))
        g_next = np.where(reset[:, t, None, None, None], 0.0, decay[:, t, :, :, None] * g)
    dlog_decay = d_decay if per_key else d_decay[..., 0]
    return (
        _sum_heads_into_groups(dq, groups),
        _sum_heads_into_groups(dk, groups),
        dv,
        dlog_decay,
        g_next,
    )
