"""Tokenizers: a SentencePiece wrapper (Gemma's format) and a download-free byte-level fallback."""

from __future__ import annotations

import os
from collections.abc import Sequence

import sentencepiece as spm

from hybrid_seq.sampling.chat import END_OF_TURN, START_OF_TURN, Message, format_chat


class _ChatMixin:
    """Chat helpers shared by both tokenizers (they need `encode` and `piece_to_id`)."""

    def encode_chat(self, messages: str | Sequence[Message], *, add_bos: bool = True) -> list[int]:
        """Token ids of `format_chat(messages)` (BOS first by default), ready to generate from."""
        return self.encode(format_chat(messages), add_bos=add_bos)

    @property
    def end_of_turn_id(self) -> int | None:
        """Id of `<end_of_turn>`, or None when the vocabulary has no such single token."""
        return self.piece_to_id(END_OF_TURN)

    @property
    def start_of_turn_id(self) -> int | None:
        """Id of `<start_of_turn>`, or None when the vocabulary has no such single token."""
        return self.piece_to_id(START_OF_TURN)


class Tokenizer(_ChatMixin):
    """A SentencePiece model file (e.g. Gemma's `tokenizer.model`).

    Gemma convention: pad 0, eos 1, bos 2, with `<start_of_turn>` / `<end_of_turn>` as
    single pieces. Raises FileNotFoundError for a missing file and ValueError for a file
    that is not a SentencePiece model.
    """

    def __init__(self, path: str | os.PathLike[str]):
        path = os.fspath(path)
        if not os.path.isfile(path):
            raise FileNotFoundError(f"tokenizer model file not found: {path!r}")
        processor = spm.SentencePieceProcessor()
        try:
            processor.Load(path)
        except (OSError, RuntimeError) as error:
            raise ValueError(f"{path!r} is not a valid SentencePiece model file ({error})") from error
        self.path = path
        self.processor = processor

    @property
    def vocab_size(self) -> int:
        return self.processor.GetPieceSize()

    @property
    def bos_id(self) -> int:
        return self.processor.bos_id()

    @property
    def eos_id(self) -> int:
        return self.processor.eos_id()

    @property
    def pad_id(self) -> int:
        """The pad id; SentencePiece reports -1 when the model has none, then 0 is used."""
        pad = self.processor.pad_id()
        return pad if pad >= 0 else 0

    def encode(self, text: str, *, add_bos: bool = False) -> list[int]:
        """Token ids of `text`, with BOS in front when `add_bos`."""
        ids = list(self.processor.EncodeAsIds(text))
        return [self.bos_id, *ids] if add_bos else ids

    def decode(self, ids: Sequence[int]) -> str:
        """Text of `ids` (control tokens such as BOS/EOS/pad decode to nothing)."""
        return self.processor.DecodeIds([int(i) for i in ids])

    def piece_to_id(self, piece: str) -> int | None:
        """Id of a single piece, or None when it is not in the vocabulary."""
        index = self.processor.PieceToId(piece)
        return None if index == self.processor.unk_id() and piece != self.processor.IdToPiece(index) else index


class ByteTokenizer(_ChatMixin):
    """Byte-level fallback tokenizer that needs no file: UTF-8 bytes plus five special ids.

    Ids: pad 0, eos 1, bos 2, `<start_of_turn>` 3, `<end_of_turn>` 4, byte `b` is `5 + b`
    (vocabulary 261). Meant for demos and tests with random weights, not for real checkpoints.
    """

    pad_id = 0
    eos_id = 1
    bos_id = 2
    _SPECIAL = {START_OF_TURN: 3, END_OF_TURN: 4}
    _OFFSET = 5
    vocab_size = _OFFSET + 256

    def encode(self, text: str, *, add_bos: bool = False) -> list[int]:
        """UTF-8 bytes of `text` (turn markers as single ids), with BOS in front when `add_bos`."""
        ids = [self.bos_id] if add_bos else []
        rest = text
        while rest:
            found = [(rest.find(marker), marker) for marker in self._SPECIAL if marker in rest]
            if not found:
                ids.extend(self._OFFSET + b for b in rest.encode("utf-8"))
                break
            at, marker = min(found)
            ids.extend(self._OFFSET + b for b in rest[:at].encode("utf-8"))
            ids.append(self._SPECIAL[marker])
            rest = rest[at + len(marker) :]
        return ids

    def decode(self, ids: Sequence[int]) -> str:
        """Text of `ids`: bytes decoded as UTF-8 (invalid sequences replaced), pad/bos/eos dropped."""
        names = {index: marker for marker, index in self._SPECIAL.items()}
        out: list[str] = []
        pending = bytearray()
        for index in (int(i) for i in ids):
            if index >= self._OFFSET:
                pending.append(index - self._OFFSET)
                continue
            out.append(pending.decode("utf-8", errors="replace"))
            pending.clear()
            out.append(names.get(index, ""))
        out.append(pending.decode("utf-8", errors="replace"))
        return "".join(out)

    def piece_to_id(self, piece: str) -> int | None:
        """Id of a turn marker or of a single-byte piece, else None."""
        if piece in self._SPECIAL:
            return self._SPECIAL[piece]
        data = piece.encode("utf-8")
        return self._OFFSET + data[0] if len(data) == 1 else None
