"""The batched sampler: batched equals alone, finished rows stop, stop strings, streaming, compile reuse."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import hybrid_seq
from hybrid_seq import Sampler, Tokenizer
from hybrid_seq.sampling import ByteTokenizer, loop, prefill
from tests.sampling.helpers import tiny_model

# Prompts of 1 to 3 tokens after BOS is added ("" is BOS only), and longer ones.
PROMPTS = ["", "the", "the cat", "dogs ran far away from home and birds sang", "every morning people walk"]
NEW = 12


@pytest.fixture(scope="module")
def sampler(model: hybrid_seq.Model, tokenizer: Tokenizer) -> Sampler:
    return Sampler(model, tokenizer)


@pytest.fixture(scope="module")
def alone(sampler: Sampler) -> list:
    """Each prompt generated on its own (greedy, no stop tokens)."""
    return [sampler(p, NEW, stop_token_ids=(), return_logprobs=True) for p in PROMPTS]


def test_alone_equals_unpadded_full_pass(model: hybrid_seq.Model, sampler: Sampler, alone: list) -> None:
    """Ground truth with no padding and no state: the sampler's log-probs match one forward pass.

    Each row is prompt + generated tokens starting at column 0, right-filled to a common
    length (causal, so the fill never affects the compared columns); one jitted call.
    """
    rows = [sampler.encode_prompt(p) + out.tokens[0] for p, out in zip(PROMPTS, alone)]
    width = max(len(r) for r in rows)
    tokens = jnp.asarray([r + [0] * (width - len(r)) for r in rows], jnp.int32)
    positions = jnp.tile(jnp.arange(width, dtype=jnp.int32), (len(rows), 1))
    logits, _ = prefill(model, tokens, positions, all_logits=True)
    logprobs = np.asarray(jax.nn.log_softmax(logits.astype(jnp.float32), axis=-1))
    for row, (prompt, out) in enumerate(zip(PROMPTS, alone)):
        assert len(out.tokens[0]) == NEW and out.finish_reasons == ["length"]
        start = len(sampler.encode_prompt(prompt)) - 1
        expected = logprobs[row, np.arange(start, start + NEW), out.tokens[0]]
        np.testing.assert_allclose(out.logprobs[0], expected, rtol=1e-4, atol=1e-4)


def test_batched_equals_alone(sampler: Sampler, alone: list) -> None:
    """Different lengths, including 1-3 token prompts (the reference's conv pad leak and pad-slicing cases)."""
    batched = sampler(PROMPTS, NEW, stop_token_ids=(), return_logprobs=True)
    for row, single in enumerate(alone):
        assert batched.tokens[row] == single.tokens[0]
        assert batched.texts[row] == single.texts[0]
        assert len(batched.tokens[row]) == NEW
        np.testing.assert_allclose(batched.logprobs[row], single.logprobs[0], rtol=1e-5, atol=1e-5)


def test_sampled_batched_equals_alone_with_same_seed(sampler: Sampler) -> None:
    kwargs = dict(temperature=0.9, top_k=50, top_p=0.95, stop_token_ids=())
    batched = sampler(PROMPTS[:2], NEW, seed=[11, 12], **kwargs)
    for row, seed in enumerate([11, 12]):
        assert batched.tokens[row] == sampler(PROMPTS[row], NEW, seed=seed, **kwargs).tokens[0]
    assert sampler(PROMPTS[:2], NEW, seed=11, **kwargs).tokens == batched.tokens  # int seed: row i gets seed + i


def test_finished_rows_stop_and_others_continue(sampler: Sampler, alone: list) -> None:
    """A row stops at its stop token (nothing appended after); the other rows are unaffected.

    The reference keeps generating for finished rows until all are done (and its torch
    sampler never stops at batch > 1)."""
    first = alone[3].tokens[0]
    stop_at = next(i for i in range(2, NEW) if first[i] not in first[:i] and first[i] not in alone[4].tokens[0])
    out = sampler(PROMPTS[3:], NEW, stop_token_ids=[first[stop_at]], return_logprobs=True)
    assert out.tokens[0] == first[:stop_at] and out.finish_reasons[0] == "stop_token"
    assert len(out.logprobs[0]) == stop_at
    assert out.tokens[1] == alone[4].tokens[0] and out.finish_reasons[1] == "length"


def test_all_rows_finished_ends_loop_early(sampler: Sampler, alone: list, monkeypatch: pytest.MonkeyPatch) -> None:
    """The compiled loop exits once every row is done: the device buffer holds pads after the stop."""
    captured = []
    original = loop.decode

    def spy(*args, **kwargs):
        carry = original(*args, **kwargs)
        captured.append(carry)
        return carry

    monkeypatch.setattr(loop, "decode", spy)
    stop = alone[1].tokens[0][0]
    out = sampler(PROMPTS[1], NEW, stop_token_ids=[stop])
    assert out.tokens == [[]] and out.finish_reasons == ["stop_token"]
    assert int(captured[-1].step) == 1


def test_default_stop_ids(model: hybrid_seq.Model, tokenizer: Tokenizer) -> None:
    assert Sampler(model, tokenizer).default_stop_ids() == [tokenizer.eos_id]
    chat = Sampler(model, tokenizer, chat=True)
    assert chat.default_stop_ids() == [tokenizer.eos_id, tokenizer.end_of_turn_id]
    assert chat.encode_prompt([("user", "the cat")]) == tokenizer.encode_chat("the cat")


def test_stop_strings_cut_text_exactly(sampler: Sampler, alone: list) -> None:
    text = alone[3].texts[0]
    stop = text[len(text) // 2 : len(text) // 2 + 2]
    out = sampler(PROMPTS[3], NEW, stop=[stop], stop_token_ids=())
    assert out.texts[0] == text[: text.find(stop)] and out.finish_reasons == ["stop_string"]
    assert stop in sampler.tokenizer.decode(out.tokens[0])
    streamed = "".join(piece.text for piece in sampler.stream(PROMPTS[3], NEW, stop=[stop], stop_token_ids=()))
    assert streamed == out.texts[0]


def test_stream_matches_call(sampler: Sampler, alone: list) -> None:
    pieces = list(sampler.stream(PROMPTS[2], NEW, stop_token_ids=()))
    assert [p.token for p in pieces if p.token is not None] == alone[2].tokens[0]
    assert "".join(p.text for p in pieces) == alone[2].texts[0]


def test_no_recompile_within_buckets(sampler: Sampler, monkeypatch: pytest.MonkeyPatch) -> None:
    """Prompt lengths, new-token counts and sampling settings inside one bucket reuse the compiled loop."""
    traces = []
    original = loop.choose
    monkeypatch.setattr(loop, "choose", lambda *a, **k: traces.append(1) or original(*a, **k))
    sampler(["the cat", "the"], 9, stop_token_ids=())
    count = len(traces)
    sampler(["dogs ran far", "a"], 14, stop_token_ids=[1, 2])
    assert len(traces) == count


class CountingTokenizer(ByteTokenizer):
    """The byte tokenizer, counting the tokens it decodes."""

    decoded = 0

    def decode(self, ids) -> str:
        self.decoded += len(ids)
        return super().decode(ids)


def test_streaming_decodes_in_linear_time() -> None:
    """256 streamed tokens: a few decodes per token (re-decoding the row each step cost 32,896)."""
    tokenizer = CountingTokenizer()
    sampler = Sampler(tiny_model(tokenizer.vocab_size), tokenizer)
    settings = dict(temperature=1.0, seed=5, stop_token_ids=())
    pieces = list(sampler.stream("ab", 256, **settings))
    assert tokenizer.decoded <= 8 * 256
    out = sampler("ab", 256, **settings)
    assert [p.token for p in pieces if p.token is not None] == out.tokens[0] and len(out.tokens[0]) == 256
    assert "".join(p.text for p in pieces) == out.texts[0] and "\ufffd" in out.texts[0]
