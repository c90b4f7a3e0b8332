"""One preset check for every format: the architecture (all the weights fix but vocab_size), one message."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from hybrid_seq import io as hio
from hybrid_seq import presets
from hybrid_seq.io.inspect import describe
from tests.io.helpers import assert_same_weights, random_model

_FILE_NAMES = {"pytorch": "model.pt"}
_FORMATS = ["hybrid_seq", "huggingface", "pytorch"]
#: What each format's error names as the source: our config.json, the HF directory, the .pt file.
_SOURCES = {"hybrid_seq": "ckpt/config.json", "huggingface": "ckpt (huggingface)", "pytorch": "model.pt (pytorch)"}


def _save(tmp_path: Path, format: str, **changes) -> tuple[Path, object]:
    if format == "pytorch":
        pytest.importorskip("torch", reason="writing .pt needs torch: pip install '.[hf]'")
    model = random_model(presets.get("griffin-tiny", vocab_size=97, **changes))
    return hio.save(model, tmp_path / _FILE_NAMES.get(format, "ckpt"), format=format), model


@pytest.mark.parametrize("format", _FORMATS)
def test_matching_preset_loads_and_is_found(tmp_path: Path, format: str) -> None:
    path, model = _save(tmp_path, format)
    assert_same_weights(hio.load(path, preset="griffin-tiny"), model)
    assert describe(path)["preset"] == "griffin-tiny"


@pytest.mark.parametrize("format", _FORMATS)
def test_mismatch_names_the_file_each_field_and_both_values(tmp_path: Path, format: str) -> None:
    """The convolution taps count too (the native check used to skip them), and every differing field is listed."""
    path, _ = _save(tmp_path, format, mlp_expanded_width=256, conv1d_temporal_width=3)
    message = (
        f"{_SOURCES[format]} does not match preset 'griffin-tiny': "
        "mlp_expanded_width is 256 in the checkpoint but 384 in the preset; "
        "conv1d_temporal_width is 3 in the checkpoint but 4 in the preset"
    )
    with pytest.raises(ValueError, match=re.escape(message) + "$"):
        hio.load(path, preset="griffin-tiny")
    assert describe(path)["preset"] is None


@pytest.mark.parametrize("format", ["hybrid_seq", "huggingface"])
def test_pattern_mismatch_is_shown_as_a_pattern(tmp_path: Path, format: str) -> None:
    path, _ = _save(tmp_path, format, block_pattern="RRA:4")
    with pytest.raises(ValueError, match=re.escape("block_pattern is RRA:4 in the checkpoint but RRA in the preset")):
        hio.load(path, preset="griffin-tiny")


def test_same_pattern_spelled_differently_matches(tmp_path: Path) -> None:
    path, model = _save(tmp_path, "hybrid_seq", block_pattern=["recurrent", "recurrent", "attention"], lru_width=None)
    assert_same_weights(hio.load(path, preset="griffin-tiny"), model)
