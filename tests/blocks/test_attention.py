"""LocalAttention: mask semantics against a dense oracle, blockwise equals dense, chunking is exact."""

from __future__ import annotations

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from hybrid_seq.blocks import LocalAttention, apply_rope
from hybrid_seq.testing import padded_positions


def dense_oracle(layer: LocalAttention, x, positions):
    """The reference's full-sequence mask, materialised as T x T (float64 softmax)."""
    batch, length, width = x.shape
    heads, head_dim = layer.num_heads, layer.head_dim
    q = apply_rope((x @ layer.proj_q.weight).reshape(batch, length, heads, head_dim), positions)
    k = apply_rope(x @ layer.proj_k.weight, positions)
    v = x @ layer.proj_v.weight
    q, k, v = (np.asarray(a, np.float64) for a in (q, k, v))
    segment = np.cumsum(np.asarray(positions) == 0, axis=-1)
    i, j = np.arange(length)[:, None], np.arange(length)[None, :]
    mask = (segment[:, :, None] == segment[:, None, :]) & (j <= i) & (i - j <= layer.window_size)
    logits = np.einsum("bthd,bsd->bhts", q, k) / np.sqrt(head_dim)
    logits = np.where(mask[:, None], logits, -np.inf)
    probs = np.exp(logits - logits.max(-1, keepdims=True))
    probs /= probs.sum(-1, keepdims=True)
    encoded = np.einsum("bhts,bsd->bthd", probs, v).reshape(batch, length, width)
    return encoded @ np.asarray(layer.proj_final.weight, np.float64) + np.asarray(layer.proj_final.bias)


@eqx.filter_jit
def run(layer, x, positions, state):
    return layer(x, positions, state)


def make(window: int, block: int, seed: int = 0, width: int = 16, heads: int = 2) -> LocalAttention:
    layer = LocalAttention(width, heads, window, block_size=block, key=jax.random.key(seed))
    bias = jax.random.normal(jax.random.key(seed + 1), (width,))
    return eqx.tree_at(lambda m: m.proj_final.bias, layer, bias)


@st.composite
def cases(draw):
    batch, length = draw(st.integers(1, 2)), draw(st.integers(1, 20))
    window, block = draw(st.integers(1, 8)), draw(st.sampled_from([2, 3, 5, 64]))
    cuts = sorted(draw(st.lists(st.integers(1, max(1, length - 1)), max_size=3, unique=True)))
    return batch, length, window, block, draw(padded_positions(batch, length)), [c for c in cuts if c < length]


@given(cases())
def test_whole_and_chunked_calls_match_the_dense_oracle(case) -> None:
    batch, length, window, block, positions, cuts = case
    layer = make(window, block)
    x = jax.random.normal(jax.random.key(length), (batch, length, 16))
    positions = jnp.asarray(positions, jnp.int32)
    whole, state = run(layer, x, positions, None)
    np.testing.assert_allclose(whole, dense_oracle(layer, x, positions), atol=2e-5, rtol=2e-5)
    pieces, chunk_state = [], None
    for start, stop in zip([0, *cuts], [*cuts, length]):
        out, chunk_state = run(layer, x[:, start:stop], positions[:, start:stop], chunk_state)
        pieces.append(out)
    np.testing.assert_allclose(jnp.concatenate(pieces, axis=1), whole, atol=2e-5, rtol=2e-5)
    for got, want in zip(jax.tree_util.tree_leaves(chunk_state), jax.tree_util.tree_leaves(state)):
        np.testing.assert_allclose(got, want, atol=1e-6)


def test_window_sees_exactly_window_plus_one_keys() -> None:
    layer = make(window=4, block=64)
    x = jax.random.normal(jax.random.key(3), (1, 10, 16))
    positions = jnp.arange(10, dtype=jnp.int32)[None]
    base, _ = run(layer, x, positions, None)
    at_distance_4 = x.at[0, 5].add(1.0)
    at_distance_5 = x.at[0, 4].add(1.0)
    assert not np.allclose(run(layer, at_distance_4, positions, None)[0][0, 9], base[0, 9])
    np.testing.assert_array_equal(run(layer, at_distance_5, positions, None)[0][0, 9], base[0, 9])


def test_blockwise_memory_is_linear_in_length() -> None:
    """The compiled full pass never holds a T x T score matrix."""
    layer = make(window=16, block=32, width=16)
    x = jax.ShapeDtypeStruct((1, 4096, 16), jnp.float32)
    positions = jax.ShapeDtypeStruct((1, 4096), jnp.int32)
    compiled = jax.jit(lambda m, a, p: m(a, p)[0]).lower(layer, x, positions).compile()
    temp_bytes = compiled.memory_analysis().temp_size_in_bytes
    assert temp_bytes < 4096 * 4096 * 4 // 8, temp_bytes


def test_rope_rotates_the_first_half_only() -> None:
    x = jax.random.normal(jax.random.key(0), (1, 3, 2, 8))
    positions = jnp.array([[0, 1, 7]], jnp.int32)
    out = apply_rope(x, positions)
    np.testing.assert_array_equal(out[..., 4:], x[..., 4:])
    np.testing.assert_array_equal(out[:, 0], x[:, 0])
    # pairs (0, 2) and (1, 3) rotate by pos * 10000^(-j/2), j = 0, 1
    angle = 7 * 10000.0 ** (-jnp.arange(2) / 2)
    first, second = x[0, 2, :, :2], x[0, 2, :, 2:4]
    np.testing.assert_allclose(out[0, 2, :, :2], first * jnp.cos(angle) - second * jnp.sin(angle), rtol=1e-5)


def test_bad_head_config_is_rejected() -> None:
    with pytest.raises(ValueError, match="not divisible"):
        LocalAttention(10, 4, 8, key=jax.random.key(0))
    with pytest.raises(ValueError, match="multiple of 4"):
        LocalAttention(12, 2, 8, key=jax.random.key(0))


@pytest.mark.parametrize("length", [9, 40], ids=["before-the-ring-fills", "after-it-wraps"])
def test_decoding_reads_only_filled_blocks_of_the_ring_and_matches_one_pass(length, monkeypatch) -> None:
    from hybrid_seq.blocks import attention

    monkeypatch.setattr(attention, "DECODE_BLOCK", 4)  # a 21-slot ring in 6 blocks, the last one shifted back
    layer = make(window=20, block=32, width=16)
    x = jax.random.normal(jax.random.key(3), (2, length, 16))
    positions = jnp.asarray([np.arange(length), np.r_[np.arange(5), np.arange(length - 5)]], jnp.int32)
    whole, _ = layer(x, positions)
    step = eqx.filter_jit(layer)
    state, outs = layer.init_state(2, length, jnp.float32), []
    for t in range(length):
        y, state = step(x[:, t : t + 1], positions[:, t : t + 1], state)
        outs.append(y)
    np.testing.assert_allclose(jnp.concatenate(outs, axis=1), whole, atol=2e-5)
