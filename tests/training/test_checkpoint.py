"""Training checkpoints go through the one atomic writer: complete or absent, never a leftover temporary."""

from __future__ import annotations

from pathlib import Path

import jax.numpy as jnp
import numpy as np
import pytest

from hybrid_seq.training import checkpoint
from hybrid_seq.training.checkpoint import latest_checkpoint, load_checkpoint, save_checkpoint

TREE = {"w": jnp.arange(6.0).reshape(2, 3), "b": jnp.ones(3)}


def test_success_leaves_exactly_the_checkpoint(tmp_path: Path) -> None:
    path = save_checkpoint(tmp_path, TREE, step=3, metadata={"name": "tiny"})
    assert [p.name for p in tmp_path.iterdir()] == ["step_00000003"]
    assert sorted(p.name for p in path.iterdir()) == ["meta.json", "state.eqx"]
    tree, meta = load_checkpoint(path, TREE)
    np.testing.assert_array_equal(np.asarray(tree["w"]), np.asarray(TREE["w"]))
    assert meta == {"step": 3, "name": "tiny"}


def test_failure_midway_leaves_nothing_and_keeps_the_previous_one(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    def half_then_fail(path, tree):
        Path(path).write_bytes(b"\0" * 10)
        raise OSError("disk full")

    monkeypatch.setattr(checkpoint.eqx, "tree_serialise_leaves", half_then_fail)
    with pytest.raises(OSError, match="disk full"):
        save_checkpoint(tmp_path / "run", TREE, step=3)
    assert list((tmp_path / "run").iterdir()) == []
    assert latest_checkpoint(tmp_path / "run") is None

    monkeypatch.undo()
    save_checkpoint(tmp_path / "run", TREE, step=3)
    monkeypatch.setattr(checkpoint.eqx, "tree_serialise_leaves", half_then_fail)
    with pytest.raises(OSError, match="disk full"):
        save_checkpoint(tmp_path / "run", {"w": TREE["w"] + 1, "b": TREE["b"]}, step=3)
    assert [p.name for p in (tmp_path / "run").iterdir()] == ["step_00000003"]
    monkeypatch.undo()
    tree, _ = load_checkpoint(latest_checkpoint(tmp_path / "run"), TREE)
    np.testing.assert_array_equal(np.asarray(tree["w"]), np.asarray(TREE["w"]))
