"""Causal GQA attention: a dense float64 oracle, any chunking, packed documents, the cache's capacity."""

from __future__ import annotations

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from hybrid_seq.blocks import AttentionConfig
from hybrid_seq.blocks.rope import apply_rope
from hybrid_seq.testing import padded_positions

WIDTH = 16


def perturbed(config: AttentionConfig, seed: int = 0):
    layer = config.build(WIDTH, key=jax.random.key(seed), dtype=jnp.float32, num_layers=2)
    leaves, treedef = jax.tree_util.tree_flatten(layer)
    rng = np.random.default_rng(seed)
    return jax.tree_util.tree_unflatten(treedef, [jnp.asarray(rng.normal(0, 0.5, x.shape), jnp.float32) for x in leaves])


def oracle(layer, x, positions):
    """Dense attention in float64 over every (query, key) pair of one document, window included."""
    f = lambda a: np.asarray(a, np.float64)  # noqa: E731
    lin = lambda m, v: v @ f(m.weight) + (0 if m.bias is None else f(m.bias))  # noqa: E731
    b, t, _ = x.shape
    h, g, k = layer.num_heads, layer.num_kv_heads, layer.head_dim
    q = lin(layer.q_proj, f(x)).reshape(b, t, h, k)
    kk = lin(layer.k_proj, f(x)).reshape(b, t, g, k) * layer.key_multiplier
    v = lin(layer.v_proj, f(x)).reshape(b, t, g, k)
    if layer.rope_fraction:
        rope = lambda a: f(apply_rope(jnp.asarray(a, jnp.float32), jnp.asarray(positions), layer.rope_theta, fraction=layer.rope_fraction))  # noqa: E731
        q, kk = rope(q), rope(kk)
    doc = np.cumsum(positions == 0, axis=1)
    out = np.zeros((b, t, h, k))
    for bi in range(b):
        for i in range(t):
            seen = [j for j in range(i + 1) if doc[bi, j] == doc[bi, i]
                    and (layer.window_size is None or i - j <= layer.window_size)]
            for hh in range(h):
                s = np.array([q[bi, i, hh] @ kk[bi, j, hh // (h // g)] for j in seen]) * layer.score_scale
                p = np.exp(s - s.max())
                out[bi, i, hh] = (p / p.sum()) @ v[bi, seen, hh // (h // g)]
    out = out.reshape(b, t, h * k)
    if layer.gate_proj is not None:
        out = out / (1 + np.exp(-lin(layer.gate_proj, f(x))))
    return lin(layer.o_proj, out)


CONFIGS = {
    "gqa-rope": AttentionConfig(num_heads=4, num_kv_heads=2, qkv_bias=True, out_bias=True),
    "mqa-nope": AttentionConfig(num_heads=4, num_kv_heads=1, rope_fraction=0.0, score_scale=0.3),
    "window-half-rope": AttentionConfig(num_heads=2, head_dim=8, rope_fraction=0.5, window_size=3, rope_theta=500.0),
    "gated-keymult": AttentionConfig(num_heads=4, output_gate=True, key_multiplier=0.7),
}


@pytest.mark.parametrize("name", list(CONFIGS))
def test_matches_dense_attention_with_packed_documents_and_padding(name) -> None:
    layer = perturbed(CONFIGS[name])
    x = np.random.default_rng(1).standard_normal((2, 9, WIDTH)).astype(np.float32)
    positions = np.array([np.arange(9), np.r_[-1, -1, np.arange(3), np.arange(4)]], np.int32)
    y, _ = eqx.filter_jit(layer)(jnp.asarray(x), jnp.asarray(positions))
    want = oracle(layer, x, positions)
    np.testing.assert_allclose(np.asarray(y)[0], want[0], rtol=1e-4, atol=1e-4)
    np.testing.assert_allclose(np.asarray(y)[1, 2:], want[1, 2:], rtol=1e-4, atol=1e-4)


@settings(max_examples=max(4, settings().max_examples // 2))
@given(
    st.integers(1, 14).flatmap(
        lambda length: st.tuples(st.just(length), padded_positions(2, length), st.lists(st.integers(1, 13), max_size=3))
    ),
    st.sampled_from(list(CONFIGS)),
)
def test_any_chunking_equals_one_pass(case, name) -> None:
    length, positions, cuts = case
    layer = perturbed(CONFIGS[name])
    x = jnp.asarray(np.random.default_rng(length).standard_normal((2, length, WIDTH)), jnp.float32)
    positions = jnp.asarray(positions, jnp.int32)
    call = eqx.filter_jit(layer)
    whole, _ = call(x, positions)
    bounds = [0, *sorted({c for c in cuts if c < length}), length]
    state, pieces = layer.init_state(2, length + 3, jnp.float32), []
    for start, stop in zip(bounds, bounds[1:]):
        y, state = call(x[:, start:stop], positions[:, start:stop], state)
        pieces.append(y)
    np.testing.assert_allclose(jnp.concatenate(pieces, 1), whole, atol=2e-5)
    assert state.keys.shape[1] == length + 3 and int(state.num_tokens[0]) == length


def test_long_sequences_use_query_blocks(monkeypatch) -> None:
    from hybrid_seq.blocks import causal_attention

    layer = perturbed(CONFIGS["gqa-rope"])
    x = jnp.asarray(np.random.default_rng(0).standard_normal((1, 20, WIDTH)), jnp.float32)
    positions = jnp.arange(20)[None]
    whole, _ = layer(x, positions)
    monkeypatch.setattr(causal_attention, "QUERY_BLOCK", 6)
    np.testing.assert_allclose(layer(x, positions)[0], whole, rtol=1e-5, atol=1e-5)


def test_the_cache_needs_a_length_and_refuses_to_overflow() -> None:
    layer = perturbed(CONFIGS["gqa-rope"])
    with pytest.raises(ValueError, match="give the state a max_length"):
        layer.init_state(1, None, jnp.float32)
    state = layer.init_state(1, 4, jnp.float32)
    _, state = layer(jnp.ones((1, 3, WIDTH)), jnp.arange(3)[None], state)
    with pytest.raises(Exception, match="the KV cache of 4 tokens is full"):
        layer(jnp.ones((1, 2, WIDTH)), jnp.arange(3, 5)[None], state)


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        (dict(num_heads=4, num_kv_heads=3), "num_kv_heads=3 must divide num_heads=4"),
        (dict(rope_fraction=0.3), "rope_fraction must be"),
    ],
)
def test_bad_configs_name_the_field(fields, message) -> None:
    with pytest.raises(ValueError, match=message):
        AttentionConfig(**fields)
