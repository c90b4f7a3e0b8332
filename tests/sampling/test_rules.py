"""Token choice: greedy, top-k, top-p, seeds (all fp32)."""

from __future__ import annotations

import hypothesis.strategies as st
import jax
import jax.numpy as jnp
import numpy as np
from hypothesis import given

from hybrid_seq.sampling import choose, filter_logits
from hybrid_seq.sampling.rules import row_keys


def _logits(seed: int, batch: int = 4, vocab: int = 50) -> jax.Array:
    return 3.0 * jax.random.normal(jax.random.key(seed), (batch, vocab))


def test_top_k_one_is_greedy() -> None:
    logits = _logits(0)
    keys = row_keys(jnp.arange(4))
    greedy, _ = choose(logits, keys, jnp.int32(0), greedy=True)
    for step in range(5):
        sampled, _ = choose(logits, keys, jnp.int32(step), greedy=False, temperature=2.0, top_k=1)
        np.testing.assert_array_equal(sampled, greedy)


def test_seeded_sampling_is_deterministic_and_seed_dependent() -> None:
    logits = jnp.zeros((1, 1000))
    draw = lambda seed, step: int(choose(logits, row_keys(jnp.array([seed])), jnp.int32(step), greedy=False)[0][0])  # noqa: E731
    assert draw(3, 7) == draw(3, 7)
    assert len({draw(3, s) for s in range(8)}) > 1
    assert len({draw(s, 7) for s in range(8)}) > 1


def test_logprob_is_model_log_softmax() -> None:
    logits = _logits(1)
    tokens, logprobs = choose(logits, row_keys(jnp.arange(4)), jnp.int32(0), greedy=False, temperature=0.5, top_p=0.5)
    expected = jax.nn.log_softmax(logits, axis=-1)[jnp.arange(4), tokens]
    np.testing.assert_allclose(logprobs, expected, rtol=1e-6, atol=1e-6)


@given(seed=st.integers(0, 1000), top_k=st.integers(1, 49))
def test_top_k_keeps_exactly_k(seed: int, top_k: int) -> None:
    kept = np.isfinite(np.asarray(filter_logits(_logits(seed), top_k=top_k)))
    assert (kept.sum(axis=-1) == top_k).all()


@given(seed=st.integers(0, 1000), top_p=st.floats(0.05, 0.99))
def test_top_p_keeps_smallest_nucleus(seed: int, top_p: float) -> None:
    logits = _logits(seed)
    kept = np.isfinite(np.asarray(filter_logits(logits, top_p=top_p)))
    probs = np.asarray(jax.nn.softmax(logits, axis=-1), np.float64)
    for row in range(probs.shape[0]):
        order = np.argsort(-probs[row])
        size = kept[row].sum()
        assert set(np.flatnonzero(kept[row])) == set(order[:size])
        assert probs[row, order[:size]].sum() >= top_p - 1e-5
        assert probs[row, order[: size - 1]].sum() < top_p + 1e-5


def test_tokens_outside_top_p_never_sampled() -> None:
    logits = _logits(5, batch=2, vocab=30)
    allowed = np.isfinite(np.asarray(filter_logits(logits, top_p=0.6)))
    sample = jax.jit(lambda step: choose(logits, row_keys(jnp.arange(2)), step, greedy=False, top_p=0.6)[0])
    seen = np.stack([np.asarray(sample(jnp.int32(step))) for step in range(300)])
    for row in range(2):
        assert allowed[row, seen[:, row]].all()
        assert len(set(seen[:, row])) == allowed[row].sum() or allowed[row].sum() > 3
