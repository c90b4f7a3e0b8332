"""Parameter counts of a model, or of the model a config builds, from shapes only (nothing allocated)."""

from __future__ import annotations

import dataclasses
import math
from typing import Any

import equinox as eqx
import jax


@dataclasses.dataclass(frozen=True)
class ParamCount:
    """Total, embedding (the `V * D` table, counted once when the output head is tied, plus an
    untied head's `D * V`) and the rest."""

    total: int
    embedding: int
    non_embedding: int


def param_count(model_or_config: Any) -> ParamCount:
    """Exact parameter counts of a `Model` as it is (a user's swapped-in modules included), or
    of `Model(config)` for a `ModelConfig` / `HybridConfig`, traced with `jax.eval_shape`."""
    from hybrid_seq.model import Model

    if isinstance(model_or_config, Model):
        model = model_or_config
    else:
        model = eqx.filter_eval_shape(lambda: Model(model_or_config, key=jax.random.key(0)))
    total = _size(model)
    embedding = _size(model.embedder) + (0 if model.head is None else _size(model.head))
    return ParamCount(total=total, embedding=embedding, non_embedding=total - embedding)


def _size(tree: Any) -> int:
    """Elements of every array leaf (arrays, or their `jax.ShapeDtypeStruct`s under `eval_shape`)."""
    return sum(math.prod(leaf.shape) for leaf in jax.tree_util.tree_leaves(tree) if hasattr(leaf, "shape"))
