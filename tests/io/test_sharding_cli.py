"""Loading straight onto a sharding, and the `convert` / `info PATH` command line."""

from __future__ import annotations

from pathlib import Path

import jax
import numpy as np
import pytest
from jax.sharding import Mesh, NamedSharding, PartitionSpec

from hybrid_seq import io as hio
from hybrid_seq.cli import main
from hybrid_seq.io.inspect import describe, format_description
from tests.io.helpers import assert_same_weights, random_model, small_config


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, object]:
    model = random_model(small_config())
    return hio.save(model, tmp_path_factory.mktemp("ckpt") / "ours"), model


@pytest.mark.parametrize("format", ["hybrid_seq", "huggingface"])
def test_load_onto_a_sharding(tmp_path: Path, checkpoint, format: str) -> None:
    if len(jax.devices()) < 4:
        pytest.skip("needs 4 devices (tests/conftest.py sets 8 fake CPU devices)")
    _, model = checkpoint
    path = hio.save(model, tmp_path / "ckpt", format=format)
    mesh = Mesh(np.array(jax.devices()[:4]), ("model",))

    def sharding(name: str) -> NamedSharding:
        if name.endswith(".weight") and ("mlp" in name or name == "embedder.weight"):
            return NamedSharding(mesh, PartitionSpec(None, "model"))
        return NamedSharding(mesh, PartitionSpec())

    loaded = hio.load(path, sharding=sharding)
    assert_same_weights(loaded, model)
    up = loaded.blocks[0].mlp.up.weight
    assert up.sharding == NamedSharding(mesh, PartitionSpec(None, "model"))
    assert {shard.data.shape for shard in up.addressable_shards} == {(32, 12)}
    replicated = NamedSharding(mesh, PartitionSpec())
    assert hio.load(path, sharding=replicated).final_norm.scale.sharding == replicated


def test_convert_and_info(tmp_path: Path, checkpoint, capsys: pytest.CaptureFixture[str]) -> None:
    path, model = checkpoint
    assert main(["convert", str(path), str(tmp_path / "hf"), "--to", "huggingface", "--dtype", "bfloat16"]) == 0
    info = describe(tmp_path / "hf")
    assert info["format"] == "huggingface" and info["dtype"] == "bfloat16" and info["preset"] is None
    assert info["parameters"]["total"] == sum(x.size for x in jax.tree_util.tree_leaves(model))
    assert info["architecture"]["attention_window_size"] == model.config.attention_window_size
    text = format_description(info)
    assert "huggingface" in text and "RA:3" in text
    with pytest.raises(SystemExit, match="exists"):
        main(["convert", str(path), str(tmp_path / "hf"), "--to", "hybrid_seq"])
    with pytest.raises(SystemExit, match="no such file"):
        main(["convert", str(tmp_path / "missing"), str(tmp_path / "x"), "--to", "flax"])
    assert main(["convert", str(tmp_path / "hf"), str(tmp_path / "back"), "--to", "hybrid_seq"]) == 0
    assert hio.load(tmp_path / "back").config.attention_window_size == model.config.attention_window_size
    assert sorted(p.name for p in tmp_path.iterdir()) == ["back", "hf"]
