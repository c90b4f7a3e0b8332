"""HuggingFace `RecurrentGemmaForCausalLM` checkpoints: `config.json` + (sharded) safetensors.

The tensor names are a renaming of the Flax paths (one table, reference-facts §7.3), with
three transforms: none, a 2-D transpose (`T`), and the conv kernel `[4, L] <-> [L, 1, 4]`.
The MLP's shared `ffw_up` is split into `gate_proj` and `up_proj`.

Differences handled here (reference-facts §9.2):
  * HF's `attention_window_size` counts the keys a query sees (itself included); ours, like
    the reference, counts the tokens before it, so ours = HF's - 1 on load and + 1 on save.
  * HF always scales embeddings by sqrt(width) and always soft-caps the logits; a model
    without either cannot be saved in this format.
  * HF's `intermediate_size` is twice our `mlp_expanded_width`.
  * HF has no document masking in attention or the conv: packed sequences diverge after the
    first document boundary.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import jax
import numpy as np

from hybrid_seq.blocks import GatedMLP, LocalAttention, RecurrentBlock
from hybrid_seq.config import ModelConfig
from hybrid_seq.io.assemble import check_structure, shapes_of
from hybrid_seq.io.flax_layout import FlaxLeaf, flax_leaf, leaf_path
from hybrid_seq.io.json_file import read_json
from hybrid_seq.io.safetensors_file import SafetensorsReader, write_safetensors
from hybrid_seq.io.source import LayoutSource, insert, shape_struct
from hybrid_seq.model import Model
from hybrid_seq.pattern import parse_pattern

MODEL_TYPE = "recurrent_gemma"
_WEIGHTS = "model.safetensors"

#: The kinds a RecurrentGemma HF checkpoint holds; each names its own tensors (`reference_names`).
_KINDS = (RecurrentBlock, LocalAttention, GatedMLP)


def _layer_names() -> dict[tuple[tuple[str, ...], tuple[int, ...] | None], tuple[str, str]]:
    """(Flax path under the layer, slice index) -> (HF name under `model.layers.{i}.`, transform)."""
    table = {
        ((norm, "scale"), None): (f"{norm}.weight", "none") for norm in ("temporal_pre_norm", "channel_pre_norm")
    }
    for kind in _KINDS:
        names = kind.reference_names
        for leaf in names.leaves.values():
            table[((names.flax_block, *leaf.flax), leaf.index)] = (f"{names.hf_block}.{leaf.hf}", leaf.transform)
    return table


_LAYER = _layer_names()
_TOP = {
    (("embedder", "input_embedding"), None): ("model.embed_tokens.weight", "none"),
    (("final_norm", "scale"), None): ("model.final_norm.weight", "none"),
}
_TIED = "lm_head.weight"


def hf_name(where: FlaxLeaf) -> tuple[str, str]:
    """The HF tensor holding Flax leaf `where`, and its transform."""
    if where.path[0].startswith("blocks."):
        name, transform = _LAYER[(where.path[1:], where.index)]
        return f"model.layers.{where.path[0][len('blocks.'):]}.{name}", transform
    return _TOP[(where.path, where.index)]


def _from_hf(value: np.ndarray, transform: str) -> np.ndarray:
    if transform == "T":
        return value.T
    if transform == "conv":
        return value[:, 0, :].T
    return value


def _to_hf(value: np.ndarray, transform: str) -> np.ndarray:
    if transform == "T":
        return value.T
    if transform == "conv":
        return value.T[:, None, :]
    return value


def _hf_shape(shape: tuple[int, ...], transform: str) -> tuple[int, ...]:
    if transform == "T":
        return shape[::-1]
    if transform == "conv":
        return (shape[1], 1, shape[0])
    return shape


#: The rank of the HF tensors each transform applies to (none: any).
_RANK = {"T": 2, "conv": 3, "none": None}


def _flax_shape(shape: tuple[int, ...], transform: str) -> tuple[int, ...]:
    if transform == "T":
        return shape[::-1]
    if transform == "conv":
        return (shape[2], shape[0])
    return shape


_LAYER_BY_NAME = {name: (path, index, transform) for (path, index), (name, transform) in _LAYER.items()}
_TOP_BY_NAME = {name: (path, index, transform) for (path, index), (name, transform) in _TOP.items()}


def _flax_location(name: str) -> tuple[tuple[str, ...], tuple[int, ...] | None, str] | None:
    if name in _TOP_BY_NAME:
        return _TOP_BY_NAME[name]
    parts = name.split(".", 3)
    if len(parts) == 4 and parts[:2] == ["model", "layers"] and parts[2].isdigit() and parts[3] in _LAYER_BY_NAME:
        path, index, transform = _LAYER_BY_NAME[parts[3]]
        return (f"blocks.{parts[2]}", *path), index, transform
    return None


def _number(hf: dict[str, Any], key: str, default: int | float, file: Path) -> float:
    """`hf[key]` (or `default` when absent) as a number; any other JSON value is an error naming the key."""
    value = hf.get(key, default)
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ValueError(f"{file}: {key}={value!r} is not a number")
    return float(value)


def _rope(hf: dict[str, Any], file: Path) -> tuple[float, float]:
    rope = hf.get("rope_parameters") or {}
    if not isinstance(rope, dict):
        raise ValueError(f"{file}: rope_parameters={rope!r} is not an object")
    theta = _number(rope, "rope_theta", _number(hf, "rope_theta", 10000.0, file), file)
    factor = _number(rope, "partial_rotary_factor", _number(hf, "partial_rotary_factor", 0.5, file), file)
    return theta, factor


def _check_expressible(hf: dict[str, Any], file: Path) -> None:
    """Raise if config.json asks for something our model cannot do."""
    theta, factor = _rope(hf, file)
    wanted = {
        "num_key_value_heads": (hf.get("num_key_value_heads"), 1),
        "hidden_activation": (hf.get("hidden_activation", "gelu_pytorch_tanh"), "gelu_pytorch_tanh"),
        "rope_theta": (theta, 10000.0),
        "partial_rotary_factor": (factor, 0.5),
        "rms_norm_eps": (_number(hf, "rms_norm_eps", 1e-6, file), 1e-6),
        "attention_bias": (bool(hf.get("attention_bias", False)), False),
        "tie_word_embeddings": (bool(hf.get("tie_word_embeddings", True)), True),
    }
    for key, (value, needed) in wanted.items():
        if value != needed:
            raise ValueError(f"{file}: {key}={value!r} is not supported (hybrid_seq models need {needed!r})")


#: Keys of an HF config.json that describe the architecture; transformers always writes them.
_REQUIRED = ("vocab_size", "hidden_size", "intermediate_size", "num_hidden_layers", "num_attention_heads",
             "num_key_value_heads", "block_types")


def _check_complete(hf: dict[str, Any], file: Path) -> None:
    """Raise if config.json lacks an architecture key, or `block_types` is not a list of kind names."""
    for key in _REQUIRED:
        if key not in hf:
            raise ValueError(f"{file} is missing the key {key!r}")
    block_types = hf["block_types"]
    if not isinstance(block_types, list) or not block_types or not all(isinstance(k, str) for k in block_types):
        raise ValueError(f"{file}: block_types={block_types!r} is not a non-empty list of block kind names")


def _check_against_weights(hf: dict[str, Any], inferred: dict[str, Any], file: Path) -> None:
    """Raise if config.json contradicts the shapes of the weights."""
    layer_kinds = list(parse_pattern(inferred["block_pattern"]).layer_kinds)
    layers = len(layer_kinds)
    width = inferred["width"]
    claims = {
        "vocab_size": (hf["vocab_size"], inferred["vocab_size"]),
        "hidden_size": (hf["hidden_size"], width),
        "intermediate_size": (hf["intermediate_size"], 2 * inferred["mlp_expanded_width"]),
        "num_hidden_layers": (hf["num_hidden_layers"], layers),
        "num_attention_heads": (hf["num_attention_heads"], inferred["num_heads"]),
        "lru_width": (hf.get("lru_width") or hf["hidden_size"], inferred.get("lru_width") or width),
        "block_types": ((hf["block_types"] * layers)[:layers], layer_kinds),
    }
    for key, (said, found) in claims.items():
        if said != found:
            raise ValueError(f"{file}: config.json says {key}={said!r} but the weights have {found!r}")


_HF_KINDS = ("recurrent", "attention")


def huggingface_source(directory: Path) -> LayoutSource:
    """A HuggingFace RecurrentGemma directory as a `LayoutSource` (window = HF's - 1)."""
    config_file = directory / "config.json"
    hf = read_json(config_file)
    if hf.get("model_type") != MODEL_TYPE:
        raise ValueError(f"{config_file}: model_type is {hf.get('model_type')!r}, expected {MODEL_TYPE!r}")
    _check_complete(hf, config_file)
    _check_expressible(hf, config_file)
    reader = SafetensorsReader.from_directory(directory, _WEIGHTS)
    shapes: dict[str, Any] = {}
    unused = []
    for name, shape in reader.shapes.items():
        location = _flax_location(name)
        if location is None:
            if name != _TIED:
                unused.append(name)
            continue
        path, index, transform = location
        if transform != "none" and len(shape) != _RANK[transform]:
            raise ValueError(f"{reader.file_of(name)}: tensor {name} has shape {shape}, expected {_RANK[transform]}-D")
        shape = _flax_shape(shape, transform)
        if index is not None:
            shape = (2, *([1] * (len(index) - 1)), *shape)
        insert(shapes, path, shape_struct(shape, reader.dtypes[name]))

    def fetch(where: FlaxLeaf) -> np.ndarray:
        name, transform = hf_name(where)
        if name not in reader:
            raise ValueError(f"{reader.label}: tensor {name} is missing")
        return _from_hf(reader[name], transform)

    source = LayoutSource(str(directory), "huggingface", shapes, fetch, lambda w: hf_name(w)[0], unused=tuple(unused))
    _check_against_weights(hf, source.inferred(), config_file)
    source.settings = {
        "attention_window_size": int(_number(hf, "attention_window_size", 2048, config_file)) - 1,
        "logits_soft_cap": _number(hf, "logits_soft_cap", 30.0, config_file),
        "embeddings_scale_by_sqrt_dim": True,
        "conv1d_temporal_width": int(_number(hf, "conv1d_width", 4, config_file)),
    }
    return source


def hf_config(config: Any, dtype: Any) -> dict[str, Any]:
    """The `config.json` of `config` for `RecurrentGemmaForCausalLM` (raises if HF cannot express it)."""
    if not isinstance(config, ModelConfig):
        raise ValueError(
            "the model cannot be saved in the HuggingFace RecurrentGemma format: it is built from a "
            f"{type(config).__name__}, not a Griffin ModelConfig; save it in the hybrid_seq format"
        )
    problems = []
    unit = list(config.block_pattern.unit)
    if any(kind not in _HF_KINDS for kind in unit):
        problems.append(f"block pattern {config.block_pattern} has kinds other than recurrent/attention")
    if not config.embeddings_scale_by_sqrt_dim:
        problems.append("HF always scales embeddings by sqrt(width) (embeddings_scale_by_sqrt_dim=False)")
    if config.logits_soft_cap <= 0:
        problems.append("HF always soft-caps logits (logits_soft_cap=0)")
    if problems:
        raise ValueError("the model cannot be saved in the HuggingFace format: " + "; ".join(problems))
    return {
        "architectures": ["RecurrentGemmaForCausalLM"],
        "model_type": MODEL_TYPE,
        "vocab_size": config.vocab_size,
        "hidden_size": config.width,
        "intermediate_size": 2 * config.mlp_expanded_width,
        "num_hidden_layers": config.num_layers,
        "num_attention_heads": config.num_heads,
        "num_key_value_heads": 1,
        "head_dim": config.head_dim,
        "lru_width": config.resolved_lru_width,
        "attention_window_size": config.attention_window_size + 1,
        "conv1d_width": config.conv1d_temporal_width,
        "logits_soft_cap": config.logits_soft_cap,
        "rms_norm_eps": 1e-6,
        "rope_theta": 10000.0,
        "partial_rotary_factor": 0.5,
        "rope_parameters": {"rope_theta": 10000.0, "partial_rotary_factor": 0.5, "rope_type": "default"},
        "block_types": unit,
        "hidden_activation": "gelu_pytorch_tanh",
        "attention_bias": False,
        "tie_word_embeddings": True,
        "embeddings_scale_by_sqrt_dim": True,
        "final_w_init_variance_scale": config.final_w_init_variance_scale,
        "pad_token_id": 0,
        "eos_token_id": 1,
        "bos_token_id": 2,
        "torch_dtype": {"float32": "float32", "bfloat16": "bfloat16", "float16": "float16"}[np.dtype(dtype).name],
    }


def hf_tensors(model: Model) -> dict[str, tuple[tuple[str | int, ...], str]]:
    """For each HF tensor name of `model` (or its skeleton): our leaf path and the transform from our layout."""
    out = {}
    for path in shapes_of(model):
        name, transform = hf_name(flax_leaf(model, path))
        out[name] = (path, transform)
    return dict(sorted(out.items()))


def write_huggingface(
    model: Model, directory: Path, leaf: Callable[[tuple[str | int, ...]], np.ndarray], dtype: Any
) -> None:
    """Write an HF checkpoint of `model` (or its skeleton) into `directory`, walking it leaf by leaf and
    streaming `leaf(path)` (our layout) tensor by tensor."""
    header = hf_config(model.config, dtype)
    check_structure(model, source="the model to save")
    shapes = shapes_of(model)
    tensors = hf_tensors(model)
    write_safetensors(
        directory / _WEIGHTS,
        [(name, _hf_shape(shapes[path], transform), dtype) for name, (path, transform) in tensors.items()],
        lambda name: _to_hf(leaf(tensors[name][0]), tensors[name][1]),
        metadata={"format": "pt"},
    )
    (directory / "config.json").write_text(json.dumps(header, indent=2, sort_keys=True) + "\n")


def save_huggingface(model: Model, directory: Path) -> None:
    """Write `model` into the (existing, empty) `directory` as a HuggingFace RecurrentGemma checkpoint."""
    values = {leaf_path(p): v for p, v in jax.tree_util.tree_flatten_with_path(model)[0]}
    write_huggingface(model, directory, lambda path: np.asarray(values[path]), model.dtype)


__all__ = ["hf_config", "hf_name", "hf_tensors", "huggingface_source", "save_huggingface", "write_huggingface"]
