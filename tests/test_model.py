"""Model: chunked/decoded calls equal one pass, scan backends switch in one call, bad input is rejected."""

from __future__ import annotations

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

import hybrid_seq as hs
from hybrid_seq.blocks import RecurrentState, sqrt_bound_derivative
from hybrid_seq.blocks.attention import AttentionState
from hybrid_seq.model import check_tokens
from hybrid_seq.testing import padded_positions

CONFIG = hs.ModelConfig(
    vocab_size=37, width=16, mlp_expanded_width=24, num_heads=2, lru_width=12,
    block_pattern="RAR", attention_window_size=5, logits_soft_cap=10.0, embeddings_scale_by_sqrt_dim=True,
)


@pytest.fixture(scope="module")
def model() -> hs.Model:
    return hs.Model(CONFIG, key=jax.random.key(0))


@eqx.filter_jit
def run(model, tokens, positions, cache):
    return model(tokens, positions, cache)


def inputs(batch: int, length: int, seed: int = 0):
    tokens = jax.random.randint(jax.random.key(seed), (batch, length), 0, CONFIG.vocab_size, jnp.int32)
    return tokens, jnp.tile(jnp.arange(length, dtype=jnp.int32), (batch, 1))


@given(
    st.integers(1, 14).flatmap(
        lambda length: st.tuples(
            st.just(length),
            padded_positions(2, length),
            st.lists(st.integers(1, max(1, length - 1)), max_size=4, unique=True),
        )
    )
)
def test_any_chunking_equals_one_pass(case) -> None:
    """Prefill then decode (or any chunk sizes) gives the logits and final state of one pass."""
    length, positions, cuts = case
    model = hs.Model(CONFIG, key=jax.random.key(1))
    tokens, _ = inputs(2, length, seed=length)
    positions = jnp.asarray(positions, jnp.int32)
    whole, final = run(model, tokens, positions, None)
    cuts = sorted(c for c in cuts if c < length)
    pieces, cache = [], None
    for start, stop in zip([0, *cuts], [*cuts, length]):
        logits, cache = run(model, tokens[:, start:stop], positions[:, start:stop], cache)
        pieces.append(logits)
    np.testing.assert_allclose(jnp.concatenate(pieces, axis=1), whole, atol=2e-5)
    for got, want in zip(jax.tree_util.tree_leaves(cache), jax.tree_util.tree_leaves(final)):
        np.testing.assert_allclose(got, want, atol=2e-5)


def test_decode_one_token_at_a_time_past_the_window(model) -> None:
    tokens, positions = inputs(2, 13)
    whole, _ = run(model, tokens, positions, None)
    cache = model.init_cache(2)
    steps = []
    for t in range(13):
        logits, cache = run(model, tokens[:, t : t + 1], positions[:, t : t + 1], cache)
        steps.append(logits)
    np.testing.assert_allclose(jnp.concatenate(steps, axis=1), whole, atol=2e-5)


@pytest.mark.parametrize("backend", ["associative", "chunked", "pallas_tpu", "pallas_gpu"])
def test_switching_scan_backend_keeps_results(model, backend: str) -> None:
    tokens, positions = inputs(2, 9)
    switched = model.with_scan_backend(backend)
    assert switched.blocks[0].temporal.rg_lru.scan_backend == backend
    assert switched.blocks[0].temporal.rg_lru.a_param is model.blocks[0].temporal.rg_lru.a_param
    np.testing.assert_allclose(run(switched, tokens, positions, None)[0], run(model, tokens, positions, None)[0], atol=1e-5)


def test_unknown_scan_backend(model) -> None:
    with pytest.raises(ValueError, match="nope"):
        model.with_scan_backend("nope")


def test_bf16_dtypes_follow_the_reference() -> None:
    model = hs.Model(CONFIG, key=jax.random.key(0), dtype=jnp.bfloat16)
    logits, cache = run(model, *inputs(1, 4), None)
    assert logits.dtype == jnp.bfloat16
    recurrent, attention = cache[0], cache[1]
    assert isinstance(recurrent, RecurrentState) and isinstance(attention, AttentionState)
    assert recurrent.rg_lru.dtype == jnp.float32 and recurrent.conv1d.dtype == jnp.bfloat16
    assert attention.keys.dtype == jnp.bfloat16 and attention.keys.shape == (1, 6, 8)  # window + 1 slots


