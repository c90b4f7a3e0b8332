"""What the HF hybrid families share: a strict config.json reader, leaf <-> tensor maps, loading and saving.

A family adapter (one module per `model_type`) reads its `config.json` into a `HybridConfig`,
writes one back, and maps every leaf of a model to its HF tensors. A leaf is one or more
`HFTensor` pieces: a slice of rows of an HF tensor (HF's fused tensors hold several of our
leaves; for the ``"experts"`` transform, of each expert's rows), or, for `stacked` leaves,
one HF tensor per index of our leading axis (experts saved one by one). Loading and saving
walk the model with those maps and stream tensors one at a time; a tensor of the file that
no leaf claims, and a config key the adapter does not understand, are errors naming it.
"""

from __future__ import annotations

import dataclasses
import json
import math
import re
from collections import defaultdict
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

import jax
import numpy as np

from hybrid_seq.architecture import HybridConfig
from hybrid_seq.blocks.hf_names import HFTensor
from hybrid_seq.io.assemble import ShardingSpec, build_model, check_structure, shapes_of, skeleton
from hybrid_seq.io.flax_layout import leaf_path
from hybrid_seq.io.json_file import read_json
from hybrid_seq.io.safetensors_file import SafetensorsReader, write_safetensors
from hybrid_seq.model import Model

WEIGHTS = "model.safetensors"
#: Keys every HF config.json may carry that do not change the forward pass.
GENERIC_KEYS = frozenset({
    "architectures", "model_type", "transformers_version", "torch_dtype", "dtype", "use_cache",
    "bos_token_id", "eos_token_id", "pad_token_id", "initializer_range", "output_attentions",
    "output_hidden_states", "return_dict", "chunk_size_feed_forward", "is_encoder_decoder", "is_decoder",
    "add_cross_attention", "tie_encoder_decoder", "tokenizer_class", "prefix", "sep_token_id",
    "decoder_start_token_id", "task_specific_params", "problem_type", "id2label", "label2id",
    "_name_or_path", "_attn_implementation_autoset", "num_logits_to_keep", "auto_map",
})


@dataclasses.dataclass(frozen=True)
class TensorMap:
    """Our leaf `path` and the HF tensors it is made of (see the module docstring)."""

    path: tuple[str | int, ...]
    pieces: tuple[HFTensor, ...]
    stacked: bool = False


class Renames:
    """Tensor names as regex rules (pattern, replacement), for spellings that carry layer
    indices: `get(name, default)` is the first matching rule's rewrite of `name`, else `default`."""

    def __init__(self, *rules: tuple[str, str]):
        self.rules = tuple((re.compile(pattern), replacement) for pattern, replacement in rules)

    def get(self, name: str, default: str | None = None) -> str | None:
        for pattern, replacement in self.rules:
            renamed, count = pattern.subn(replacement, name)
            if count:
                return renamed
        return default


@runtime_checkable
class Family(Protocol):
    """One HF model type: its config and its tensor names."""

    model_type: str
    #: Config keys that do not change the forward pass (init-only, generation, ...), besides `GENERIC_KEYS`.
    ignored_keys: frozenset[str]
    #: Other spellings of tensor names found in files (older, or HF's in-memory ones) -> the name `tensor_maps` uses.
    aliases: Mapping[str, str] | Renames

    def read_config(self, config: ConfigReader) -> HybridConfig: ...

    def write_config(self, config: HybridConfig, dtype: Any) -> dict[str, Any]: ...

    def tensor_maps(self, model: Model) -> list[TensorMap]: ...

    def optional_tensors(self, config: HybridConfig) -> frozenset[str]: ...


