"""Our own format: a directory with `config.json` (`ModelConfig.to_json()`) and `model.safetensors`.

Tensor names are our leaf paths joined by dots (``blocks.0.temporal.linear_x.weight``), in
our layout, so every model (any block pattern, user-defined kinds included) round-trips
exactly. The config is also written into the safetensors metadata (`CONFIG_KEY`), so the
bare `model.safetensors` loads on its own; files written before that need their directory.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import jax
import numpy as np

from hybrid_seq.config import ModelConfig
from hybrid_seq.io.assemble import ShardingSpec, build_model, check_preset, dotted, leaf_shapes, shapes_of, skeleton
from hybrid_seq.io.flax_layout import leaf_path
from hybrid_seq.io.json_file import read_json
from hybrid_seq.io.safetensors_file import SafetensorsReader, write_safetensors
from hybrid_seq.model import Model

FORMAT = "hybrid_seq"
WEIGHTS = "model.safetensors"
#: The safetensors metadata key holding `ModelConfig.to_json()`.
CONFIG_KEY = "hybrid_seq_config"


def read_config(directory: Path) -> ModelConfig:
    """The ModelConfig stored in `directory/config.json` (a missing field is named as a missing key)."""
    file = directory / "config.json"
    return _config(read_json(file), str(file))


def _config(data: dict[str, Any], source: str) -> ModelConfig:
    for field in dataclasses.fields(ModelConfig):
        if field.name not in data and field.default is dataclasses.MISSING:
            raise ValueError(f"{source} is missing the key {field.name!r}")
    try:
        return ModelConfig.from_dict(data)
    except (ValueError, TypeError) as error:
        raise ValueError(f"{source}: not a valid hybrid_seq ModelConfig: {error}") from None


def open_native(path: Path) -> tuple[ModelConfig, SafetensorsReader, str]:
    """The config, the tensors, and where the config came from, of our checkpoint at `path`.

    `path` is a directory (`config.json` + `model.safetensors`) or a bare safetensors file
    whose metadata holds the config under `CONFIG_KEY`.
    """
    if path.is_dir():
        return read_config(path), SafetensorsReader.from_directory(path, WEIGHTS), str(path / "config.json")
    reader = SafetensorsReader([path], str(path))
    source = f"the {CONFIG_KEY} metadata of {path}"
    if CONFIG_KEY not in reader.metadata:
        raise ValueError(f"{path}: a safetensors file without {CONFIG_KEY} metadata; pass its directory (config.json)")
    try:
        data = json.loads(reader.metadata[CONFIG_KEY])
    except ValueError as error:
        raise ValueError(f"{source}: not valid JSON: {error}") from None
    if not isinstance(data, dict):
        raise ValueError(f"{source}: expected a JSON object, got a JSON {type(data).__name__}")
    return _config(data, source), reader, str(path)


def is_native_config(data: dict[str, Any]) -> bool:
    """Whether a parsed config.json is ours (it names a block pattern and no HF model type)."""
    return "block_pattern" in data and "model_type" not in data


def load_native(
    path: Path,
    *,
    preset: str | None,
    dtype: Any,
    sharding: ShardingSpec,
    overrides: dict[str, Any],
) -> Model:
    """The model saved at `path`, a directory or a bare file (overrides replace config fields; preset must match)."""
    config, reader, config_source = open_native(path)
    if overrides:
        config = config.replace(**overrides)
    if preset is not None:
        check_preset(config, preset, source=config_source)
    label = f"{path} ({FORMAT})"
    abstract = skeleton(config, reader.dtypes.get("embedder.weight", np.float32) if dtype is None else dtype)
    extra = sorted(set(reader.shapes) - {dotted(leaf) for leaf in shapes_of(abstract)})
    if extra:
        raise ValueError(f"{label}: tensors with no place in the model: {', '.join(extra)}")

    def fetch(leaf: tuple[str | int, ...]) -> np.ndarray:
        name = dotted(leaf)
        if name not in reader:
            raise ValueError(f"{reader.label}: tensor {name} is missing")
        return reader[name]

    return build_model(abstract, fetch, source=label, sharding=sharding)


def write_native(
    config: ModelConfig, directory: Path, leaf: Callable[[tuple[str | int, ...]], np.ndarray], dtype: Any
) -> None:
    """Write `config` and its weights into `directory`, streaming `leaf(path)` tensor by tensor."""
    paths = {dotted(path): (path, shape) for path, shape in leaf_shapes(config).items()}
    write_safetensors(
        directory / WEIGHTS,
        [(name, shape, dtype) for name, (_, shape) in sorted(paths.items())],
        lambda name: leaf(paths[name][0]),
        metadata={"format": FORMAT, CONFIG_KEY: config.to_json()},
    )
    (directory / "config.json").write_text(config.to_json() + "\n")


def save_native(model: Model, directory: Path) -> None:
    """Write `model` into the (existing, empty) `directory` in our format."""
    values = {leaf_path(p): v for p, v in jax.tree_util.tree_flatten_with_path(model)[0]}
    write_native(model.config, directory, lambda path: np.asarray(values[path]), model.dtype)
