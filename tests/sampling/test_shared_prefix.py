"""The Sampler with a shared prefix: the prefix is prefilled once and forked; rows equal their whole prompts."""

from __future__ import annotations

import functools

import numpy as np
import pytest

import hybrid_seq as hs
from hybrid_seq import Sampler
from hybrid_seq.sampling import ByteTokenizer, Prefix
from tests.sampling.helpers import tiny_model
from tests.test_user_kind import CONFIG as ECHO_CONFIG

PREFIX = "the cat sat on the mat and "  # longer than the tiny Griffin's window (8)
SUFFIXES = ["ran", "", "sang it"]
NEW = 6


@functools.cache
def sampler(kind: str) -> Sampler:
    import jax

    model = tiny_model(ByteTokenizer.vocab_size) if kind == "griffin" else hs.Model(ECHO_CONFIG, key=jax.random.key(1))
    return Sampler(model, ByteTokenizer())


@pytest.mark.parametrize("kind", ["griffin", "echo"])
def test_rows_equal_their_whole_prompts(kind: str) -> None:
    """The byte tokenizer splits at any boundary, so prefix + suffix is the same text either way."""
    ours = sampler(kind)
    settings = dict(stop_token_ids=(), return_logprobs=True)
    whole = ours([PREFIX + s for s in SUFFIXES], NEW, **settings)
    shared = ours(SUFFIXES, NEW, shared_prefix=PREFIX, **settings)
    assert shared.tokens == whole.tokens and shared.texts == whole.texts
    for got, want in zip(shared.logprobs, whole.logprobs):
        np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-5)
    prefix = ours.prefix(PREFIX, room=24)  # as much as a text prefix gets here: same shapes, no new compilations
    assert isinstance(prefix, Prefix) and prefix.ids == tuple(ours.encode_prompt(PREFIX))
    assert ours(SUFFIXES, NEW, shared_prefix=prefix, stop_token_ids=()).tokens == whole.tokens
    if kind == "griffin":
        pieces = ours.stream(SUFFIXES[0], NEW, shared_prefix=prefix, stop_token_ids=())
        assert [p.token for p in pieces if p.token is not None] == whole.tokens[0]
        for _ in range(2):  # the decode loop consumes its carry, never the prefix it was forked from
            assert ours("", NEW, shared_prefix=prefix, stop_token_ids=()).tokens == [whole.tokens[1]]


def test_a_growing_cache_needs_room_after_the_prefix() -> None:
    ours = sampler("echo")
    assert ours.prefix(PREFIX).room == 0 and sampler("griffin").prefix(PREFIX).room is None
    with pytest.raises(ValueError, match=r"room for 0 more tokens, but this call needs 9 .*room=9\)"):
        ours(["abc"], NEW, shared_prefix=ours.prefix(PREFIX))
