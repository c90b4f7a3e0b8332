"""The per-sequence inference state: one entry per layer; fixed-size for recurrences and local attention."""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp
from jax.typing import DTypeLike

from hybrid_seq.model import Cache, Config, Model


def init_state(model: Model, batch_size: int, max_length: int | None = None) -> Cache:
    """An empty state for `batch_size` rows (recurrence fp32, conv and keys/values in the model dtype).

    Recurrent layers hold `[B, L]` + `[B, 3, L]` and local attention a ring buffer of
    `attention_window_size` keys and values, whatever the length; kinds with a cache that
    grows preallocate `max_length` tokens (see `Model.init_cache`).
    """
    return model.init_cache(batch_size, max_length)


def state_bytes(
    model_or_config: Model | Config, batch_size: int = 1, *, dtype: DTypeLike | None = None, max_length: int | None = None
) -> int:
    """Bytes of the inference state for `batch_size` rows (and `max_length` tokens where a cache
    grows), from shapes only (`jax.eval_shape`).

    A config is sized for `dtype` (default float32) without allocating weights.
    """
    if isinstance(model_or_config, Model):
        shapes = jax.eval_shape(lambda: model_or_config.init_cache(batch_size, max_length))
    else:
        model_dtype = jnp.float32 if dtype is None else dtype
        model = jax.eval_shape(lambda: Model(model_or_config, key=jax.random.key(0), dtype=jnp.dtype(model_dtype)))
        shapes = jax.eval_shape(lambda: Model.init_cache(model, batch_size, max_length))
    return sum(math.prod(leaf.shape) * jnp.dtype(leaf.dtype).itemsize for leaf in jax.tree_util.tree_leaves(shapes))


def kv_cache_bytes(config: Config, length: int, batch_size: int = 1, *, dtype: DTypeLike = jnp.float32) -> int:
    """Bytes a full-attention transformer of the same width and depth would cache for `length` tokens.

    Multi-head keys and values (`width` each per token and layer): the growing cache our
    fixed-size state avoids. For comparison plots only.
    """
    return 2 * config.num_layers * config.width * length * batch_size * jnp.dtype(dtype).itemsize
