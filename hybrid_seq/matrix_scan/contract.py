"""The matrix-scan contract: the call signature every backend honours, and its input checks.

A matrix scan runs a ``[K, V]`` state per head over axis 1 (time)::

    h_t = exp(log_decay_t) * h_{t-1} + k_t (outer) v_t      (h_{t-1} taken as 0 where reset_t)
    y_t = sum_i q_t[i] * h_t[i, :]

``log_decay`` is either one scalar per head (``[B, T, H]``, Mamba-2/SSD) or one value per
key row (``[B, T, H, K]``, GLA-style), finite and ``<= 0``. ``q`` and ``k`` come in ``G``
groups shared by ``H // G`` heads each: head ``h`` reads group ``h // (H // G)``.
``h_{-1} = h0`` (zeros when None). Accumulation is float32; ``y`` comes back in
``v.dtype`` and ``h_last`` in float32.

Checks run at trace time (shapes and dtypes are static), so a bad call fails before
anything is compiled, with a message naming the offending argument. Values (the sign of
``log_decay``) are traced and cannot be checked.
"""

from __future__ import annotations

from typing import Protocol, runtime_checkable

import jax.numpy as jnp
from jaxtyping import Array, Bool, Float, Float32

ACCEPTED_DTYPES = (jnp.float32, jnp.bfloat16)

Keys = Float[Array, "B T G K"]
Values = Float[Array, "B T H V"]
ScalarDecay = Float32[Array, "B T H"]
KeyDecay = Float32[Array, "B T H K"]
LogDecay = ScalarDecay | KeyDecay
State = Float32[Array, "B H K V"]
Reset = Bool[Array, "B T"]


@runtime_checkable
class MatrixScan(Protocol):
    """``matrix_scan(q, k, v, log_decay, h0=None, *, reset=None) -> (y, h_last)``."""

    def __call__(
        self, q: Array, k: Array, v: Array, log_decay: Array, h0: Array | None = None, *, reset: Array | None = None
    ) -> tuple[Values, State]:
        """`y` `[B, T, H, V]` in `v.dtype` and the float32 state `h_last` `[B, H, K, V]`."""


@runtime_checkable
class Kernel(Protocol):
    """A backend on checked inputs, differentiable by `jax.grad` as it stands.

    Receives ``q``, ``k``, ``v`` of one accepted dtype, float32 ``log_decay``, an explicit
    float32 ``h0`` and ``reset`` (None when there are no document starts); returns ``y``
    in ``v.dtype`` and the float32 ``h_last``.
    """

    def __call__(
        self, q: Keys, k: Keys, v: Values, log_decay: LogDecay, h0: State, reset: Reset | None
    ) -> tuple[Values, State]:
        """`(y, h_last)` for checked inputs and an explicit float32 `h0`."""


def _describe(x: object) -> str:
    shape = getattr(x, "shape", None)
    dtype = getattr(x, "dtype", None)
    if shape is None or dtype is None:
        return type(x).__name__
    return f"{jnp.dtype(dtype).name}{list(shape)}"


def _require_array(name: str, x: object, optional: bool = False) -> None:
    if not hasattr(x, "shape") or not hasattr(x, "dtype"):
        kind = "an array or None" if optional else "an array"
        raise TypeError(f"matrix_scan: `{name}` must be {kind}, got {_describe(x)}")


def _require_dtype(name: str, x: object, dtype: object, label: str) -> None:
    if jnp.dtype(x.dtype) != jnp.dtype(dtype):
        raise TypeError(f"matrix_scan: `{name}` must be {label}, got {jnp.dtype(x.dtype).name}")


def check_inputs(q: object, k: object, v: object, log_decay: object, h0: object, reset: object) -> None:
    """Raise TypeError/ValueError naming the argument that breaks the contract."""
    for name, x, layout in (("q", q, "[B, T, G, K]"), ("k", k, "[B, T, G, K]"), ("v", v, "[B, T, H, V]")):
        _require_array(name, x)
        if len(x.shape) != 4:
            raise ValueError(f"matrix_scan: `{name}` must have rank 4 {layout}, got shape {tuple(x.shape)}")
        if jnp.dtype(x.dtype) not in [jnp.dtype(d) for d in ACCEPTED_DTYPES]:
            raise TypeError(f"matrix_scan: `{name}` must be float32 or bfloat16, got {jnp.dtype(x.dtype).name}")
        if min(x.shape) < 1:
            raise ValueError(f"matrix_scan: `{name}` must have every dimension >= 1, got shape {tuple(x.shape)}")
    if tuple(q.shape) != tuple(k.shape):
        raise ValueError(f"matrix_scan: `q` and `k` shapes differ: {tuple(q.shape)} vs {tuple(k.shape)}")
    if len({jnp.dtype(x.dtype) for x in (q, k, v)}) != 1:
        names = ", ".join(jnp.dtype(x.dtype).name for x in (q, k, v))
        raise TypeError(f"matrix_scan: `q`, `k`, `v` must share one dtype, got {names}")
    batch, length, groups, key = q.shape
    heads, value = v.shape[2], v.shape[3]
    if tuple(v.shape[:2]) != (batch, length):
        raise ValueError(f"matrix_scan: `v` must have [B, T] = {[batch, length]} like `q`, got shape {tuple(v.shape)}")
    if heads % groups:
        raise ValueError(
            f"matrix_scan: the H = {heads} heads of `v` must be a multiple of the G = {groups} groups of `q`/`k`"
        )

    _require_array("log_decay", log_decay)
    scalar, per_key = (batch, length, heads), (batch, length, heads, key)
    if tuple(log_decay.shape) not in (scalar, per_key):
        raise ValueError(
            f"matrix_scan: `log_decay` must have shape [B, T, H] = {list(scalar)} or "
            f"[B, T, H, K] = {list(per_key)}, got {list(log_decay.shape)}"
        )
    _require_dtype("log_decay", log_decay, jnp.float32, "float32")

    if h0 is not None:
        _require_array("h0", h0, optional=True)
        expected = (batch, heads, key, value)
        if tuple(h0.shape) != expected:
            raise ValueError(f"matrix_scan: `h0` must have shape [B, H, K, V] = {list(expected)}, got {list(h0.shape)}")
        _require_dtype("h0", h0, jnp.float32, "float32")

    if reset is not None:
        _require_array("reset", reset, optional=True)
        if tuple(reset.shape) != (batch, length):
            raise ValueError(
                f"matrix_scan: `reset` must have shape [B, T] = {[batch, length]}, got {list(reset.shape)}"
            )
        _require_dtype("reset", reset, jnp.bool_, "bool")
