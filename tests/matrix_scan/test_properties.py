"""Properties every registered matrix-scan backend must satisfy, checked against the float64 oracle."""

from __future__ import annotations

import functools

import jax
import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from hybrid_seq import matrix_scan
from hybrid_seq.testing import MatrixScanCase, matrix_scan_cases, matrix_shapes
from tests.matrix_scan.conftest import (
    SMALL_CHUNKS,
    assert_close,
    backend,
    check_matches_oracle,
    fewer_examples,
)

BACKENDS = matrix_scan.names()
WITH_SMALL_CHUNKS = [*BACKENDS, SMALL_CHUNKS.name]


@pytest.mark.parametrize("name", BACKENDS)
@fewer_examples(2)
@given(case=matrix_scan_cases(h0=st.just(True)), seed=st.integers(0, 2**16))
def test_forward_and_gradients_match_float64_oracle(name, case, seed):
    check_matches_oracle(name, case, seed)


@functools.cache
def _all_backends():
    """One jit running every backend on the same inputs (one compilation per example)."""
    scans = [backend(name) for name in WITH_SMALL_CHUNKS]
    return jax.jit(lambda inputs, reset: [scan(*inputs, reset=reset) for scan in scans])


@fewer_examples(4)
@given(case=matrix_scan_cases(dtype=st.just("float32")))
def test_backends_agree(case):
    results = _all_backends()(case.inputs, case.reset)
    (y_ref, h_ref), others = results[0], results[1:]
    for name, (y, h_last) in zip(WITH_SMALL_CHUNKS[1:], others):
        assert_close(y, y_ref, "float32", what=f"y {name} vs {WITH_SMALL_CHUNKS[0]} {case.id}")
        assert_close(h_last, h_ref, "float32", what=f"h_last {name} {case.id}")


@functools.cache
def _split(name: str):
    """``(one call, the same in two calls chained through h_last)`` with a static split point."""
    scan = backend(name)

    def run(q, k, v, log_decay, h0, reset, split):
        def part(lo, hi, state):
            r = None if reset is None else reset[:, lo:hi]
            return scan(q[:, lo:hi], k[:, lo:hi], v[:, lo:hi], log_decay[:, lo:hi], state, reset=r)

        length = q.shape[1]
        y1, h1 = part(0, split, h0)
        y2, h2 = part(split, length, h1)
        return part(0, length, h0), (y1, y2, h2)

    return jax.jit(run, static_argnums=6)


@pytest.mark.parametrize("name", WITH_SMALL_CHUNKS)
@fewer_examples(4)
@given(case=matrix_scan_cases(shape=matrix_shapes(min_time=2)), data=st.data())
def test_split_and_continue_equals_one_call(name, case, data):
    split = data.draw(st.integers(1, case.shape[1] - 1), label="split")
    (y, h_last), (y1, y2, h2) = _split(name)(*case.inputs, case.reset, split)
    chained = np.concatenate([np.asarray(y1, np.float32), np.asarray(y2, np.float32)], axis=1)
    assert_close(chained, np.asarray(y, np.float32), case.dtype_name, what=f"y split at {split} {case.id}")
    assert_close(h2, h_last, "float32", what=f"h_last split at {split} {case.id}")


@functools.cache
def _twice(name: str):
    scan = backend(name)
    return jax.jit(lambda first, second: [scan(*inputs, reset=reset) for inputs, reset in (first, second)])


@pytest.mark.parametrize("name", WITH_SMALL_CHUNKS)
@fewer_examples(4)
@given(case=matrix_scan_cases(shape=matrix_shapes(min_time=2), h0=st.just(True)), data=st.data())
def test_reset_makes_the_output_independent_of_the_past(name, case, data):
    b, t = case.shape[:2]
    start = data.draw(st.integers(1, t - 1), label="start")
    reset = np.zeros((b, t), bool) if case.reset is None else case.reset.copy()
    reset[:, start] = True
    rng = np.random.default_rng(start)
    past = [x.copy() for x in case.inputs]
    for x in past[:3]:
        x[:, :start] = rng.standard_normal(x[:, :start].shape).astype(x.dtype)
    past[3][:, :start] = -rng.uniform(0.0, 2.0, past[3][:, :start].shape)
    past[4] = rng.standard_normal(case.h0.shape).astype(np.float32)
    (y, h_last), (y_other, h_other) = _twice(name)((case.inputs, reset), (tuple(past), reset))
    after = np.asarray(y[:, start:], np.float32), np.asarray(y_other[:, start:], np.float32)
    np.testing.assert_array_equal(*after, err_msg=f"reset at {start} {case.id}")
    np.testing.assert_array_equal(h_last, h_other, err_msg=f"reset at {start} {case.id}")


def _prepend_state(case):
    """Inputs whose first K steps write ``h0`` into a zero state: k = e_i, v = h0[:, :, i], no decay."""
    b, t, g, h, k, v = case.shape
    unit_keys = np.broadcast_to(np.eye(k, dtype=np.float32)[None, :, None, :], (b, k, g, k))
    prefix = (
        np.zeros((b, k, g, k), np.float32),
        unit_keys,
        np.moveaxis(case.h0, 2, 1),
        np.zeros((b, k, *case.log_decay.shape[2:]), np.float32),
    )
    long = tuple(np.concatenate([p, x], axis=1) for p, x in zip(prefix, case.inputs[:4]))
    reset = None if case.reset is None else np.concatenate([np.zeros((b, k), bool), case.reset], axis=1)
    return (*long, None), reset


@pytest.mark.parametrize("name", BACKENDS)
@fewer_examples(4)
@given(case=matrix_scan_cases(dtype=st.just("float32"), h0=st.just(True)))
def test_h0_equals_prepended_steps(name, case):
    """Any ``h0`` is K prepended steps with unit keys from a zero state (no decay, no reset)."""
    long, long_reset = _prepend_state(case)
    (y, h_last), (y_long, h_long) = _twice(name)((case.inputs, case.reset), (long, long_reset))
    key = case.shape[4]
    assert_close(y, y_long[:, key:], "float32", what=case.id)
    assert_close(h_last, h_long, "float32", what=case.id)


@pytest.mark.parametrize("name", ["chunked", SMALL_CHUNKS.name])
@pytest.mark.parametrize("decay", ["scalar", "per_key"])
def test_strong_decay_and_no_decay_stay_finite_and_exact(name, decay):
    """log_decay of -80 per step (in-chunk sums far below float32's exp range) mixed with 0."""
    rng = np.random.default_rng(3)
    b, t, g, h, k, v = 2, 45, 1, 2, 4, 3
    q, keys = (rng.standard_normal((b, t, g, k)).astype(np.float32) for _ in range(2))
    values = rng.standard_normal((b, t, h, v)).astype(np.float32)
    shape = (b, t, h, k) if decay == "per_key" else (b, t, h)
    log_decay = np.where(rng.uniform(size=shape) < 0.5, -80.0, 0.0).astype(np.float32)
    h0 = rng.standard_normal((b, h, k, v)).astype(np.float32)
    case = MatrixScanCase(q, keys, values, log_decay, h0, None, "float32")
    check_matches_oracle(name, case, seed=0)
