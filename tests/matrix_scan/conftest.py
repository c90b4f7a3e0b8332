"""Shared helpers for the matrix-scan tests: backends, jitted calls and dtype-aware tolerances."""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import numpy as np
from hypothesis import settings

from hybrid_seq import matrix_scan
from hybrid_seq.testing import matrix_scan_oracle, matrix_scan_oracle_vjp

# Absolute-plus-relative tolerance per input dtype, times the scale of the expected values.
TOLERANCE = {"float32": 2e-5, "bfloat16": 2e-2}

# A chunked kernel with tiny chunks, so short inputs cross many chunk boundaries.
SMALL_CHUNKS = matrix_scan.bind("chunked[C=8,key_chunk=5]", matrix_scan.Chunked(chunk=8, key_chunk=5))


def backend(name: str) -> matrix_scan.BoundMatrixScan:
    return SMALL_CHUNKS if name == SMALL_CHUNKS.name else matrix_scan.get(name)


def fewer_examples(divisor: int = 2) -> settings:
    """The active profile's example count divided by ``divisor`` (for the costlier properties)."""
    return settings(max_examples=max(2, settings().max_examples // divisor))


@functools.cache
def jitted(name: str):
    """``jit`` of one backend as ``fn(q, k, v, log_decay, h0, reset)``, built once per backend."""
    scan = backend(name)
    return jax.jit(lambda q, k, v, log_decay, h0, reset: scan(q, k, v, log_decay, h0, reset=reset))


@functools.cache
def jitted_value_and_grad(name: str):
    """``((dq, dk, dv, dlog_decay, dh0), (y, h_last))`` of ``<wy, y> + <wh, h_last>``."""
    scan = backend(name)

    def functional(q, k, v, log_decay, h0, reset, wy, wh):
        y, h_last = scan(q, k, v, log_decay, h0, reset=reset)
        return jnp.sum(y.astype(jnp.float32) * wy) + jnp.sum(h_last * wh), (y, h_last)

    return jax.jit(jax.grad(functional, argnums=(0, 1, 2, 3, 4), has_aux=True))


def assert_close(actual, expected, dtype_name: str, what: str = "") -> None:
    """Within ``TOLERANCE[dtype] * (1 + max|expected|)`` absolutely and the tolerance relatively."""
    actual = np.asarray(jnp.asarray(actual, jnp.float32), np.float64)
    expected = np.asarray(expected, np.float64)
    tol = TOLERANCE[dtype_name]
    scale = 1.0 + (np.abs(expected).max() if expected.size else 0.0)
    np.testing.assert_allclose(actual, expected, rtol=tol, atol=tol * scale, err_msg=what)


def check_matches_oracle(name: str, case, seed: int) -> None:
    """Forward and all five gradients of one backend against the float64 oracle."""
    rng = np.random.default_rng(seed)
    b, t, g, h, k, v = case.shape
    wy = rng.standard_normal((b, t, h, v)).astype(np.float32)
    wh = rng.standard_normal((b, h, k, v)).astype(np.float32)
    grads, (y, h_last) = jitted_value_and_grad(name)(*case.inputs, case.reset, wy, wh)
    assert y.dtype == case.v.dtype and y.shape == case.v.shape, case.id
    assert h_last.dtype == jnp.float32 and h_last.shape == (b, h, k, v), case.id
    y_ref, h_ref = matrix_scan_oracle(*case.inputs, case.reset)
    assert_close(y, y_ref, case.dtype_name, what=f"y {case.id}")
    assert_close(h_last, h_ref, case.dtype_name, what=f"h_last {case.id}")

    # The cotangent of y arrives rounded to y's dtype, as JAX delivers it.
    wy_rounded = np.asarray(jnp.asarray(wy, case.v.dtype), np.float64)
    expected = matrix_scan_oracle_vjp(*case.inputs, wy_rounded, wh, reset=case.reset)
    arguments = ("q", "k", "v", "log_decay", "h0")
    for argument, grad, reference, primal in zip(arguments, grads, expected, case.inputs):
        assert grad.dtype == primal.dtype and grad.shape == primal.shape, (argument, case.id)
        assert_close(grad, reference, case.dtype_name, what=f"d{argument} {case.id}")
