"""Properties every registered backend must satisfy, checked against the float64 oracle."""

from __future__ import annotations

import jax.numpy as jnp
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from hybrid_seq import scan
from hybrid_seq.testing import scan_cases, scan_oracle, scan_oracle_vjp, shapes
from tests.scan.conftest import assert_close, jitted, jitted_grad

BACKENDS = scan.names()
_PLATFORM = scan.current_platform()
INTERPRETED = [n for n in BACKENDS if _PLATFORM in scan.get_backend(n).interpreted_on]
NATIVE = [n for n in BACKENDS if n not in INTERPRETED]


def over_backends(**strategies):
    """Turn ``check(name, ...)`` into two hypothesis tests: native backends with the
    profile's example count, interpreted (slow) backends with 4 examples."""

    def make(check):
        native = pytest.mark.parametrize("name", NATIVE)(given(**strategies)(check))
        interpreted = pytest.mark.parametrize("name", INTERPRETED)(
            settings(max_examples=4)(given(**strategies)(check))
        )
        return native, interpreted

    return make


def check_matches_float64_oracle(name, case):
    y, h_last = jitted(name)(case.x, case.a, case.h0)
    assert y.dtype == case.x.dtype and y.shape == case.x.shape, case.id
    assert h_last.dtype == jnp.float32 and h_last.shape == (case.shape[0], case.shape[2]), case.id
    y_ref, h_ref = scan_oracle(case.x, case.a, case.h0)
    assert_close(y, y_ref, case.dtype_name, what=f"y {case.id}")
    assert_close(h_last, h_ref, "float32", what=f"h_last {case.id}")


test_matches_float64_oracle, test_matches_float64_oracle_interpreted = over_backends(case=scan_cases())(
    check_matches_float64_oracle
)


def check_backends_agree(name, case):
    y, h_last = jitted(name)(case.x, case.a, case.h0)
    y_seq, h_seq = jitted("sequential")(case.x, case.a, case.h0)
    assert_close(y, y_seq, "float32", what=case.id)
    assert_close(h_last, h_seq, "float32", what=case.id)


test_backends_agree, test_backends_agree_interpreted = over_backends(case=scan_cases(dtype=st.just("float32")))(
    check_backends_agree
)


def check_split_in_time_chains_through_h_last(name, case, data):
    split = data.draw(st.integers(1, case.shape[1] - 1), label="split")
    fn = jitted(name)
    y, h_last = fn(case.x, case.a, case.h0)
    y1, h1 = fn(case.x[:, :split], case.a[:, :split], case.h0)
    y2, h2 = fn(case.x[:, split:], case.a[:, split:], h1)
    assert_close(jnp.concatenate([y1, y2], axis=1), y, case.dtype_name, what=case.id)
    assert_close(h2, h_last, "float32", what=case.id)


test_split_in_time_chains_through_h_last, test_split_in_time_chains_through_h_last_interpreted = over_backends(case=scan_cases(shape=shapes(max_time=24).filter(lambda s: s[1] >= 2)), data=st.data())(
    check_split_in_time_chains_through_h_last
)


def check_h0_equals_prepended_step(name, case):
    x = np.concatenate([case.h0[:, None], case.x], axis=1)
    a = np.concatenate([np.zeros_like(case.a[:, :1]), case.a], axis=1)
    y, h_last = jitted(name)(case.x, case.a, case.h0)
    y_long, h_long = jitted(name)(x, a, None)
    assert_close(y, y_long[:, 1:], "float32", what=case.id)
    assert_close(h_last, h_long, "float32", what=case.id)


test_h0_equals_prepended_step, test_h0_equals_prepended_step_interpreted = over_backends(case=scan_cases(dtype=st.just("float32"), h0=st.just(True)))(
    check_h0_equals_prepended_step
)


def check_gradients_match_oracle(name, case, seed):
    rng = np.random.default_rng(seed)
    wy = rng.standard_normal(case.shape).astype(np.float32)
    wh = rng.standard_normal((case.shape[0], case.shape[2])).astype(np.float32)
    dx, da, dh0 = jitted_grad(name)(case.x, case.a, case.h0, wy, wh)
    assert dx.dtype == case.x.dtype and da.dtype == case.a.dtype and dh0.dtype == jnp.float32
    # The cotangent of y arrives rounded to y's dtype, as JAX delivers it.
    wy_rounded = np.asarray(jnp.asarray(wy, case.x.dtype), np.float64)
    rx, ra, rh0 = scan_oracle_vjp(case.x, case.a, case.h0, wy_rounded, wh)
    scale = 1.0 + np.abs(rx).max()
    assert_close(dx, rx, case.dtype_name, scale, what=f"dx {case.id}")
    assert_close(da, ra, case.dtype_name, scale * (1.0 + np.abs(case.h0).max()), what=f"da {case.id}")
    assert_close(dh0, rh0, case.dtype_name, scale, what=f"dh0 {case.id}")


test_gradients_match_oracle, test_gradients_match_oracle_interpreted = over_backends(case=scan_cases(h0=st.just(True)), seed=st.integers(0, 2**16))(
    check_gradients_match_oracle
)


@pytest.mark.parametrize("name", BACKENDS)
@pytest.mark.parametrize("dtype", ["float32", "bfloat16"])
def test_zero_decay_resets_and_unit_decay_is_cumsum(name, dtype):
    rng = np.random.default_rng(0)
    x = jnp.asarray(rng.standard_normal((2, 9, 5)), dtype)
    h0 = jnp.asarray(rng.standard_normal((2, 5)), jnp.float32)
    y, h_last = jitted(name)(x, jnp.zeros_like(x), h0)
    assert_close(y, x.astype(jnp.float32), dtype, what="a = 0 gives y = x")
    assert_close(h_last, x[:, -1].astype(jnp.float32), dtype)
    y, h_last = jitted(name)(x, jnp.ones_like(x), h0)
    expected = np.cumsum(np.asarray(x, np.float64), axis=1) + np.asarray(h0)[:, None]
    assert_close(y, expected, dtype, scale=4.0, what="a = 1 gives y = h0 + cumsum(x)")