class ConfigReader:
    """A config.json's keys, read one by one with errors naming the file and the key; `finish`
    rejects the keys nobody read (a setting we would otherwise silently ignore)."""

    def __init__(self, data: Mapping[str, Any], file: Path):
        self.data, self.file, self.used = dict(data), file, set()

    def has(self, key: str) -> bool:
        return key in self.data

    def get(self, key: str, default: Any = None) -> Any:
        self.used.add(key)
        return self.data.get(key, default)

    def require(self, key: str) -> Any:
        if key not in self.data:
            raise ValueError(f"{self.file} is missing the key {key!r}")
        return self.get(key)

    def integer(self, key: str, default: int | None = None) -> int:
        value = self.require(key) if default is None and key not in self.data else self.get(key, default)
        if isinstance(value, bool) or not isinstance(value, int):
            raise ValueError(f"{self.file}: {key}={value!r} is not an integer")
        return value

    def number(self, key: str, default: int | float | None = None) -> float:
        value = self.require(key) if default is None and key not in self.data else self.get(key, default)
        value = _float(value)
        if value is None:
            raise ValueError(f"{self.file}: {key}={self.data.get(key)!r} is not a number")
        return value

    def optional_integer(self, key: str) -> int | None:
        """An integer, or None when the key is absent or null."""
        return None if self.get(key) is None else self.integer(key)

    def numbers(self, key: str, default: Iterable[float], length: int) -> tuple[float, ...]:
        """A list of `length` numbers (null: `default`)."""
        value = self.get(key)
        value = tuple(default) if value is None else value
        if not isinstance(value, (list, tuple)) or len(value) != length or None in map(_float, value):
            raise ValueError(f"{self.file}: {key}={value!r} is not a list of {length} numbers")
        return tuple(_float(v) for v in value)

    def renamed(self, key: str, *older: str) -> None:
        """Take `key` from an older spelling when only that is present (HF renames them on load)."""
        for old in older:
            if old not in self.data:
                continue
            self.used.add(old)
            if key in self.data and self.data[key] != self.data[old]:
                raise ValueError(
                    f"{self.file}: {old}={self.data[old]!r} (the older name of {key}) disagrees with {key}={self.data[key]!r}"
                )
            self.data[key] = self.data[old]

    def rope_theta(self) -> float:
        """The base of HF's default RoPE: `rope_parameters.rope_theta`, or the older top-level `rope_theta`."""
        parameters = self.get("rope_parameters")
        if parameters is None:
            return self.number("rope_theta", 10000.0)
        if not isinstance(parameters, Mapping) or set(parameters) - {"rope_type", "rope_theta"}:
            raise ValueError(f"{self.file}: rope_parameters={parameters!r}: hybrid_seq handles rope_type and rope_theta only")
        if parameters.get("rope_type", "default") != "default":
            raise ValueError(f"{self.file}: rope_parameters.rope_type={parameters['rope_type']!r} is not supported (only 'default')")
        self.used.add("rope_theta")
        if "rope_theta" in self.data and _float(self.data["rope_theta"]) != _float(parameters.get("rope_theta", 10000.0)):
            raise ValueError(f"{self.file}: rope_theta disagrees with rope_parameters.rope_theta")
        theta = _float(parameters.get("rope_theta", 10000.0))
        if theta is None:
            raise ValueError(f"{self.file}: rope_parameters.rope_theta={parameters['rope_theta']!r} is not a number")
        return theta

    def flag(self, key: str, default: bool) -> bool:
        value = self.get(key, default)
        if not isinstance(value, bool):
            raise ValueError(f"{self.file}: {key}={value!r} is not true or false")
        return value

    def choice(self, key: str, default: Any, supported: Iterable[Any]) -> Any:
        value = self.get(key, default)
        supported = tuple(supported)
        if value not in supported:
            raise ValueError(f"{self.file}: {key}={value!r} is not supported (hybrid_seq handles {list(supported)})")
        return value

    def limit(self, key: str) -> tuple[float, float | None]:
        """A `time_step_limit` pair; HF writes infinity as `{"__float__": "Infinity"}`."""
        value = self.get(key, (0.0, math.inf))
        if not isinstance(value, (list, tuple)) or len(value) != 2 or None in map(_float, value):
            raise ValueError(f"{self.file}: {key}={value!r} is not a pair of numbers")
        low, high = (_float(v) for v in value)
        return low, None if math.isinf(high) else high

    def finish(self, ignored: Iterable[str]) -> None:
        unknown = sorted(set(self.data) - self.used - GENERIC_KEYS - set(ignored))
        if unknown:
            raise ValueError(
                f"{self.file}: keys hybrid_seq does not understand for model_type {self.data.get('model_type')!r}: "
                f"{unknown}; refusing to load rather than ignore them"
            )


