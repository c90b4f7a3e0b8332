"""Sequence parallelism for the whole model: time split over the `seq` axis equals one pass, forward, cache and gradients.

Rows pack several documents and start with padding, so document starts and pads fall on
both sides of shard boundaries; the attention window (5) spans three shards of two tokens.
"""

from __future__ import annotations

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import pytest

import hybrid_seq as hs
from hybrid_seq.distributed import make_mesh

CONFIG = hs.ModelConfig(
    vocab_size=32, width=16, mlp_expanded_width=32, num_heads=2, block_pattern="RA", attention_window_size=5
)


def _positions(length: int) -> jnp.ndarray:
    """Four rows: one document; documents starting at 5 and 9; left padding; starts at 7, 8 and 11."""
    rows = np.tile(np.arange(length), (4, 1))
    for row, starts in ((1, (5, 9)), (3, (7, 8, 11))):
        for start in starts:
            rows[row, start:] = np.arange(length - start)
    rows[2, :3] = -1
    rows[2, 3:] = np.arange(length - 3)
    return jnp.asarray(rows, jnp.int32)


@eqx.filter_jit
def _forward_and_grads(model: hs.Model, tokens: jax.Array, positions: jax.Array):
    def loss(m):
        logits, cache = m(tokens, positions)
        return jnp.sum(jnp.sin(logits)), (logits, cache)

    (_, (logits, cache)), grads = eqx.filter_value_and_grad(loss, has_aux=True)(model)
    return logits, cache, grads


def _close(got, want, *, what: str, rtol: float = 1e-5) -> None:
    for (path, g), w in zip(jax.tree_util.tree_leaves_with_path(got), jax.tree_util.tree_leaves(want)):
        g, w = np.asarray(g, np.float64), np.asarray(w, np.float64)
        np.testing.assert_allclose(g, w, rtol=rtol, atol=rtol * max(1.0, np.abs(w).max()),
                                   err_msg=f"{what}{jax.tree_util.keystr(path)}")


@pytest.fixture(scope="module")
def reference():
    model = hs.Model(CONFIG, key=jax.random.key(0))
    tokens = jax.random.randint(jax.random.key(1), (4, 16), 0, CONFIG.vocab_size)
    positions = _positions(16)
    return model, tokens, positions, _forward_and_grads(model, tokens, positions)


def test_split_time_equals_one_pass(reference) -> None:
    model, tokens, positions, (logits, cache, grads) = reference
    with jax.set_mesh(make_mesh("seq=8")):
        got_logits, got_cache, got_grads = _forward_and_grads(model, tokens, positions)
    _close(got_logits, logits, what="logits")
    _close(got_cache, cache, what="cache")
    _close(got_grads, grads, what="grad")
    # The cache of a split pass continues the sequence like the unsplit one (decoding runs unsplit).
    token, position = tokens[:, :1], positions[:, -1:] + 1
    _close(model(token, position, got_cache)[0], model(token, position, cache)[0], what="next logits")


def test_long_shards_attend_blockwise_with_rows_and_heads_split() -> None:
    """48 tokens a shard (more than a 32-query attention block), window 40, rows over data and heads over tensor."""
    config = CONFIG.replace(attention_window_size=40)
    model = hs.Model(config, key=jax.random.key(2))
    tokens = jax.random.randint(jax.random.key(3), (4, 96), 0, config.vocab_size)
    positions = _positions(96).at[1, 60:].set(jnp.arange(36))
    forward = eqx.filter_jit(lambda m, t, p: m(t, p)[0])
    want = forward(model, tokens, positions)
    with jax.set_mesh(make_mesh("data=2,seq=2,tensor=2")):
        got = forward(model, tokens, positions)
    _close(got, want, what="logits")


def test_time_must_divide_the_sequence_axis(reference) -> None:
    model, tokens, positions, _ = reference
    with jax.set_mesh(make_mesh("seq=8")):
        with pytest.raises(ValueError, match="splits time over the 8 shards of mesh axis 'seq'.*got T = 12"):
            eqx.filter_jit(lambda m, t, p: m(t, p))(model, tokens[:, :12], positions[:, :12])
