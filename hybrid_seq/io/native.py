"""Our own format: a directory with `config.json` and `model.safetensors`.

`config.json` is the config's own dict (`to_dict`) with four more keys: ``"format":
"hybrid_seq"``, ``"format_version": 2``, ``"config_type": "ModelConfig" | "HybridConfig"``
and ``"quantization"`` (None, or the `hybrid_seq.quantize` scheme of the weights);
a user kind's config is inside it, under its registered kind name. Tensor names are the model's own leaf paths
joined by dots (``blocks.0.temporal.linear_x.weight``), written by walking the model, so
every model (any pattern, user kinds included) round-trips exactly. A quantized model's
int8 tensors and scales are stored as they are (never dequantised) and load back into
the quantized skeleton of the config. The document is also written into the safetensors
metadata (`CONFIG_KEY`), so the bare `model.safetensors` loads on its own.

Earlier versions keep loading: version 1 is version 2 without ``"quantization"`` (float
weights; `tests/io/fixtures/hybrid_v1`), and version 0 (before the format had a version)
is a bare `ModelConfig` dict as config.json (`tests/io/fixtures/griffin_v0`).
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
from hybrid_seq.io.assemble import ShardingSpec, build_model, check_preset, check_structure, dotted, skeleton
from hybrid_seq.io.flax_layout import leaf_path
from hybrid_seq.io.json_file import read_json
from hybrid_seq.io.safetensors_file import SafetensorsReader, write_safetensors
from hybrid_seq.model import Config, Model
from hybrid_seq.quantize import check_scheme, quantization_of

FORMAT = "hybrid_seq"
#: The version `save` writes; `load` reads it and every earlier one.
FORMAT_VERSION = 2
WEIGHTS = "model.safetensors"
#: The safetensors metadata key holding the config document.
CONFIG_KEY = "hybrid_seq_config"
_CONFIG_TYPES: dict[str, type[ModelConfig] | type[HybridConfig]] = {"ModelConfig": ModelConfig, "HybridConfig": HybridConfig}


#: The keys a config document adds to the config's own dict.
_DOCUMENT_KEYS = ("format", "format_version", "config_type", "quantization")


def config_document(config: Config, quantization: str | None = None) -> dict[str, Any]:
    """The versioned config.json document of `config`: its dict plus the format, version, config type and quantization."""
    return {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "config_type": type(config).__name__,
        "quantization": quantization,
        **config.to_dict(),
    }


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


def parse_quantization(data: dict[str, Any], source: str) -> str | None:
    """The quantization scheme a config document records (None: float weights; versions 0 and 1 are float)."""
    if data.get("format_version", 0) < 2:
        return None
    if "quantization" not in data:
        raise ValueError(f"{source} is missing the key 'quantization'")
    if data["quantization"] is None:
        return None
    try:
        return check_scheme(data["quantization"])
    except ValueError as error:
        raise ValueError(f"{source}: {error}") from None


def _config(cls: type[ModelConfig] | type[HybridConfig], data: dict[str, Any], source: str) -> Config:
    for field in dataclasses.fields(cls):
        if field.name not in data and field.default is dataclasses.MISSING:
            raise ValueError(f"{source} is missing the key {field.name!r}")
    try:
        return cls.from_dict(data)
    except (ValueError, TypeError) as error:
        raise ValueError(f"{source}: not a valid hybrid_seq {cls.__name__}: {error}") from None


def open_native(path: Path) -> tuple[Config, SafetensorsReader, str]:
    """The config, the tensors, and where the config came from, of our checkpoint at `path` (see `read_document`)."""
    data, reader, source = read_document(path)
    return parse_config(data, source), reader, source


def read_document(path: Path) -> tuple[dict[str, Any], SafetensorsReader, str]:
    """The config document, the tensors, and where the document came from, of our checkpoint at `path`.

    `path` is a directory (`config.json` + `model.safetensors`) or a bare safetensors file
    whose metadata holds the document under `CONFIG_KEY`.
    """
    if path.is_dir():
        file = path / "config.json"
        return read_json(file), SafetensorsReader.from_directory(path, WEIGHTS), str(file)
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
    return data, reader, source


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
    """The model saved at `path`, a directory or a bare file (overrides replace config fields; preset must match).

    A quantized checkpoint loads into the quantized skeleton of its config: its integer
    tensors as stored (they must have the skeleton's dtype), `dtype` casting the float ones.
    """
    data, reader, config_source = read_document(path)
    config, quantization = parse_config(data, config_source), parse_quantization(data, config_source)
    if overrides:
        config = config.replace(**overrides)
    if preset is not None:
        check_preset(config, preset, source=config_source)
    label = f"{path} ({FORMAT})"
    stored = reader.dtypes.get("embedder.weight" if quantization is None else "embedder.scale", np.float32)
    abstract = skeleton(config, stored if dtype is None else dtype, quantization)
    specs = {dotted(leaf): spec for leaf, spec in _specs(abstract).items()}
    extra = sorted(set(reader.shapes) - set(specs))
    if extra:
        raise ValueError(f"{label}: tensors with no place in the model: {', '.join(extra)}")

    def fetch(leaf: tuple[str | int, ...]) -> np.ndarray:
        name = dotted(leaf)
        if name not in reader:
            raise ValueError(f"{reader.label}: tensor {name} is missing")
        want = np.dtype(specs[name].dtype)
        if np.issubdtype(want, np.integer) and reader.dtypes[name] != want:
            raise ValueError(
                f"{reader.label}: tensor {name} is {reader.dtypes[name]}, but this {quantization} checkpoint's "
                f"quantized weights are {want}"
            )
        return reader[name]

    return build_model(abstract, fetch, source=label, sharding=sharding)


def write_native(
    model: Model, directory: Path, leaf: Callable[[tuple[str | int, ...]], np.ndarray], dtype: Any
) -> None:
    """Write `model`'s config and weights into `directory`, walking the model (or its abstract
    `skeleton`) leaf by leaf and streaming `leaf(path)` tensor by tensor.

    Float tensors are written in `dtype`; a quantized model's integer tensors in their own dtype.
    """
    quantization = quantization_of(model)
    check_structure(model, source="the model to save", quantization=quantization)
    paths = {dotted(path): (path, spec) for path, spec in _specs(model).items()}
    document = json.dumps(config_document(model.config, quantization), indent=2, sort_keys=True)

    def stored(spec: Any) -> np.dtype:
        return np.dtype(spec.dtype) if np.issubdtype(np.dtype(spec.dtype), np.integer) else np.dtype(dtype)

    write_safetensors(
        directory / WEIGHTS,
        [(name, spec.shape, stored(spec)) for name, (_, spec) in sorted(paths.items())],
        lambda name: leaf(paths[name][0]),
        metadata={"format": FORMAT, CONFIG_KEY: document},
    )
    (directory / "config.json").write_text(document + "\n")


def save_native(model: Model, directory: Path) -> None:
    """Write `model` into the (existing, empty) `directory` in our format."""
    values = {leaf_path(p): v for p, v in jax.tree_util.tree_flatten_with_path(model)[0]}
    write_native(model, directory, lambda path: np.asarray(values[path]), model.dtype)


def _specs(model: Model) -> dict[tuple[str | int, ...], Any]:
    """The array leaves (or their `ShapeDtypeStruct`s) of `model` by leaf path, in flattening order."""
    return {leaf_path(p): leaf for p, leaf in jax.tree_util.tree_flatten_with_path(model)[0]}
