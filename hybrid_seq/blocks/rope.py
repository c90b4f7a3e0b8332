"""Rotary position embedding whose angles stay exact at any position.

The angle of frequency `f` at position `p` is `p * f`. Computed as a float32 product (as
the reference does) it carries an error of about `p * f * 2^-24` radians: 3e-3 relative
drift of attention scores at a million tokens. Here the angle is reduced exactly, in
integer arithmetic, to a fraction of a turn: `f / 2π` is held as a 64-bit fixed-point
number (four 16-bit limbs, computed once on the host in exact rational arithmetic), the
position as two 16-bit halves, and the fractional turns `frac(p * f / 2π)` are summed in
wrapping uint32 arithmetic (units of 2^-32 turn). The angle is then that fraction times 2π in float32:
its error is ~2e-7 rad whatever `p`, so scores are shift-invariant to float32 precision
over the whole int32 range. At ordinary positions it equals the float32 product up to
that product's own rounding.
"""

from __future__ import annotations

import math
from fractions import Fraction

import jax
import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, Float, Int

ROPE_MAX_WAVELENGTH = 10_000
_TURN_UNITS = 2.0**32
#: π to 50 digits, so that `f / 2π` is exact to far below the 2^-64 kept.
_PI = Fraction("3.14159265358979323846264338327950288419716939937511")


def inverse_frequencies(rotary_dim: int, max_wavelength: int | float = ROPE_MAX_WAVELENGTH) -> np.ndarray:
    """`1 / max_wavelength^(2j / rotary_dim)` for `j < rotary_dim / 2`, as float32 (the reference's values)."""
    exponents = (2 * np.arange(rotary_dim // 2, dtype=np.float32) / np.float32(rotary_dim)).astype(np.float32)
    return (np.float32(1.0) / np.power(np.float32(max_wavelength), exponents)).astype(np.float32)


def _turn_limbs(frequencies: np.ndarray) -> tuple[np.ndarray, ...]:
    """`f / 2π` (each `f < 2π`) as four 16-bit limbs of a 64-bit fraction, most significant first."""
    fixed = [int(Fraction(float(f)) / (2 * _PI) * 2**64) for f in frequencies]
    return tuple(np.asarray([(n >> shift) & 0xFFFF for n in fixed], np.uint32) for shift in (48, 32, 16, 0))


def rope_angles(positions: Int[Array, "*batch"], frequencies: np.ndarray) -> Float[Array, "*batch F"]:
    """`positions * frequencies` reduced exactly to `[-π, π)` (see the module docstring), float32."""
    g1, g2, g3, g4 = (jnp.asarray(limb) for limb in _turn_limbs(frequencies))
    p = positions[..., None]
    magnitude = jnp.abs(p).astype(jnp.uint32)
    high, low = magnitude >> 16, magnitude & 0xFFFF
    # frac(p * g) in units of 2^-32 turn, with p = high 2^16 + low and g = sum_i g_i 2^(-16 i):
    # terms of integer weight vanish, those below one unit are dropped, the rest wrap modulo 2^32.
    units = (
        (((high * g2) & 0xFFFF) << 16)
        + high * g3
        + ((high * g4) >> 16)
        + (((low * g1) & 0xFFFF) << 16)
        + low * g2
        + ((low * g3) >> 16)
    )
    units = jnp.where(p < 0, -units, units)
    # Read as signed: the angle in [-π, π), where float32 is finest.
    return jax.lax.bitcast_convert_type(units, jnp.int32).astype(jnp.float32) * jnp.float32(2 * math.pi / _TURN_UNITS)


def apply_rope(
    x: Float[Array, "B T *heads K"],
    positions: Int[Array, "B T"],
    max_wavelength: int | float = ROPE_MAX_WAVELENGTH,
    *,
    fraction: float = 0.5,
) -> Float[Array, "B T *heads K"]:
    """Rotary embedding on the first `fraction` of the last axis (rotate-half pairing: feature
    `j` with `j + r/2` of the rotated `r` features); the rest passes through. Griffin rotates
    half (`fraction=0.5`), most transformers all of it. Angles in float32 (exact at any
    position), sin/cos cast to `x.dtype`."""
    rotary = int(x.shape[-1] * fraction)
    x_rope, x_pass = x[..., :rotary], x[..., rotary:]
    positions = positions.reshape(positions.shape + (1,) * (x.ndim - positions.ndim - 1))
    angles = rope_angles(positions, inverse_frequencies(rotary, max_wavelength))
    sin, cos = jnp.sin(angles).astype(x.dtype), jnp.cos(angles).astype(x.dtype)
    first, second = jnp.split(x_rope, 2, axis=-1)
    return jnp.concatenate([first * cos - second * sin, second * cos + first * sin, x_pass], axis=-1)
