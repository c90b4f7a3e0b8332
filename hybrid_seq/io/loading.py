"""`load(path)`: any supported checkpoint into a Model, format detected from the disk."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from hybrid_seq.io.assemble import ShardingSpec
from hybrid_seq.io.formats import detect
from hybrid_seq.io.hf import family_of, load_family
from hybrid_seq.io.huggingface import MODEL_TYPE, huggingface_source
from hybrid_seq.io.json_file import read_json
from hybrid_seq.io.native import load_native
from hybrid_seq.io.orbax import orbax_source
from hybrid_seq.io.pytorch import pytorch_source
from hybrid_seq.io.source import LayoutSource, load_source
from hybrid_seq.model import Model


def layout_source(path: Path, format: str) -> LayoutSource:
    """The reader for a checkpoint in one of the reference-derived formats."""
    readers = {"flax": orbax_source, "pytorch": pytorch_source, "huggingface": huggingface_source}
    return readers[format](path)


def load(
    path: str | Path,
    *,
    preset: str | None = None,
    dtype: Any = None,
    sharding: ShardingSpec = None,
    **config_overrides: Any,
) -> Model:
    """The Model stored at `path`, in any supported format (see `detect`).

    Formats: our own directory (`config.json` + `model.safetensors`), or that bare file
    (its metadata holds the config); a HuggingFace directory (single or sharded
    safetensors) of `RecurrentGemmaForCausalLM` or of a hybrid family in `hybrid_seq.io.hf`
    (`mamba2`, ...: the architecture comes from its config.json, and a key we do not
    understand is an error); the reference
    Flax checkpoint (an orbax directory, bare tree or under `params`); the reference PyTorch
    `.pt` state dict (read without torch).

    The architecture comes from the tensor shapes and must agree with `preset` when given.
    Settings the shapes cannot tell (embedding scale, attention window, soft cap) come from
    `config_overrides`, else the file (ours and HF's `config.json`), else `preset`, else a
    preset with the same shapes; otherwise it is an error naming them. For HuggingFace
    checkpoints the window is HF's `attention_window_size - 1` (HF counts the query itself,
    we count the tokens before it), and the embedding scale and soft cap are always on.

    Args:
        dtype: cast every weight to this dtype (default: the checkpoint's own).
        sharding: a `jax.sharding.Sharding` for every leaf, or a function from the dotted
            leaf path (``"blocks.0.mlp.up.weight"``) to one; each device reads its shard.
        config_overrides: ModelConfig fields.

    Tensors are read and cast one at a time (memory maps or per-tensor reads), so
    loading never holds two full copies of the weights.
    """
    path = Path(path)
    format = detect(path)
    if format == "hybrid_seq":
        return load_native(path, preset=preset, dtype=dtype, sharding=sharding, overrides=config_overrides)
    if format == "huggingface":
        model_type = read_json(path / "config.json").get("model_type")
        if model_type != MODEL_TYPE:
            if preset is not None:
                raise ValueError(f"{path}: preset= applies to Griffin checkpoints, not HF {model_type!r}")
            family = family_of(model_type, source=str(path / "config.json"))
            return load_family(path, family, dtype=dtype, sharding=sharding, overrides=config_overrides)
    source = layout_source(path, format)
    return load_source(source, preset=preset, dtype=dtype, sharding=sharding, overrides=config_overrides)
