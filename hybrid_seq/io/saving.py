"""`save(model, path, format=...)`: write a Model in any supported format, atomically."""

from __future__ import annotations

from pathlib import Path

from hybrid_seq.config import ModelConfig
from hybrid_seq.io.assemble import check_structure
from hybrid_seq.io.atomic import atomic_path
from hybrid_seq.io.formats import FORMATS
from hybrid_seq.io.hf import family_for, save_family
from hybrid_seq.io.huggingface import hf_config, save_huggingface
from hybrid_seq.io.native import save_native
from hybrid_seq.io.orbax import save_orbax
from hybrid_seq.io.pytorch import save_pytorch
from hybrid_seq.model import Model


def save(model: Model, path: str | Path, *, format: str = "hybrid_seq", overwrite: bool = False) -> Path:
    """Write `model` at `path` in `format` (one of `FORMATS`) and return the path.

    * ``hybrid_seq``: directory with `config.json` + `model.safetensors`; loads back exactly.
    * ``huggingface``: directory loadable by transformers' `from_pretrained`: a `ModelConfig`
      model as `RecurrentGemmaForCausalLM` (window written as ours + 1; only R/A patterns
      with embedding scale and soft cap), a `HybridConfig` model as the first family of
      `hybrid_seq.io.hf` that can express it (an error lists why each cannot).
    * ``flax``: the reference orbax checkpoint of the bare parameter tree (needs orbax).
    * ``pytorch``: the reference `.pt` state dict file (needs torch).

    The checkpoint is built in a hidden sibling and renamed into place when complete, so
    on any failure nothing is left at `path`. An existing `path` is an error unless
    `overwrite`. Checkpoints always hold one block per layer (see `Model.unstack_layers`).
    """
    if format not in FORMATS:
        raise ValueError(f"unknown format {format!r}; expected one of {', '.join(FORMATS)}")
    family = None
    model = model.unstack_layers()
    if format in ("flax", "pytorch"):
        # The reference formats hold exactly what a Griffin config builds (the other writers check this themselves).
        check_structure(model, source="the model to save")
    if format == "huggingface":
        if isinstance(model.config, ModelConfig):
            hf_config(model.config, model.dtype)
        else:
            family = family_for(model.config, model.dtype)
    path = Path(path)
    with atomic_path(path, overwrite=overwrite) as temporary:
        if format == "flax":
            save_orbax(model, temporary)
        elif format == "pytorch":
            save_pytorch(model, temporary)
        else:
            temporary.mkdir()
            if family is not None:
                save_family(model, temporary, family)
            else:
                (save_native if format == "hybrid_seq" else save_huggingface)(model, temporary)
    return path
