"""Host-side bookkeeping of generated rows: tokens and log-probs kept, stop tokens and stop strings, text, streaming."""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable, Sequence
from typing import Protocol, runtime_checkable

import numpy as np
from jaxtyping import Bool, Float32, Int32

from hybrid_seq.sampling.detokenize import REPLACEMENT, TextStream


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
    """One streamed step: the new token id (None for the final flush), the text it adds, and the
    token's log-probability when `return_logprobs` is set."""

    token: int | None
    text: str
    logprob: float | None = None


@dataclasses.dataclass
class Row:
    """One prompt's output so far; `stream` follows its text where stop strings or streaming need it."""

    tokens: list[int] = dataclasses.field(default_factory=list)
    logprobs: list[float] = dataclasses.field(default_factory=list)
    finish: str | None = None
    stream: TextStream | None = None


class Rows:
    """The outputs of a batch, extended one decoded segment at a time.

    A row ends at its first token in `stop_ids` (not kept) or once its text contains one of
    `stop`: the text is cut just before the stop string and the tokens keep the one that
    completed it. Nothing is added to an ended row. With `track_text` (implied by stop
    strings) each row's text is followed incrementally (`TextStream`, linear time);
    otherwise each row is decoded once, when its text is asked for.
    """

    def __init__(
        self,
        tokenizer: TokenizerLike,
        batch_size: int,
        stop_ids: Iterable[int],
        stop: Sequence[str],
        *,
        track_text: bool = False,
    ):
        self.tokenizer = tokenizer
        self.stop = tuple(stop)
        track = track_text or bool(self.stop)
        self.rows = [Row(stream=TextStream(tokenizer) if track else None) for _ in range(batch_size)]
        self._stop_ids = np.asarray(sorted(set(stop_ids)), np.int64)
        self._longest_stop = max(map(len, self.stop), default=0)

    @property
    def finished(self) -> Bool[np.ndarray, " B"]:
        return np.asarray([row.finish is not None for row in self.rows])

    def add(self, tokens: Int32[np.ndarray, "B n"], logprobs: Float32[np.ndarray, "B n"] | None = None) -> None:
        """Append one segment (`n` new tokens per row, and their log-probs if kept) to every row that has not ended.

        The stop-token search is one vectorised pass over the segment; a row's tokens are
        appended as a slice, with no Python work per token.
        """
        hit = np.isin(tokens, self._stop_ids)
        stopped = hit.any(axis=1)
        kept = np.where(stopped, hit.argmax(axis=1), tokens.shape[1]).tolist()
        for index, row in enumerate(self.rows):
            if row.finish:
                continue
            start = len(row.tokens)
            row.tokens.extend(tokens[index, : kept[index]].tolist())
            if logprobs is not None:
                row.logprobs.extend(logprobs[index, : kept[index]].tolist())
            if stopped[index]:
                row.finish = "stop_token"
            if row.stream is not None:
                self._follow_text(row, start)

    def _follow_text(self, row: Row, start: int) -> None:
        """Extend the row's text with its tokens from `start` on; end it at the first stop string."""
        stream = row.stream
        searched = stream.stable - self._longest_stop + 1
        stream.extend(row.tokens[start:])
        recent = stream.text_from(searched)
        if not any(s in recent for s in self.stop):
            return
        for end in range(start + 1, len(row.tokens) + 1):
            if _first_stop(self.tokenizer.decode(row.tokens[:end]), self.stop) >= 0:
                del row.tokens[end:], row.logprobs[end:]
                row.finish = "stop_string"
                return

    def text(self, index: int) -> str:
        """The text of row `index`: its tokens decoded, cut before a stop string that ended it."""
        row = self.rows[index]
        text = self.tokenizer.decode(row.tokens)
        return text[: _first_stop(text, self.stop)] if row.finish == "stop_string" else text

    def output(self, return_logprobs: bool) -> SamplerOutput:
        return SamplerOutput(
            texts=[self.text(i) for i in range(len(self.rows))],
            tokens=[row.tokens for row in self.rows],
            logprobs=[row.logprobs for row in self.rows] if return_logprobs else None,
            finish_reasons=[row.finish or "length" for row in self.rows],
        )


class Streamer:
    """Turns the growth of one row (tracked with `track_text`) into `StreamPiece`s.

    Text that could be the start of a stop string, or that ends in an incomplete character,
    is held back until it is decided, so the pieces never show text that is later cut, and
    they concatenate to the row's text.
    """

    def __init__(self, rows: Rows, index: int = 0):
        self.rows = rows
        self.index = index
        self.emitted = 0
        self.count = 0
        self.over = False

    def pieces(self) -> Iterable[StreamPiece]:
        """What the row gained since the last call (at most one piece)."""
        if self.over:
            return
        row = self.rows.rows[self.index]
        token = row.tokens[-1] if len(row.tokens) > self.count else None
        self.count = len(row.tokens)
        if row.finish:
            self.over = True
            piece = self.rows.text(self.index)[self.emitted :]
        else:
            tail = row.stream.text_from(self.emitted)
            piece = tail[: len(tail) - held_back(tail, self.rows.stop)]
        self.emitted += len(piece)
        if token is not None or piece:
            logprob = row.logprobs[-1] if token is not None and row.logprobs else None
            yield StreamPiece(token=token, text=piece, logprob=logprob)

    def flush(self) -> Iterable[StreamPiece]:
        """The text still held back once generation is over."""
        if not self.over:
            self.over = True
            rest = self.rows.text(self.index)[self.emitted :]
            if rest:
                yield StreamPiece(token=None, text=rest)


def held_back(text: str, stop: Sequence[str]) -> int:
    """How many characters at the end of `text` must wait: a run of incomplete characters
    (U+FFFD, which later bytes may complete) and, before it, the longest suffix that starts
    some stop string (which later text may complete)."""
    incomplete = len(text) - len(text.rstrip(REPLACEMENT))
    text = text[: len(text) - incomplete]
    starts = (n for s in stop for n in range(min(len(s), len(text)), 0, -1) if s.startswith(text[-n:]))
    return incomplete + max(starts, default=0)


def _first_stop(text: str, stop: Sequence[str]) -> int:
    """Index of the earliest stop string in `text`, or -1."""
    return min((i for i in (text.find(s) for s in stop) if i >= 0), default=-1)
