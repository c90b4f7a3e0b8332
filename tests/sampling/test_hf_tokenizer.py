"""HFTokenizer: a tokenizer.json built on the spot with `tokenizers`, its checkpoint's special ids, sampling with it."""

from __future__ import annotations

from pathlib import Path

import pytest

from hybrid_seq import io as hio
from hybrid_seq.cli import main
from hybrid_seq.sampling import HFTokenizer, Sampler
from tests.sampling.helpers import tiny_model, write_hf_tokenizer


def test_special_ids_encode_and_decode(tmp_path: Path) -> None:
    tokenizer = HFTokenizer(write_hf_tokenizer(tmp_path / "tok"))
    assert (tokenizer.pad_id, tokenizer.bos_id, tokenizer.eos_id, tokenizer.end_of_turn_id) == (0, 1, 2, 4)
    assert tokenizer.vocab_size == 300
    ids = tokenizer.encode("the cat héllo", add_bos=True)
    assert ids[0] == 1 and 1 not in ids[1:]
    assert tokenizer.decode(ids + [2]) == "the cat héllo"
    assert HFTokenizer(tmp_path / "tok" / "tokenizer.json").encode("the cat") == ids[1:3]
    no_bos = HFTokenizer(write_hf_tokenizer(tmp_path / "no_bos", add_bos_token=False))
    assert no_bos.encode("the cat", add_bos=True) == ids[1:3]
    with pytest.raises(FileNotFoundError, match="no tokenizer.json"):
        HFTokenizer(tmp_path)


def test_sampling_and_generate_use_the_checkpoints_tokenizer(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    model = tiny_model(300)
    path = hio.save(model, tmp_path / "model")
    tokenizer = HFTokenizer(write_hf_tokenizer(path))
    sampler = Sampler(model, tokenizer)
    out = sampler("the cat", 12, stop_token_ids=[])
    assert len(out.tokens[0]) == 12 and out.texts[0] == tokenizer.decode(out.tokens[0])
    streamed = "".join(piece.text for piece in sampler.stream("the cat", 12, stop_token_ids=[]))
    assert streamed == out.texts[0]
    capsys.readouterr()
    assert main(["generate", "the cat", "--checkpoint", str(path), "--max-new-tokens", "4"]) == 0
    assert capsys.readouterr().out.endswith("\n")
