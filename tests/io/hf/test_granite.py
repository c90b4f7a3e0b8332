"""HF GraniteMoeHybridForCausalLM: logits and packed documents match HF, decoding equals the full pass, save loads in HF, greedy matches."""

from __future__ import annotations

import json

import numpy as np
import pytest
from safetensors.numpy import load_file, save_file

from hybrid_seq import io as hio
from hybrid_seq.blocks import MLPConfig
from hybrid_seq.sampling import ByteTokenizer
from tests.io.hf.helpers import (
    assert_greedy_equals_hf,
    assert_saved_loads_in_hf,
    decoding_diff,
    packed_batch,
    parity,
    perturb,
    router_margins,
    saved,
    top_k_gap,
    torch,
    transformers,
)

VOCAB = ByteTokenizer.vocab_size
TOP_K = 2


def tiny(**changes):
    """D=32; layers Mamba, attention, Mamba; attention 4 heads over 2 KV heads of 8 with RoPE; Mamba 8 heads
    of 8 in 2 groups, state 8, chunk 8; 4 experts (top 2) of 16 and a shared MLP of 24; Granite's multipliers;
    biases on; every parameter perturbed."""
    fields = dict(
        vocab_size=VOCAB, hidden_size=32, num_hidden_layers=3, layer_types=["mamba", "attention", "mamba"],
        num_attention_heads=4, num_key_value_heads=2, mamba_n_heads=8, mamba_d_head=8, mamba_n_groups=2,
        mamba_d_state=8, mamba_chunk_size=8, intermediate_size=16, shared_intermediate_size=24, num_local_experts=4,
        num_experts_per_tok=TOP_K, embedding_multiplier=12.0, logits_scaling=4.0, residual_multiplier=0.22,
        attention_multiplier=0.125, position_embedding_type="rope", rope_parameters={"rope_type": "default", "rope_theta": 500.0},
        attention_bias=True, mamba_proj_bias=True, rms_norm_eps=1e-5,
    )
    model = transformers.GraniteMoeHybridForCausalLM(transformers.GraniteMoeHybridConfig(**{**fields, **changes})).eval()
    perturb(model, seed=5)
    return model


def logit_gaps(router, x) -> float:
    with torch.no_grad():
        return top_k_gap((x.float() @ router.weight.float().T).numpy(), TOP_K)


@pytest.fixture(scope="module")
def pair(tmp_path_factory):
    hf = tiny()
    return hf, hio.load(saved(hf, tmp_path_factory.mktemp("granite") / "hf"))


@pytest.fixture(scope="module")
def batch(pair):
    hf, ours = pair
    tokens, positions = packed_batch(VOCAB)
    with router_margins(hf, "block_sparse_moe.router", logit_gaps) as margins:
        logits, diffs = parity(hf, ours, tokens, positions)
    return tokens, logits, diffs, min(margins)


def test_logits_and_packed_documents_match_hf(batch):
    _, _, diffs, margin = batch
    assert margin > 1e-3, "the router's top-k is too close to call: re-seed the test model"
    assert diffs["full"] < 1e-4 and diffs["packed"] < 1e-4, diffs


def test_cached_decoding_equals_the_full_pass(pair, batch):
    tokens, logits, _, _ = batch
    assert decoding_diff(pair[1], tokens[0], logits[0]) < 2e-5


def test_save_loads_in_hf_with_the_legacy_moe_names(pair, tmp_path):
    hf, ours = pair
    assert_saved_loads_in_hf(ours, hf, transformers.GraniteMoeHybridForCausalLM, tmp_path / "ours_hf")
    assert "model.layers.0.block_sparse_moe.input_linear.weight" in load_file(tmp_path / "ours_hf" / "model.safetensors")


def test_greedy_sampler_equals_hf_generate(pair):
    assert_greedy_equals_hf(*pair)


def test_dense_nope_tied_with_in_memory_names_and_legacy_layer_key(tmp_path):
    """No experts (the shared MLP alone), no RoPE, a tied head, no biases; HF's in-memory tensor names and the older
    `layers_block_type` key."""
    hf = tiny(num_local_experts=0, position_embedding_type="nope", tie_word_embeddings=True, attention_bias=False,
              mamba_proj_bias=False)
    directory = saved(hf, tmp_path / "dense")
    config = json.loads((directory / "config.json").read_text())
    config["layers_block_type"] = ["mamba", "attention", "mamba"]
    del config["layer_types"]
    (directory / "config.json").write_text(json.dumps(config))
    ours = hio.load(directory)
    assert isinstance(ours.config.channel, MLPConfig) and ours.head is None
    tokens, positions = packed_batch(VOCAB, (6, 5), seed=1)
    _, diffs = parity(hf, ours, tokens, positions)
    assert diffs["full"] < 1e-4 and diffs["packed"] < 1e-4, diffs

    moe = saved(tiny(), tmp_path / "moe")
    in_memory = {"router.layer.weight": "router.weight", "input_linear.weight": "experts.gate_up_proj",
                 "output_linear.weight": "experts.down_proj"}
    tensors = {}
    for name, value in load_file(moe / "model.safetensors").items():
        for disk, memory in in_memory.items():
            name = name.replace(f"block_sparse_moe.{disk}", f"block_sparse_moe.{memory}")
        tensors[name] = value
    save_file(tensors, moe / "model.safetensors", metadata={"format": "pt"})
    np.testing.assert_array_equal(hio.load(moe).blocks[0].mlp.up, hio.load(saved(tiny(), tmp_path / "again")).blocks[0].mlp.up)


def test_config_keys_we_do_not_understand_are_errors(tmp_path):
    directory = saved(tiny(), tmp_path / "odd")
    config = json.loads((directory / "config.json").read_text())
    for changes, message in [
        ({"mystery_scaling": 2.0}, r"does not understand.*\['mystery_scaling'\]"),
        ({"position_embedding_type": "alibi"}, "position_embedding_type='alibi' is not supported"),
        ({"rope_parameters": {"rope_type": "yarn", "rope_theta": 1.0, "factor": 2.0}}, "rope_parameters=.*rope_type and rope_theta only"),
        ({"num_hidden_layers": 4}, "num_hidden_layers=4 but layer_types lists 3 layers"),
    ]:
        (directory / "config.json").write_text(json.dumps({**config, **changes}))
        with pytest.raises(ValueError, match=message):
            hio.load(directory)
