"""Small random models and inputs for the checkpoint tests."""

from __future__ import annotations

from typing import Any

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np

from hybrid_seq import Model, ModelConfig

#: The settings the reference formats cannot store (passed on load).
SETTINGS = dict(attention_window_size=6, logits_soft_cap=30.0, embeddings_scale_by_sqrt_dim=True)


def small_config(**changes: Any) -> ModelConfig:
    fields = dict(vocab_size=97, width=32, mlp_expanded_width=48, num_heads=4, lru_width=64, block_pattern="RAR",
                  **SETTINGS)
    return ModelConfig(**{**fields, **changes})


def random_model(config: ModelConfig, *, dtype: Any = jnp.float32, seed: int = 0) -> Model:
    """A model whose every leaf (norm scales and biases too) is random and nonzero (drawn with numpy: fast)."""
    skeleton = eqx.filter_eval_shape(lambda: Model(config, key=jax.random.key(0), dtype=jnp.float32))
    leaves, treedef = jax.tree_util.tree_flatten(skeleton)
    rng = np.random.default_rng(seed)
    leaves = [jnp.asarray(rng.normal(0.0, 0.5 / np.sqrt(x.shape[-1]), x.shape) + 0.05, dtype) for x in leaves]
    return jax.tree_util.tree_unflatten(treedef, leaves)


def inputs(config: ModelConfig, length: int = 6, seed: int = 3) -> tuple[jax.Array, jax.Array]:
    """Tokens and positions `[2, T]`, one document per row (no packing, no padding)."""
    tokens = jax.random.randint(jax.random.key(seed), (2, length), 0, config.vocab_size, jnp.int32)
    return tokens, jnp.tile(jnp.arange(length, dtype=jnp.int32), (2, 1))


def logits(model: Model, config: ModelConfig | None = None, length: int = 6) -> np.ndarray:
    tokens, positions = inputs(config or model.config, length)
    return np.asarray(model(tokens, positions)[0], np.float32)


def assert_same_weights(a: Model, b: Model) -> None:
    left, right = jax.tree_util.tree_leaves(a), jax.tree_util.tree_leaves(b)
    assert len(left) == len(right)
    for x, y in zip(left, right):
        assert x.dtype == y.dtype and x.shape == y.shape
        np.testing.assert_array_equal(np.asarray(x), np.asarray(y))


def same_architecture(a: ModelConfig, b: ModelConfig) -> bool:
    """Equal configs, up to how the pattern and the LRU width are spelled (`RAR` = `RA:3`, None = width)."""

    def canonical(c: ModelConfig) -> ModelConfig:
        return c.replace(lru_width=c.resolved_lru_width, block_pattern=list(c.layer_kinds))

    return canonical(a) == canonical(b)
