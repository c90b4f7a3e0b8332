"""Trainer: resume is bit-exact; metrics and checkpoints land on disk."""

import json
import re

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from hybrid_seq import Model, ModelConfig
from hybrid_seq.training import (
    MQAR,
    OptimConfig,
    StepMetrics,
    Trainer,
    TrainerConfig,
    latest_checkpoint,
    make_optimizer,
)

CONFIG = ModelConfig(vocab_size=32, width=16, mlp_expanded_width=32, num_heads=2, block_pattern="RA", attention_window_size=8)
OPTIM = OptimConfig(peak_lr=1e-2, warmup_steps=2, total_steps=6)
TASK = MQAR(vocab_size=32, seq_len=16, num_pairs=4, batch_size=4)


def make_trainer(out_dir, steps=6):
    config = TrainerConfig(total_steps=steps, log_every=1, eval_every=3, checkpoint_every=3, out_dir=str(out_dir), name="tiny")
    model = Model(CONFIG, key=jax.random.PRNGKey(0))
    return Trainer(model, make_optimizer(OPTIM), TASK, config=config, eval_data=TASK, schedule=OPTIM.schedule(), verbose=False)


def read_metrics(out_dir):
    return [json.loads(line) for line in (out_dir / "metrics.jsonl").read_text().splitlines()]


def test_resume_is_bit_exact(tmp_path):
    straight = make_trainer(tmp_path / "straight")
    straight.run()

    first = make_trainer(tmp_path / "split")
    first.run(until=3)
    assert latest_checkpoint(first.checkpoint_dir).name == "step_00000003"
    # A fresh process would build a fresh Trainer: model and optimizer state come from disk only.
    second = make_trainer(tmp_path / "split")
    assert second.restore() and second.state.step == 3
    second.run()

    a = read_metrics(tmp_path / "straight")
    b = read_metrics(tmp_path / "split")
    drop = lambda entries: [{k: v for k, v in e.items() if k != "tokens_per_s"} for e in entries]  # noqa: E731
    assert drop(a) == drop(b)
    assert [e["step"] for e in a if e["split"] == "train"] == [1, 2, 3, 4, 5, 6]
    leaves = lambda t: jax.tree_util.tree_leaves(eqx.filter(t, eqx.is_array))  # noqa: E731
    for x, y in zip(leaves((straight.state.model, straight.state.opt_state)), leaves((second.state.model, second.state.opt_state))):
        np.testing.assert_array_equal(np.asarray(x), np.asarray(y))
    assert sorted(p.name for p in second.checkpoint_dir.iterdir()) == ["step_00000003", "step_00000006"]


def test_restore_refuses_a_checkpoint_of_another_config(tmp_path):
    """Window, soft cap and embedding scale leave every shape alone: without the check the weights would load silently."""
    saved = make_trainer(tmp_path).save()
    other = CONFIG.replace(attention_window_size=4, logits_soft_cap=30.0, embeddings_scale_by_sqrt_dim=True)
    trainer = Trainer(Model(other, key=jax.random.PRNGKey(0)), make_optimizer(OPTIM), TASK,
                      config=TrainerConfig(total_steps=6, out_dir=str(tmp_path), name="tiny"), verbose=False)
    message = (
        f"{saved}: the checkpoint was saved from a model with another config: "
        "attention_window_size is 8 in the checkpoint but 4 in this model; "
        "logits_soft_cap is 0.0 in the checkpoint but 30.0 in this model; "
        "embeddings_scale_by_sqrt_dim is False in the checkpoint but True in this model"
    )
    with pytest.raises(ValueError, match=re.escape(message) + "$"):
        trainer.restore()
    assert trainer.state.step == 0

    respelled = CONFIG.replace(block_pattern=["recurrent", "attention"])
    same = Trainer(Model(respelled, key=jax.random.PRNGKey(1)), make_optimizer(OPTIM), TASK,
                   config=TrainerConfig(total_steps=6, out_dir=str(tmp_path), name="tiny"), verbose=False)
    assert same.restore(saved)


def test_progress_is_a_tqdm_bar_on_stderr_only_when_asked_or_on_a_terminal(tmp_path, capsys):
    """The output alone: the compiled step is replaced by one returning fixed metrics."""
    config = TrainerConfig(total_steps=2, log_every=1, out_dir=str(tmp_path), name="tiny")
    trainer = Trainer(Model(CONFIG, key=jax.random.PRNGKey(0)), make_optimizer(OPTIM), TASK, config=config,
                      schedule=OPTIM.schedule(), progress=True)
    metrics = StepMetrics(loss=jnp.float32(1.25), grad_norm=jnp.float32(0.5), num_tokens=jnp.int32(8),
                          num_correct=jnp.int32(2))
    trainer._train_step = lambda model, opt_state, batch: (model, opt_state, metrics)
    trainer.run(until=1)
    out, err = capsys.readouterr()
    assert out == ""
    assert re.search(r"tiny: +50%.*\| 1/2 .*loss 1\.2500 acc 0\.250 [\d.]+k tok/s lr 0\.00e\+00", err), err
    trainer.progress = None  # captured stderr is not a terminal: no bar
    trainer.run()
    assert capsys.readouterr() == ("", "")
    assert [(e["step"], e["loss"], e["accuracy"]) for e in read_metrics(tmp_path)] == [(1, 1.25, 0.25), (2, 1.25, 0.25)]
