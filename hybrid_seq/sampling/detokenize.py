"""Incremental detokenization: the text of a growing token list, in time linear in its length."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol, runtime_checkable

#: What an incomplete (or invalid) UTF-8 sequence decodes to.
REPLACEMENT = "\ufffd"


@runtime_checkable
class Decoder(Protocol):
    """Anything with a tokenizer's `decode`."""

    def decode(self, ids: Sequence[int]) -> str: ...


class TextStream:
    """`decode(tokens)` kept up to date as tokens are appended, without decoding the whole list again.

    Each `extend` decodes only a short window: the tokens since the last-but-one commit
    point. Text up to the last commit point is final; the window's decoded text beyond the
    context it starts with is the rest. A commit happens when the text does not end in an
    incomplete character (U+FFFD), and the context then moves up to the previous commit
    when those tokens decode on their own to non-empty text that the whole text ends with:
    decoding a window alone may differ from decoding it in place only at its start (a
    SentencePiece word's leading space), which the context absorbs.

    This assumes what SentencePiece and byte-level tokenizers satisfy: after a non-empty
    text that ends in a complete character, the text of further tokens does not depend on
    what came before. `text` always equals `decoder.decode(tokens)` for such tokenizers
    (the tests check it for both kinds of tokenizer with hypothesis).
    """

    def __init__(self, decoder: Decoder):
        self.decoder = decoder
        self.tokens: list[int] = []
        self._parts: list[str] = []  # final text, "".join(parts) == decode(tokens[:read])
        self._final = 0  # its length
        self._start = 0  # the window starts here ...
        self._read = 0  # ... and its context ends here (the last commit point)
        self._context = 0  # length of decode(tokens[start:read])
        self._pending = ""  # decode(tokens)[final:]

    def __len__(self) -> int:
        """Length of the text."""
        return self._final + len(self._pending)

    @property
    def stable(self) -> int:
        """Length of the text that later tokens cannot change."""
        return self._final

    def extend(self, ids: Sequence[int]) -> None:
        """Append tokens (one decode call of the window, one more on a commit)."""
        if not ids:
            return
        previous = self._read
        self.tokens.extend(ids)
        pending = self.decoder.decode(self.tokens[self._start :])[self._context :]
        if not pending or pending.endswith(REPLACEMENT):
            self._pending = pending
            return
        window = self._context + len(pending)
        self._parts.append(pending)
        self._final += len(pending)
        self._pending = ""
        self._read = len(self.tokens)
        alone = self.decoder.decode(self.tokens[previous:])
        if alone and not alone.endswith(REPLACEMENT) and self.text_from(self._final - len(alone)) == alone:
            self._start, self._context = previous, len(alone)
        else:
            self._context = window

    def text_from(self, index: int) -> str:
        """The text from character `index` on (cheap when `index` is near the end)."""
        index = max(index, 0)
        if index >= self._final:
            return self._pending[index - self._final :]
        pieces, covered = [self._pending], self._final
        for part in reversed(self._parts):
            if covered <= index:
                break
            pieces.append(part)
            covered -= len(part)
        return "".join(reversed(pieces))[index - covered :]

    @property
    def text(self) -> str:
        """The whole text (joins every piece: O(length))."""
        return "".join(self._parts) + self._pending
