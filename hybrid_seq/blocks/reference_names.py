"""How a kind's leaves are named in RecurrentGemma's released formats (reference Flax tree, HuggingFace).

Each kind that these formats can hold declares its own names (`ReferenceNames` as the
class attribute ``reference_names``), so `hybrid_seq.io` walks a model and asks each module,
instead of keeping one table of every kind. The PyTorch `.pt` names are a fixed renaming
of the Flax paths, so they need nothing here.
"""

from __future__ import annotations

import dataclasses
from typing import NamedTuple


class ReferenceLeaf(NamedTuple):
    """One leaf: its Flax path under the block (and slice of a shared tensor, or None), its
    HuggingFace name under the block, and the transform from the Flax layout to HF's
    (``"none"``, ``"T"`` for a 2-D transpose, ``"conv"`` for `[K, L] -> [L, 1, K]`)."""

    flax: tuple[str, ...]
    index: tuple[int, ...] | None
    hf: str
    transform: str


@dataclasses.dataclass(frozen=True)
class ReferenceNames:
    """A kind's names: the block's own name in the Flax tree and in HF's, and each leaf's
    (keyed by our leaf path under the module)."""

    flax_block: str
    hf_block: str
    leaves: dict[tuple[str, ...], ReferenceLeaf]


def dense(ours: str, theirs: str | None = None, *, bias: bool = True) -> dict[tuple[str, ...], ReferenceLeaf]:
    """A `Linear` named `ours` here and `theirs` there: Flax kernel/bias, HF weight (transposed)/bias."""
    theirs = theirs or ours
    leaves = {(ours, "weight"): ReferenceLeaf((ours, "kernel"), None, f"{theirs}.weight", "T")}
    if bias:
        leaves[(ours, "bias")] = ReferenceLeaf((ours, "bias"), None, f"{theirs}.bias", "none")
    return leaves
