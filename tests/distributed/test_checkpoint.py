"""Sharded checkpoints: saved from one mesh, restored exactly onto another; a crash mid-save leaves the previous one."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import equinox as eqx
import jax
import numpy as np
import pytest
from orbax.checkpoint._src.path import atomicity

import hybrid_seq as hs
from hybrid_seq.distributed import Layout
from hybrid_seq.distributed.checkpoint import Checkpoints
from hybrid_seq.training import MQAR, OptimConfig, Trainer, TrainerConfig, make_optimizer

CONFIG = hs.ModelConfig(
    vocab_size=32, width=16, mlp_expanded_width=32, num_heads=2, block_pattern="RA", attention_window_size=6
)
TASK = MQAR(vocab_size=32, seq_len=16, batch_size=8, num_pairs=3)


def _trainer(out: Path, spec: str, data=TASK) -> Trainer:
    optim = OptimConfig(peak_lr=1e-3, warmup_steps=1, total_steps=10)
    return Trainer(
        hs.Model(CONFIG, key=jax.random.key(0)),
        make_optimizer(optim),
        data,
        config=TrainerConfig(total_steps=4, checkpoint_every=2, out_dir=str(out)),
        layout=Layout.from_spec(spec),
        verbose=False,
    )


def _leaves(trainer: Trainer) -> list[np.ndarray]:
    tree = eqx.filter((trainer.state.model, trainer.state.opt_state), eqx.is_array)
    return [np.asarray(leaf) for leaf in jax.tree_util.tree_leaves(tree)]


@pytest.fixture(scope="module")
def saved(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Trainer]:
    out = tmp_path_factory.mktemp("run")
    trainer = _trainer(out, "data=2,fsdp=2,tensor=2")
    trainer.run(until=2)
    return out, trainer


def test_restore_onto_another_mesh_is_exact(saved: tuple[Path, Trainer]) -> None:
    out, first = saved
    second = _trainer(out, "fsdp=4,seq=2")
    assert second.restore()
    assert second.state.step == 2
    for a, b in zip(_leaves(first), _leaves(second)):
        np.testing.assert_array_equal(a, b)
    assert second.state.model.blocks[0].mlp.up.weight.sharding.spec == jax.sharding.PartitionSpec("fsdp", None)
    meta = Checkpoints(out / "checkpoints" / "train").metadata(2)
    assert meta["data_position"] == {"next_batch": 2, "rows_seen": 16}
    assert meta["mesh"] == {"data": 2, "fsdp": 2, "seq": 1, "tensor": 2}


def test_a_crash_mid_save_leaves_the_previous_checkpoint(tmp_path: Path, monkeypatch) -> None:
    run = tmp_path / "run"
    trainer = _trainer(run, "data=8")
    trainer.run(until=2)
    at_two = _leaves(trainer)
    trainer.step()

    def crash(self):
        raise RuntimeError("simulated crash before the commit")

    monkeypatch.setattr(atomicity.AtomicRenameTemporaryPath, "finalize", crash)
    with pytest.raises(RuntimeError, match="simulated crash"):
        trainer.save()
    monkeypatch.undo()
    directory = run / "checkpoints" / "train"
    assert Checkpoints(directory).steps() == [2]
    assert not (directory / "3").exists()
    resumed = _trainer(run, "tensor=2 x data=4")
    assert resumed.restore() and resumed.state.step == 2
    for a, b in zip(at_two, _leaves(resumed)):
        np.testing.assert_array_equal(a, b)


def test_another_batch_size_is_not_the_saved_data_position(saved) -> None:
    out, _ = saved
    other = _trainer(out, "data=8", data=dataclasses.replace(TASK, batch_size=16))
    with pytest.raises(ValueError, match=r"data position \{'next_batch': 2, 'rows_seen': 16\} is not this data source's"):
        other.restore()