def _float(value: Any) -> float | None:
    if isinstance(value, dict) and set(value) == {"__float__"}:
        value = value["__float__"]
    if isinstance(value, str) and value in ("Infinity", "inf", "-Infinity", "-inf", "NaN"):
        return float(value.replace("Infinity", "inf"))
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    return float(value)


def json_float(value: float | None) -> Any:
    """A float as HF writes it into config.json (infinity tagged as `{"__float__": "Infinity"}`)."""
    return {"__float__": "Infinity"} if value is None or math.isinf(value) else value


def prefixed(prefix: str, path: tuple[str | int, ...], names: Mapping[tuple[str, ...], HFTensor]) -> list[TensorMap]:
    """A module's own HF names placed under `prefix`, for the module at our leaf `path`."""
    return [
        TensorMap((*path, *ours), (piece._replace(name=f"{prefix}{piece.name}"),))
        for ours, piece in names.items()
    ]


def output_maps(model: Model, final_norm: str) -> list[TensorMap]:
    """The final norm (HF name `final_norm`) and, unless tied to the embedding, the head (`lm_head.weight`, transposed)."""
    maps = [TensorMap(("final_norm", "scale"), (HFTensor(final_norm),))]
    if model.head is not None:
        maps.append(TensorMap(("head", "weight"), (HFTensor("lm_head.weight", None, "T"),)))
    return maps


def tied_head_optional(config: HybridConfig) -> frozenset[str]:
    """`lm_head.weight` may be absent from a checkpoint whose embedding is tied (and is then unused)."""
    return frozenset({"lm_head.weight"}) if config.tie_embeddings else frozenset()


def layer_pattern(letters: Iterable[str]) -> dict[str, Any]:
    """The shortest unit whose cycle gives `letters` (one per layer), as a `HybridConfig` pattern."""
    letters = "".join(letters)
    unit = next(n for n in range(1, len(letters) + 1) if all(c == letters[i % n] for i, c in enumerate(letters)))
    return {"unit": letters[:unit], "num_layers": len(letters)}


# Our layout from HF's, HF's from ours, and HF's shape from ours, per transform. "experts":
# HF's `[E, out, in]` stack of expert matrices to our `[E, in, out]`; its rows are each expert's.
_FROM_HF: dict[str, Callable[[np.ndarray], np.ndarray]] = {
    "none": lambda v: v, "T": lambda v: v.T, "conv": lambda v: v[:, 0, :].T, "experts": lambda v: v.transpose(0, 2, 1),
}
_TO_HF: dict[str, Callable[[np.ndarray], np.ndarray]] = {
    "none": lambda v: v, "T": lambda v: v.T, "conv": lambda v: v.T[:, None, :], "experts": lambda v: v.transpose(0, 2, 1),
}
_HF_SHAPE: dict[str, Callable[[tuple[int, ...]], tuple[int, ...]]] = {
    "none": lambda s: s, "T": lambda s: s[::-1], "conv": lambda s: (s[1], 1, s[0]), "experts": lambda s: (s[0], s[2], s[1]),
}
#: The HF axis a piece's `rows` count along (0 unless listed).
_ROW_AXIS = {"experts": 1}


def read_family_config(directory: Path, family: Family) -> HybridConfig:
    """The `HybridConfig` of an HF directory's config.json, read strictly (see `ConfigReader`)."""
    config_file = directory / "config.json"
    reader = ConfigReader(read_json(config_file), config_file)
    config = family.read_config(reader)
    reader.finish(family.ignored_keys)
    return config


