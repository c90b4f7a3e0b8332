"""Named model configurations: the released RecurrentGemma models, the papers' 7B models, research sizes,
and the published Mamba-2 hybrids (`presets.hf`).

Presets are plain data; `get(name, **overrides)` returns a validated `ModelConfig` (Griffin's
fields) or, for the HF families, a `HybridConfig` read from the published config.json.
"""

from __future__ import annotations

from typing import Any

from hybrid_seq.architecture import HybridConfig
from hybrid_seq.config import ModelConfig
from hybrid_seq.presets import hf

_GEMMA_VOCAB = 256_000

_PRESETS: dict[str, dict[str, Any]] = {
    # DeepMind's released RecurrentGemma models (reference `Preset.RECURRENT_GEMMA_*_V1`).
    "recurrentgemma-2b": dict(
        vocab_size=_GEMMA_VOCAB, width=2560, mlp_expanded_width=7680, num_heads=10, lru_width=2560,
        block_pattern="RRA:26", attention_window_size=2048, logits_soft_cap=30.0,
        embeddings_scale_by_sqrt_dim=True,
    ),
    "recurrentgemma-9b": dict(
        vocab_size=_GEMMA_VOCAB, width=4096, mlp_expanded_width=12288, num_heads=16, lru_width=4096,
        block_pattern="RRA:38", attention_window_size=2048, logits_soft_cap=30.0,
        embeddings_scale_by_sqrt_dim=True,
    ),
    # The Griffin paper's 7B models (reference `Preset.GRIFFIN_PAPER_7B`, `HAWK_PAPER_7B`).
    "griffin-7b": dict(
        vocab_size=_GEMMA_VOCAB, width=4096, mlp_expanded_width=12288, num_heads=32, lru_width=5632,
        block_pattern="RRA:32", attention_window_size=1024, logits_soft_cap=0.0,
        embeddings_scale_by_sqrt_dim=False,
    ),
    "hawk-7b": dict(
        vocab_size=_GEMMA_VOCAB, width=4096, mlp_expanded_width=12288, num_heads=32, lru_width=5632,
        block_pattern="R:32", attention_window_size=1024, logits_soft_cap=0.0,
        embeddings_scale_by_sqrt_dim=False,
    ),
    # Research sizes (ours): RecurrentGemma-style settings at laptop scale.
    "griffin-small": dict(
        vocab_size=4096, width=512, mlp_expanded_width=1536, num_heads=4, lru_width=512,
        block_pattern="RRA:6", attention_window_size=2048, logits_soft_cap=30.0,
        embeddings_scale_by_sqrt_dim=True,
    ),
    "hawk-small": dict(
        vocab_size=4096, width=512, mlp_expanded_width=1536, num_heads=4, lru_width=512,
        block_pattern="R:6", attention_window_size=2048, logits_soft_cap=30.0,
        embeddings_scale_by_sqrt_dim=True,
    ),
    "griffin-tiny": dict(
        vocab_size=512, width=128, mlp_expanded_width=384, num_heads=2, lru_width=128,
        block_pattern="RRA:3", attention_window_size=128, logits_soft_cap=30.0,
        embeddings_scale_by_sqrt_dim=True,
    ),
}


def names() -> list[str]:
    """All preset names."""
    return [*_PRESETS, *hf.CONFIGS]


def get(name: str, **overrides: Any) -> ModelConfig | HybridConfig:
    """The preset `name` with `overrides` (its config's fields, e.g. `vocab_size=...`) applied."""
    if name in hf.CONFIGS:
        config = hf.hybrid_config(name)
        return config.replace(**overrides) if overrides else config
    if name not in _PRESETS:
        raise ValueError(f"unknown preset {name!r}; known presets: {', '.join(names())}")
    return ModelConfig(**{**_PRESETS[name], **overrides})
