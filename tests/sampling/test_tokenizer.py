"""Tokenizers and the chat format."""

from __future__ import annotations

import pytest

from hybrid_seq import Tokenizer
from hybrid_seq.sampling import ByteTokenizer, format_chat


def test_gemma_special_ids(tokenizer: Tokenizer) -> None:
    assert (tokenizer.pad_id, tokenizer.eos_id, tokenizer.bos_id) == (0, 1, 2)
    assert tokenizer.start_of_turn_id == 4 and tokenizer.end_of_turn_id == 5
    assert tokenizer.piece_to_id("<no such piece>") is None


def test_encode_decode_round_trip(tokenizer: Tokenizer) -> None:
    text = "the cat sat on a mat"
    ids = tokenizer.encode(text, add_bos=True)
    assert ids[0] == tokenizer.bos_id and tokenizer.bos_id not in ids[1:]
    assert tokenizer.decode(ids) == text


def test_single_turn_chat_format(tokenizer: Tokenizer) -> None:
    assert format_chat("hi there") == "<start_of_turn>user\nhi there<end_of_turn>\n<start_of_turn>model\n"
    ids = tokenizer.encode_chat("hi there")
    assert ids[0] == tokenizer.bos_id
    assert ids.count(tokenizer.start_of_turn_id) == 2 and ids.count(tokenizer.end_of_turn_id) == 1


def test_multi_turn_chat_format() -> None:
    messages = [("user", "hello"), ("model", "hi!"), ("user", "how are you?")]
    assert format_chat(messages) == (
        "<start_of_turn>user\nhello<end_of_turn>\n"
        "<start_of_turn>model\nhi!<end_of_turn>\n"
        "<start_of_turn>user\nhow are you?<end_of_turn>\n"
        "<start_of_turn>model\n"
    )
    assert format_chat([("assistant", "x")], add_generation_prompt=False) == "<start_of_turn>model\nx<end_of_turn>\n"


@pytest.mark.parametrize("bad", [[("system", "be nice")], [], [("user",)]])
def test_chat_format_rejects_bad_messages(bad: list) -> None:
    with pytest.raises((ValueError, TypeError)):
        format_chat(bad)


def test_missing_tokenizer_file(tmp_path) -> None:
    with pytest.raises(FileNotFoundError, match="not found"):
        Tokenizer(tmp_path / "missing.model")


def test_invalid_tokenizer_file(tmp_path) -> None:
    path = tmp_path / "bad.model"
    path.write_bytes(b"this is not a sentencepiece model")
    with pytest.raises(ValueError, match="not a valid SentencePiece model"):
        Tokenizer(path)


def test_byte_tokenizer_round_trip_and_markers() -> None:
    tok = ByteTokenizer()
    text = "héllo ✓ <end_of_turn> done"
    ids = tok.encode(text, add_bos=True)
    assert ids[0] == tok.bos_id and tok.end_of_turn_id in ids
    assert max(ids) < tok.vocab_size
    assert tok.decode(ids) == text
    chat = tok.encode_chat([("user", "a"), ("model", "b"), ("user", "c")])
    assert chat.count(tok.start_of_turn_id) == 4 and chat.count(tok.end_of_turn_id) == 3
