"""Host-side bookkeeping of generated rows: tokens and log-probs kept, stop tokens and stop strings, text, streaming."""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable, Sequence
from typing import Protocol, runtime_checkable

import numpy as np
from jaxtyping import Bool, Float32, Int32


@runtime_checkable
class TokenizerLike(Protocol):
    """What the sampler needs from a tokenizer (`Tokenizer` and `ByteTokenizer` both fit)."""

    bos_id: int
    eos_id: int
    pad_id: int

    def encode(self, text: str, *, add_bos: bool = False) -> list[int]: ...

    def decode(self, ids: Sequence[int]) -> str: ...

    @property
    def end_of_turn_id(self) -> int | None: ...


@dataclasses.dataclass(frozen=True)
class SamplerOutput:
    """Per prompt: generated text and token ids (stop token / stop string excluded from the
    text; a stop string's last token is kept in `tokens`), log-probs of those tokens under the
    model (fp32, before temperature/filtering) when requested, and why generation ended
    (`"stop_token"`, `"stop_string"` or `"length"`)."""

    texts: list[str]
    tokens: list[list[int]]
    logprobs: list[list[float]] | None
    finish_reasons: list[str]


@dataclasses.dataclass(frozen=True)
class StreamPiece:
    """One streamed step: the new token id (None for the final flush) and the text it adds."""

    token: int | None
    text: str


@dataclasses.dataclass
class Row:
    """One prompt's output so far."""

    tokens: list[int] = dataclasses.field(default_factory=list)
    logprobs: list[float] = dataclasses.field(default_factory=list)
    text: str = ""
    finish: str | None = None


class Rows:
    """The outputs of a batch, extended one decoded segment at a time.

    A row ends at its first token in `stop_ids` (not kept) or once its text contains one of
    `stop`: the text is cut just before the stop string and the tokens keep the one that
    completed it. Nothing is added to an ended row.
    """

    def __init__(self, tokenizer: TokenizerLike, batch_size: int, stop_ids: Iterable[int], stop: Sequence[str]):
        self.tokenizer = tokenizer
        self.rows = [Row() for _ in range(batch_size)]
        self.stop_ids = set(stop_ids)
        self.stop = tuple(stop)

    @property
    def finished(self) -> Bool[np.ndarray, " B"]:
        return np.asarray([row.finish is not None for row in self.rows])

    def add(self, tokens: Int32[np.ndarray, "B n"], logprobs: Float32[np.ndarray, "B n"]) -> None:
        """Append one segment (`n` new tokens per row) to every row that has not ended."""
        for row, row_tokens, row_logprobs in zip(self.rows, tokens, logprobs):
            self._extend(row, row_tokens, row_logprobs)

    def _extend(self, row: Row, tokens: np.ndarray, logprobs: np.ndarray) -> None:
        if row.finish:
            return
        start = len(row.tokens)
        for token, logprob in zip(tokens.tolist(), logprobs.tolist()):
            if token in self.stop_ids:
                row.finish = "stop_token"
                break
            row.tokens.append(token)
            row.logprobs.append(logprob)
        row.text = self.tokenizer.decode(row.tokens)
        if not any(s in row.text for s in self.stop):
            return
        for end in range(start + 1, len(row.tokens) + 1):
            text = self.tokenizer.decode(row.tokens[:end])
            cut = min((i for i in (text.find(s) for s in self.stop) if i >= 0), default=-1)
            if cut >= 0:
                del row.tokens[end:], row.logprobs[end:]
                row.text, row.finish = text[:cut], "stop_string"
                return

    def output(self, return_logprobs: bool) -> SamplerOutput:
        return SamplerOutput(
            texts=[row.text for row in self.rows],
            tokens=[row.tokens for row in self.rows],
            logprobs=[row.logprobs for row in self.rows] if return_logprobs else None,
            finish_reasons=[row.finish or "length" for row in self.rows],
        )


class Streamer:
    """Turns one row's growth into `StreamPiece`s; text that could start a stop string is held back."""

    def __init__(self, row: Row, stop: Sequence[str]):
        self.row = row
        self.stop = tuple(stop)
        self.emitted = 0
        self.count = 0

    def pieces(self) -> Iterable[StreamPiece]:
        """What the row gained since the last call (at most one piece)."""
        row = self.row
        safe = len(row.text) if row.finish else len(row.text) - held_back(row.text, self.stop)
        piece, self.emitted = row.text[self.emitted : safe], max(self.emitted, safe)
        token = row.tokens[-1] if len(row.tokens) > self.count else None
        self.count = len(row.tokens)
        if token is not None or piece:
            yield StreamPiece(token=token, text=piece)

    def flush(self) -> Iterable[StreamPiece]:
        """The text still held back once the row is over."""
        if self.emitted < len(self.row.text):
            yield StreamPiece(token=None, text=self.row.text[self.emitted :])


def held_back(text: str, stop: Sequence[str]) -> int:
    """Length of the longest suffix of `text` that starts some stop string (or is an incomplete character)."""
    if text.endswith("\ufffd"):
        return 1
    return max((n for s in stop for n in range(min(len(s), len(text)), 0, -1) if s.startswith(text[-n:])), default=0)
