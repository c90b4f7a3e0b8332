"""Composable Equinox blocks of hybrid models, and the kinds they are built from.

Importing this package registers the built-in kinds (`hybrid_seq.kinds`): ``recurrent``,
``local_attention``, ``attention``, ``mamba2``, ``gated_mlp``, ``mlp``, ``moe`` and
``parallel``; and the temporal kinds that
`ModelConfig` patterns name: ``recurrent`` (letter ``R``) and ``attention`` (letter ``A``).
"""

from __future__ import annotations

from typing import Any

from hybrid_seq.blocks.attention import AttentionState, LocalAttention, LocalAttentionConfig
from hybrid_seq.blocks.causal_attention import Attention, AttentionConfig, KVCache
from hybrid_seq.blocks.conv1d import Conv1D
from hybrid_seq.blocks.embed import Embedder
from hybrid_seq.blocks.linear import BlockDiagonalLinear, Linear
from hybrid_seq.blocks.mamba2 import Mamba2, Mamba2Config, Mamba2State
from hybrid_seq.blocks.mixer import AbstractChannelMixer, AbstractMixer, AbstractScanning, replace_static
from hybrid_seq.blocks.mlp import MLP, GatedMLP, GatedMLPConfig, MLPConfig
from hybrid_seq.blocks.moe import MoE, MoEConfig
from hybrid_seq.blocks.norm import NormConfig, RMSNorm
from hybrid_seq.blocks.parallel import ParallelConfig, ParallelMixers
from hybrid_seq.blocks.recurrent import RecurrentBlock, RecurrentConfig, RecurrentState
from hybrid_seq.blocks.residual import LayerConfig, ResidualBlock
from hybrid_seq.blocks.rglru import RGLRU, sqrt_bound_derivative
from hybrid_seq.blocks.rope import apply_rope
from hybrid_seq.blocks.stack import LayerStack
from hybrid_seq.blocks.temporal import AbstractTemporalBlock, LegacyKindConfig, LegacyTemporal
from hybrid_seq.pattern import register_temporal_block


def _recurrent(config: Any) -> RecurrentConfig:
    return RecurrentConfig(
        lru_width=config.lru_width, num_heads=config.num_heads, conv1d_temporal_width=config.conv1d_temporal_width
    )


def _validate_recurrent(config: Any) -> None:
    if config.resolved_lru_width % config.num_heads == 0:
        return
    if config.lru_width is None:
        raise ValueError(
            f"width={config.width} is not divisible by num_heads={config.num_heads}: the RG-LRU is width wide "
            "(lru_width is not set) and splits into num_heads gate blocks"
        )
    raise ValueError(
        f"lru_width={config.lru_width} is not divisible by num_heads={config.num_heads} (the RG-LRU gate blocks)"
    )


def _attention(config: Any) -> LocalAttentionConfig:
    return LocalAttentionConfig(num_heads=config.num_heads, window_size=config.attention_window_size)


def _validate_attention(config: Any) -> None:
    if config.width % config.num_heads:
        raise ValueError(f"width={config.width} is not divisible by num_heads={config.num_heads} (attention heads)")
    if config.head_dim % 4:
        raise ValueError(
            f"head_dim = width / num_heads = {config.head_dim} must be a multiple of 4 (RoPE rotates half of it)"
        )


register_temporal_block("recurrent", letter="R", kind_config=_recurrent, validate=_validate_recurrent)
register_temporal_block("attention", letter="A", kind_config=_attention, validate=_validate_attention)

__all__ = [
    "AbstractChannelMixer",
    "AbstractMixer",
    "AbstractScanning",
    "AbstractTemporalBlock",
    "Attention",
    "AttentionConfig",
    "AttentionState",
    "BlockDiagonalLinear",
    "Conv1D",
    "Embedder",
    "GatedMLP",
    "GatedMLPConfig",
    "KVCache",
    "LayerConfig",
    "LayerStack",
    "LegacyKindConfig",
    "LegacyTemporal",
    "Linear",
    "LocalAttention",
    "LocalAttentionConfig",
    "MLP",
    "MLPConfig",
    "Mamba2",
    "Mamba2Config",
    "Mamba2State",
    "MoE",
    "MoEConfig",
    "NormConfig",
    "ParallelConfig",
    "ParallelMixers",
    "RGLRU",
    "RMSNorm",
    "RecurrentBlock",
    "RecurrentConfig",
    "RecurrentState",
    "ResidualBlock",
    "apply_rope",
    "replace_static",
    "sqrt_bound_derivative",
]
