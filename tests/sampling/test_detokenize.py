"""Incremental detokenization equals decoding the whole list, at every step, in linear time."""

from __future__ import annotations

import hypothesis.strategies as st
import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings

from hybrid_seq.sampling import ByteTokenizer, HFTokenizer, Tokenizer
from hybrid_seq.sampling.detokenize import TextStream
from tests.sampling.helpers import write_hf_tokenizer


@pytest.fixture(scope="module")
def hf_tokenizer(tmp_path_factory: pytest.TempPathFactory) -> HFTokenizer:
    """Byte-level BPE: one id may hold part of a multi-byte character (é, ö, ç in its corpus)."""
    return HFTokenizer(write_hf_tokenizer(tmp_path_factory.mktemp("hf_tokenizer")))


class Counting:
    """A tokenizer whose decode counts the tokens it is given."""

    def __init__(self, tokenizer) -> None:
        self.tokenizer, self.decoded = tokenizer, 0

    def decode(self, ids) -> str:
        self.decoded += len(ids)
        return self.tokenizer.decode(ids)


def chunks(draw: st.DrawFn, vocab: int, ids: st.SearchStrategy[int]) -> list[list[int]]:
    tokens = draw(st.lists(ids, max_size=60))
    cuts = sorted(draw(st.lists(st.integers(0, len(tokens)), max_size=12)))
    return [tokens[a:b] for a, b in zip([0, *cuts], [*cuts, len(tokens)])]


def check(tokenizer, pieces: list[list[int]], probe: int) -> None:
    stream, tokens = TextStream(tokenizer), []
    for piece in pieces:
        stream.extend(piece)
        tokens += piece
        text = tokenizer.decode(tokens)
        assert stream.text == text and len(stream) == len(text)
        assert stream.text_from(probe % (len(text) + 1)) == text[probe % (len(text) + 1) :]
        assert text.startswith(text[: stream.stable])


@st.composite
def byte_chunks(draw: st.DrawFn) -> list[list[int]]:
    # Mostly bytes, many of them outside ASCII (incomplete and invalid UTF-8), plus the specials.
    return chunks(draw, ByteTokenizer.vocab_size, st.integers(0, ByteTokenizer.vocab_size - 1))


@given(pieces=byte_chunks(), probe=st.integers(0, 1000))
def test_byte_tokenizer(pieces: list[list[int]], probe: int) -> None:
    check(ByteTokenizer(), pieces, probe)


@settings(suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.data(), probe=st.integers(0, 1000))
def test_sentencepiece(tokenizer: Tokenizer, data: st.DataObject, probe: int) -> None:
    """Word pieces with and without their leading space, control ids, unknown and turn markers."""
    pieces = data.draw(st.composite(lambda draw: chunks(draw, tokenizer.vocab_size, st.integers(0, tokenizer.vocab_size - 1)))())
    check(tokenizer, pieces, probe)


@settings(suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.data(), probe=st.integers(0, 1000))
def test_hf_tokenizer_json(hf_tokenizer: HFTokenizer, data: st.DataObject, probe: int) -> None:
    """Byte-level BPE pieces, cut anywhere (inside a character's bytes too), and the special ids."""
    pieces = data.draw(st.composite(lambda draw: chunks(draw, hf_tokenizer.vocab_size, st.integers(0, hf_tokenizer.vocab_size - 1)))())
    check(hf_tokenizer, pieces, probe)


@pytest.mark.parametrize("which", ["byte", "sentencepiece", "tokenizer.json"])
def test_one_token_at_a_time_is_linear(tokenizer: Tokenizer, hf_tokenizer: HFTokenizer, which: str) -> None:
    base = {"byte": ByteTokenizer(), "sentencepiece": tokenizer, "tokenizer.json": hf_tokenizer}[which]
    ids = np.random.default_rng(0).integers(0, base.vocab_size, 512).tolist()
    counting = Counting(base)
    stream = TextStream(counting)
    for token in ids:
        stream.extend([token])
    assert stream.text == base.decode(ids)
    assert counting.decoded <= 8 * len(ids)  # decoding the whole row each time: 131,328
