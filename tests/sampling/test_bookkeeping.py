"""Host bookkeeping on its own (no model): stop tokens, stop strings, texts and streamed pieces."""

from __future__ import annotations

import hypothesis.strategies as st
import numpy as np
from hypothesis import given

from hybrid_seq.sampling import ByteTokenizer
from hybrid_seq.sampling.bookkeeping import Rows, Streamer, held_back

TOKENIZER = ByteTokenizer()
# a, b, c, the two bytes of "é", a lone continuation byte, EOS and <end_of_turn>
ALPHABET = [5 + ord("a"), 5 + ord("b"), 5 + ord("c"), 5 + 0xC3, 5 + 0xA9, 5 + 0x80, 1, 4]


def oracle(rows: list[list[int]], segment: int, stop_ids: set[int], stop: list[str]) -> list[tuple]:
    """The sampler's first bookkeeping, which decoded each whole row after every segment."""
    results = []
    for generated in rows:
        tokens, text, finish = [], "", None
        for begin in range(0, len(generated), segment):
            if finish:
                break
            start = len(tokens)
            for token in generated[begin : begin + segment]:
                if token in stop_ids:
                    finish = "stop_token"
                    break
                tokens.append(token)
            text = TOKENIZER.decode(tokens)
            if any(s in text for s in stop):
                for end in range(start + 1, len(tokens) + 1):
                    prefix = TOKENIZER.decode(tokens[:end])
                    cut = min((i for i in (prefix.find(s) for s in stop) if i >= 0), default=-1)
                    if cut >= 0:
                        tokens, text, finish = tokens[:end], prefix[:cut], "stop_string"
                        break
        results.append((text, tokens, finish or "length"))
    return results


def feed(rows: Rows, generated: np.ndarray, segment: int):
    for begin in range(0, generated.shape[1], segment):
        if rows.finished.all():
            break
        block = generated[:, begin : begin + segment]
        rows.add(block, block.astype(np.float32) / 10)
        yield


@st.composite
def cases(draw: st.DrawFn):
    batch, length = draw(st.integers(1, 4)), draw(st.integers(0, 24))
    generated = draw(st.lists(st.lists(st.sampled_from(ALPHABET), min_size=length, max_size=length), min_size=batch, max_size=batch))
    stop = draw(st.lists(st.sampled_from(["ab", "c", "bca", "é", "\ufffd", "aé"]), max_size=2))
    stop_ids = draw(st.sets(st.sampled_from([1, 4]), max_size=2))
    return generated, draw(st.sampled_from([1, 3, 16])), stop_ids, stop


@given(case=cases())
def test_rows_equal_the_first_bookkeeping(case) -> None:
    generated, segment, stop_ids, stop = case
    rows = Rows(TOKENIZER, len(generated), stop_ids, stop)
    array = np.asarray(generated, np.int32).reshape(len(generated), -1)
    for _ in feed(rows, array, segment):
        pass
    out = rows.output(return_logprobs=True)
    assert list(zip(out.texts, out.tokens, out.finish_reasons)) == oracle(generated, segment, stop_ids, stop)
    assert out.logprobs == [[float(np.float32(t) / 10) for t in tokens] for tokens in out.tokens]


@given(case=cases())
def test_streamed_pieces_concatenate_to_the_text_and_never_show_cut_text(case) -> None:
    generated, _, stop_ids, stop = case
    rows = Rows(TOKENIZER, 1, stop_ids, stop, track_text=True)
    streamer, pieces = Streamer(rows), []
    for _ in feed(rows, np.asarray(generated[:1], np.int32).reshape(1, -1), 1):
        pieces += streamer.pieces()
        shown = "".join(p.text for p in pieces)
        assert TOKENIZER.decode(rows.rows[0].tokens).startswith(shown) or rows.rows[0].finish
    pieces += streamer.flush()
    out = rows.output(return_logprobs=False)
    assert "".join(p.text for p in pieces) == out.texts[0]
    assert [p.token for p in pieces if p.token is not None] == out.tokens[0]


def test_held_back() -> None:
    assert held_back("xab", ["abc"]) == 2 and held_back("xab", ["zz"]) == 0
    assert held_back("xa\ufffd\ufffd", ["ab"]) == 3  # the incomplete character may complete the stop string
    assert held_back("", ["a"]) == 0
