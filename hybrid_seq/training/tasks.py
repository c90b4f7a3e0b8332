"""Synthetic tasks for comparing block patterns: MQAR, selective copying, induction heads.

Every task is a frozen dataclass whose `batch(step)` is a pure function of
`(seed, step)` (NumPy's `default_rng([seed, step])`), so runs are reproducible and
resumable. Sequences are single documents (positions 0..T-1); the loss mask selects
only the tokens that test the task, and the accuracy over those is the task's score.
Token 0 is the noise/filler token in every task.
"""

from __future__ import annotations

import dataclasses
from typing import Protocol, runtime_checkable

import numpy as np

from hybrid_seq.training.data import Batch, shift_for_next_token


@runtime_checkable
class Task(Protocol):
    """A synthetic task: a vocabulary size and deterministic batches."""

    vocab_size: int
    seq_len: int
    batch_size: int
    seed: int

    def batch(self, step: int) -> Batch:
        """The batch of `step`: a pure function of the task's fields (seed included) and `step`."""


def _finish(tokens: np.ndarray, mask: np.ndarray) -> Batch:
    """Shift `[B, T+1]` single-document sequences whose `mask` marks the scored tokens."""
    positions = np.broadcast_to(np.arange(tokens.shape[1], dtype=np.int32), tokens.shape)
    return shift_for_next_token(tokens.astype(np.int32), positions, mask)


@dataclasses.dataclass(frozen=True)
class MQAR:
    """Multi-query associative recall (Arora et al., "Zoology", 2023).

    The sequence opens with `num_pairs` key-value pairs (distinct keys from the lower half
    of the vocabulary, values from the upper half); the rest holds every key again as a
    query, in random order at random pair slots among noise, each followed by its value.
    Only the values after queries are scored. Recalling `num_pairs` arbitrary bindings
    needs state that grows with `num_pairs`: attention has it, a fixed-size recurrence
    runs out.
    """

    vocab_size: int = 256
    seq_len: int = 128
    num_pairs: int = 16
    batch_size: int = 64
    seed: int = 0

    def __post_init__(self):
        half = self.vocab_size // 2
        if self.num_pairs > half - 1:
            raise ValueError(f"num_pairs={self.num_pairs} needs more than {half - 1} distinct keys")
        if 4 * self.num_pairs > self.seq_len + 1:
            raise ValueError(f"seq_len={self.seq_len} too short for {self.num_pairs} pairs and their queries")

    def batch(self, step: int) -> Batch:
        """The batch of `step` (deterministic given the seed); see the class docstring for its layout."""
        rng = np.random.default_rng([self.seed, step])
        b, n, s, half = self.batch_size, self.num_pairs, self.seq_len + 1, self.vocab_size // 2
        keys = np.argsort(rng.random((b, half - 1)), axis=1)[:, :n] + 1
        values = rng.integers(half, self.vocab_size, size=(b, n))
        tokens = np.zeros((b, s), np.int64)
        mask = np.zeros((b, s), bool)
        tokens[:, 0 : 2 * n : 2], tokens[:, 1 : 2 * n : 2] = keys, values
        num_slots = (s - 2 * n) // 2
        for row in range(b):
            slots = np.sort(rng.choice(num_slots, size=n, replace=False))
            order = rng.permutation(n)
            at = 2 * n + 2 * slots
            tokens[row, at], tokens[row, at + 1] = keys[row, order], values[row, order]
            mask[row, at + 1] = True
        return _finish(tokens, mask)


@dataclasses.dataclass(frozen=True)
class SelectiveCopying:
    """Selective copying (Gu & Dao, "Mamba", 2023): copy the `num_tokens` data tokens scattered among noise, in order.

    Layout: `seq_len + 1 - num_tokens - 1` slots of noise with the data tokens at random
    places, a separator (token 1), then the data tokens again (scored).
    """

    vocab_size: int = 64
    seq_len: int = 128
    num_tokens: int = 16
    batch_size: int = 64
    seed: int = 0

    def batch(self, step: int) -> Batch:
        """The batch of `step` (deterministic given the seed); see the class docstring for its layout."""
        rng = np.random.default_rng([self.seed, step])
        b, m, s = self.batch_size, self.num_tokens, self.seq_len + 1
        region = s - m - 1
        if region < m:
            raise ValueError(f"seq_len={self.seq_len} too short to scatter {m} tokens")
        data = rng.integers(2, self.vocab_size, size=(b, m))
        tokens = np.zeros((b, s), np.int64)
        for row in range(b):
            tokens[row, np.sort(rng.choice(region, size=m, replace=False))] = data[row]
        tokens[:, region] = 1
        tokens[:, region + 1 :] = data
        mask = np.zeros((b, s), bool)
        mask[:, region + 1 :] = True
        return _finish(tokens, mask)


@dataclasses.dataclass(frozen=True)
class InductionHeads:
    """Induction heads (Olsson et al., 2022): after a trigger (token 1) recall the token that followed its earlier occurrence.

    Random tokens, one trigger at a random place followed by the answer, and the trigger
    again at the end; only the final answer is scored.
    """

    vocab_size: int = 64
    seq_len: int = 128
    batch_size: int = 64
    seed: int = 0

    def batch(self, step: int) -> Batch:
        """The batch of `step` (deterministic given the seed); see the class docstring for its layout."""
        rng = np.random.default_rng([self.seed, step])
        b, s = self.batch_size, self.seq_len + 1
        tokens = rng.integers(2, self.vocab_size, size=(b, s))
        answer = rng.integers(2, self.vocab_size, size=b)
        at = rng.integers(0, s - 3, size=b)
        rows = np.arange(b)
        tokens[rows, at], tokens[rows, at + 1] = 1, answer
        tokens[:, -2], tokens[:, -1] = 1, answer
        mask = np.zeros((b, s), bool)
        mask[:, -1] = True
        return _finish(tokens, mask)


_TASKS = {"mqar": MQAR, "selective-copying": SelectiveCopying, "induction-heads": InductionHeads}


def task_names() -> list[str]:
    """Names accepted by `get_task`."""
    return list(_TASKS)


def get_task(name: str, **fields) -> Task:
    """The task `name` with its dataclass `fields` overridden (e.g. `seq_len=256, seed=1`)."""
    if name not in _TASKS:
        raise ValueError(f"unknown task {name!r}; known tasks: {', '.join(_TASKS)}")
    return _TASKS[name](**fields)
