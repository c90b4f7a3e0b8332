"""Every parameter of the built-in kinds carries logical axes; an undeclared one is a clear error."""

from __future__ import annotations

import jax
import pytest

import hybrid_seq as hs
from hybrid_seq.blocks import Linear
from hybrid_seq.blocks.axes import EMBED, HEADS, LRU_BLOCKS, MLP, VOCAB, logical_axes
from tests.test_architecture import EVERYTHING


def test_every_leaf_of_every_built_in_kind_is_named() -> None:
    model = hs.Model(EVERYTHING, key=jax.random.key(0))
    axes = logical_axes(model)
    leaves = jax.tree_util.tree_leaves_with_path(model)
    assert len(axes) == len(leaves)
    for path, leaf in zip(axes.values(), (leaf for _, leaf in leaves)):
        assert len(path) == leaf.ndim
    assert axes[("embedder", "weight")] == (VOCAB, EMBED) and axes[("head", "weight")] == (EMBED, VOCAB)
    assert axes[("blocks", 0, "mlp", "down", "weight")] == (MLP, EMBED)
    assert axes[("blocks", 0, "temporal", "rg_lru", "a_gate", "weight")] == (LRU_BLOCKS, None, None)
    assert axes[("blocks", 1, "temporal", "branches", 0, "proj_q", "weight")] == (EMBED, HEADS)
    assert axes[("blocks", 1, "temporal", "branches", 0, "proj_k", "weight")] == (EMBED, None)


def test_stacked_layers_get_a_leading_unnamed_axis() -> None:
    model = hs.Model(hs.presets.get("griffin-tiny", block_pattern="RRA:6"), key=jax.random.key(0)).stack_layers()
    axes = logical_axes(model)
    assert axes[("blocks", 0, "unit", 0, "mlp", "gate", "weight")] == (None, EMBED, MLP)


def test_a_leaf_nobody_names_is_an_error() -> None:
    with pytest.raises(ValueError, match=r"parameter weight has no logical axes"):
        logical_axes(Linear(2, 3, use_bias=False, key=jax.random.key(0)))
