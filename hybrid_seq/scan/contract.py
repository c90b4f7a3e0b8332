"""The scan contract: the call signature every backend honours, and its input checks.

A scan computes ``h_t = a_t * h_{t-1} + x_t`` over axis 1 of ``[B, T, D]`` inputs, with
``h_{-1} = h0`` (zeros when ``h0`` is None). Accumulation is always float32; ``y`` comes
back in ``x.dtype`` and ``h_last`` in float32.

Checks run at trace time (shapes and dtypes are static), so a bad call fails before
anything is compiled, with a message naming the offending argument.
"""

from __future__ import annotations

from typing import Protocol, runtime_checkable

import jax.numpy as jnp
from jaxtyping import Array, Float, Float32

ACCEPTED_DTYPES = (jnp.float32, jnp.bfloat16, jnp.float16)

Sequence = Float[Array, "B T D"]
State = Float32[Array, "B D"]


@runtime_checkable
class Scan(Protocol):
    """``scan(x, a, h0=None) -> (y, h_last)``; see the module docstring."""

    def __call__(self, x: Array, a: Array, h0: Array | None = None) -> tuple[Sequence, State]:
        """`y` `[B, T, D]` in `x.dtype` and `h_last` `[B, D]` float32, with `h_t = a_t * h_{t-1} + x_t`."""


@runtime_checkable
class Kernel(Protocol):
    """A backend's forward pass on checked inputs.

    Receives ``x``, ``a`` of one accepted dtype and an explicit float32 ``h0``; returns
    ``y`` in ``x.dtype`` and the float32 ``h_last``. Gradients are added by the registry.
    """

    def __call__(self, x: Sequence, a: Sequence, h0: State) -> tuple[Sequence, State]:
        """`(y, h_last)` for checked `x`, `a` and an explicit float32 `h0`."""


def _describe(v: object) -> str:
    shape = getattr(v, "shape", None)
    dtype = getattr(v, "dtype", None)
    if shape is None or dtype is None:
        return type(v).__name__
    return f"{jnp.dtype(dtype).name}{list(shape)}"


def check_inputs(x: object, a: object, h0: object) -> None:
    """Raise TypeError/ValueError naming the argument that breaks the contract."""
    for name, v in (("x", x), ("a", a)):
        if not hasattr(v, "shape") or not hasattr(v, "dtype"):
            raise TypeError(f"scan: `{name}` must be an array, got {_describe(v)}")
        if len(v.shape) != 3:
            raise ValueError(f"scan: `{name}` must have rank 3 [B, T, D], got shape {tuple(v.shape)}")
        if jnp.dtype(v.dtype) not in [jnp.dtype(d) for d in ACCEPTED_DTYPES]:
            raise TypeError(
                f"scan: `{name}` must be float32, bfloat16 or float16, got {jnp.dtype(v.dtype).name}"
            )
        if min(v.shape) < 1:
            raise ValueError(f"scan: `{name}` must have B, T, D >= 1, got shape {tuple(v.shape)}")
    if tuple(x.shape) != tuple(a.shape):
        raise ValueError(f"scan: `x` and `a` shapes differ: {tuple(x.shape)} vs {tuple(a.shape)}")
    if jnp.dtype(x.dtype) != jnp.dtype(a.dtype):
        raise TypeError(
            f"scan: `x` and `a` dtypes differ: {jnp.dtype(x.dtype).name} vs {jnp.dtype(a.dtype).name}"
        )
    if h0 is None:
        return
    if not hasattr(h0, "shape") or not hasattr(h0, "dtype"):
        raise TypeError(f"scan: `h0` must be an array or None, got {_describe(h0)}")
    expected = (x.shape[0], x.shape[2])
    if tuple(h0.shape) != expected:
        raise ValueError(f"scan: `h0` must have shape [B, D] = {list(expected)}, got {list(h0.shape)}")
    if jnp.dtype(h0.dtype) != jnp.dtype(jnp.float32):
        raise TypeError(f"scan: `h0` must be float32, got {jnp.dtype(h0.dtype).name}")
