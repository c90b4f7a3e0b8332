"""HuggingFace RecurrentGemma checkpoints: transformers' own writer in, `from_pretrained` out."""

from __future__ import annotations

from pathlib import Path

import equinox as eqx
import jax.numpy as jnp
import numpy as np
import pytest

torch = pytest.importorskip("torch", reason="HuggingFace interop tests need torch: pip install '.[hf]'")
transformers = pytest.importorskip("transformers", reason="HuggingFace interop tests need transformers: pip install '.[hf]'")

from hybrid_seq import io as hio  # noqa: E402
from tests.io.helpers import inputs, random_model, small_config  # noqa: E402

HF_WINDOW = 8  # HF counts the query itself: our window is 7
LENGTH = 20  # past HF's window (pins the window mapping); one document per row (HF has no document masking)


def _hf_model(dtype=torch.float32):
    config = transformers.RecurrentGemmaConfig(
        vocab_size=97, hidden_size=32, intermediate_size=96, num_attention_heads=4, num_key_value_heads=1,
        num_hidden_layers=3, lru_width=64, attention_window_size=HF_WINDOW, block_types=["recurrent", "attention"],
        logits_soft_cap=30.0,
    )
    torch.manual_seed(0)
    model = transformers.RecurrentGemmaForCausalLM(config).eval()
    with torch.no_grad():
        for param in model.parameters():
            param.add_(0.05 * torch.randn_like(param))
    return model.to(dtype)


def _hf_logits(model, tokens, positions) -> np.ndarray:
    with torch.no_grad():
        out = model(torch.tensor(np.asarray(tokens)), position_ids=torch.tensor(np.asarray(positions)))
    return out.logits.float().numpy()


def _our_logits(model, tokens, positions) -> np.ndarray:
    return np.asarray(eqx.filter_jit(lambda m, t, p: m(t, p)[0])(model, tokens, positions), np.float32)


@pytest.mark.parametrize("shard", [None, "20KB"], ids=["single", "sharded"])
def test_transformers_checkpoint_matches_transformers(tmp_path: Path, shard) -> None:
    hf = _hf_model()
    hf.save_pretrained(tmp_path, **({"max_shard_size": shard} if shard else {}))
    if shard:
        assert (tmp_path / "model.safetensors.index.json").exists()
    loaded = hio.load(tmp_path)
    assert loaded.config.attention_window_size == HF_WINDOW - 1
    assert loaded.config.embeddings_scale_by_sqrt_dim and loaded.config.logits_soft_cap == 30.0
    tokens, positions = inputs(loaded.config, LENGTH)
    diff = np.abs(_our_logits(loaded, tokens, positions) - _hf_logits(hf, tokens, positions)).max()
    assert diff < 1e-5, diff


def test_our_save_loads_in_transformers(tmp_path: Path) -> None:
    model = random_model(small_config(attention_window_size=HF_WINDOW - 1, block_pattern="RA:3"))
    hio.save(model, tmp_path / "hf", format="huggingface")
    hf = transformers.RecurrentGemmaForCausalLM.from_pretrained(tmp_path / "hf").eval()
    assert hf.config.attention_window_size == HF_WINDOW
    tokens, positions = inputs(model.config, LENGTH)
    diff = np.abs(_our_logits(model, tokens, positions) - _hf_logits(hf, tokens, positions)).max()
    assert diff < 1e-5, diff


def test_bf16_transformers_checkpoint_loads_exactly(tmp_path: Path) -> None:
    hf = _hf_model(torch.bfloat16)
    hf.save_pretrained(tmp_path)
    loaded = hio.load(tmp_path)
    assert loaded.dtype == jnp.bfloat16
    state = hf.state_dict()
    pairs = {
        "model.embed_tokens.weight": loaded.embedder.weight,
        "model.layers.0.temporal_block.linear_x.weight": loaded.blocks[0].temporal.linear_x.weight.T,
        "model.layers.1.temporal_block.k_proj.weight": loaded.blocks[1].temporal.proj_k.weight.T,
        "model.layers.2.mlp_block.up_proj.weight": loaded.blocks[2].mlp.up.weight.T,
        "model.layers.0.temporal_block.conv_1d.weight": loaded.blocks[0].temporal.conv_1d.weight.T[:, None, :],
    }
    for name, ours in pairs.items():
        np.testing.assert_array_equal(np.asarray(ours, np.float32), state[name].float().numpy(), err_msg=name)
