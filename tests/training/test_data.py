"""Tasks and text packing are deterministic given a seed and mark the right targets."""

import dataclasses

import numpy as np
import pytest

from hybrid_seq.training import MQAR, InductionHeads, SelectiveCopying, TextDataset, get_task, task_names

TASKS = [
    MQAR(vocab_size=32, seq_len=32, num_pairs=6, batch_size=8, seed=3),
    SelectiveCopying(vocab_size=16, seq_len=32, num_tokens=6, batch_size=8, seed=3),
    InductionHeads(vocab_size=16, seq_len=32, batch_size=8, seed=3),
]


@pytest.mark.parametrize("task", TASKS, ids=lambda t: type(t).__name__)
def test_tasks_are_deterministic_given_a_seed(task):
    a, b = task.batch(5), task.batch(5)
    for field in ("tokens", "positions", "targets", "loss_mask"):
        np.testing.assert_array_equal(getattr(a, field), getattr(b, field))
    assert not np.array_equal(a.tokens, task.batch(6).tokens)
    assert not np.array_equal(a.tokens, dataclasses.replace(task, seed=4).batch(5).tokens)
    assert a.tokens.shape == (8, 32) and int(a.loss_mask.sum()) > 0
    assert int(np.asarray(a.tokens).max()) < task.vocab_size


def test_mqar_targets_are_the_bound_values():
    task = TASKS[0]
    batch = task.batch(0)
    tokens, targets, mask = (np.asarray(x) for x in (batch.tokens, batch.targets, batch.loss_mask))
    assert (mask.sum(1) == task.num_pairs).all()
    for row in range(tokens.shape[0]):
        binding = dict(zip(tokens[row, 0 : 2 * task.num_pairs : 2], tokens[row, 1 : 2 * task.num_pairs : 2]))
        for t in np.flatnonzero(mask[row]):
            assert targets[row, t] == binding[tokens[row, t]]


def test_get_task_by_name():
    assert task_names() == ["mqar", "selective-copying", "induction-heads"]
    assert get_task("mqar", seq_len=64).seq_len == 64
    with pytest.raises(ValueError, match="unknown task"):
        get_task("nope")


def test_text_dataset_packs_documents_with_restarting_positions(tmp_path):
    path = tmp_path / "corpus.txt"
    path.write_text("hello world\n\nsecond document here\n\nthird one, a little longer than the rest\n" * 4)
    data = TextDataset(path, seq_len=16, batch_size=3, seed=1)
    assert data.vocab_size == 261
    batch = data.batch(2)
    np.testing.assert_array_equal(batch.tokens, data.batch(2).tokens)
    positions, tokens, mask = (np.asarray(x) for x in (batch.positions, batch.tokens, batch.loss_mask))
    assert (tokens[positions == 0] == 2).all()  # every document starts with BOS
    assert all(not mask[r, t] for r in range(3) for t in range(15) if positions[r, t + 1] == 0)  # never predict a BOS
    assert mask.sum() > 0.8 * mask.size
