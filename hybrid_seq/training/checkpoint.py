"""Atomic, bit-exact training checkpoints: `eqx.tree_serialise_leaves` for arrays plus a JSON sidecar.

Layout: `<dir>/step_00000100/{state.eqx, meta.json}`. A checkpoint is written into a
hidden temporary folder and renamed into place, so a crash never leaves a half-written
`step_*` folder; `latest_checkpoint` only considers complete ones.
"""

from __future__ import annotations

import json
import os
import pathlib
import shutil
from typing import Any

import equinox as eqx

_STATE, _META = "state.eqx", "meta.json"


def _fsync_file(path: pathlib.Path) -> None:
    with open(path, "rb") as f:
        os.fsync(f.fileno())


def save_checkpoint(directory: str | pathlib.Path, tree: Any, *, step: int, metadata: dict | None = None) -> pathlib.Path:
    """Write the array leaves of `tree` and `{"step": step, **metadata}` to `directory/step_<step>`; returns that path."""
    directory = pathlib.Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    final = directory / f"step_{step:08d}"
    tmp = directory / f".{final.name}.tmp-{os.getpid()}"
    if tmp.exists():
        shutil.rmtree(tmp)
    tmp.mkdir()
    eqx.tree_serialise_leaves(tmp / _STATE, tree)
    (tmp / _META).write_text(json.dumps({"step": step, **(metadata or {})}, indent=2, sort_keys=True))
    for name in (_STATE, _META):
        _fsync_file(tmp / name)
    if final.exists():
        stale = directory / f".{final.name}.old-{os.getpid()}"
        os.replace(final, stale)
        shutil.rmtree(stale)
    os.replace(tmp, final)
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


def load_checkpoint(path: str | pathlib.Path, like: Any) -> tuple[Any, dict]:
    """Read a checkpoint into the structure of `like` (same pytree, e.g. a freshly built model and `optimizer.init`); returns `(tree, meta)`."""
    path = pathlib.Path(path)
    tree = eqx.tree_deserialise_leaves(path / _STATE, like)
    meta = json.loads((path / _META).read_text())
    return tree, meta
