"""Atomic, bit-exact training checkpoints: `eqx.tree_serialise_leaves` for arrays plus a JSON sidecar.

Layout: `<dir>/step_00000100/{state.eqx, meta.json}`. A checkpoint is written by the one
atomic writer (`hybrid_seq.io.atomic`): built in a hidden sibling, fsynced, renamed into
place, and removed on any failure, so neither a crash nor an error leaves a half-written
`step_*` folder; `latest_checkpoint` only considers complete ones.
"""

from __future__ import annotations

import json
import pathlib
import shutil
from typing import Any

import equinox as eqx

from hybrid_seq.io.atomic import atomic_path

_STATE, _META = "state.eqx", "meta.json"


def save_checkpoint(directory: str | pathlib.Path, tree: Any, *, step: int, metadata: dict | None = None) -> pathlib.Path:
    """Write the array leaves of `tree` and `{"step": step, **metadata}` to `directory/step_<step>` (replacing it); returns that path."""
    final = pathlib.Path(directory) / f"step_{step:08d}"
    with atomic_path(final, overwrite=True) as temporary:
        temporary.mkdir()
        eqx.tree_serialise_leaves(temporary / _STATE, tree)
        (temporary / _META).write_text(json.dumps({"step": step, **(metadata or {})}, indent=2, sort_keys=True))
    return final


def checkpoints(directory: str | pathlib.Path) -> list[pathlib.Path]:
    """Complete checkpoints under `directory`, oldest first."""
    directory = pathlib.Path(directory)
    if not directory.is_dir():
        return []
    found = [p for p in directory.glob("step_*") if (p / _META).is_file() and (p / _STATE).is_file()]
    return sorted(found, key=lambda p: int(p.name.split("_")[1]))


def latest_checkpoint(directory: str | pathlib.Path) -> pathlib.Path | None:
    """The newest complete checkpoint under `directory`, or None."""
    found = checkpoints(directory)
    return found[-1] if found else None


def prune_checkpoints(directory: str | pathlib.Path, keep: int) -> None:
    """Delete all but the newest `keep` checkpoints."""
    for path in checkpoints(directory)[:-keep] if keep > 0 else []:
        shutil.rmtree(path)


def read_meta(path: str | pathlib.Path) -> dict:
    """The JSON sidecar of the checkpoint at `path`: `{"step": ..., **metadata}`, without reading the arrays."""
    return json.loads((pathlib.Path(path) / _META).read_text())


def load_checkpoint(path: str | pathlib.Path, like: Any) -> tuple[Any, dict]:
    """Read a checkpoint into the structure of `like` (same pytree, e.g. a freshly built model and `optimizer.init`); returns `(tree, meta)`."""
    path = pathlib.Path(path)
    return eqx.tree_deserialise_leaves(path / _STATE, like), read_meta(path)
