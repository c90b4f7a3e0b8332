"""save -> load is the identity for every format, in fp32 and bf16; saves are atomic."""

from __future__ import annotations

from pathlib import Path

import equinox as eqx
import jax.numpy as jnp
import pytest

from hybrid_seq import io as hio
from tests.io.helpers import SETTINGS, assert_same_weights, random_model, same_architecture, small_config

_NEEDS = {"flax": ("orbax.checkpoint", "the flax format needs orbax-checkpoint: pip install '.[flax]'"),
          "pytorch": ("torch", "writing .pt needs torch: pip install '.[hf]'")}
_FILE_NAMES = {"pytorch": "model.pt"}


def _require(format: str) -> None:
    if format in _NEEDS:
        pytest.importorskip(_NEEDS[format][0], reason=_NEEDS[format][1])


@pytest.mark.parametrize("dtype", [jnp.float32, jnp.bfloat16], ids=["fp32", "bf16"])
@pytest.mark.parametrize("format", hio.FORMATS)
def test_save_then_load_is_identity(tmp_path: Path, format: str, dtype) -> None:
    _require(format)
    model = random_model(small_config(), dtype=dtype)
    path = hio.save(model, tmp_path / _FILE_NAMES.get(format, "ckpt"), format=format)
    assert hio.detect(path) == format
    loaded = hio.load(path, **({} if format in ("hybrid_seq", "huggingface") else SETTINGS))
    assert same_architecture(loaded.config, model.config)
    assert_same_weights(loaded, model)


def test_native_round_trips_config_exactly(tmp_path: Path) -> None:
    config = small_config(block_pattern={"unit": ["recurrent", "attention"], "num_layers": 3}, lru_width=None,
                          logits_soft_cap=0.0, embeddings_scale_by_sqrt_dim=False)
    model = random_model(config)
    loaded = hio.load(hio.save(model, tmp_path / "ours"))
    assert loaded.config == config
    assert_same_weights(loaded, model)


def test_load_casts_dtype(tmp_path: Path) -> None:
    model = random_model(small_config())
    loaded = hio.load(hio.save(model, tmp_path / "ours"), dtype=jnp.bfloat16)
    assert {leaf.dtype for leaf in __import__("jax").tree_util.tree_leaves(loaded)} == {jnp.dtype(jnp.bfloat16)}


def test_existing_target_is_kept_unless_overwrite(tmp_path: Path) -> None:
    first, second = random_model(small_config(), seed=0), random_model(small_config(), seed=5)
    path = hio.save(first, tmp_path / "ckpt")
    with pytest.raises(FileExistsError, match="ckpt"):
        hio.save(second, path)
    assert_same_weights(hio.load(path), first)
    hio.save(second, path, overwrite=True)
    assert_same_weights(hio.load(path), second)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ckpt"]


def test_failed_save_writes_nothing(tmp_path: Path) -> None:
    config = small_config(logits_soft_cap=0.0)
    with pytest.raises(ValueError, match="HF always soft-caps"):
        hio.save(random_model(config), tmp_path / "hf", format="huggingface")
    assert list(tmp_path.iterdir()) == []


def test_failure_midway_leaves_nothing(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from hybrid_seq.io import native

    def explode(*args, **kwargs):
        raise OSError("disk full")

    monkeypatch.setattr(native, "write_safetensors", explode)
    with pytest.raises(OSError, match="disk full"):
        hio.save(random_model(small_config()), tmp_path / "ckpt")
    assert list(tmp_path.iterdir()) == []


def test_huggingface_rejects_what_it_cannot_express(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="embeddings"):
        hio.save(random_model(small_config(embeddings_scale_by_sqrt_dim=False)), tmp_path / "a", format="huggingface")


def test_loading_our_format_builds_the_model_skeleton_once(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    model = random_model(small_config())
    path = hio.save(model, tmp_path / "ours")
    calls = []
    real = eqx.filter_eval_shape

    def counting(*args, **kwargs):
        calls.append(args[0])
        return real(*args, **kwargs)

    monkeypatch.setattr(eqx, "filter_eval_shape", counting)
    assert_same_weights(hio.load(path), model)
    assert len(calls) == 1
