"""int8 checkpoints in our format: exact round trip, int8 on disk, size, logits; what is refused and how."""

from __future__ import annotations

import json
from pathlib import Path

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from hybrid_seq import Model
from hybrid_seq import io as hio
from hybrid_seq.blocks.quantized import QuantizedLinear
from hybrid_seq.io.pytorch import to_state_dict
from hybrid_seq.io.safetensors_file import SafetensorsReader, write_safetensors
from hybrid_seq.quantize import quantize
from tests.quantize.helpers import forward, inputs


def _size(directory: Path) -> int:
    return sum(file.stat().st_size for file in directory.iterdir())


def _same_leaves(a: Model, b: Model) -> None:
    left, right = jax.tree_util.tree_leaves(a), jax.tree_util.tree_leaves(b)
    assert len(left) == len(right)
    for x, y in zip(left, right):
        assert x.dtype == y.dtype and x.shape == y.shape
        np.testing.assert_array_equal(np.asarray(x), np.asarray(y))


def test_round_trip_is_exact_and_int8_stays_int8_on_disk(saved: tuple[Path, Path], quantized: Model) -> None:
    _, path = saved
    document = json.loads((path / "config.json").read_text())
    assert document["format_version"] == 2 and document["quantization"] == "int8"
    reader = SafetensorsReader.from_directory(path, "model.safetensors")
    assert reader.dtypes["embedder.quantized"] == np.int8 and reader.dtypes["blocks.0.mlp.up.weight"] == np.int8
    assert reader.dtypes["embedder.scale"] == np.float32 and reader.dtypes["blocks.0.mlp.up.bias"] == np.float32
    for loaded in (hio.load(path), hio.load(path / "model.safetensors")):
        _same_leaves(loaded, quantized)
    tokens, positions = inputs()
    np.testing.assert_array_equal(forward(hio.load(path), tokens, positions), forward(quantized, tokens, positions))
    half = hio.load(path, dtype="bfloat16")
    assert half.dtype == jnp.bfloat16 and half.embedder.quantized.dtype == jnp.int8
    np.testing.assert_array_equal(np.asarray(half.embedder.quantized), np.asarray(quantized.embedder.quantized))


def test_int8_checkpoint_is_at_most_035_of_fp32_and_its_logits_within_3_percent(
    saved: tuple[Path, Path], model: Model, quantized: Model
) -> None:
    fp32, int8 = saved
    assert _size(int8) <= 0.35 * _size(fp32)  # 0.30 for this model
    tokens, positions = inputs()
    reference, ours = forward(model, tokens, positions), forward(quantized, tokens, positions)
    spread = reference.max() - reference.min()
    assert np.abs(ours - reference).max() <= 0.03 * spread  # 0.4% here
    assert (ours.argmax(-1) == reference.argmax(-1)).mean() >= 0.9


def test_bad_schemes_and_quantizing_twice_are_clear_errors(model: Model, quantized: Model) -> None:
    for scheme in ("int4", "INT8", ""):
        with pytest.raises(ValueError, match="unknown quantization scheme .*expected one of: int8"):
            quantize(model, scheme)
    with pytest.raises(ValueError, match=r"already quantized \(int8\); quantize the float model"):
        quantize(quantized, "int8")
    with pytest.raises(TypeError):  # "quantize needs a hybrid_seq Model", or the test suite's type checker first
        quantize(model.blocks[0].mlp.up, "int8")


def test_writers_refuse_what_they_cannot_load_back(tmp_path: Path, model: Model, quantized: Model) -> None:
    with pytest.raises(ValueError, match=r"is quantized \(int8\); only the hybrid_seq format holds quantized weights"):
        hio.save(quantized, tmp_path / "hf", format="huggingface")
    with pytest.raises(ValueError, match="embedder.quantized has no place in the reference"):
        to_state_dict(quantized)  # what the .pt writer saves (Flax's is the same tree), without torch
    one = eqx.tree_at(lambda m: m.blocks[0].mlp.up, model, QuantizedLinear.from_float(model.blocks[0].mlp.up))
    with pytest.raises(ValueError, match="embedder.weight is not what the config builds in int8; quantize the whole float model"):
        hio.save(one, tmp_path / "mixed")
    assert not any(tmp_path.iterdir())


def test_damaged_quantized_checkpoints_name_the_file_and_the_problem(tmp_path: Path, saved: tuple[Path, Path]) -> None:
    _, path = saved
    document = json.loads((path / "config.json").read_text())
    for change, message in (
        ({"quantization": "int3"}, "config.json: unknown quantization scheme 'int3'"),
        ({"quantization": None}, "tensors with no place in the model: .*embedder.quantized"),
    ):
        bad = tmp_path / f"bad-{change['quantization']}"
        bad.mkdir()
        (bad / "model.safetensors").symlink_to(path / "model.safetensors")
        (bad / "config.json").write_text(json.dumps({**document, **change}))
        with pytest.raises(ValueError, match=message):
            hio.load(bad)
    no_key = {key: value for key, value in document.items() if key != "quantization"}
    (tmp_path / "no-key").mkdir()
    (tmp_path / "no-key" / "config.json").write_text(json.dumps(no_key))
    (tmp_path / "no-key" / "model.safetensors").symlink_to(path / "model.safetensors")
    with pytest.raises(ValueError, match="config.json is missing the key 'quantization'"):
        hio.load(tmp_path / "no-key")

    reader = SafetensorsReader.from_directory(path, "model.safetensors")
    floated = tmp_path / "floated"
    floated.mkdir()
    (floated / "config.json").write_text((path / "config.json").read_text())
    tensors = {name: np.asarray(reader[name]) for name in reader.shapes}
    tensors["blocks.0.mlp.up.weight"] = tensors["blocks.0.mlp.up.weight"].astype(np.float32)
    write_safetensors(floated / "model.safetensors", [(n, t.shape, t.dtype) for n, t in sorted(tensors.items())],
                      lambda name: tensors[name], metadata={})
    with pytest.raises(ValueError, match="blocks.0.mlp.up.weight is float32, but this int8 checkpoint's quantized weights are int8"):
        hio.load(floated)
