"""The one atomic writer: a hidden sibling, fsynced, renamed into place; nothing left behind on failure."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from hybrid_seq.io import atomic
from hybrid_seq.io.atomic import atomic_path


def _write(path: Path, kind: str = "directory") -> None:
    """A file, or a folder with a file and a subfolder, at `path`."""
    if kind == "file":
        path.write_text("done")
        return
    path.mkdir()
    (path / "weights.bin").write_bytes(b"\0" * 64)
    (path / "sub").mkdir()
    (path / "sub" / "meta.json").write_text("{}")


@pytest.mark.parametrize("kind", ["file", "directory"])
def test_success_leaves_exactly_the_target(tmp_path: Path, kind: str) -> None:
    with atomic_path(tmp_path / "ckpt", overwrite=False) as temporary:
        assert temporary.parent == tmp_path and temporary.name.startswith(".ckpt.partial-")
        _write(temporary, kind)
    assert [p.name for p in tmp_path.iterdir()] == ["ckpt"]
    if kind == "directory":
        assert (tmp_path / "ckpt" / "sub" / "meta.json").read_text() == "{}"
    else:
        assert (tmp_path / "ckpt").read_text() == "done"


@pytest.mark.parametrize("error", [OSError("disk full"), KeyboardInterrupt()], ids=["OSError", "KeyboardInterrupt"])
@pytest.mark.parametrize("kind", ["file", "directory"])
def test_failure_midway_leaves_no_temporary_and_no_target(tmp_path: Path, kind: str, error: BaseException) -> None:
    with pytest.raises(type(error)):
        with atomic_path(tmp_path / "ckpt", overwrite=False) as temporary:
            _write(temporary, kind)
            raise error
    assert list(tmp_path.iterdir()) == []


def test_failed_overwrite_keeps_the_old_target(tmp_path: Path) -> None:
    (tmp_path / "ckpt").write_text("old")
    with pytest.raises(FileExistsError, match="ckpt exists"):
        with atomic_path(tmp_path / "ckpt", overwrite=False):
            pass
    with pytest.raises(OSError, match="disk full"):
        with atomic_path(tmp_path / "ckpt", overwrite=True) as temporary:
            temporary.write_text("new, half")
            raise OSError("disk full")
    assert [p.name for p in tmp_path.iterdir()] == ["ckpt"] and (tmp_path / "ckpt").read_text() == "old"
    with atomic_path(tmp_path / "ckpt", overwrite=True) as temporary:
        temporary.write_text("new")
    assert [p.name for p in tmp_path.iterdir()] == ["ckpt"] and (tmp_path / "ckpt").read_text() == "new"


def test_nothing_written_is_an_error(tmp_path: Path) -> None:
    with pytest.raises(RuntimeError, match="nothing was written"):
        with atomic_path(tmp_path / "ckpt", overwrite=False):
            pass
    assert list(tmp_path.iterdir()) == []


@pytest.mark.skipif(not Path("/proc/self/fd").is_dir(), reason="names fsynced descriptors through /proc")
def test_every_file_and_folder_is_fsynced_before_the_rename_and_the_parent_after(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    synced: list[str] = []
    real = os.fsync

    def record(descriptor: int) -> None:
        synced.append(os.readlink(f"/proc/self/fd/{descriptor}"))
        real(descriptor)

    monkeypatch.setattr(atomic.os, "fsync", record)
    with atomic_path(tmp_path / "ckpt", overwrite=False) as temporary:
        _write(temporary)
    partial = str(temporary)
    assert sorted(synced[:-1]) == sorted([partial, f"{partial}/weights.bin", f"{partial}/sub", f"{partial}/sub/meta.json"])
    assert synced[-1] == str(tmp_path)
