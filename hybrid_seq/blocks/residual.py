"""A layer: up to two pre-norm residual sub-blocks (a temporal one, then a channel one), and its config."""

from __future__ import annotations

import dataclasses
from typing import Any

import equinox as eqx
import jax
from jax.typing import DTypeLike
from jaxtyping import Array, Float, Int, PRNGKeyArray

from hybrid_seq.blocks.mixer import AbstractChannelMixer, AbstractMixer
from hybrid_seq.blocks.norm import NormConfig, RMSNorm
from hybrid_seq.distributed import context
from hybrid_seq.kinds import KindConfig


class ResidualBlock(eqx.Module):
    """`r = x + m * temporal(norm(x))`, then `out = r + m * mlp(norm(r))`; either sub-block may be absent.

    Griffin's layer has both (a temporal mixer, then the gated MLP); Nemotron-H's layers
    have one each (a lone Mamba-2, attention or MLP); Falcon-H1's temporal mixer is two
    mixers in parallel. `m` is the residual multiplier (1 for all but Granite). The channel
    mixer keeps the reference's field name `mlp` whatever its kind (a MoE included).
    """

    temporal_pre_norm: RMSNorm | None
    temporal: AbstractMixer | None
    channel_pre_norm: RMSNorm | None
    mlp: AbstractChannelMixer | None
    residual_multiplier: float = eqx.field(static=True, default=1.0)

    @property
    def num_layers(self) -> int:
        """Layers this entry holds: 1 (a `LayerStack` holds many)."""
        return 1

    def init_state(self, batch_size: int, max_length: int | None, dtype: DTypeLike) -> Any:
        """The temporal mixer's state (None for a layer without one)."""
        return None if self.temporal is None else self.temporal.init_state(batch_size, max_length, dtype)

    def state_capacity(self, state: Any) -> int | None:
        """The `max_length` the temporal mixer's state was made for (None: fixed size)."""
        return None if self.temporal is None else self.temporal.state_capacity(state)

    def __call__(
        self,
        x: Float[Array, "B T D"],
        positions: Int[Array, "B T"],
        state: Any | None = None,
        *,
        checkpoint: bool = False,
    ) -> tuple[Float[Array, "B T D"], Any]:
        """`checkpoint=True` rematerialises the layer in the backward pass (gradient checkpointing)."""
        if checkpoint:
            return eqx.filter_checkpoint(ResidualBlock._forward)(self, x, positions, state)
        return self._forward(x, positions, state)

    def _forward(self, x: Array, positions: Array, state: Any | None) -> tuple[Array, Any]:
        x = context.constrain(x)
        if self.temporal is not None:
            y, state = self.temporal(self.temporal_pre_norm(x), positions, state)
            x = self._add(x, y)
        if self.mlp is not None:
            x = self._add(x, self.mlp(self.channel_pre_norm(x)))
        return x, state

    def _add(self, residual: Array, branch: Array) -> Array:
        return branch + residual if self.residual_multiplier == 1 else residual + branch * self.residual_multiplier


@dataclasses.dataclass(frozen=True)
class LayerConfig:
    """One layer: an optional temporal kind, then an optional channel kind (at least one)."""

    temporal: KindConfig | None = None
    channel: KindConfig | None = None

    def __post_init__(self) -> None:
        if self.temporal is None and self.channel is None:
            raise ValueError("LayerConfig needs a temporal kind, a channel kind, or both")
        for role, value in (("temporal", self.temporal), ("channel", self.channel)):
            if value is not None and (not isinstance(value, KindConfig) or value.role != role):
                got = f"a {value.role} kind ({value.kind!r})" if isinstance(value, KindConfig) else repr(value)
                raise ValueError(f"LayerConfig.{role} must be a {role} kind config, got {got}")

    @property
    def name(self) -> str:
        """The kinds it holds, e.g. ``recurrent+gated_mlp``."""
        return "+".join(k.kind for k in (self.temporal, self.channel) if k is not None)

    def validate(self, width: int) -> None:
        """Raise ValueError when a kind of this layer cannot live in a model of `width` features."""
        for kind in (self.temporal, self.channel):
            if kind is not None:
                kind.validate(width)

    def to_dict(self) -> dict[str, Any]:
        """``{"temporal": kind dict or None, "channel": kind dict or None}``."""
        return {role: None if k is None else k.to_dict() for role, k in (("temporal", self.temporal), ("channel", self.channel))}

    @classmethod
    def from_dict(cls, data: dict[str, Any], *, where: str = "layer") -> LayerConfig:
        """The layer of a `to_dict` dict (`where` names it in errors)."""
        if not isinstance(data, dict) or set(data) - {"temporal", "channel"}:
            raise ValueError(f"{where}: a layer is an object with keys 'temporal' and/or 'channel', got {data!r}")
        read = lambda role: None if data.get(role) is None else KindConfig.from_dict(data[role], where=f"{where}.{role}")  # noqa: E731
        return cls(temporal=read("temporal"), channel=read("channel"))

    def build(
        self,
        width: int,
        *,
        key: PRNGKeyArray,
        dtype: DTypeLike,
        num_layers: int,
        norm: NormConfig,
        residual_multiplier: float = 1.0,
    ) -> ResidualBlock:
        """The layer's `ResidualBlock`: each present kind built with its own pre-norm."""
        k_temporal, k_channel = jax.random.split(key)
        temporal = channel = None
        if self.temporal is not None:
            temporal = self.temporal.build(width, key=k_temporal, dtype=dtype, num_layers=num_layers)
        if self.channel is not None:
            channel = self.channel.build(width, key=k_channel, dtype=dtype, num_layers=num_layers)
        return ResidualBlock(
            temporal_pre_norm=None if temporal is None else norm.build(width, dtype=dtype),
            temporal=temporal,
            channel_pre_norm=None if channel is None else norm.build(width, dtype=dtype),
            mlp=channel,
            residual_multiplier=residual_multiplier,
        )
