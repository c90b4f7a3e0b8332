"""RMSNorm, embedder, MLP, linear layers: reference test vectors and init distributions."""

from __future__ import annotations

import math

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from hybrid_seq.blocks import BlockDiagonalLinear, Embedder, GatedMLP, Linear, RMSNorm


def test_rmsnorm_reference_vector() -> None:
    norm = RMSNorm(2)
    np.testing.assert_allclose(norm(jnp.array([0.1, 0.2])), [0.6324429, 1.2648858], rtol=1e-6)


def test_rmsnorm_uses_one_plus_scale() -> None:
    norm = RMSNorm(3)
    norm = jax.tree_util.tree_map(lambda s: s + 1.0, norm)
    x = jnp.array([[1.0, -2.0, 3.0]])
    expected = x / jnp.sqrt(jnp.mean(x**2) + 1e-6) * 2.0
    np.testing.assert_allclose(norm(x), expected, rtol=1e-6)


@pytest.mark.parametrize(("width", "scale"), [(2560, 50.5), (4096, 64.0), (512, 22.625)])
def test_embedding_scale_is_sqrt_width_rounded_to_bf16(width: int, scale: float) -> None:
    embedder = Embedder(3, width, scale_by_sqrt_dim=True, key=jax.random.key(0))
    row = embedder.encode(jnp.array([1]))
    np.testing.assert_array_equal(row, embedder.weight[1:2] * scale)
    assert row.dtype == jnp.float32


def test_embedding_bf16_stays_bf16_and_decode_is_tied() -> None:
    embedder = Embedder(5, 8, scale_by_sqrt_dim=False, key=jax.random.key(0), dtype=jnp.bfloat16)
    x = embedder.encode(jnp.array([[0, 4]]))
    assert x.dtype == jnp.bfloat16
    np.testing.assert_array_equal(embedder.decode(x), x @ embedder.weight.T)


def test_out_of_range_tokens_embed_to_nan() -> None:
    embedder = Embedder(5, 4, scale_by_sqrt_dim=True, key=jax.random.key(0))
    x = eqx.filter_jit(embedder.encode)(jnp.array([-1, 5, 2]))
    assert np.isnan(x[0]).all() and np.isnan(x[1]).all() and np.isfinite(x[2]).all()


def test_gated_mlp_uses_tanh_gelu_on_the_gate_branch() -> None:
    mlp = GatedMLP(1, 1, final_init_scale=1.0, key=jax.random.key(0))
    mlp = jax.tree_util.tree_map(lambda p: jnp.ones_like(p) if p.ndim == 2 else jnp.zeros_like(p), mlp)
    mlp = jax.tree_util.tree_map(lambda p: p, mlp)
    # gate = up = down = identity: out = gelu_tanh(x) * x
    np.testing.assert_allclose(mlp(jnp.array([1.0])), [0.841192], rtol=1e-5)


def _std(x) -> float:
    return float(jnp.std(x))


def test_init_distributions_follow_the_reference() -> None:
    """Variance scaling with the reference's fan-in conventions (reference-facts §6)."""
    width, lru, heads = 512, 768, 4
    gates = BlockDiagonalLinear(lru, heads, key=jax.random.key(0))
    assert _std(gates.weight) == pytest.approx(math.sqrt(1 / lru), rel=0.05)
    mlp = GatedMLP(width, 3 * width, final_init_scale=2 / 6, key=jax.random.key(1))
    assert _std(mlp.gate.weight) == pytest.approx(math.sqrt(1 / (2 * width)), rel=0.05)
    assert _std(mlp.down.weight) == pytest.approx(math.sqrt(2 / 6 / (3 * width)), rel=0.05)
    linear = Linear(width, width, use_bias=True, key=jax.random.key(2))
    assert _std(linear.weight) == pytest.approx(math.sqrt(1 / width), rel=0.05)
    assert not linear.bias.any()


def test_block_diagonal_splits_contiguous_chunks() -> None:
    layer = BlockDiagonalLinear(4, 2, key=jax.random.key(0))
    x = jnp.arange(4.0)
    expected = jnp.concatenate([x[:2] @ layer.weight[0], x[2:] @ layer.weight[1]]) + layer.bias.reshape(-1)
    np.testing.assert_allclose(layer(x), expected, rtol=1e-6)
