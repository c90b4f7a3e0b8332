"""The matrix-scan oracles themselves: the loop against a closed form, its VJP against finite differences."""

from __future__ import annotations

import numpy as np
import pytest

from hybrid_seq.testing import matrix_scan_oracle, matrix_scan_oracle_vjp


def _inputs(per_key: bool, seed: int = 0):
    rng = np.random.default_rng(seed)
    b, t, g, h, k, v = 2, 7, 2, 4, 3, 2
    q, keys = rng.standard_normal((2, b, t, g, k))
    values = rng.standard_normal((b, t, h, v))
    log_decay = np.log(rng.uniform(0.3, 1.0, (b, t, h, k) if per_key else (b, t, h)))
    h0 = rng.standard_normal((b, h, k, v))
    reset = np.zeros((b, t), bool)
    reset[0, 3] = reset[1, 0] = True
    return q, keys, values, log_decay, h0, reset


@pytest.mark.parametrize("per_key", [False, True], ids=["scalar", "per_key"])
def test_oracle_equals_the_closed_form(per_key):
    """``y_t = sum_i q_t[i] (W_i[t, -1] h0[i] + sum_{s <= t} W_i[t, s] k_s[i] v_s)`` within a document."""
    q, keys, values, log_decay, h0, reset = _inputs(per_key)
    y, h_last = matrix_scan_oracle(q, keys, values, log_decay, h0, reset)
    b, t, g, k = q.shape
    heads = values.shape[2]
    rows = log_decay if per_key else np.repeat(log_decay[..., None], k, axis=-1)
    expected = np.zeros_like(y)
    for bi in range(b):
        starts = np.cumsum(reset[bi])
        for hi in range(heads):
            gi = hi // (heads // g)
            for ti in range(t):
                state = h0[bi, hi] * np.exp(rows[bi, : ti + 1, hi].sum(0))[:, None] if starts[ti] == 0 else 0.0
                for si in range(ti + 1):
                    if starts[si] == starts[ti]:
                        weight = np.exp(rows[bi, si + 1 : ti + 1, hi].sum(0))
                        state = state + np.outer(weight * keys[bi, si, gi], values[bi, si, hi])
                expected[bi, ti, hi] = q[bi, ti, gi] @ state
                if ti == t - 1:
                    np.testing.assert_allclose(h_last[bi, hi], state, rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(y, expected, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("per_key", [False, True], ids=["scalar", "per_key"])
def test_oracle_vjp_equals_central_differences(per_key):
    q, keys, values, log_decay, h0, reset = _inputs(per_key, seed=1)
    rng = np.random.default_rng(2)
    y, h_last = matrix_scan_oracle(q, keys, values, log_decay, h0, reset)
    dy, dh = rng.standard_normal(y.shape), rng.standard_normal(h_last.shape)
    primals = [q, keys, values, log_decay, h0]

    def loss(*args):
        y, h_last = matrix_scan_oracle(*args, reset)
        return np.sum(y * dy) + np.sum(h_last * dh)

    grads = matrix_scan_oracle_vjp(*primals, dy, dh, reset=reset)
    eps = 1e-6
    for position, (primal, grad) in enumerate(zip(primals, grads)):
        assert grad.shape == primal.shape
        numeric = np.zeros_like(primal)
        for index in np.ndindex(primal.shape):
            up, down = [p.copy() for p in primals], [p.copy() for p in primals]
            up[position][index] += eps
            down[position][index] -= eps
            numeric[index] = (loss(*up) - loss(*down)) / (2 * eps)
        np.testing.assert_allclose(grad, numeric, rtol=1e-6, atol=1e-7, err_msg=f"argument {position}")
