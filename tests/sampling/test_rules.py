"""Token choice: greedy, top-k, top-p, seeds (all fp32)."""

from __future__ import annotations

import functools
import re

import hypothesis.strategies as st
import jax
import jax.numpy as jnp
import numpy as np
from hypothesis import given

import hybrid_seq
from hybrid_seq.sampling import SamplingOptions, buckets, choose, filter_logits, loop
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


def sorted_filter(logits: jax.Array, top_k, top_p) -> jax.Array:
    """The first `filter_logits`: the whole vocabulary sorted every step, whatever the settings.

    One change: `top_p >= 1` keeps every token, as documented (the first version dropped the
    tail tokens whose mass before them rounded up to 1 in fp32).
    """
    logits = logits.astype(jnp.float32)
    ordered = -jnp.sort(-logits, axis=-1)
    top_k = jnp.asarray(top_k, jnp.int32)
    rank = jnp.arange(logits.shape[-1], dtype=jnp.int32)
    in_top_k = (top_k <= 0) | (rank < top_k)
    ordered = jnp.where(in_top_k, ordered, -jnp.inf)
    probs = jax.nn.softmax(ordered, axis=-1)
    mass_before = jnp.cumsum(probs, axis=-1) - probs
    keep = in_top_k & ((mass_before < top_p) | (top_p >= 1) | (rank == 0))
    cutoff = jnp.min(jnp.where(keep, ordered, jnp.inf), axis=-1, keepdims=True)
    return jnp.where(logits >= cutoff, logits, -jnp.inf)


def test_top_p_one_keeps_every_token() -> None:
    logits = jnp.asarray([[30.0, 0.0, -30.0, -60.0]])  # the tail's mass before it rounds to 1
    np.testing.assert_array_equal(filter_logits(logits, top_p=1.0), logits)
    np.testing.assert_array_equal(jax.jit(filter_logits)(logits, 0, 1.0), logits)


@given(
    seed=st.integers(0, 1000),
    ties=st.booleans(),
    top_k=st.integers(0, 53),
    top_p=st.one_of(st.just(1.0), st.floats(0.05, 1.0)),
    traced=st.booleans(),
)
def test_filter_equals_the_sorted_filter(seed: int, ties: bool, top_k: int, top_p: float, traced: bool) -> None:
    logits = _logits(seed)
    logits = jnp.round(logits) if ties else logits  # many equal logits at the boundaries
    expected = sorted_filter(logits, top_k, top_p)
    if traced:
        got = _traced_filter(buckets.power_of_two(top_k, 1) if top_k else None)(logits, top_k, top_p)
    else:
        got = filter_logits(logits, top_k, top_p)
    np.testing.assert_array_equal(np.asarray(got), np.asarray(expected))


@functools.cache
def _traced_filter(bound: int | None):
    return jax.jit(lambda x, k, p: filter_logits(x, k, p, top_k_bound=bound))


def primitives(jaxpr) -> set[str]:
    """Names of every primitive in a jaxpr, nested ones (jit, loops, conds) included."""
    names = set()
    for eqn in jaxpr.eqns:
        names.add(eqn.primitive.name)
        for value in eqn.params.values():
            for sub in value if isinstance(value, (tuple, list)) else [value]:
                inner = getattr(sub, "jaxpr", sub)
                if hasattr(inner, "eqns"):
                    names |= primitives(inner)
    return names


def test_only_the_filters_that_are_on_are_traced() -> None:
    logits = _logits(0, vocab=300)
    traced = lambda fn, *args: primitives(jax.make_jaxpr(fn)(logits, *args).jaxpr)  # noqa: E731
    assert not {"sort", "top_k"} & traced(lambda x: filter_logits(x))
    assert not {"sort", "top_k"} & traced(lambda x: choose(x, row_keys(jnp.arange(4)), jnp.int32(0), greedy=False))
    assert "top_k" in traced(lambda x: filter_logits(x, 20)) and "sort" not in traced(lambda x: filter_logits(x, 20))
    both = traced(lambda x, k, p: filter_logits(x, k, p, top_k_bound=32), jnp.int32(20), jnp.float32(0.9))
    assert "top_k" in both and "sort" not in both
    assert "sort" in traced(lambda x: filter_logits(x, top_p=0.9))
    hlo = jax.jit(lambda x: filter_logits(x, 20)).lower(logits).compile().as_text()
    assert 'custom_call_target="TopK"' in hlo and not re.search(r"= \S+ sort\(", hlo)


def test_the_sampler_loop_sorts_only_for_top_p(model: hybrid_seq.Model) -> None:
    """The compiled decode loop, sampling with no filter / top-k / top-p: a sort only for top-p."""
    carry = loop.start(model.init_cache(2, 24), jnp.zeros((2, model.vocab_size)), [3, 5], [0, 1], 16, 0)

    def lowered(**settings) -> str:
        loop_settings = loop.LoopSettings.of(SamplingOptions(8, temperature=0.7, **settings), [1])
        return loop._decode.lower((model, loop_settings, jnp.int32(8)), carry, 0).as_text()

    plain, top_k, top_p = lowered(), lowered(top_k=40), lowered(top_p=0.9)
    assert "stablehlo.sort" not in plain and "chlo.top_k" not in plain
    assert "chlo.top_k" in top_k and "stablehlo.sort" not in top_k
    assert "stablehlo.sort" in top_p