def test_gradients_are_finite_and_sqrt_derivative_is_bounded(model) -> None:
    tokens, positions = inputs(2, 6)
    grads = eqx.filter_grad(lambda m: m(tokens, positions)[0].mean())(model)
    assert all(np.isfinite(g).all() for g in jax.tree_util.tree_leaves(grads))
    assert float(jax.grad(lambda x: sqrt_bound_derivative(x, 1000.0))(jnp.asarray(0.0))) == pytest.approx(1000.0)
    assert float(jax.grad(lambda x: sqrt_bound_derivative(x, 1000.0))(jnp.asarray(0.25))) == pytest.approx(1.0)


@pytest.mark.parametrize(
    ("tokens", "positions", "error", "message"),
    [
        (np.zeros((2, 3), np.float32), np.zeros((2, 3), np.int32), TypeError, "tokens must have an integer dtype"),
        (np.zeros((2, 3), np.int32), np.zeros((2, 3), np.float32), TypeError, "positions must have an integer dtype"),
        (np.zeros((3,), np.int32), np.zeros((3,), np.int32), ValueError, r"shape \[B, T\]"),
        (np.zeros((2, 3), np.int32), np.zeros((2, 4), np.int32), ValueError, "same shape"),
        (np.full((1, 2), 37, np.int32), np.zeros((1, 2), np.int32), ValueError, r"in \[0, 37\), got \[37, 37\]"),
        (np.full((1, 2), -3, np.int32), np.zeros((1, 2), np.int32), ValueError, "got \\[-3"),
        ([[1, 2]], [[0, 1]], TypeError, "integer array"),
    ],
)
def test_bad_inputs_raise_clear_errors(model, tokens, positions, error, message) -> None:
    with pytest.raises(error, match=message):
        check_tokens(tokens, positions, CONFIG.vocab_size)
    # Through the model too; under the test suite's jaxtyping hook the annotation may reject first.
    with pytest.raises((TypeError, ValueError)):
        model(tokens, positions)


def test_out_of_range_tokens_under_jit_give_nan_logits(model) -> None:
    """Under jit the bad id cannot raise; its row turns NaN from that token on, other rows are untouched."""
    tokens = jnp.array([[1, 2, 3], [1, 37, 2]], jnp.int32)
    logits, _ = run(model, tokens, jnp.tile(jnp.arange(3, dtype=jnp.int32), (2, 1)), None)
    assert np.isfinite(logits[0]).all()
    assert np.isnan(logits[1, 1:]).all()


def test_cache_for_another_batch_or_config_is_rejected(model) -> None:
    tokens, positions = inputs(2, 3)
    with pytest.raises(ValueError, match=r"cache layer 0 \(recurrent\).*batch size 2"):
        model(tokens, positions, model.init_cache(3))
    other = hs.Model(CONFIG.replace(lru_width=16), key=jax.random.key(0))
    with pytest.raises(ValueError, match=r"expected float32\[2, 12\], got float32\[2, 16\]"):
        model(tokens, positions, other.init_cache(2))
    with pytest.raises(ValueError, match="one state per layer"):
        model(tokens, positions, model.init_cache(2)[:2])
    swapped = hs.Model(CONFIG.replace(block_pattern="ARR"), key=jax.random.key(0))
    with pytest.raises(ValueError, match="wrong structure"):
        model(tokens, positions, swapped.init_cache(2))


def test_scan_over_layers_equals_unrolled_layers() -> None:
    config = CONFIG.replace(block_pattern="RRA:8")
    model = hs.Model(config, key=jax.random.key(2))
    stacked = model.stack_layers()
    assert stacked.layers_stacked and len(stacked.blocks) == 3  # one stack of 2 x RRA, then R, R
    tokens, positions = inputs(2, 11)
    want, want_cache = run(model, tokens, positions, None)
    got, cache = run(stacked, tokens, positions, None)
    np.testing.assert_allclose(got, want, atol=1e-5)
    step, _ = run(stacked, tokens[:, :1], positions[:, :1] + 11, cache)
    np.testing.assert_allclose(step, run(model, tokens[:, :1], positions[:, :1] + 11, want_cache)[0], atol=1e-5)
    grads = eqx.filter_grad(lambda m: m(tokens, positions, checkpoint_blocks=True)[0].sum())(stacked)
    assert all(np.isfinite(g).all() for g in jax.tree_util.tree_leaves(grads))
    round_trip = stacked.unstack_layers()
    for a, b in zip(jax.tree_util.tree_leaves(round_trip), jax.tree_util.tree_leaves(model)):
        np.testing.assert_array_equal(a, b)
    with pytest.raises(ValueError, match=r"cache layers 0-5 \(stacked"):
        stacked(tokens, positions, stacked.init_cache(3))
    assert hs.Model(config, key=jax.random.key(2), scan_layers=True).layers_stacked
