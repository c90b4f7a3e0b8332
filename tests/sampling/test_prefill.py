"""Chunked prefill equals one pass; decoding on a fixed-size state equals the full pass."""

from __future__ import annotations

import functools

import hypothesis.strategies as st
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings

import hybrid_seq
from hybrid_seq.sampling import init_state, kv_cache_bytes, prefill, state_bytes

LENGTH = 13  # longer than the tiny model's window (8)


@functools.cache
def _sequence(vocab: int) -> tuple[jax.Array, jax.Array]:
    """Two rows: a left-padded document, and two documents back to back."""
    tokens = jax.random.randint(jax.random.key(7), (2, LENGTH), 3, vocab, jnp.int32)
    positions = np.stack([np.r_[[-1] * 3, np.arange(LENGTH - 3)], np.r_[np.arange(6), np.arange(LENGTH - 6)]])
    return tokens, jnp.asarray(positions, jnp.int32)


@pytest.fixture(scope="module")
def full_pass(model: hybrid_seq.Model) -> tuple[np.ndarray, list[np.ndarray]]:
    tokens, positions = _sequence(model.config.vocab_size)
    logits, state = jax.jit(model.__call__)(tokens, positions)
    return np.asarray(logits), [np.asarray(x) for x in jax.tree_util.tree_leaves(state)]


@settings(suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(chunk=st.sampled_from([1, 2, 4, 5, LENGTH]))
def test_chunked_prefill_equals_one_pass(model: hybrid_seq.Model, full_pass: tuple, chunk: int) -> None:
    tokens, positions = _sequence(model.config.vocab_size)
    expected_logits, expected_state = full_pass
    logits, state = prefill(model, tokens, positions, chunk_size=chunk, all_logits=True)
    np.testing.assert_allclose(logits, expected_logits, rtol=2e-5, atol=2e-5)
    for got, want in zip(jax.tree_util.tree_leaves(state), expected_state):
        np.testing.assert_allclose(got, want, rtol=2e-5, atol=2e-5)


def test_decode_after_prefill_longer_than_window(model: hybrid_seq.Model, full_pass: tuple) -> None:
    tokens, positions = _sequence(model.config.vocab_size)
    expected_logits, _ = full_pass
    split = 10  # > window 8
    last, state = prefill(model, tokens[:, :split], positions[:, :split], state=init_state(model, 2), chunk_size=5)
    np.testing.assert_allclose(last, expected_logits[:, split - 1], rtol=2e-5, atol=2e-5)
    step = jax.jit(model.__call__)
    for t in range(split, LENGTH):
        logits, state = step(tokens[:, t : t + 1], positions[:, t : t + 1], state)
        np.testing.assert_allclose(logits[:, 0], expected_logits[:, t], rtol=2e-5, atol=2e-5)


def test_state_bytes_is_exact_and_flat(model: hybrid_seq.Model) -> None:
    state = init_state(model, 3)
    actual = sum(x.nbytes for x in jax.tree_util.tree_leaves(state))
    assert state_bytes(model, 3) == actual == state_bytes(model.config, 3)
    tokens, positions = _sequence(model.config.vocab_size)
    _, after = prefill(model, tokens, positions, state=init_state(model, 2))
    assert sum(x.nbytes for x in jax.tree_util.tree_leaves(after)) == state_bytes(model, 2)
    assert kv_cache_bytes(model.config, 2 * LENGTH) == 2 * kv_cache_bytes(model.config, LENGTH)
