"""ModelConfig validation and JSON round trip."""

from __future__ import annotations

import pytest

from hybrid_seq import ModelConfig, presets

BASE = dict(vocab_size=10, width=8, mlp_expanded_width=16, num_heads=2, block_pattern="RA")


@pytest.mark.parametrize("name", presets.names())
def test_json_round_trip(name: str) -> None:
    config = presets.get(name)  # a ModelConfig, or a HybridConfig for the HF families
    assert type(config).from_json(config.to_json()) == config


@pytest.mark.parametrize(
    ("changes", "error", "message"),
    [
        (dict(width=10, num_heads=4), ValueError, "width=10 is not divisible by num_heads=4"),
        (dict(lru_width=9), ValueError, "lru_width=9 is not divisible by num_heads=2"),
        (dict(width=12, num_heads=2, block_pattern="A"), ValueError, "multiple of 4"),
        (dict(vocab_size=0), ValueError, "vocab_size must be >= 1"),
        (dict(num_heads=2.0), TypeError, "num_heads"),
        (dict(logits_soft_cap=-1.0), ValueError, "logits_soft_cap"),
        (dict(embeddings_scale_by_sqrt_dim=1), TypeError, "embeddings_scale_by_sqrt_dim"),
        (dict(block_pattern="RQ"), ValueError, "unknown block kind 'Q'"),
        (dict(block_pattern="R:0"), ValueError, "at least one layer"),
    ],
)
def test_invalid_configs_raise_clear_errors(changes, error, message) -> None:
    with pytest.raises(error, match=message):
        ModelConfig(**{**BASE, **changes})


def test_recurrent_only_model_does_not_need_divisible_width_for_attention() -> None:
    config = ModelConfig(**{**BASE, "width": 6, "lru_width": 8, "block_pattern": "R:3"})
    assert config.head_dim == 3 and config.resolved_lru_width == 8


def test_from_dict_rejects_unknown_fields() -> None:
    with pytest.raises(ValueError, match="unknown ModelConfig fields"):
        ModelConfig.from_dict({**BASE, "hidden_size": 3})


def test_unknown_preset() -> None:
    with pytest.raises(ValueError, match="unknown preset 'gemma'"):
        presets.get("gemma")
