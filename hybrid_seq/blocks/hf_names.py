"""How a kind's leaves are named in HuggingFace checkpoints of the hybrid families (Mamba-2, Nemotron-H, ...).

A kind whose HF names are the same in every family that uses it (the Mamba-2 mixer, causal
attention) declares them itself with a method ``hf_tensors()``: each of its array leaves (our
path under the module) maps to one `HFTensor`, a slice of rows of one HF tensor in the HF
layout. HF's fused tensors (Mamba-2's `in_proj` rows z, x, B, C, dt) are several of our
leaves. The family adapters in `hybrid_seq.io.hf` place these names under each layer's prefix
and name what differs per family (MLPs, experts, norms).
"""

from __future__ import annotations

from typing import NamedTuple


class HFTensor(NamedTuple):
    """An HF tensor `name` (under the module's prefix), its rows `[start, stop)` (None: all),
    and the transform from the HF layout to ours: ``"none"``, ``"T"`` (2-D transpose: HF's
    `[out, in]` to our `[in, out]`), ``"conv"`` (HF's depthwise `[C, 1, K]` to our `[K, C]`)
    or ``"experts"`` (per expert, HF's `[E, out, in]` to our `[E, in, out]`; its rows are
    each expert's rows)."""

    name: str
    rows: tuple[int, int] | None = None
    transform: str = "none"


def linear(ours: str, theirs: str, *, bias: bool, rows: tuple[int, int] | None = None) -> dict[tuple[str, ...], HFTensor]:
    """A `Linear` named `ours` here: HF's `theirs.weight` (transposed) and, with `bias`, `theirs.bias`."""
    names = {(ours, "weight"): HFTensor(f"{theirs}.weight", rows, "T")}
    if bias:
        names[(ours, "bias")] = HFTensor(f"{theirs}.bias", rows)
    return names
