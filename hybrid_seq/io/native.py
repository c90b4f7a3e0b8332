"""Our own format: a directory with `config.json` and `model.safetensors`.

`config.json` is the config's own dict (`to_dict`) with three more keys: ``"format":
"hybrid_seq"``, ``"format_version": 1`` and ``"config_type": "ModelConfig" | "HybridConfig"``;
a user kind's config is inside it, under its registered kind name. Tensor names are the model's own leaf paths
joined by dots (``blocks.0.temporal.linear_x.weight``), written by walking the model, so
every model (any pattern, user kinds included) round-trips exactly. The document is also
written into the safetensors metadata (`CONFIG_KEY`), so the bare `model.safetensors`
loads on its own.

Version 0 (before the format had a version) is a bare `ModelConfig` dict as config.json;
it still loads (`tests/io/fixtures/griffin_v0`), and so will every later version.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import jax
import numpy as np

from hybrid_seq.architecture import HybridConfig
from hybrid_seq.config import ModelConfig
from hybrid_seq.io.assemble import ShardingSpec, build_model, check_preset, check_structure, dotted, shapes_of, skeleton
from hybrid_seq.io.flax_layout import leaf_path
from hybrid_seq.io.json_file import read_json
from hybrid_seq.io.safetensors_file import SafetensorsReader, write_safetensors
from hybrid_seq.model import Config, Model

FORMAT = "hybrid_seq"
#: The version `save` writes; `load` reads it and every earlier one.
FORMAT_VERSION = 1
WEIGHTS = "model.safetensors"
#: The safetensors metadata key holding the config document.
CONFIG_KEY = "hybrid_seq_config"
_CONFIG_TYPES: dict[str, type[ModelConfig] | type[HybridConfig]] = {"ModelConfig": ModelConfig, "HybridConfig": HybridConfig}


#: The keys a config document adds to the config's own dict.
_DOCUMENT_KEYS = ("format", "format_version", "config_type")


def config_document(config: Config) -> dict[str, Any]:
    """The versioned config.json document of `config`: its dict plus the format, version and config type."""
    return {"format": FORMAT, "format_version": FORMAT_VERSION, "config_type": type(config).__name__, **config.to_dict()}


def read_config(directory: Path) -> Config:
    """The config stored in `directory/config.json` (any format version; a missing field is named)."""
    file = directory / "config.json"
    return parse_config(read_json(file), str(file))


def parse_config(data: dict[str, Any], source: str) -> Config:
    """The config of a config document (`config_document`), or of a version-0 bare ModelConfig dict."""
    if "format_version" not in data:
        return _config(ModelConfig, data, source)
    version = data["format_version"]
    if not isinstance(version, int) or not 1 <= version <= FORMAT_VERSION:
        raise ValueError(
            f"{source}: format_version {version!r} is not one this hybrid_seq reads (1 to {FORMAT_VERSION}); "
            "it was written by a newer hybrid_seq"
        )
    if "config_type" not in data:
        raise ValueError(f"{source} is missing the key 'config_type'")
    if data["config_type"] not in _CONFIG_TYPES:
        raise ValueError(f"{source}: config_type {data['config_type']!r} is not one of {sorted(_CONFIG_TYPES)}")
    fields = {key: value for key, value in data.items() if key not in _DOCUMENT_KEYS}
    return _config(_CONFIG_TYPES[data["config_type"]], fields, source)


def _config(cls: type[ModelConfig] | type[HybridConfig], data: dict[str, Any], source: str) -> Config:
    for field in dataclasses.fields(cls):
        if field.name not in data and field.default is dataclasses.MISSING:
            raise ValueError(f"{source} is missing the key {field.name!r}")
    try:
        return cls.from_dict(data)
    except (ValueError, TypeError) as error:
        raise ValueError(f"{source}: not a valid hybrid_seq {cls.__name__}: {error}") from None


def open_native(path: Path) -> tuple[Config, SafetensorsReader, str]:
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
    return parse_config(data, source), reader, str(path)


def is_native_config(data: dict[str, Any]) -> bool:
    """Whether a parsed config.json is ours: a config document, or version 0 (a block pattern, no HF model type)."""
    return data.get("format") == FORMAT or ("block_pattern" in data and "model_type" not in data)


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
    model: Model, directory: Path, leaf: Callable[[tuple[str | int, ...]], np.ndarray], dtype: Any
) -> None:
    """Write `model`'s config and weights into `directory`, walking the model (or its abstract
    `skeleton`) leaf by leaf and streaming `leaf(path)` tensor by tensor."""
    check_structure(model, source="the model to save")
    paths = {dotted(path): (path, shape) for path, shape in shapes_of(model).items()}
    document = json.dumps(config_document(model.config), indent=2, sort_keys=True)
    write_safetensors(
        directory / WEIGHTS,
        [(name, shape, dtype) for name, (_, shape) in sorted(paths.items())],
        lambda name: leaf(paths[name][0]),
        metadata={"format": FORMAT, CONFIG_KEY: document},
    )
    (directory / "config.json").write_text(document + "\n")


def save_native(model: Model, directory: Path) -> None:
    """Write `model` into the (existing, empty) `directory` in our format."""
    values = {leaf_path(p): v for p, v in jax.tree_util.tree_flatten_with_path(model)[0]}
    write_native(model, directory, lambda path: np.asarray(values[path]), model.dtype)
