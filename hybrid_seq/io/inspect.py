"""What a checkpoint holds, without loading its weights: format, matching preset, dtype, sizes."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import jax
import numpy as np

from hybrid_seq.config import ModelConfig
from hybrid_seq.io.assemble import matching_preset
from hybrid_seq.io.formats import detect
from hybrid_seq.io.hf import FAMILIES
from hybrid_seq.io.hf.common import WEIGHTS, read_family_config
from hybrid_seq.io.json_file import read_json
from hybrid_seq.io.loading import layout_source
from hybrid_seq.io.native import parse_config, parse_quantization, read_document
from hybrid_seq.io.safetensors_file import SafetensorsReader
from hybrid_seq.params import ParamCount, param_count
from hybrid_seq.pattern import parse_layer_pattern, parse_pattern


def describe(path: str | Path) -> dict[str, Any]:
    """A summary of the checkpoint at `path` (reads only metadata and shapes).

    Keys: path, format, preset (the preset with the same architecture, or None), dtype (of
    the float weights), quantization (None, or the int8 scheme of our quantized
    checkpoints), architecture (the config fields the shapes or the config file determine),
    parameters (total / embedding / non_embedding, of the model: a quantized weight counts
    once, its scales not at all), tensors (number of stored arrays).
    """
    path = Path(path)
    format = detect(path)
    quantization = None
    if format == "hybrid_seq":
        data, reader, source = read_document(path)
        config, quantization = parse_config(data, source), parse_quantization(data, source)
        dtype = str(reader.dtypes.get("embedder.weight" if quantization is None else "embedder.scale", "unknown"))
        counts, tensors = param_count(config), len(reader.shapes)
    elif format == "huggingface" and read_json(path / "config.json").get("model_type") in FAMILIES:
        config = read_family_config(path, FAMILIES[read_json(path / "config.json")["model_type"]])
        stored = SafetensorsReader.from_directory(path, WEIGHTS)
        dtype, counts, tensors = str(next(iter(stored.dtypes.values()))), param_count(config), len(stored.shapes)
    else:
        source = layout_source(path, format)
        config = ModelConfig(**{**source.inferred(), **source.settings})
        dtype = str(source.dtype)
        leaves = jax.tree_util.tree_leaves(source.shapes)
        total = sum(int(np.prod(leaf.shape)) for leaf in leaves)
        embedding = config.vocab_size * config.width
        counts, tensors = ParamCount(total, embedding, total - embedding), len(leaves)
    return {
        "path": str(path),
        "format": format,
        "preset": matching_preset(config),
        "dtype": dtype,
        "quantization": quantization,
        "architecture": config.to_dict(),
        "parameters": {"total": counts.total, "embedding": counts.embedding, "non_embedding": counts.non_embedding},
        "tensors": tensors,
    }


def format_description(info: dict[str, Any]) -> str:
    """`describe`'s dict as aligned text lines."""
    arch = dict(info["architecture"])
    if "block_pattern" in arch:
        arch["block_pattern"] = str(parse_pattern(arch["block_pattern"]))
    else:
        arch["pattern"] = str(parse_layer_pattern(arch["pattern"]))
    counts = info["parameters"]
    rows = [
        ("path", info["path"]),
        ("format", info["format"]),
        ("preset", info["preset"] or "(none matches)"),
        ("dtype", info["dtype"]),
        ("quantization", info["quantization"] or "none (float weights)"),
        ("parameters", f"{counts['total']:,} ({counts['embedding']:,} embedding, "
                       f"{counts['non_embedding']:,} non-embedding)"),
        ("tensors", str(info["tensors"])),
        *((name, str(value)) for name, value in sorted(arch.items())),
    ]
    width = max(len(name) for name, _ in rows)
    return "\n".join(f"{name.ljust(width)}  {value}" for name, value in rows)
