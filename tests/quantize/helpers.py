"""A small model whose embedding and linear layers hold almost all its weights; compiled logits."""

from __future__ import annotations

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np

from hybrid_seq import Model, ModelConfig

#: Vocabulary 384 (the byte tokenizer needs 261), width 64; 97% of the weights are the embedding and linears.
CONFIG = ModelConfig(
    vocab_size=384, width=64, mlp_expanded_width=192, num_heads=4, block_pattern="RA",
    attention_window_size=8, logits_soft_cap=30.0, embeddings_scale_by_sqrt_dim=True,
)


def inputs(batch: int = 4, length: int = 24, seed: int = 1) -> tuple[jax.Array, jax.Array]:
    """Random tokens, each row one document."""
    tokens = jax.random.randint(jax.random.key(seed), (batch, length), 0, CONFIG.vocab_size, jnp.int32)
    return tokens, jnp.tile(jnp.arange(length, dtype=jnp.int32), (batch, 1))


@eqx.filter_jit
def _logits(model: Model, tokens: jax.Array, positions: jax.Array) -> jax.Array:
    return model(tokens, positions)[0]


def forward(model: Model, tokens: jax.Array, positions: jax.Array) -> np.ndarray:
    """The logits of one compiled pass."""
    return np.asarray(_logits(model, tokens, positions))
