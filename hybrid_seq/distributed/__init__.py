"""Past one device: meshes, sharding rules, layouts, sequence parallelism, many processes and sharded checkpoints.

Built on JAX's own machinery (`Mesh`, `NamedSharding`, `shard_map`, `jax.distributed`)
and orbax. See docs/distributed.md. Submodules load on first use, because the blocks
import `hybrid_seq.distributed.sequence` while the others import the model.
"""

from __future__ import annotations

import importlib
from typing import Any

_EXPORTS = {
    "AXES": "mesh",
    "MeshSpec": "mesh",
    "make_mesh": "mesh",
    "Rules": "rules",
    "DEFAULT_TABLE": "rules",
    "partition_specs": "rules",
    "Layout": "layout",
    "place": "layout",
    "fetch": "layout",
    "Checkpoints": "checkpoint",
    "initialize": "processes",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    if name in _EXPORTS:
        return getattr(importlib.import_module(f"{__name__}.{_EXPORTS[name]}"), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
