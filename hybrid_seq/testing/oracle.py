"""Float64 NumPy loops: the ground truth for scans and their gradients.

Deliberately the most direct transcription of the recurrence, with no vectorisation
tricks, so a disagreement points at the implementation under test.
"""

from __future__ import annotations

import numpy as np


def _f64(v: object) -> np.ndarray:
    return np.asarray(v, dtype=np.float64)


def scan_oracle(x: object, a: object, h0: object | None = None) -> tuple[np.ndarray, np.ndarray]:
    """``h_t = a_t * h_{t-1} + x_t`` over axis 1 in float64; returns ``(y, h_last)``."""
    x, a = _f64(x), _f64(a)
    h = np.zeros((x.shape[0], x.shape[2])) if h0 is None else _f64(h0).copy()
    y = np.empty_like(x)
    for t in range(x.shape[1]):
        h = a[:, t] * h + x[:, t]
        y[:, t] = h
    return y, h


def scan_oracle_vjp(
    x: object, a: object, h0: object | None, dy: object, dh_last: object
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Float64 gradients ``(dx, da, dh0)`` of ``<dy, y> + <dh_last, h_last>``."""
    x, a, dy = _f64(x), _f64(a), _f64(dy)
    h0 = np.zeros((x.shape[0], x.shape[2])) if h0 is None else _f64(h0)
    y, _ = scan_oracle(x, a, h0)
    h_prev = np.concatenate([h0[:, None], y[:, :-1]], axis=1)
    dx = np.empty_like(x)
    da = np.empty_like(x)
    g = _f64(dh_last).copy()
    for t in reversed(range(x.shape[1])):
        g = g + dy[:, t]
        dx[:, t] = g
        da[:, t] = g * h_prev[:, t]
        g = a[:, t] * g
    return dx, da, g
