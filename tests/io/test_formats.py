"""`detect`/`load` on a bare safetensors file: ours loads on its own; anything else says what it is and what to pass."""

from __future__ import annotations

import re
import shutil
from pathlib import Path

import pytest

from hybrid_seq import io as hio
from hybrid_seq.io.inspect import describe
from tests.io.helpers import assert_same_weights, random_model, small_config

FIXTURES = Path(__file__).parent / "fixtures"


@pytest.fixture(scope="module")
def model():
    return random_model(small_config())


def test_our_bare_file_loads_on_its_own(tmp_path: Path, model) -> None:
    saved = hio.save(model, tmp_path / "ckpt")
    bare = tmp_path / "alone" / "weights.safetensors"
    bare.parent.mkdir()
    shutil.copy(saved / "model.safetensors", bare)
    assert hio.detect(bare) == "hybrid_seq"
    loaded = hio.load(bare)
    assert loaded.config == model.config
    assert_same_weights(loaded, model)
    assert hio.load(bare, attention_window_size=3).config.attention_window_size == 3
    assert describe(bare)["architecture"] == model.config.to_dict()
    with pytest.raises(ValueError, match=re.escape(f"{bare} does not match preset 'griffin-tiny': width is 32")):
        hio.load(bare, preset="griffin-tiny")


def test_huggingface_file_asks_for_its_directory(tmp_path: Path, model) -> None:
    file = hio.save(model, tmp_path / "hf", format="huggingface") / "model.safetensors"
    with pytest.raises(ValueError, match=re.escape(f"{file}: a safetensors file with HuggingFace tensor names; "
                                                   "pass its directory")):
        hio.load(file)
    moved = tmp_path / "model.safetensors"
    shutil.move(file, moved)
    with pytest.raises(ValueError, match="HuggingFace tensor names; pass a directory holding it and its config.json"):
        hio.detect(moved)


def test_our_file_from_before_the_config_was_stored_asks_for_its_directory() -> None:
    file = FIXTURES / "griffin_v0" / "model.safetensors"
    with pytest.raises(ValueError, match=re.escape(f"{file}: a safetensors file with hybrid_seq tensor names but no "
                                                   "hybrid_seq_config metadata")):
        hio.load(file)


def test_text_renamed_and_truncated_files_say_so(tmp_path: Path, model) -> None:
    text = tmp_path / "notes.safetensors"
    text.write_text("these are my notes, not tensors\n")
    with pytest.raises(ValueError, match=re.escape(f"{text}: not a readable safetensors file: it is not a "
                                                   "safetensors file")):
        hio.load(text)
    data = (hio.save(model, tmp_path / "ckpt") / "model.safetensors").read_bytes()
    length = int.from_bytes(data[:8], "little")
    for name in ("cut.safetensors", "cut.bin"):
        (tmp_path / name).write_bytes(data[:1000])
        with pytest.raises(ValueError, match=re.escape(f"{tmp_path / name}: not a readable safetensors file: it is "
                                                       f"truncated: the header says {length} bytes, the file has 992")):
            hio.load(tmp_path / name)
    (tmp_path / "short.safetensors").write_bytes(data[: len(data) - 4])
    with pytest.raises(ValueError, match=r"short\.safetensors: tensor .*: the file is truncated"):
        hio.load(tmp_path / "short.safetensors")
