"""Past one device: meshes, sharding rules, layouts, sequence parallelism, many processes and sharded checkpoints.

Built on JAX's own machinery (`Mesh`, `NamedSharding`, `shard_map`, `jax.distributed`)
and orbax. See docs/distributed.md. Submodules load on first use, because the blocks
import `hybrid_seq.distributed.sequence` while the others import the model.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # what static readers (type checkers, the API reference) see; at run time, __getattr__
    from hybrid_seq.distributed.checkpoint import Checkpoints
    from hybrid_seq.distributed.layout import Layout, fetch, place
    from hybrid_seq.distributed.mesh import AXES, MeshSpec, make_mesh
    from hybrid_seq.distributed.processes import initialize
    from hybrid_seq.distributed.rules import DEFAULT_TABLE, Rules, partition_specs

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

__all__ = [
    "AXES",
    "Checkpoints",
    "DEFAULT_TABLE",
    "Layout",
    "MeshSpec",
    "Rules",
    "fetch",
    "initialize",
    "make_mesh",
    "partition_specs",
    "place",
]


def __getattr__(name: str) -> Any:
    if name in _EXPORTS:
        return getattr(importlib.import_module(f"{__name__}.{_EXPORTS[name]}"), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
