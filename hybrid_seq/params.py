"""Parameter counts computed from shapes only (no weights are allocated)."""

from __future__ import annotations

import dataclasses
import math

import equinox as eqx
import jax

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

