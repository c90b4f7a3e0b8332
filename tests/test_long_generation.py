"""Decoding far past the window stays exact: 100k one-token steps equal a chunked full pass, with a fixed-size state.

The fixed-size state is the point of these models, so this decodes (teacher-forced, one
token per compiled step) 100,000 tokens of one document through a small Griffin model (RoPE
at large positions, the ring buffer wrapping 11,000 times, the RG-LRU's long horizon) and checks that nothing becomes NaN or Inf, that the state keeps its size
and dtype, and that the logits at several check points equal those of a chunked full pass
over the same tokens. `HYBRID_SEQ_LONG_TOKENS=1000000` runs the million-token version
(about ten times longer); `hybrid-seq bench generate` covers speed.
"""

from __future__ import annotations

import os

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np

import hybrid_seq as hs

LENGTH = int(os.environ.get("HYBRID_SEQ_LONG_TOKENS", 100_000))
CHECKS = (7, 1_000, LENGTH // 2 + 3, LENGTH - 1)
CHUNK = 10_000

CONFIG = hs.ModelConfig(vocab_size=32, width=16, mlp_expanded_width=32, num_heads=2, block_pattern="RRA",
                        attention_window_size=8, logits_soft_cap=30.0, embeddings_scale_by_sqrt_dim=True)


@eqx.filter_jit
def decode(model, tokens, cache):
    """One compiled loop over every token: the logits at the check points, and whether all were finite."""
    checks = jnp.asarray(CHECKS)

    def step(carry, inputs):
        cache, finite, kept = carry
        t, token = inputs
        logits, cache = model(token[None, None], t[None, None], cache)
        finite = finite & jnp.all(jnp.isfinite(logits))
        kept = jnp.where((checks == t)[:, None], logits[0, 0], kept)
        return (cache, finite, kept), None

    kept = jnp.zeros((len(CHECKS), model.vocab_size), jnp.float32)
    (cache, finite, kept), _ = jax.lax.scan(step, (cache, jnp.bool_(True), kept), (jnp.arange(tokens.shape[0]), tokens))
    return cache, finite, kept


@eqx.filter_jit
def chunk_pass(model, tokens, positions, cache):
    return model(tokens, positions, cache)


def test_decoding_far_past_the_window_equals_a_chunked_pass() -> None:
    model = hs.Model(CONFIG, key=jax.random.key(0))
    tokens = jnp.asarray(np.random.default_rng(0).integers(0, 32, LENGTH), jnp.int32)
    start = model.init_cache(1, LENGTH)
    cache, finite, decoded = decode(model, tokens, start)
    assert bool(finite)
    for before, after in zip(jax.tree_util.tree_leaves(start), jax.tree_util.tree_leaves(cache)):
        assert before.shape == after.shape and before.dtype == after.dtype

    chunked, state = {}, model.init_cache(1, LENGTH)
    for begin in range(0, LENGTH, CHUNK):
        stop = min(begin + CHUNK, LENGTH)
        logits, state = chunk_pass(model, tokens[None, begin:stop], jnp.arange(begin, stop)[None], state)
        chunked.update({t: logits[0, t - begin] for t in CHECKS if begin <= t < stop})
    for row, t in enumerate(CHECKS):
        np.testing.assert_allclose(decoded[row], chunked[t], atol=2e-4, rtol=1e-4, err_msg=f"at token {t}")
