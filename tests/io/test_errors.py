"""Bad input gives a clear error naming the file and the tensor, and never writes anything."""

from __future__ import annotations

import json
import pickle
import re
import zipfile
from pathlib import Path

import numpy as np
import pytest

from hybrid_seq import io as hio
from hybrid_seq.io.safetensors_file import write_safetensors
from tests.io.helpers import SETTINGS, random_model, small_config


@pytest.fixture(scope="module")
def model():
    return random_model(small_config())


def _rewrite_safetensors(file: Path, edit) -> None:
    """Rewrite `file` with `edit(dict name -> array)` applied."""
    from safetensors.numpy import load_file

    tensors = edit(dict(load_file(file)))
    write_safetensors(file, [(k, v.shape, v.dtype) for k, v in tensors.items()], tensors.__getitem__,
                      metadata={"format": "pt"})


@pytest.mark.parametrize("format", ["hybrid_seq", "huggingface"])
def test_truncated_safetensors(tmp_path: Path, model, format: str) -> None:
    path = hio.save(model, tmp_path / "ckpt", format=format)
    data = (path / "model.safetensors").read_bytes()
    (path / "model.safetensors").write_bytes(data[: len(data) - 100])
    with pytest.raises(ValueError, match=r"model\.safetensors: tensor .* truncated"):
        hio.load(path)
    (path / "model.safetensors").write_bytes(data[:20])
    with pytest.raises(ValueError, match=r"model\.safetensors: not a readable safetensors file"):
        hio.load(path)


def test_truncated_pt(tmp_path: Path, model) -> None:
    pytest.importorskip("torch", reason="writing .pt needs torch: pip install '.[hf]'")
    path = hio.save(model, tmp_path / "model.pt", format="pytorch")
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(ValueError, match=r"model\.pt: .*truncated"):
        hio.load(path, **SETTINGS)


@pytest.mark.parametrize("format,name", [
    ("hybrid_seq", "blocks.1.temporal.proj_k.weight"),
    ("huggingface", "model.layers.1.temporal_block.k_proj.weight"),
])
def test_missing_tensor(tmp_path: Path, model, format: str, name: str) -> None:
    path = hio.save(model, tmp_path / "ckpt", format=format)
    _rewrite_safetensors(path / "model.safetensors", lambda t: {k: v for k, v in t.items() if k != name})
    with pytest.raises(ValueError, match=rf"model\.safetensors.*{name}.*|{name}"):
        hio.load(path)


def test_missing_tensor_pt_names_it(tmp_path: Path, model) -> None:
    torch = pytest.importorskip("torch", reason="writing .pt needs torch: pip install '.[hf]'")
    from hybrid_seq.io.pytorch import to_state_dict

    state = {k: torch.from_numpy(v.copy()) for k, v in to_state_dict(model).items()}
    del state["blocks.2.recurrent_block.rg_lru.a_param"]
    torch.save(state, tmp_path / "model.pt")
    with pytest.raises(ValueError, match=r"model\.pt: tensor blocks\.2\.recurrent_block\.rg_lru\.a_param is missing"):
        hio.load(tmp_path / "model.pt", **SETTINGS)


@pytest.mark.parametrize("format,name", [
    ("hybrid_seq", "blocks.0.temporal.linear_x.weight"),
    ("huggingface", "model.layers.0.temporal_block.linear_x.weight"),
])
def test_wrong_shape(tmp_path: Path, model, format: str, name: str) -> None:
    path = hio.save(model, tmp_path / "ckpt", format=format)
    _rewrite_safetensors(path / "model.safetensors", lambda t: {**t, name: t[name][:, :-1]})
    with pytest.raises(ValueError, match=rf"ckpt.*tensor {name} has shape"):
        hio.load(path)


def test_config_contradicting_weights(tmp_path: Path, model) -> None:
    hf = hio.save(model, tmp_path / "hf", format="huggingface")
    config = json.loads((hf / "config.json").read_text())
    (hf / "config.json").write_text(json.dumps({**config, "intermediate_size": 50}))
    with pytest.raises(ValueError, match=r"config\.json says intermediate_size=50 but the weights have 96"):
        hio.load(hf)
    ours = hio.save(model, tmp_path / "ours")
    config = json.loads((ours / "config.json").read_text())
    (ours / "config.json").write_text(json.dumps({**config, "width": 64}))
    with pytest.raises(ValueError, match=r"ours.*embedder\.weight has shape \(97, 32\).*needs \(97, 64\)"):
        hio.load(ours)
    with pytest.raises(ValueError, match="width=64 contradicts the weights, which have width=32"):
        hio.load(_pt_or_skip(tmp_path, model), width=64, **SETTINGS)


def _pt_or_skip(tmp_path: Path, model) -> Path:
    pytest.importorskip("torch", reason="writing .pt needs torch: pip install '.[hf]'")
    return hio.save(model, tmp_path / "model.pt", format="pytorch")


def test_extra_tensor_is_reported(tmp_path: Path, model) -> None:
    path = hio.save(model, tmp_path / "hf", format="huggingface")
    _rewrite_safetensors(path / "model.safetensors", lambda t: {**t, "model.layers.0.surprise": np.zeros(3, np.float32)})
    with pytest.raises(ValueError, match="no place in the model: model.layers.0.surprise"):
        hio.load(path)


