"""HuggingFace checkpoints of the hybrid families, one adapter per `model_type`.

RecurrentGemma's HF format lives in `hybrid_seq.io.huggingface` (it derives from the
reference's Flax layout); the families here map onto `HybridConfig` kinds.
"""

from __future__ import annotations

from typing import Any

from hybrid_seq.io.hf.common import Family, load_family, save_family, write_family
from hybrid_seq.io.hf.falcon_h1 import FalconH1Family
from hybrid_seq.io.hf.granite import GraniteFamily
from hybrid_seq.io.hf.mamba2 import Mamba2Family
from hybrid_seq.io.hf.nemotron_h import NemotronHFamily

#: model_type -> adapter (`io.save` picks the first that can express a config).
FAMILIES: dict[str, Family] = {
    family.model_type: family for family in (Mamba2Family(), NemotronHFamily(), GraniteFamily(), FalconH1Family())
}


def family_of(model_type: Any, *, source: str) -> Family:
    """The adapter for `model_type`, or a ValueError listing the supported ones."""
    if model_type not in FAMILIES:
        raise ValueError(f"{source}: model_type {model_type!r} is not one hybrid_seq reads ({sorted(FAMILIES)})")
    return FAMILIES[model_type]


def family_for(config: Any, dtype: Any) -> Family:
    """The first family that can express `config`, or a ValueError with every family's reasons."""
    reasons = []
    for family in FAMILIES.values():
        try:
            family.write_config(config, dtype)
        except ValueError as error:
            reasons.append(str(error))
        else:
            return family
    raise ValueError("; ".join(reasons))


__all__ = ["FAMILIES", "Family", "family_for", "family_of", "load_family", "save_family", "write_family"]
