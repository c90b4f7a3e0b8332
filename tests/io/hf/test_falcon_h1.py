"""HF FalconH1ForCausalLM: logits and packed documents match HF, decoding equals the full pass, save loads in HF, greedy matches."""

from __future__ import annotations

import json

import pytest

from hybrid_seq import io as hio
from hybrid_seq.sampling import ByteTokenizer
from tests.io.hf.helpers import (
    assert_greedy_equals_hf,
    assert_saved_loads_in_hf,
    decoding_diff,
    packed_batch,
    parity,
    perturb,
    saved,
    transformers,
)

VOCAB = ByteTokenizer.vocab_size


def tiny(**changes):
    """D=32, 2 layers; attention 4 heads over 2 KV heads of head_dim 6 (not D / heads) with RoPE; Mamba of
    `mamba_d_ssm` 48: 6 heads of 8 in 2 groups, state 8, chunk 8, the norm after the gate; every multiplier
    distinct; every bias on; every parameter perturbed."""
    fields = dict(
        vocab_size=VOCAB, hidden_size=32, intermediate_size=48, num_hidden_layers=2, num_attention_heads=4,
        num_key_value_heads=2, head_dim=6, mamba_d_ssm=48, mamba_n_heads=6, mamba_n_groups=2, mamba_d_state=8,
        mamba_chunk_size=8, mamba_rms_norm=True, mamba_norm_before_gate=False, rope_parameters={"rope_type": "default", "rope_theta": 1e4},
        embedding_multiplier=5.6, lm_head_multiplier=0.3, mlp_multipliers=[0.9, 0.4], key_multiplier=0.7,
        attention_in_multiplier=1.3, attention_out_multiplier=0.6, ssm_multipliers=[0.35, 0.25, 0.5, 0.4, 0.3],
        ssm_in_multiplier=1.25, ssm_out_multiplier=0.24, attention_bias=True, mlp_bias=True, projectors_bias=True,
        mamba_proj_bias=True,
    )
    model = transformers.FalconH1ForCausalLM(transformers.FalconH1Config(**{**fields, **changes})).eval()
    perturb(model, seed=7)
    return model


@pytest.fixture(scope="module")
def pair(tmp_path_factory):
    hf = tiny()
    return hf, hio.load(saved(hf, tmp_path_factory.mktemp("falcon_h1") / "hf"))


@pytest.fixture(scope="module")
def batch(pair):
    tokens, positions = packed_batch(VOCAB)
    logits, diffs = parity(*pair, tokens, positions)
    return tokens, logits, diffs


def test_logits_and_packed_documents_match_hf(batch):
    diffs = batch[2]
    assert diffs["full"] < 1e-4 and diffs["packed"] < 1e-4, diffs


def test_cached_decoding_equals_the_full_pass(pair, batch):
    tokens, logits, _ = batch
    assert decoding_diff(pair[1], tokens[0], logits[0]) < 2e-5


def test_save_loads_in_hf_with_equal_weights(pair, tmp_path):
    hf, ours = pair
    assert_saved_loads_in_hf(ours, hf, transformers.FalconH1ForCausalLM, tmp_path / "ours_hf")


def test_greedy_sampler_equals_hf_generate(pair):
    assert_greedy_equals_hf(*pair)


@pytest.mark.parametrize("norm", ["none", "before_gate"])
def test_the_other_mamba_norms_without_biases(tmp_path, norm):
    """No gated norm (Falcon-H1's default), or the norm before the gate; `mamba_d_ssm` null (expand * D); head_dim
    D / heads; no biases."""
    hf = tiny(mamba_rms_norm=norm != "none", mamba_norm_before_gate=True, mamba_d_ssm=None, mamba_expand=1, mamba_n_heads=4,
              head_dim=8, attention_bias=False, mlp_bias=False, projectors_bias=False, mamba_proj_bias=False)
    ours = hio.load(saved(hf, tmp_path / norm))
    assert ours.config.layers[0].temporal.branches[1].norm == norm
    tokens, positions = packed_batch(VOCAB, (6, 5), seed=1)
    _, diffs = parity(hf, ours, tokens, positions)
    assert diffs["full"] < 1e-4 and diffs["packed"] < 1e-4, diffs


def test_config_keys_we_do_not_understand_are_errors(tmp_path):
    directory = saved(tiny(), tmp_path / "odd")
    config = json.loads((directory / "config.json").read_text())
    for changes, message in [
        ({"mystery_scaling": 2.0}, r"does not understand.*\['mystery_scaling'\]"),
        ({"ssm_multipliers": [1.0, 2.0]}, r"ssm_multipliers=\[1.0, 2.0\] is not a list of 5 numbers"),
        ({"mamba_conv_bias": False}, "mamba_conv_bias=False is not supported"),
        ({"mamba_n_heads": 5}, "mamba_n_heads \\* mamba_d_head = 40 but the Mamba width is 48"),
    ]:
        (directory / "config.json").write_text(json.dumps({**config, **changes}))
        with pytest.raises(ValueError, match=message):
            hio.load(directory)
