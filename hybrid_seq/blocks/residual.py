"""Pre-norm residual block: a temporal mixer and a gated MLP, each with its own RMSNorm."""

from __future__ import annotations

from typing import Any

import equinox as eqx
from jaxtyping import Array, Float, Int

from hybrid_seq.blocks.mlp import GatedMLP
from hybrid_seq.blocks.norm import RMSNorm
from hybrid_seq.blocks.temporal import AbstractTemporalBlock


class ResidualBlock(eqx.Module):
    """`r = x + temporal(norm(x)); out = r + mlp(norm(r))`."""

    temporal_pre_norm: RMSNorm
    temporal: AbstractTemporalBlock
    channel_pre_norm: RMSNorm
    mlp: GatedMLP

    def init_state(self, batch_size: int, dtype: Any) -> Any:
        return self.temporal.init_state(batch_size, dtype)

    def __call__(
        self, x: Float[Array, "B T D"], positions: Int[Array, "B T"], state: Any | None = None
    ) -> tuple[Float[Array, "B T D"], Any]:
        y, state = self.temporal(self.temporal_pre_norm(x), positions, state)
        residual = y + x
        return self.mlp(self.channel_pre_norm(residual)) + residual, state
