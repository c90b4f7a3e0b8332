"""Atomic writes: build a file or folder in a hidden sibling, make it durable, then rename it into place.

The one writer behind every checkpoint (`hybrid_seq.io.save`, the trainer's checkpoints).
Files and folders are fsynced before the rename and the parent folder after it, so once
the write returns the new checkpoint survives a power cut; a crash or an error before that
leaves nothing at the target path that loads as a different or partial checkpoint. Any
failure removes the temporary; only a hard crash can leave a hidden `.NAME.partial-*`.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import uuid
from collections.abc import Iterator
from pathlib import Path


@contextlib.contextmanager
def atomic_path(target: str | os.PathLike[str], *, overwrite: bool) -> Iterator[Path]:
    """Yield a fresh hidden path next to `target`; when the block completes, make it durable and rename it to `target`.

    The caller creates a file or a directory at the yielded path. An existing `target` is
    an error unless `overwrite`, in which case it is replaced only after the new one is
    complete. On any exception the temporary is removed and `target` is left as it was.
    """
    target = Path(target)
    if target.exists() and not overwrite:
        raise FileExistsError(f"{target} exists (pass overwrite=True to replace it)")
    target.parent.mkdir(parents=True, exist_ok=True)
    temporary = target.parent / f".{target.name}.partial-{uuid.uuid4().hex[:8]}"
    try:
        yield temporary
        if not temporary.exists():
            raise RuntimeError(f"nothing was written for {target}")
        _fsync_tree(temporary)
        if target.exists():
            old = target.parent / f".{target.name}.old-{uuid.uuid4().hex[:8]}"
            os.replace(target, old)
            os.replace(temporary, target)
            _remove(old)
        else:
            os.replace(temporary, target)
        _fsync(target.parent)
    finally:
        _remove(temporary)


def _fsync_tree(path: Path) -> None:
    """fsync every file and folder under `path` (itself included), children first."""
    if path.is_dir() and not path.is_symlink():
        for child in path.iterdir():
            _fsync_tree(child)
    if not path.is_symlink():
        _fsync(path)


def _fsync(path: Path) -> None:
    """Flush `path` (a file, or a folder's entries) to disk; folders cannot be opened for this on Windows."""
    if path.is_dir() and os.name == "nt":
        return
    descriptor = os.open(path, os.O_RDONLY)
    try:
        os.fsync(descriptor)
    finally:
        os.close(descriptor)


def _remove(path: Path) -> None:
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path, ignore_errors=True)
    elif path.exists() or path.is_symlink():
        path.unlink()
