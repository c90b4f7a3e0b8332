"""State snapshots: take, put, fork and stack rows; continuing from a snapshot equals one pass over the whole text."""

from __future__ import annotations

import functools

import equinox as eqx
import hypothesis.strategies as st
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from hypothesis import given

import hybrid_seq as hs
from hybrid_seq.sampling import left_pad, prefill, snapshot
from hybrid_seq.sampling.prefix import feed
from tests.sampling.helpers import tiny_model
from tests.test_user_kind import CONFIG as ECHO_CONFIG

VOCAB = 64
PREFIX_SLOTS = 16  # a prefix of up to 16 tokens, left-padded to 16
ROWS = 3
LONGEST_SUFFIX = 7
STEPS = 4
WHOLE = PREFIX_SLOTS + LONGEST_SUFFIX + 1  # the whole text of a row, left-padded
CAPACITY = 32  # room in growing caches for either way of feeding the text, and the greedy steps


@functools.cache
def models() -> dict[str, hs.Model]:
    """Griffin (recurrence, conv, local attention with window 8) and a model with a growing cache (Echo)."""
    echo = hs.Model(ECHO_CONFIG.replace(vocab_size=VOCAB), key=jax.random.key(3))
    return {"griffin": tiny_model(VOCAB), "echo": echo}


@eqx.filter_jit
def step(model: hs.Model, token: jax.Array, position: jax.Array, state):
    return model(token[:, None], position[:, None], state)


def greedy(model: hs.Model, logits: jax.Array, state, positions: np.ndarray) -> tuple[list, list]:
    """`STEPS` greedy tokens from `logits` and `state`, with the logits before each."""
    tokens, seen = [], [np.asarray(logits)]
    for i in range(STEPS):
        token = jnp.argmax(logits, axis=-1).astype(jnp.int32)
        tokens.append(np.asarray(token))
        out, state = step(model, token, jnp.asarray(positions + i, jnp.int32), state)
        logits = out[:, 0]
        seen.append(np.asarray(logits))
    return tokens, seen


@pytest.mark.parametrize("name", ["griffin", "echo"])
@given(data=st.data())
def test_continuing_from_a_forked_snapshot_equals_one_pass(name: str, data: st.DataObject) -> None:
    model = models()[name]
    prefix = data.draw(st.lists(st.integers(3, VOCAB - 1), min_size=1, max_size=PREFIX_SLOTS), label="prefix")
    suffixes = data.draw(st.lists(st.lists(st.integers(3, VOCAB - 1), max_size=LONGEST_SUFFIX), min_size=ROWS,
                                  max_size=ROWS), label="suffixes")
    # Pay the prefix once, fork it, feed every row its own suffix.
    tokens, positions = left_pad([prefix], 0, PREFIX_SLOTS)
    last, one = prefill(model, tokens, positions, max_length=CAPACITY)
    state = snapshot.fork(one, ROWS)
    logits, state = feed(model, state, jnp.repeat(last, ROWS, axis=0), suffixes, [len(prefix)] * ROWS)
    # One pass over each row's whole text.
    whole_tokens, whole_positions = left_pad([prefix + s for s in suffixes], 0, WHOLE)
    whole_last, whole_state = prefill(model, whole_tokens, whole_positions, state=model.init_cache(ROWS, CAPACITY))
    np.testing.assert_allclose(logits, whole_last, rtol=2e-5, atol=2e-5)
    next_positions = np.asarray([len(prefix) + len(s) for s in suffixes])
    forked_tokens, forked_logits = greedy(model, logits, state, next_positions)
    whole_tokens, whole_logits = greedy(model, whole_last, whole_state, next_positions)
    np.testing.assert_array_equal(forked_tokens, whole_tokens)
    np.testing.assert_allclose(forked_logits, whole_logits, rtol=5e-5, atol=5e-5)


def test_take_put_fork_stack() -> None:
    model = models()["echo"]
    tokens = jax.random.randint(jax.random.key(0), (3, 5), 3, VOCAB, jnp.int32)
    _, state = prefill(model, tokens, jnp.tile(jnp.arange(5, dtype=jnp.int32), (3, 1)), max_length=8)
    leaves = lambda s: [np.asarray(x) for x in jax.tree_util.tree_leaves(s)]  # noqa: E731
    assert snapshot.batch_size(state) == 3
    row = snapshot.take(state, 1)
    assert snapshot.batch_size(row) == 1
    for got, want in zip(leaves(snapshot.take(state, [2, 0])), leaves(state)):
        np.testing.assert_array_equal(got, want[[2, 0]])
    for got, want in zip(leaves(snapshot.fork(snapshot.take(state, [0, 2]), 2)), leaves(state)):
        np.testing.assert_array_equal(got, want[[0, 0, 2, 2]])
    swapped = snapshot.put(state, [0, 2], snapshot.take(state, [2, 0]))
    for got, want in zip(leaves(swapped), leaves(state)):
        np.testing.assert_array_equal(got, want[[2, 1, 0]])
    for got, want in zip(leaves(snapshot.stack([row, snapshot.take(state, [0, 2])])), leaves(state)):
        np.testing.assert_array_equal(got, want[[1, 0, 2]])
    for got, want in zip(leaves(snapshot.where([True, False, True], snapshot.take(state, [2, 0, 0]), state)),
                         leaves(state)):
        np.testing.assert_array_equal(got, want[[2, 1, 0]])


def test_snapshot_errors_name_what_is_wrong() -> None:
    state = models()["griffin"].init_cache(2)
    with pytest.raises(ValueError, match=r"rows \[2\] out of range for a state of 2 rows"):
        snapshot.take(state, 2)
    with pytest.raises(ValueError, match=r"put needs distinct rows, got \[1, 1\]"):
        snapshot.put(state, [1, 1], snapshot.take(state, [0, 1]))
    with pytest.raises(ValueError, match="the snapshot has 2 rows for 1 rows to put"):
        snapshot.put(state, [0], state)
    with pytest.raises(ValueError, match="fork needs n >= 1, got 0"):
        snapshot.fork(state, 0)
    with pytest.raises(ValueError, match=r"state leaf \[1\] has shape \[3\], but every leaf must have the batch"):
        snapshot.batch_size((jnp.zeros((2, 4)), jnp.zeros(3)))
    with pytest.raises(ValueError, match="where needs one flag per row and states of 3 rows"):
        snapshot.where([True, False, True], state, state)
    with pytest.raises(ValueError, match="stack needs snapshots of one structure"):
        snapshot.stack([state, state[:1]])
