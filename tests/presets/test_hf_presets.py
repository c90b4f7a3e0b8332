"""The HF families' published sizes: exact parameter counts (against HF's own count of the same config) and state sizes."""

from __future__ import annotations

import jax.numpy as jnp
import pytest

from hybrid_seq import HybridConfig, param_count, presets
from hybrid_seq.cli.info import preset_table
from hybrid_seq.sampling import state_bytes

#: Counts of the released checkpoints (facts: HF's meta-device build, and a third-party count for Nemotron-H 8B).
PUBLISHED = {"mamba2-2.7b": 2_702_599_680, "nemotron-h-8b": 8_100_852_736}


@pytest.mark.parametrize("name", sorted(PUBLISHED))
def test_published_counts(name: str) -> None:
    assert param_count(presets.get(name)).total == PUBLISHED[name]


@pytest.mark.parametrize("name", sorted(presets.hf.CONFIGS))
def test_counts_equal_hf_on_the_meta_device(name: str) -> None:
    torch = pytest.importorskip("torch", reason="HF's count needs torch: pip install '.[hf]'")
    transformers = pytest.importorskip("transformers", reason="HF's count needs transformers: pip install '.[hf]'")
    data = presets.hf.CONFIGS[name]
    hf_config = transformers.AutoConfig.for_model(data["model_type"], **{k: v for k, v in data.items() if k != "model_type"})
    with torch.device("meta"):
        hf = transformers.AutoModelForCausalLM.from_config(hf_config)
    config = presets.get(name)
    assert isinstance(config, HybridConfig)
    assert param_count(config).total == hf.num_parameters()


def test_nemotron_h_state_is_fixed_but_for_its_attention_layers() -> None:
    """24 Mamba-2 layers (bf16 conv taps of x, B, C; fp32 SSM state) and 4 attention layers (bf16 K and V of
    every token, two int32 counters)."""
    config = presets.get("nemotron-h-8b")
    mamba = 3 * (8192 + 2 * 8 * 128) * 2 + 128 * 128 * 64 * 4
    for length in (1024, 8192):
        attention = 2 * length * 8 * 128 * 2 + 4 + 4
        assert state_bytes(config, dtype=jnp.bfloat16, max_length=length) == 24 * mamba + 4 * attention


def test_info_lists_the_hf_presets() -> None:
    assert set(presets.hf.CONFIGS) <= set(presets.names())
    table = preset_table(sorted(presets.hf.CONFIGS), 4096)
    assert "8,100,852,736" in table and "M24 -24 *4" in table and "P:24" in table
