"""RoPE angles are reduced exactly, so attention scores are shift-invariant far past any window."""

from __future__ import annotations

from fractions import Fraction

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from hybrid_seq.blocks.rope import _PI, apply_rope, inverse_frequencies, rope_angles


@given(st.lists(st.integers(-(2**31) + 1, 2**31 - 1), min_size=1, max_size=8))
def test_angles_equal_the_exact_reduction_at_any_int32_position(positions) -> None:
    frequencies = inverse_frequencies(64)
    angles = np.asarray(rope_angles(jnp.asarray(positions, jnp.int32), frequencies), np.float64)
    for row, p in enumerate(positions):
        for j in (0, 1, 9, 31):
            exact = float((Fraction(p) * Fraction(float(frequencies[j]))) % (2 * _PI))
            error = abs(exact - angles[row, j]) % (2 * np.pi)
            assert min(error, 2 * np.pi - error) < 4e-7, (p, j)


def scores(q, k, p_q, p_k):
    """Rotated dot products of one query/key pair at positions p_q, p_k (head_dim 64, full RoPE)."""
    rq = apply_rope(q[None, None], jnp.asarray([[p_q]], jnp.int32), fraction=1.0)
    rk = apply_rope(k[None, None], jnp.asarray([[p_k]], jnp.int32), fraction=1.0)
    return float(jnp.sum(rq * rk))


@pytest.mark.parametrize("shift", [2**10, 2**16, 2**20, 2**24, 2**30])
def test_scores_are_shift_invariant(shift) -> None:
    rng = np.random.default_rng(0)
    q, k = (jnp.asarray(rng.standard_normal(64), jnp.float32) for _ in range(2))
    for p_q, p_k in [(5, 3), (100, 37), (2048, 0)]:
        base = scores(q, k, p_q, p_k)
        moved = scores(q, k, p_q + shift, p_k + shift)
        # Float32 product angles drift by ~3e-3 relative at 2^20 and are meaningless at 2^30.
        assert abs(moved - base) <= 2e-5 * (1 + abs(base)), (p_q, p_k, base, moved)


def test_ordinary_positions_match_the_float32_product() -> None:
    frequencies = inverse_frequencies(128)
    positions = jnp.arange(4096, dtype=jnp.int32)
    product = positions[:, None].astype(jnp.float32) * jnp.asarray(frequencies)
    reduced = rope_angles(positions, frequencies)
    np.testing.assert_allclose(jnp.sin(reduced), jnp.sin(product), atol=3e-4)
    np.testing.assert_allclose(jnp.cos(reduced), jnp.cos(product), atol=3e-4)
    assert jax.numpy.array_equal(rope_angles(jnp.zeros(3, jnp.int32), frequencies), jnp.zeros((3, 64)))
