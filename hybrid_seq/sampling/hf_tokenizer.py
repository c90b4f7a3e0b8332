"""Tokenizers in HuggingFace's `tokenizer.json` form (the `tokenizers` library), with the checkpoint's special ids.

The HF hybrid families (Mamba-2, Nemotron-H, Granite-4.0-H, Falcon-H1) ship their tokenizer
as `tokenizer.json` beside `config.json`; the special ids are spread over `tokenizer_config.json`
(the tokens the tokenizer itself adds), `generation_config.json` and `config.json` (what
generation stops at). `HFTokenizer` reads them all and fits the `Sampler`.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from tokenizers import Tokenizer as Backend

from hybrid_seq.sampling.tokenizer import _ChatMixin

TOKENIZER_FILE = "tokenizer.json"
#: The side files with special ids, each read when present.
_SIDE_FILES = ("tokenizer_config.json", "generation_config.json", "config.json")


class HFTokenizer(_ChatMixin):
    """A `tokenizer.json` file, or a checkpoint directory holding one.

    Special ids, first found wins: BOS from `tokenizer_config.json`'s `bos_token`, then
    `bos_token_id` of `generation_config.json` or `config.json`; EOS from those two files'
    `eos_token_id` (the first, when it is a list), then `tokenizer_config.json`'s `eos_token`;
    pad from `pad_token`, then `pad_token_id`, then EOS. `encode(add_bos=True)` puts BOS first
    unless `tokenizer_config.json` says `add_bos_token: false` (or there is no BOS), as HF's
    tokenizer would. Decoding drops special tokens. Raises FileNotFoundError without a
    `tokenizer.json` and ValueError for a file `tokenizers` cannot read.
    """

    def __init__(self, path: str | os.PathLike[str]):
        path = Path(path)
        file = path / TOKENIZER_FILE if path.is_dir() else path
        if not file.is_file():
            raise FileNotFoundError(f"no {TOKENIZER_FILE} at {path}")
        try:
            self.backend = Backend.from_file(str(file))
        except Exception as error:  # tokenizers raises a bare Exception for unreadable files
            raise ValueError(f"{file} is not a tokenizer.json the tokenizers library reads ({error})") from error
        self.path = file
        side = {name: _read_json(file.parent / name) for name in _SIDE_FILES}
        tokens = side["tokenizer_config.json"]
        ids = [side["generation_config.json"], side["config.json"]]
        self.bos_id = _first(self._token_id(tokens.get("bos_token")), *(_id(f.get("bos_token_id")) for f in ids))
        self.eos_id = _first(*(_id(f.get("eos_token_id")) for f in ids), self._token_id(tokens.get("eos_token")))
        if self.eos_id is None:
            raise ValueError(f"{file.parent}: no EOS id in {', '.join(_SIDE_FILES)}: generation would never stop")
        self.pad_id = _first(self._token_id(tokens.get("pad_token")), *(_id(f.get("pad_token_id")) for f in ids), self.eos_id)
        self.adds_bos = bool(tokens.get("add_bos_token", True)) and self.bos_id is not None

    @property
    def vocab_size(self) -> int:
        """Ids in the vocabulary, added tokens included."""
        return self.backend.get_vocab_size(with_added_tokens=True)

    def encode(self, text: str, *, add_bos: bool = False) -> list[int]:
        """Token ids of `text` (no special tokens added), with BOS in front when `add_bos` and the tokenizer adds one."""
        ids = self.backend.encode(text, add_special_tokens=False).ids
        return [self.bos_id, *ids] if add_bos and self.adds_bos else ids

    def decode(self, ids: Sequence[int]) -> str:
        """Text of `ids`, special tokens dropped."""
        return self.backend.decode([int(i) for i in ids], skip_special_tokens=True)

    def piece_to_id(self, piece: str) -> int | None:
        """Id of a token of the vocabulary, or None."""
        return self.backend.token_to_id(piece)

    def _token_id(self, token: Any) -> int | None:
        """The id of a special token as tokenizer_config.json writes it (a string or an AddedToken dict)."""
        if isinstance(token, Mapping):
            token = token.get("content")
        return self.backend.token_to_id(token) if isinstance(token, str) else None


def has_tokenizer(directory: str | os.PathLike[str]) -> bool:
    """Whether `directory` holds a `tokenizer.json`."""
    return (Path(directory) / TOKENIZER_FILE).is_file()


def _read_json(path: Path) -> dict[str, Any]:
    if not path.is_file():
        return {}
    data = json.loads(path.read_text())
    return data if isinstance(data, dict) else {}


def _id(value: Any) -> int | None:
    """A token id as config files write it: an int, a list of ints (the first counts), or null."""
    if isinstance(value, list):
        value = value[0] if value else None
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def _first(*values: int | None) -> int | None:
    return next((v for v in values if v is not None), None)
