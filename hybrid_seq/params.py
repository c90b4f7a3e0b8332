"""Parameter counts computed from shapes only (no weights are allocated)."""

from __future__ import annotations

import dataclasses
import math
from typing import Any

import equinox as eqx
import jax
import jax.numpy as jnp

from hybrid_seq.config import ModelConfig


@dataclasses.dataclass(frozen=True)
class ParamCount:
    """Total, embedding (`V * D`, counted once: input and output are tied) and the rest."""

    total: int
    embedding: int
    non_embedding: int


def param_count(config: ModelConfig) -> ParamCount:
    """Exact parameter counts of `Model(config)`, traced with `jax.eval_shape`."""
    from hybrid_seq.model import Model

    shapes = eqx.filter_eval_shape(lambda: Model(config, key=jax.random.key(0)))
    total = sum(
        math.prod(leaf.shape) for leaf in jax.tree_util.tree_leaves(shapes) if isinstance(leaf, jax.ShapeDtypeStruct)
    )
    embedding = config.vocab_size * config.width
    return ParamCount(total=total, embedding=embedding, non_embedding=total - embedding)


def state_bytes(config: ModelConfig, batch_size: int = 1, dtype: Any = jnp.bfloat16) -> int:
    """Bytes of the decoding state (every layer's cache) for `batch_size` sequences.

    Independent of how many tokens were seen: RG-LRU state (fp32) and conv inputs per
    recurrent layer, a ring buffer of `attention_window_size` keys and values per attention layer.
    """
    from hybrid_seq.model import Model

    def cache() -> Any:
        return Model(config, key=jax.random.key(0), dtype=dtype).init_cache(batch_size)

    shapes = jax.tree_util.tree_leaves(eqx.filter_eval_shape(cache))
    return sum(math.prod(leaf.shape) * jnp.dtype(leaf.dtype).itemsize for leaf in shapes)


def kv_cache_bytes(config: ModelConfig, length: int, batch_size: int = 1, dtype: Any = jnp.bfloat16) -> int:
    """Bytes of the keys and values a multi-head transformer of the same width and depth keeps for `length` tokens."""
    return 2 * config.num_layers * length * config.width * batch_size * jnp.dtype(dtype).itemsize
