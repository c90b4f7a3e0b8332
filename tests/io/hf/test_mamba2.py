"""HF Mamba2ForCausalLM: our load equals HF's logits, a packed row equals HF per document, save loads in HF, greedy matches."""

from __future__ import annotations

import equinox as eqx
import jax.numpy as jnp
import numpy as np
import pytest

from hybrid_seq import io as hio
from hybrid_seq.sampling import ByteTokenizer, Sampler
from tests.io.hf.helpers import greedy, hf_logits, perturb, saved, transformers


def tiny(vocab_size=128, **changes):
    """D=32, 2 layers, 4 heads of 8 in 2 groups, state 8, chunk 8 (the tests run T > one chunk)."""
    fields = dict(vocab_size=vocab_size, hidden_size=32, num_hidden_layers=2, num_heads=8, head_dim=8, expand=2,
                  state_size=8, n_groups=2, conv_kernel=4, chunk_size=8, use_bias=False, use_conv_bias=True,
                  layer_norm_epsilon=1e-5, tie_word_embeddings=False)
    model = transformers.Mamba2ForCausalLM(transformers.Mamba2Config(**{**fields, **changes})).eval()
    perturb(model, seed=sum(map(ord, str(sorted(changes.items())))))
    return model


@pytest.fixture(scope="module")
def pair(tmp_path_factory):
    hf = tiny(use_bias=True)
    ours = hio.load(saved(hf, tmp_path_factory.mktemp("mamba2") / "hf"))
    return hf, ours


def test_logits_match_hf_past_a_chunk(pair):
    hf, ours = pair
    tokens = np.random.default_rng(0).integers(0, 128, (2, 19))
    logits, _ = eqx.filter_jit(ours)(jnp.asarray(tokens, jnp.int32), jnp.tile(jnp.arange(19), (2, 1)))
    np.testing.assert_allclose(np.asarray(logits), hf_logits(hf, tokens), atol=1e-4, rtol=0)


def test_a_packed_row_equals_hf_on_each_document(pair):
    hf, ours = pair
    first, second = np.random.default_rng(1).integers(0, 128, 11), np.random.default_rng(2).integers(0, 128, 9)
    positions = np.r_[np.arange(11), np.arange(9)][None]
    logits, _ = eqx.filter_jit(ours)(jnp.asarray(np.r_[first, second][None], jnp.int32), jnp.asarray(positions, jnp.int32))
    np.testing.assert_allclose(np.asarray(logits[0, :11]), hf_logits(hf, first[None])[0], atol=1e-4, rtol=0)
    np.testing.assert_allclose(np.asarray(logits[0, 11:]), hf_logits(hf, second[None])[0], atol=1e-4, rtol=0)


def test_cached_decoding_equals_the_full_pass(pair):
    _, ours = pair
    tokens = jnp.asarray(np.random.default_rng(3).integers(0, 128, (1, 14)), jnp.int32)
    positions = jnp.arange(14)[None]
    call = eqx.filter_jit(ours)
    whole, _ = call(tokens, positions)
    logits, cache = call(tokens[:, :9], positions[:, :9], ours.init_cache(1, 14))
    steps = [logits]
    for t in range(9, 14):
        step, cache = call(tokens[:, t : t + 1], positions[:, t : t + 1], cache)
        steps.append(step)
    np.testing.assert_allclose(np.concatenate(steps, 1), whole, atol=2e-5)


def test_save_loads_in_hf_with_the_same_logits(pair, tmp_path):
    hf, ours = pair
    path = hio.save(ours, tmp_path / "ours_hf", format="huggingface")
    again = transformers.Mamba2ForCausalLM.from_pretrained(path).eval()
    for name, value in hf.state_dict().items():
        np.testing.assert_array_equal(again.state_dict()[name].numpy(), value.numpy(), err_msg=name)
    tokens = np.random.default_rng(4).integers(0, 128, (1, 10))
    # HF's chunk size is a numerics knob we do not store: its default changes the last bits.
    np.testing.assert_allclose(hf_logits(again, tokens), hf_logits(hf, tokens), atol=1e-5, rtol=0)
    assert hio.load(path).config == ours.config


def test_tied_embeddings_and_the_legacy_embedding_name(tmp_path):
    from safetensors.numpy import load_file, save_file

    hf = tiny(tie_word_embeddings=True)
    directory = saved(hf, tmp_path / "tied")
    tensors = load_file(directory / "model.safetensors")
    assert "lm_head.weight" not in tensors
    tensors["backbone.embedding.weight"] = tensors.pop("backbone.embeddings.weight")  # mamba_ssm's spelling
    save_file(tensors, directory / "model.safetensors", metadata={"format": "pt"})
    ours = hio.load(directory)
    assert ours.head is None
    tokens = np.random.default_rng(5).integers(0, 128, (1, 7))
    logits, _ = eqx.filter_jit(ours)(jnp.asarray(tokens, jnp.int32), jnp.arange(7)[None])
    np.testing.assert_allclose(np.asarray(logits), hf_logits(hf, tokens), atol=1e-4, rtol=0)


def test_greedy_sampler_equals_hf_generate(tmp_path):
    hf = tiny(vocab_size=ByteTokenizer.vocab_size)
    ours = hio.load(saved(hf, tmp_path / "gen"))
    tokenizer = ByteTokenizer()
    prompt = tokenizer.encode("state space", add_bos=True)
    out = Sampler(ours, tokenizer)("state space", 10, stop_token_ids=[])
    assert out.tokens[0] == greedy(hf, prompt, 10)


def test_a_config_key_we_do_not_understand_is_an_error(tmp_path):
    import json

    directory = saved(tiny(), tmp_path / "odd")
    config = json.loads((directory / "config.json").read_text())
    (directory / "config.json").write_text(json.dumps({**config, "mystery_scaling": 2.0}))
    with pytest.raises(ValueError, match=r"does not understand.*\['mystery_scaling'\]"):
        hio.load(directory)
    (directory / "config.json").write_text(json.dumps({**config, "hidden_act": "gelu"}))
    with pytest.raises(ValueError, match="hidden_act='gelu' is not supported"):
        hio.load(directory)
