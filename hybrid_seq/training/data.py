"""Training batches, next-token shifting, document packing, and a packed text dataset.

A data source is anything with `batch(step) -> Batch` that is a pure function of the
step index (and its own seed): resuming at step `s` then needs nothing but `s`.
"""

from __future__ import annotations

import json
import pathlib
from typing import Protocol, runtime_checkable

import equinox as eqx
import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, Bool, Int

from hybrid_seq.sampling.tokenizer import ByteTokenizer


class Batch(eqx.Module):
    """One training batch, already shifted for next-token prediction.

    `tokens[b, t]` is the input at `t`, `targets[b, t]` the token to predict there,
    `positions[b, t]` the input's position in its document (0 starts a document, -1 pads)
    and `loss_mask[b, t]` whether that prediction counts in the loss. All `[B, T]`.
    """

    tokens: Int[Array, "B T"]
    positions: Int[Array, "B T"]
    targets: Int[Array, "B T"]
    loss_mask: Bool[Array, "B T"]

    @property
    def num_tokens(self) -> int:
        """Number of input tokens (B * T), for throughput."""
        return int(self.tokens.shape[0] * self.tokens.shape[1])


@runtime_checkable
class DataSource(Protocol):
    """A deterministic stream of batches indexed by step."""

    def batch(self, step: int) -> Batch: ...


def shift_for_next_token(
    tokens: Int[np.ndarray, "B S"], positions: Int[np.ndarray, "B S"], mask: Bool[np.ndarray, "B S"]
) -> Batch:
    """Turn sequences of length `S = T + 1` into a next-token `Batch` of length `T`.

    `mask[b, s]` says whether token `s` is a target. A token that starts a document
    (position 0) or is padding is never a target: predicting it from the previous
    document would leak across the packing boundary.
    """
    target_pos = positions[:, 1:]
    loss_mask = mask[:, 1:] & (target_pos > 0)
    return Batch(
        tokens=jnp.asarray(tokens[:, :-1], jnp.int32),
        positions=jnp.asarray(positions[:, :-1], jnp.int32),
        targets=jnp.asarray(tokens[:, 1:], jnp.int32),
        loss_mask=jnp.asarray(loss_mask, bool),
    )


def pack_documents(documents: list[np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
    """Concatenate token documents into one stream: int32 tokens and int32 positions (restarting at 0 per document)."""
    documents = [np.asarray(d, np.int32) for d in documents if len(d)]
    if not documents:
        raise ValueError("no non-empty documents to pack")
    tokens = np.concatenate(documents)
    positions = np.concatenate([np.arange(len(d), dtype=np.int32) for d in documents])
    return tokens, positions


def read_documents(path: str | pathlib.Path) -> list[str]:
    """The documents of a corpus file: JSONL (`.jsonl`: one JSON object per line, its `text`
    field) or plain text (documents separated by blank lines). Empty documents are dropped."""
    path = pathlib.Path(path)
    text = path.read_text(encoding="utf-8")
    if path.suffix != ".jsonl":
        return [d.strip() for d in text.split("\n\n") if d.strip()]
    docs = []
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except ValueError:
            raise ValueError(f"{path}:{number}: not a JSON object") from None
        if not isinstance(record, dict) or not isinstance(record.get("text"), str):
            raise ValueError(f"{path}:{number}: a JSONL corpus needs an object with a string 'text' field on every line")
        if record["text"].strip():
            docs.append(record["text"].strip())
    return docs


class TextDataset:
    """A corpus file tokenised, packed into rows of `seq_len` tokens.

    `tokenizer` is a `hybrid_seq.Tokenizer` (SentencePiece) or, by default,
    `hybrid_seq.sampling.ByteTokenizer` (UTF-8 bytes plus specials, vocabulary 261).

    Documents come from `read_documents` (plain text split at blank lines, or the `text`
    fields of a JSONL file); each becomes `bos + text + eos` with positions restarting at 0.
    The stream is cut into non-overlapping windows of `seq_len + 1` tokens; each epoch
    visits the windows in a fresh order drawn from `(seed, epoch)`, so `batch(step)` is a
    pure function of the step.
    """

    def __init__(self, path: str | pathlib.Path, *, seq_len: int, batch_size: int, tokenizer=None, seed: int = 0):
        self.tokenizer = tokenizer if tokenizer is not None else ByteTokenizer()
        docs = read_documents(path)
        if not docs:
            raise ValueError(f"{path}: the corpus has no documents")
        encoded = [[self.tokenizer.bos_id, *self.tokenizer.encode(d), self.tokenizer.eos_id] for d in docs]
        tokens, positions = pack_documents([np.asarray(e) for e in encoded])
        window = seq_len + 1
        self.num_windows = len(tokens) // window
        if self.num_windows == 0:
            raise ValueError(f"{path}: {len(tokens)} tokens, fewer than one window of {window}")
        usable = self.num_windows * window
        self.tokens = tokens[:usable].reshape(self.num_windows, window)
        self.positions = positions[:usable].reshape(self.num_windows, window)
        self.seq_len, self.batch_size, self.seed = seq_len, batch_size, seed

    @property
    def vocab_size(self) -> int:
        return self.tokenizer.vocab_size

    def batch(self, step: int) -> Batch:
        """The batch for `step`: rows `step*B ... step*B + B - 1` of the epoch-shuffled window order."""
        flat = np.arange(step * self.batch_size, (step + 1) * self.batch_size)
        epochs, slots = np.divmod(flat, self.num_windows)
        rows = np.array(
            [np.random.default_rng([self.seed, int(e)]).permutation(self.num_windows)[s] for e, s in zip(epochs, slots)]
        )
        tokens, positions = self.tokens[rows], self.positions[rows]
        return shift_for_next_token(tokens, positions, np.ones_like(tokens, bool))
