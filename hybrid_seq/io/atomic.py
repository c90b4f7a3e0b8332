"""Atomic writes: build a checkpoint in a hidden sibling, then rename it into place.

A crash or an error mid-save leaves only the hidden temporary (never something at the target
path that loads as a different or partial checkpoint); an error removes it.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import uuid
from collections.abc import Iterator
from pathlib import Path


@contextlib.contextmanager
def atomic_path(target: Path, *, overwrite: bool) -> Iterator[Path]:
    """Yield a fresh temporary path next to `target`; on success rename it to `target`.

    The caller creates a file or a directory at the yielded path. An existing `target` is
    an error unless `overwrite`, in which case it is replaced only after the new one is
    complete.
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
        if target.exists():
            old = target.parent / f".{target.name}.old-{uuid.uuid4().hex[:8]}"
            os.replace(target, old)
            os.replace(temporary, target)
            _remove(old)
        else:
            os.replace(temporary, target)
    finally:
        _remove(temporary)


def _remove(path: Path) -> None:
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path, ignore_errors=True)
    elif path.exists() or path.is_symlink():
        path.unlink()
