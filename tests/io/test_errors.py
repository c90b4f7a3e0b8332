"""Bad input gives a clear error naming the file and the tensor, and never writes anything."""

from __future__ import annotations

import json
import pickle
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
