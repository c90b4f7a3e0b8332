"""Shared helpers for the scan tests: jitted backends and dtype-aware tolerances."""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import numpy as np

from hybrid_seq import scan

# Absolute-plus-relative tolerance per input dtype; y is rounded once to that dtype.
TOLERANCE = {"float32": 2e-5, "float16": 3e-3, "bfloat16": 2e-2}


@functools.cache
def jitted(name: str):
    """``jit(scan.get(name))``, built once per backend so tests share compilations."""
    return jax.jit(scan.get(name))


@functools.cache
def jitted_grad(name: str):
    """Gradients (x, a, h0) of ``<wy, y> + <wh, h_last>`` for one backend."""
    backend = scan.get(name)

    def functional(x, a, h0, wy, wh):
        y, h_last = backend(x, a, h0)
        return jnp.sum(y.astype(jnp.float32) * wy) + jnp.sum(h_last * wh)

    return jax.jit(jax.grad(functional, argnums=(0, 1, 2)))


def assert_close(actual, expected, dtype_name: str, scale: float = 1.0, what: str = "") -> None:
    actual = np.asarray(jnp.asarray(actual, jnp.float32), np.float64)
    expected = np.asarray(expected, np.float64)
    tol = TOLERANCE[dtype_name] * scale
    np.testing.assert_allclose(actual, expected, rtol=tol, atol=tol, err_msg=what)
