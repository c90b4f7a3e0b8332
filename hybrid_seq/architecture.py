"""HybridConfig: any hybrid, as a pattern of letters bound to configured kinds plus model-level options.

    config = hs.HybridConfig(
        vocab_size=32_000, width=1024, pattern="M-M*-:24",
        kinds={"M": Mamba2Config(...), "*": AttentionConfig(...), "-": GatedMLPConfig(...)},
    )

Each letter binds to a temporal kind, a channel kind, or a whole `LayerConfig`. A temporal
kind makes a layer of that mixer followed by the model-wide `channel` mixer (Griffin: every
layer's gated MLP; None: no channel sub-block); a channel kind makes a lone channel layer.
`ModelConfig` (the reference's fields) is the Griffin builder of this config.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Mapping
from typing import Any

from hybrid_seq.blocks.norm import NormConfig
from hybrid_seq.blocks.residual import LayerConfig
from hybrid_seq.kinds import KindConfig, check_int, check_number
from hybrid_seq.pattern import LayerPattern, parse_layer_pattern

#: What a letter binds to.
Binding = KindConfig | LayerConfig


@dataclasses.dataclass(frozen=True)
class HybridConfig:
    """The architecture of a hybrid model.

    Attributes:
        vocab_size: number of tokens (V).
        width: model dimension (D).
        pattern: the layers' letters (any form `parse_layer_pattern` reads: ``"RRA:26"``).
        kinds: letter -> kind config or `LayerConfig` (a dict, stored as sorted pairs).
        channel: the channel kind after every temporal kind bound to a letter (None: none).
        norm: the RMSNorm of every pre-norm and of the final norm.
        final_norm: whether the last layer's output is normalised before the output head.
        tie_embeddings: the output head is the embedding transposed (else its own `[D, V]`).
        embeddings_scale_by_sqrt_dim: multiply embeddings by `sqrt(width)` rounded to bf16 (Gemma).
        embedding_multiplier: multiply embeddings by this constant (Granite, Falcon-H1).
        residual_multiplier: scale each sub-block's output before it joins the residual (Granite).
        logits_soft_cap: `tanh(logits / c) * c`; 0 disables it.
        logits_multiplier: multiply the logits by this constant (Granite's 1 / logits_scaling).
    """

    vocab_size: int
    width: int
    pattern: LayerPattern | str | Mapping[str, Any]
    kinds: Mapping[str, Binding] | tuple[tuple[str, Binding], ...]
    channel: KindConfig | None = None
    norm: NormConfig = NormConfig()
    final_norm: bool = True
    tie_embeddings: bool = True
    embeddings_scale_by_sqrt_dim: bool = False
    embedding_multiplier: float = 1.0
    residual_multiplier: float = 1.0
    logits_soft_cap: float = 0.0
    logits_multiplier: float = 1.0

    def __post_init__(self) -> None:
        object.__setattr__(self, "pattern", parse_layer_pattern(self.pattern))
        bindings = dict(self.kinds) if isinstance(self.kinds, (Mapping, tuple, list)) else None
        if bindings is None:
            raise TypeError(f"HybridConfig.kinds must map letters to kind configs, got {self.kinds!r}")
        for letter, binding in bindings.items():
            if not isinstance(binding, (KindConfig, LayerConfig)):
                raise TypeError(
                    f"HybridConfig.kinds[{letter!r}] must be a KindConfig or a LayerConfig, got {binding!r}"
                )
        object.__setattr__(self, "kinds", tuple(sorted(bindings.items())))
        check_int("HybridConfig", "vocab_size", self.vocab_size)
        check_int("HybridConfig", "width", self.width)
        for name in ("embedding_multiplier", "residual_multiplier", "logits_multiplier"):
            check_number("HybridConfig", name, getattr(self, name))
            object.__setattr__(self, name, float(getattr(self, name)))
        check_number("HybridConfig", "logits_soft_cap", self.logits_soft_cap, minimum=0.0)
        object.__setattr__(self, "logits_soft_cap", float(self.logits_soft_cap))
        for name in ("final_norm", "tie_embeddings", "embeddings_scale_by_sqrt_dim"):
            if not isinstance(getattr(self, name), bool):
                raise TypeError(f"HybridConfig.{name} must be a bool, got {getattr(self, name)!r}")
        if not isinstance(self.norm, NormConfig):
            raise TypeError(f"HybridConfig.norm must be a NormConfig, got {self.norm!r}")
        if self.channel is not None and (not isinstance(self.channel, KindConfig) or self.channel.role != "channel"):
            raise ValueError(f"HybridConfig.channel must be a channel kind config or None, got {self.channel!r}")
        missing = sorted(set(self.pattern.unit) - set(bindings))
        if missing:
            raise ValueError(
                f"pattern {str(self.pattern)!r} uses letters {missing} that kinds does not bind "
                f"(bound: {sorted(bindings)})"
            )
        for letter in dict.fromkeys(self.pattern.unit):
            try:
                self.binding(letter).validate(self.width)
            except ValueError as error:
                raise ValueError(f"kinds[{letter!r}]: {error}") from None

    def binding(self, letter: str) -> LayerConfig:
        """The layer a letter makes."""
        bound = dict(self.kinds)[letter]
        if isinstance(bound, LayerConfig):
            return bound
        if bound.role == "channel":
            return LayerConfig(channel=bound)
        return LayerConfig(temporal=bound, channel=self.channel)

    @property
    def num_layers(self) -> int:
        """Number of layers (the pattern's length)."""
        return self.pattern.num_layers

    @property
    def layers(self) -> tuple[LayerConfig, ...]:
        """Every layer's config, in order."""
        return tuple(self.binding(letter) for letter in self.pattern.layer_letters)

    @property
    def layer_kinds(self) -> tuple[str, ...]:
        """What each layer holds, e.g. ``recurrent+gated_mlp``."""
        return tuple(layer.name for layer in self.layers)

    def replace(self, **changes: Any) -> HybridConfig:
        """A copy with some fields changed (validated again)."""
        return dataclasses.replace(self, **changes)

    def to_dict(self) -> dict[str, Any]:
        """JSON-serialisable dict; `from_dict` inverts it exactly."""
        out: dict[str, Any] = {}
        for field in dataclasses.fields(self):
            value = getattr(self, field.name)
            if field.name == "pattern":
                value = value.to_json()
            elif field.name == "kinds":
                value = {letter: bound.to_dict() for letter, bound in value}
            elif field.name == "norm":
                value = dataclasses.asdict(value)
            elif isinstance(value, KindConfig):
                value = value.to_dict()
            out[field.name] = value
        return out

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> HybridConfig:
        """The config of a `to_dict` dict (kinds by their registered names)."""
        fields = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(data) - fields)
        if unknown:
            raise ValueError(f"unknown HybridConfig fields: {unknown}; known: {sorted(fields)}")
        values = dict(data)
        if not isinstance(values.get("kinds"), Mapping):
            raise ValueError(f"HybridConfig.kinds must be an object of letter -> kind, got {values.get('kinds')!r}")
        values["kinds"] = {letter: _binding(bound, f"kinds[{letter!r}]") for letter, bound in values["kinds"].items()}
        if values.get("channel") is not None:
            values["channel"] = KindConfig.from_dict(values["channel"], where="channel")
        if "norm" in values:
            values["norm"] = NormConfig(**values["norm"])
        return cls(**values)

    def to_json(self) -> str:
        """`to_dict` as indented JSON with sorted keys."""
        return json.dumps(self.to_dict(), indent=2, sort_keys=True)

    @classmethod
    def from_json(cls, text: str) -> HybridConfig:
        """The config of a `to_json` string."""
        return cls.from_dict(json.loads(text))


def _binding(data: Any, where: str) -> Binding:
    if isinstance(data, Mapping) and "kind" not in data:
        return LayerConfig.from_dict(dict(data), where=where)
    return KindConfig.from_dict(data, where=where)
