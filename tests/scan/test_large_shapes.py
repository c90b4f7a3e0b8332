"""Every backend on shapes that cross chunk, tile and block boundaries, against the float64 oracle.

The property tests in test_properties.py draw small shapes (T <= 24), which never leave
the first chunk of `chunked` (64 steps), the first time tile of `pallas_tpu` or the first
chunk and channel block of `pallas_gpu`. These cases do: several chunks and tiles, time
and channel padding, a partial group of lane tiles, forward and gradients.
"""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from hybrid_seq import scan
from hybrid_seq.testing import scan_cases, scan_oracle, scan_oracle_vjp, shapes
from tests.scan.conftest import assert_close, jitted, jitted_grad

BACKENDS = scan.names()

#: (B, T, D): chunked: 10 chunks / 9 chunks + padding; pallas_gpu: 10 chunks of 60 / padded
#: time and 3 channel blocks; pallas_tpu: 3 time tiles / lane padding / 2 lane groups.
FIXED = [(2, 600, 300), (1, 577, 130), (1, 520, 1100)]


def check_forward(name, x, a, h0, dtype_name, what):
    y, h_last = jitted(name)(x, a, h0)
    y_ref, h_ref = scan_oracle(x, a, h0)
    assert_close(y, y_ref, dtype_name, what=f"y {what}")
    assert_close(h_last, h_ref, "float32", what=f"h_last {what}")


def check_gradients(name, x, a, h0, dtype_name, what, seed=0):
    rng = np.random.default_rng(seed)
    wy = rng.standard_normal(x.shape).astype(np.float32)
    wh = rng.standard_normal(h0.shape).astype(np.float32)
    dx, da, dh0 = jitted_grad(name)(x, a, h0, wy, wh)
    wy_rounded = np.asarray(np.asarray(wy).astype(x.dtype), np.float64)
    rx, ra, rh0 = scan_oracle_vjp(x, a, h0, wy_rounded, wh)
    scale = 1.0 + np.abs(rx).max()
    assert_close(dx, rx, dtype_name, scale, what=f"dx {what}")
    assert_close(da, ra, dtype_name, scale * (1.0 + np.abs(h0).max()), what=f"da {what}")
    assert_close(dh0, rh0, dtype_name, scale, what=f"dh0 {what}")


def fixed_inputs(shape, seed=0):
    rng = np.random.default_rng(seed)
    x = rng.standard_normal(shape).astype(np.float32)
    # Decays near 1 carry the state across every boundary; a few zeros reset it.
    a = rng.uniform(0.97, 1.0, shape).astype(np.float32)
    a[:, :: shape[1] // 3 + 1] = 0.0
    h0 = rng.standard_normal((shape[0], shape[2])).astype(np.float32)
    return x, a, h0


@pytest.mark.parametrize("shape", FIXED, ids=lambda s: "B{}-T{}-D{}".format(*s))
@pytest.mark.parametrize("name", BACKENDS)
def test_fixed_large_shapes_forward_and_gradients(name, shape):
    x, a, h0 = fixed_inputs(shape)
    what = "{} B{}-T{}-D{}".format(name, *shape)
    check_forward(name, x, a, h0, "float32", what)
    check_gradients(name, x, a, h0, "float32", what)


@pytest.mark.parametrize("name", BACKENDS)
@settings(max_examples=3)
@given(case=scan_cases(shape=shapes(max_batch=2, max_time=600, max_width=300), h0=st.just(True)), seed=st.integers(0, 99))
def test_drawn_large_shapes_forward_and_gradients(name, case, seed):
    check_forward(name, case.x, case.a, case.h0, case.dtype_name, f"{name} {case.id}")
    check_gradients(name, case.x, case.a, case.h0, case.dtype_name, f"{name} {case.id}", seed)
