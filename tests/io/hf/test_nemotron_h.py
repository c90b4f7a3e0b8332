"""HF NemotronHForCausalLM: logits and packed documents match HF, decoding equals the full pass, save loads in HF, greedy matches."""

from __future__ import annotations

import json

import numpy as np
import pytest
from safetensors.numpy import load_file, save_file

from hybrid_seq import io as hio
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
EXPERTS, GROUPS, TOP_K = 6, 2, 2


def tiny(**changes):
    """D=32; the four layer types; attention 4 heads over 2 KV heads of 8; Mamba 8 heads of 8 in 2 groups,
    state 8, chunk 8; 6 experts in 2 groups (top 2 of the best group); biases on; every parameter perturbed."""
    fields = dict(
        vocab_size=VOCAB, hidden_size=32, layers_block_type=["linear_attention", "full_attention", "moe", "mlp", "linear_attention"],
        num_attention_heads=4, num_key_value_heads=2, head_dim=8, intermediate_size=48, mamba_num_heads=8, mamba_head_dim=8,
        ssm_state_size=8, n_groups=2, conv_kernel=4, chunk_size=8, use_bias=True, mlp_bias=True, n_routed_experts=EXPERTS,
        num_experts_per_tok=TOP_K, moe_intermediate_size=16, moe_shared_expert_intermediate_size=24, n_group=GROUPS, topk_group=1,
        routed_scaling_factor=1.7, time_step_min=0.002,
    )
    model = transformers.NemotronHForCausalLM(transformers.NemotronHConfig(**{**fields, **changes})).eval()
    perturb(model, seed=3, router_scale=0.5)
    return model


def choice_gaps(router, x) -> float:
    """The margins of Nemotron-H's choice (`topk_group` = 1): the best group vs the next, and the k-th expert vs the next."""
    with torch.no_grad():
        choice = (torch.sigmoid(x.float() @ router.weight.float().T) + router.e_score_correction_bias).numpy()
    grouped = choice.reshape(len(choice), GROUPS, -1)
    group_score = -np.sort(-grouped, axis=-1)[..., :2].sum(-1)
    kept = np.where((np.arange(GROUPS) == group_score.argmax(-1)[:, None])[..., None], grouped, -np.inf)
    return min(top_k_gap(group_score, 1), top_k_gap(kept.reshape(len(choice), -1), TOP_K))


@pytest.fixture(scope="module")
def pair(tmp_path_factory):
    hf = tiny()
    return hf, hio.load(saved(hf, tmp_path_factory.mktemp("nemotron_h") / "hf"))


@pytest.fixture(scope="module")
def batch(pair):
    hf, ours = pair
    tokens, positions = packed_batch(VOCAB)
    with router_margins(hf, "mixer.gate", choice_gaps) as margins:
        logits, diffs = parity(hf, ours, tokens, positions)
    return tokens, logits, diffs, min(margins)


def test_logits_and_packed_documents_match_hf(batch):
    _, _, diffs, margin = batch
    assert margin > 1e-3, "the router's top-k is too close to call: re-seed the test model"
    assert diffs["full"] < 1e-4 and diffs["packed"] < 1e-4, diffs


def test_cached_decoding_equals_the_full_pass(pair, batch):
    tokens, logits, _, _ = batch
    assert decoding_diff(pair[1], tokens[0], logits[0]) < 2e-5


def test_save_loads_in_hf_and_reads_either_prefix(pair, tmp_path):
    hf, ours = pair
    assert_saved_loads_in_hf(ours, hf, transformers.NemotronHForCausalLM, tmp_path / "ours_hf")
    tensors = load_file(tmp_path / "ours_hf" / "model.safetensors")
    assert "backbone.layers.2.mixer.experts.3.up_proj.weight" in tensors  # experts one by one, as HF saves them
    directory = saved(hf, tmp_path / "model_prefix")
    renamed = {name.replace("backbone.", "model.", 1): value for name, value in load_file(directory / "model.safetensors").items()}
    save_file(renamed, directory / "model.safetensors", metadata={"format": "pt"})
    assert hio.load(directory).config == ours.config


def test_greedy_sampler_equals_hf_generate(pair):
    assert_greedy_equals_hf(*pair)


def test_the_legacy_pattern_without_biases_and_the_dt_clamp(tmp_path):
    hf = tiny(use_bias=False, mlp_bias=False)
    with torch.no_grad():  # softplus(dt + dt_bias) ~ 1e-4 < time_step_min: the clamp decides these heads
        hf.model.layers[0].mixer.dt_bias[:4] = -9.0
    directory = saved(hf, tmp_path / "legacy")
    config = json.loads((directory / "config.json").read_text())
    del config["layers_block_type"]
    config["hybrid_override_pattern"] = "M*E-M"
    (directory / "config.json").write_text(json.dumps(config))
    ours = hio.load(directory)
    assert "".join(ours.config.pattern.layer_letters) == "M*E-M"
    tokens, positions = packed_batch(VOCAB, (6, 5), seed=1)
    _, diffs = parity(hf, ours, tokens, positions)
    assert diffs["full"] < 1e-4 and diffs["packed"] < 1e-4, diffs


def test_config_keys_we_do_not_understand_are_errors(tmp_path):
    directory = saved(tiny(), tmp_path / "odd")
    config = json.loads((directory / "config.json").read_text())
    for changes, message in [
        ({"mystery_scaling": 2.0}, r"does not understand.*\['mystery_scaling'\]"),
        ({"moe_latent_size": 8}, "moe_latent_size=8 .* is not supported"),
        ({"mlp_hidden_act": "gelu"}, "mlp_hidden_act='gelu' is not supported"),
        ({"hybrid_override_pattern": "MMMMM"}, "disagrees with layers_block_type"),
    ]:
        (directory / "config.json").write_text(json.dumps({**config, **changes}))
        with pytest.raises(ValueError, match=message):
            hio.load(directory)
