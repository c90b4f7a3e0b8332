"""XLA:CPU flags this package recommends: applied by applications (the CLI, the test suite), never on import.

jaxlib 0.10's XLA:CPU hands reductions to YNNPACK in "reduce" fusions that also take in the
matmuls around them. Where a normalisation (a reduction over the channels) sits between two
matmuls, as in every Mamba-2 block (gated RMSNorm between the in- and out-projections)
followed by another projection, such a fusion recomputes its producers per output tile: the
6-layer Mamba-2 stack of `hybrid-seq bench mamba2` runs its T=4096 forward in 3.2 s with
these fusions and in 0.69 s without them (2-core x86-64, jaxlib 0.10.2). Turning off only the
"reduce" kind keeps YNNPACK's matmul and elementwise fusions.

XLA aborts on a flag it does not know, so the flag is added only for the jaxlib versions it
was measured on, and never where `XLA_FLAGS` already names it (the user's choice wins).
"""

from __future__ import annotations

import importlib.metadata
import os
from collections.abc import MutableMapping

#: The XLA flag choosing which fusion kinds go to YNNPACK (`+kind` adds one, `-kind` removes one).
YNN_FUSION_FLAG = "--xla_cpu_experimental_ynn_fusion_type"
#: The recommended setting: every YNNPACK fusion kind but "reduce".
YNN_FUSION_SETTING = f"{YNN_FUSION_FLAG}=-reduce"
#: jaxlib (major, minor) versions that have the flag and the slow "reduce" fusions.
AFFECTED_JAXLIB = ((0, 10),)


def recommended_flags(jaxlib_version: str) -> list[str]:
    """The XLA flags recommended for this jaxlib version (`"0.10.2"` -> the YNN setting; others -> none)."""
    major_minor = tuple(int(part) for part in jaxlib_version.split(".")[:2] if part.isdigit())
    return [YNN_FUSION_SETTING] if major_minor in AFFECTED_JAXLIB else []


def apply_recommended_flags(environ: MutableMapping[str, str] = os.environ) -> list[str]:
    """Append the recommended flags to `environ["XLA_FLAGS"]` and return those added.

    Call it before JAX creates its CPU backend (before the first array or compilation);
    XLA reads `XLA_FLAGS` once, then. A flag already named in `XLA_FLAGS` is left alone.
    """
    try:
        version = importlib.metadata.version("jaxlib")
    except importlib.metadata.PackageNotFoundError:
        return []
    current = environ.get("XLA_FLAGS", "")
    added = [flag for flag in recommended_flags(version) if flag.split("=")[0] not in current]
    if added:
        environ["XLA_FLAGS"] = " ".join([current, *added]).strip()
    return added
