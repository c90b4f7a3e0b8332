"""ModelConfig: Griffin's architecture in the reference's field names, the Griffin builder of `HybridConfig`."""

from __future__ import annotations

import dataclasses
import json
import math
from typing import Any

from hybrid_seq.architecture import HybridConfig
from hybrid_seq.blocks import GatedMLPConfig, LegacyKindConfig, NormConfig
from hybrid_seq.pattern import PatternSpec, parse_pattern, temporal_kind


@dataclasses.dataclass(frozen=True)
class ModelConfig:
    """Architecture of a Griffin-family model (Griffin, Hawk, RecurrentGemma).

    Field names follow DeepMind's reference where the concept is the same. Every layer is
    a temporal block of the pattern's kind followed by the gated-GeLU MLP; `to_hybrid`
    gives the same model as a `HybridConfig`, the general form in which every kind
    carries its own settings.

    Attributes:
        vocab_size: number of tokens (V).
        width: model dimension (D).
        mlp_expanded_width: hidden width of the gated MLP (E).
        num_heads: attention query heads, and number of RG-LRU gate blocks (H).
        block_pattern: which temporal block each layer uses (any form `parse_pattern` reads).
        lru_width: RG-LRU width (L); None means `width`.
        attention_window_size: a query sees itself and the `attention_window_size` tokens before it.
        logits_soft_cap: `tanh(logits / c) * c` on the output logits; 0 disables it.
        embeddings_scale_by_sqrt_dim: multiply embeddings by `sqrt(width)` rounded to bfloat16.
        conv1d_temporal_width: taps of the causal depthwise convolution (4 in every released model).
    """

    vocab_size: int
    width: int
    mlp_expanded_width: int
    num_heads: int
    block_pattern: PatternSpec
    lru_width: int | None = None
    attention_window_size: int = 2048
    logits_soft_cap: float = 0.0
    embeddings_scale_by_sqrt_dim: bool = False
    conv1d_temporal_width: int = 4

    def __post_init__(self) -> None:
        object.__setattr__(self, "block_pattern", parse_pattern(self.block_pattern))
        for name in ("vocab_size", "width", "mlp_expanded_width", "num_heads", "attention_window_size",
                     "conv1d_temporal_width"):
            _check_positive_int(name, getattr(self, name))
        if self.lru_width is not None:
            _check_positive_int("lru_width", self.lru_width)
        if not isinstance(self.logits_soft_cap, (int, float)) or isinstance(self.logits_soft_cap, bool):
            raise TypeError(f"logits_soft_cap must be a number, got {self.logits_soft_cap!r}")
        if self.logits_soft_cap < 0 or not math.isfinite(self.logits_soft_cap):
            raise ValueError(f"logits_soft_cap must be finite and >= 0 (0 disables it), got {self.logits_soft_cap}")
        object.__setattr__(self, "logits_soft_cap", float(self.logits_soft_cap))
        if not isinstance(self.embeddings_scale_by_sqrt_dim, bool):
            raise TypeError(
                f"embeddings_scale_by_sqrt_dim must be a bool, got {self.embeddings_scale_by_sqrt_dim!r}"
            )
        for kind in dict.fromkeys(self.block_pattern.unit):
            validate = temporal_kind(kind).validate
            if validate is not None:
                validate(self)

    @property
    def num_layers(self) -> int:
        """Number of layers (the pattern's length)."""
        return self.block_pattern.num_layers

    @property
    def layer_kinds(self) -> tuple[str, ...]:
        """Kind name of each layer."""
        return self.block_pattern.layer_kinds

    @property
    def resolved_lru_width(self) -> int:
        """L: `lru_width`, or `width` when it is None."""
        return self.width if self.lru_width is None else self.lru_width

    @property
    def head_dim(self) -> int:
        """Attention head width: width / num_heads."""
        return self.width // self.num_heads

    @property
    def final_w_init_variance_scale(self) -> float:
        """Variance scale of each sub-block's last projection: 2 / num_layers."""
        return 2.0 / self.num_layers

    def to_hybrid(self) -> HybridConfig:
        """The same architecture as a `HybridConfig` (letters bound to the kinds' own configs)."""
        kinds = {}
        for name in dict.fromkeys(self.block_pattern.unit):
            kind = temporal_kind(name)
            kinds[kind.letter] = (
                kind.kind_config(self) if kind.kind_config is not None else LegacyKindConfig(name=name, model_config=self)
            )
        letters = tuple(temporal_kind(name).letter for name in self.block_pattern.unit)
        return HybridConfig(
            vocab_size=self.vocab_size,
            width=self.width,
            pattern={"unit": "".join(letters), "num_layers": self.num_layers},
            kinds=kinds,
            channel=GatedMLPConfig(expanded_width=self.mlp_expanded_width),
            norm=NormConfig(eps=1e-6, offset=True),
            embeddings_scale_by_sqrt_dim=self.embeddings_scale_by_sqrt_dim,
            logits_soft_cap=self.logits_soft_cap,
        )

    def replace(self, **changes: Any) -> ModelConfig:
        """A copy with some fields changed (validated again)."""
        return dataclasses.replace(self, **changes)

    def to_dict(self) -> dict[str, Any]:
        """JSON-serialisable dict; `from_dict` inverts it exactly."""
        out = dataclasses.asdict(self)
        out["block_pattern"] = self.block_pattern.to_json()
        return out

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ModelConfig:
        """The config of a `to_dict` dict; unknown fields are an error naming them."""
        fields = {f.name for f in dataclasses.fields(cls)}
        unknown = set(data) - fields
        if unknown:
            raise ValueError(f"unknown ModelConfig fields: {sorted(unknown)}")
        return cls(**data)

    def to_json(self) -> str:
        """`to_dict` as indented JSON with sorted keys."""
        return json.dumps(self.to_dict(), indent=2, sort_keys=True)

    @classmethod
    def from_json(cls, text: str) -> ModelConfig:
        """The config of a `to_json` string."""
        return cls.from_dict(json.loads(text))


def _check_positive_int(name: str, value: Any) -> None:
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(f"{name} must be an int, got {value!r}")
    if value < 1:
        raise ValueError(f"{name} must be >= 1, got {value}")