def test_unknown_formats(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="nowhere"):
        hio.load(tmp_path / "nowhere")
    (tmp_path / "notes.txt").write_text("hello")
    with pytest.raises(ValueError, match=r"notes\.txt: unknown checkpoint format"):
        hio.load(tmp_path / "notes.txt")
    (tmp_path / "empty").mkdir()
    with pytest.raises(ValueError, match=r"empty: unknown checkpoint format"):
        hio.load(tmp_path / "empty")
    (tmp_path / "other").mkdir()
    (tmp_path / "other" / "config.json").write_text(json.dumps({"model_type": "llama"}))
    with pytest.raises(ValueError, match=r"config\.json: neither a hybrid_seq config nor a HuggingFace"):
        hio.load(tmp_path / "other")


def test_pickle_with_foreign_globals_is_refused(tmp_path: Path) -> None:
    """The .pt reader runs no code: any global but tensors and storages is refused."""
    path = tmp_path / "evil.pt"
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr("evil/data.pkl", pickle.dumps({"x": print}))
    with pytest.raises(pickle.UnpicklingError, match=r"evil\.pt: refusing to unpickle builtins\.print"):
        hio.load(path)


def test_hf_features_we_lack_are_refused(tmp_path: Path, model) -> None:
    path = hio.save(model, tmp_path / "hf", format="huggingface")
    config = json.loads((path / "config.json").read_text())
    (path / "config.json").write_text(json.dumps({**config, "num_key_value_heads": 4}))
    with pytest.raises(ValueError, match=r"config\.json: num_key_value_heads=4 is not supported"):
        hio.load(path)


def _index(directory: Path, data) -> None:
    (directory / "model.safetensors.index.json").write_text(data if isinstance(data, str) else json.dumps(data))


def test_bad_shard_index(tmp_path: Path, model) -> None:
    path = hio.save(model, tmp_path / "hf", format="huggingface")
    index = re.escape(str(path / "model.safetensors.index.json"))
    cases = [
        ({"metadata": {}}, rf"{index}: has no 'weight_map'"),
        ("{", rf"{index}: not valid JSON"),
        ([], rf"{index}: expected a JSON object, got a JSON list"),
        ({"weight_map": ["model.safetensors"]}, rf"{index}: 'weight_map' is not a non-empty object"),
        ({"weight_map": {"model.embed_tokens.weight": 3}}, rf"{index}: weight_map: tensor model\.embed_tokens\.weight: "
                                                          r"3 is not a shard file name"),
        ({"weight_map": {"model.embed_tokens.weight": "model-00002.safetensors"}},
         rf"{index}: lists shards that do not exist: .*model-00002\.safetensors"),
    ]
    for data, message in cases:
        _index(path, data)
        with pytest.raises(ValueError, match=message):
            hio.load(path)
    _index(path, {"weight_map": {"model.embed_tokens.weight": "model.safetensors"}})
    assert hio.load(path).config == hio.load(hio.save(model, tmp_path / "plain", format="huggingface")).config


@pytest.mark.parametrize("key", ["vocab_size", "hidden_size", "intermediate_size", "num_hidden_layers",
                                 "num_attention_heads", "num_key_value_heads", "block_types"])
def test_hf_config_missing_a_key_names_it(tmp_path: Path, model, key: str) -> None:
    path = hio.save(model, tmp_path / "hf", format="huggingface")
    config = json.loads((path / "config.json").read_text())
    del config[key]
    (path / "config.json").write_text(json.dumps(config))
    with pytest.raises(ValueError, match=re.escape(f"{path / 'config.json'} is missing the key {key!r}")):
        hio.load(path)


@pytest.mark.parametrize("key,value,message", [
    ("block_types", "recurrent", r"block_types='recurrent' is not a non-empty list of block kind names"),
    ("logits_soft_cap", "high", r"logits_soft_cap='high' is not a number"),
    ("attention_window_size", [7], r"attention_window_size=\[7\] is not a number"),
    ("rope_parameters", [1], r"rope_parameters=\[1\] is not an object"),
    ("rms_norm_eps", None, r"rms_norm_eps=None is not a number"),
])
def test_hf_config_values_of_the_wrong_type(tmp_path: Path, model, key: str, value, message: str) -> None:
    path = hio.save(model, tmp_path / "hf", format="huggingface")
    config = json.loads((path / "config.json").read_text())
    (path / "config.json").write_text(json.dumps({**config, key: value}))
    with pytest.raises(ValueError, match=re.escape(str(path / "config.json")) + ": " + message):
        hio.load(path)


def test_native_config_missing_a_key_names_it(tmp_path: Path, model) -> None:
    path = hio.save(model, tmp_path / "ours")
    config = json.loads((path / "config.json").read_text())
    del config["vocab_size"]
    (path / "config.json").write_text(json.dumps(config))
    with pytest.raises(ValueError, match=re.escape(f"{path / 'config.json'} is missing the key 'vocab_size'")):
        hio.load(path)


def test_hf_tensor_of_the_wrong_rank_is_named(tmp_path: Path, model) -> None:
    path = hio.save(model, tmp_path / "hf", format="huggingface")
    name = "model.layers.0.temporal_block.conv_1d.weight"
    _rewrite_safetensors(path / "model.safetensors", lambda t: {**t, name: t[name][:, 0]})
    with pytest.raises(ValueError, match=rf"model\.safetensors: tensor {re.escape(name)} has shape \(64, 4\), expected 3-D"):
        hio.load(path)