def load_family(
    directory: Path, family: Family, *, dtype: Any, sharding: ShardingSpec, overrides: dict[str, Any]
) -> Model:
    """The model of an HF directory of `family` (single or sharded safetensors)."""
    config = read_family_config(directory, family)
    if overrides:
        config = config.replace(**overrides)
    tensors = SafetensorsReader.from_directory(directory, WEIGHTS)
    label = f"{directory} (huggingface {family.model_type})"
    first = next(iter(tensors.dtypes.values()))
    abstract = skeleton(config, first if dtype is None else dtype)
    maps = {m.path: m for m in family.tensor_maps(abstract)}
    in_file = {family.aliases.get(name, name): name for name in tensors.shapes}
    claimed = {piece.name for m in maps.values() for piece in m.pieces}
    unused = sorted(in_file[n] for n in set(in_file) - claimed - family.optional_tensors(config))
    if unused:
        raise ValueError(f"{label}: tensors with no place in the model: {', '.join(unused)}")

    def read(piece: HFTensor) -> np.ndarray:
        if piece.name not in in_file:
            raise ValueError(f"{tensors.label}: tensor {piece.name} is missing")
        value = tensors[in_file[piece.name]]
        if piece.rows is not None:
            axis = _ROW_AXIS.get(piece.transform, 0)
            if value.shape[axis] < piece.rows[1]:
                raise ValueError(
                    f"{tensors.file_of(piece.name)}: tensor {piece.name} has {value.shape[axis]} rows, "
                    f"the config needs {piece.rows[1]}"
                )
            value = value[(slice(None),) * axis + (slice(*piece.rows),)]
        return _FROM_HF[piece.transform](value)

    def fetch(path: tuple[str | int, ...]) -> np.ndarray:
        tensor_map = maps[path]
        values = [read(piece) for piece in tensor_map.pieces]
        return np.stack(values) if tensor_map.stacked else values[0]

    def name(path: tuple[str | int, ...]) -> str:
        return ", ".join(piece.name for piece in maps[path].pieces)

    return build_model(abstract, fetch, source=label, name=name, sharding=sharding)


def write_family(
    model: Model, directory: Path, family: Family, leaf: Callable[[tuple[str | int, ...]], np.ndarray], dtype: Any
) -> None:
    """Write `model` (or its skeleton) as an HF checkpoint of `family`, tensor by tensor."""
    header = family.write_config(model.config, dtype)
    check_structure(model, source="the model to save")
    shapes = shapes_of(model)
    parts: dict[str, list[tuple[int, tuple[str | int, ...], int | None, str]]] = defaultdict(list)
    for tensor_map in family.tensor_maps(model):
        for index, piece in enumerate(tensor_map.pieces):
            start = 0 if piece.rows is None else piece.rows[0]
            parts[piece.name].append((start, tensor_map.path, index if tensor_map.stacked else None, piece.transform))

    def piece_shape(path: tuple[str | int, ...], index: int | None, transform: str) -> tuple[int, ...]:
        shape = shapes[path] if index is None else shapes[path][1:]
        return tuple(_HF_SHAPE[transform](tuple(shape)))

    entries = []
    for name in sorted(parts):
        pieces = sorted(parts[name], key=lambda p: p[0])
        part_shapes = [piece_shape(path, index, transform) for _, path, index, transform in pieces]
        axis = _ROW_AXIS.get(pieces[0][3], 0)
        shape = list(part_shapes[0])
        shape[axis] = sum(s[axis] for s in part_shapes)
        entries.append((name, tuple(shape), dtype))

    def produce(name: str) -> np.ndarray:
        values = []
        pieces = sorted(parts[name], key=lambda p: p[0])
        for _, path, index, transform in pieces:
            value = np.asarray(leaf(path))
            values.append(_TO_HF[transform](value if index is None else value[index]))
        axis = _ROW_AXIS.get(pieces[0][3], 0)
        return np.concatenate(values, axis=axis).astype(dtype) if len(values) > 1 else values[0].astype(dtype)

    write_safetensors(directory / WEIGHTS, entries, produce, metadata={"format": "pt"})
    (directory / "config.json").write_text(json.dumps(header, indent=2, sort_keys=True) + "\n")


def save_family(model: Model, directory: Path, family: Family) -> None:
    """Write `model` into the (existing, empty) `directory` as an HF checkpoint of `family`."""
    values = {leaf_path(p): v for p, v in jax.tree_util.tree_flatten_with_path(model)[0]}
    write_family(model, directory, family, lambda path: np.asarray(values[path]), model.dtype)


def dtype_name(dtype: Any) -> str:
    """HF's `torch_dtype` string of a numpy/JAX dtype."""
    return {"float32": "float32", "bfloat16": "bfloat16", "float16": "float16"}[np.dtype(dtype).name]


__all__ = [
    "ConfigReader", "Family", "Renames", "TensorMap", "dtype_name", "json_float", "layer_pattern", "load_family",
    "prefixed", "save_family", "write_family",
]
