"""What a checkpoint holds, without loading its weights: format, matching preset, dtype, sizes."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import jax
import numpy as np

from hybrid_seq.config import ModelConfig
from hybrid_seq.io.assemble import leaf_shapes, matching_preset
from hybrid_seq.io.formats import detect
from hybrid_seq.io.loading import layout_source
from hybrid_seq.io.native import open_native
from hybrid_seq.pattern import parse_layer_pattern, parse_pattern


def describe(path: str | Path) -> dict[str, Any]:
    """A summary of the checkpoint at `path` (reads only metadata and shapes).

    Keys: path, format, preset (the preset with the same architecture, or None), dtype,
    architecture (the config fields the shapes or the config file determine), parameters
    (total / embedding / non_embedding, as stored), tensors (number of stored arrays).
    """
    path = Path(path)
    format = detect(path)
    if format == "hybrid_seq":
        config, reader, _ = open_native(path)
        architecture = config.to_dict()
        dtype = str(reader.dtypes.get("embedder.weight", "unknown"))
        sizes = [int(np.prod(shape)) for shape in leaf_shapes(config).values()]
        tensors = len(reader.shapes)
    else:
        source = layout_source(path, format)
        architecture = {**source.inferred(), **source.settings}
        config = ModelConfig(**architecture)
        dtype = str(source.dtype)
        leaves = jax.tree_util.tree_leaves(source.shapes)
        sizes = [int(np.prod(leaf.shape)) for leaf in leaves]
        tensors = len(leaves)
    embedding = config.vocab_size * config.width
    return {
        "path": str(path),
        "format": format,
        "preset": matching_preset(config),
        "dtype": dtype,
        "architecture": architecture,
        "parameters": {"total": sum(sizes), "embedding": embedding, "non_embedding": sum(sizes) - embedding},
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
        ("parameters", f"{counts['total']:,} ({counts['embedding']:,} embedding, "
                       f"{counts['non_embedding']:,} non-embedding)"),
        ("tensors", str(info["tensors"])),
        *((name, str(value)) for name, value in sorted(arch.items())),
    ]
    width = max(len(name) for name, _ in rows)
    return "\n".join(f"{name.ljust(width)}  {value}" for name, value in rows)
