"""The reference PyTorch state dict (Kaggle ``{variant}.pt``): Flax paths joined by dots, kernels transposed.

Rule (reference-facts §7.2): the key is the Flax path joined with ``.``, except that a
Dense ``kernel [in, out]`` becomes ``weight [out, in]``. Every other tensor keeps its name,
layout and shape. Reading needs no torch (`torch_pickle`); writing uses torch.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import jax
import numpy as np

from hybrid_seq.io.flax import to_flax_params
from hybrid_seq.io.flax_layout import FlaxLeaf, FlaxPath
from hybrid_seq.io.source import LayoutSource, insert, shape_struct
from hybrid_seq.io.torch_pickle import TorchStateDict
from hybrid_seq.model import Model

_PREFIX = "params."


def torch_key(path: FlaxPath) -> tuple[str, bool]:
    """The state-dict key of Flax leaf `path`, and whether the tensor is stored transposed."""
    if path[-1] == "kernel":
        return ".".join((*path[:-1], "weight")), True
    return ".".join(path), False


def flax_path(key: str) -> tuple[FlaxPath, bool]:
    """Inverse of `torch_key`: the Flax path of a state-dict key, and whether it is transposed."""
    parts = key.split(".")
    if parts[0] == "blocks" and len(parts) > 1:
        parts = [f"blocks.{parts[1]}", *parts[2:]]
    if parts[-1] == "weight":
        return (*parts[:-1], "kernel"), True
    return tuple(parts), False


def pytorch_source(path: str | Path) -> LayoutSource:
    """A `.pt` state dict (keys optionally prefixed ``params.``) as a `LayoutSource`."""
    state = TorchStateDict(path)
    prefix = _PREFIX if state.tensors and all(k.startswith(_PREFIX) for k in state.tensors) else ""
    shapes: dict[str, Any] = {}
    for key, ref in state.tensors.items():
        where, transposed = flax_path(key[len(prefix):])
        shape = ref.shape[::-1] if transposed else ref.shape
        insert(shapes, where, shape_struct(shape, ref.dtype))

    def name(where: FlaxLeaf) -> str:
        return prefix + torch_key(where.path)[0]

    def fetch(where: FlaxLeaf) -> np.ndarray:
        key, transposed = torch_key(where.path)
        if prefix + key not in state:
            raise ValueError(f"{state.path}: tensor {prefix + key} is missing")
        value = state[prefix + key]
        if transposed:
            if value.ndim != 2:
                raise ValueError(f"{state.path}: tensor {prefix + key} should be 2-D, has shape {value.shape}")
            value = value.T
        return value if where.index is None else value[where.index]

    return LayoutSource(str(path), "pytorch", shapes, fetch, name)


def to_state_dict(model: Model) -> dict[str, np.ndarray]:
    """The reference PyTorch state dict of `model` as numpy arrays (torch layout)."""
    flat = jax.tree_util.tree_flatten_with_path(to_flax_params(model))[0]
    out: dict[str, np.ndarray] = {}
    for key_path, value in flat:
        key, transposed = torch_key(tuple(k.key for k in key_path))
        value = np.asarray(value)
        out[key] = np.ascontiguousarray(value.T if transposed else value)
    return out


def save_pytorch(model: Model, file: Path) -> None:
    """Write `model` as a reference PyTorch `.pt` state dict at `file` (needs torch)."""
    try:
        import torch
    except ImportError:
        raise ImportError("writing the PyTorch .pt format needs torch: pip install 'hybrid_seq[hf]'") from None
    tensors = {}
    for key, value in to_state_dict(model).items():
        if value.dtype == np.dtype("bfloat16"):
            tensors[key] = torch.from_numpy(value.view(np.uint16).copy()).view(torch.bfloat16)
        else:
            tensors[key] = torch.from_numpy(value.copy())
    torch.save(tensors, file)
