"""Composable Equinox blocks of hybrid recurrent/attention models.

Importing this package registers the built-in temporal block kinds of the pattern spec:
``recurrent`` (letter ``R``) and ``attention`` (letter ``A``).
"""

from __future__ import annotations

from typing import Any

from jax.typing import DTypeLike
from jaxtyping import PRNGKeyArray

from hybrid_seq.blocks.attention import AttentionState, LocalAttention, apply_rope
from hybrid_seq.blocks.conv1d import Conv1D
from hybrid_seq.blocks.embed import Embedder
from hybrid_seq.blocks.linear import BlockDiagonalLinear, Linear
from hybrid_seq.blocks.mlp import GatedMLP
from hybrid_seq.blocks.norm import RMSNorm
from hybrid_seq.blocks.recurrent import RecurrentBlock, RecurrentState
from hybrid_seq.blocks.residual import ResidualBlock
from hybrid_seq.blocks.rglru import RGLRU, sqrt_bound_derivative
from hybrid_seq.blocks.temporal import AbstractTemporalBlock
from hybrid_seq.config import require_divisible
from hybrid_seq.pattern import register_temporal_block


def _build_recurrent(config: Any, *, key: PRNGKeyArray, dtype: DTypeLike) -> RecurrentBlock:
    return RecurrentBlock(
        config.width,
        config.resolved_lru_width,
        config.num_heads,
        conv1d_temporal_width=config.conv1d_temporal_width,
        final_init_scale=config.final_w_init_variance_scale,
        key=key,
        dtype=dtype,
    )


def _validate_recurrent(config: Any) -> None:
    require_divisible(config, "lru_width", config.resolved_lru_width)


def _build_attention(config: Any, *, key: PRNGKeyArray, dtype: DTypeLike) -> LocalAttention:
    return LocalAttention(
        config.width,
        config.num_heads,
        config.attention_window_size,
        final_init_scale=config.final_w_init_variance_scale,
        key=key,
        dtype=dtype,
    )


def _validate_attention(config: Any) -> None:
    require_divisible(config, "width", config.width)
    if config.head_dim % 4:
        raise ValueError(
            f"head_dim = width / num_heads = {config.head_dim} must be a multiple of 4 (RoPE rotates half of it)"
        )


register_temporal_block("recurrent", letter="R", build=_build_recurrent, validate=_validate_recurrent)
register_temporal_block("attention", letter="A", build=_build_attention, validate=_validate_attention)

__all__ = [
    "AbstractTemporalBlock",
    "AttentionState",
    "BlockDiagonalLinear",
    "Conv1D",
    "Embedder",
    "GatedMLP",
    "Linear",
    "LocalAttention",
    "RGLRU",
    "RMSNorm",
    "RecurrentBlock",
    "RecurrentState",
    "ResidualBlock",
    "apply_rope",
    "sqrt_bound_derivative",
]
