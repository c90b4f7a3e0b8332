"""Which checkpoint format a path holds, from what is on disk."""

from __future__ import annotations

import zipfile
from pathlib import Path

from hybrid_seq.io.hf import FAMILIES
from hybrid_seq.io.huggingface import MODEL_TYPE
from hybrid_seq.io.json_file import read_json
from hybrid_seq.io.native import CONFIG_KEY, is_native_config
from hybrid_seq.io.orbax import MARKERS
from hybrid_seq.io.safetensors_file import read_header, starts_like_safetensors

#: Format names accepted by `load` (detected) and `save` (chosen).
FORMATS = ("hybrid_seq", "huggingface", "flax", "pytorch")


def detect(path: str | Path) -> str:
    """The format of the checkpoint at `path`: one of `FORMATS`.

    A directory with `config.json` is ours (it names a `block_pattern`) or HuggingFace's
    (`model_type` "recurrent_gemma"); a directory with orbax metadata is the reference Flax
    checkpoint; a zip file is a `torch.save`d state dict; a safetensors file is ours if its
    metadata holds our config, and otherwise an error saying that its directory is needed.
    """
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"{path}: no such file or directory")
    if path.is_dir():
        config = path / "config.json"
        if config.exists():
            data = read_json(config)
            if data.get("model_type") == MODEL_TYPE or data.get("model_type") in FAMILIES:
                return "huggingface"
            if is_native_config(data):
                return "hybrid_seq"
            raise ValueError(
                f"{config}: neither a hybrid_seq config nor a HuggingFace config of a model type hybrid_seq reads "
                f"({', '.join([MODEL_TYPE, *FAMILIES])}); model_type is {data.get('model_type')!r}"
            )
        if any((path / marker).exists() for marker in MARKERS):
            return "flax"
        raise ValueError(
            f"{path}: unknown checkpoint format (no config.json and no orbax metadata such as {', '.join(MARKERS)})"
        )
    if zipfile.is_zipfile(path):
        return "pytorch"
    with open(path, "rb") as file:
        magic = file.read(9)
    if magic[:2] == b"PK":
        raise ValueError(f"{path}: looks like a torch.save zip archive but is truncated or corrupt")
    if path.suffix == ".safetensors" or starts_like_safetensors(magic):
        return _bare_safetensors(path)
    raise ValueError(f"{path}: unknown checkpoint format (a file, but neither a torch.save zip archive nor safetensors)")


def _bare_safetensors(path: Path) -> str:
    """"hybrid_seq" for one of our safetensors files that carries its config; otherwise an error saying what it is."""
    header = read_header(path)
    if CONFIG_KEY in header.metadata:
        return "hybrid_seq"
    names = set(header.shapes)
    if any(name.startswith("model.") for name in names):
        found = "HuggingFace tensor names"
    elif "embedder.weight" in names:
        found = f"hybrid_seq tensor names but no {CONFIG_KEY} metadata (written before the config was stored there)"
    else:
        found = f"{len(names)} tensors named neither as HuggingFace's nor as ours"
    where = "its directory" if (path.parent / "config.json").exists() else "a directory holding it and its config.json"
    raise ValueError(f"{path}: a safetensors file with {found}; pass {where}")
