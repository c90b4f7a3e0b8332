"""`hybrid-seq bench generate`'s sampler section: every contender does the same work."""

from __future__ import annotations

import numpy as np

from hybrid_seq.bench import generate
from hybrid_seq.sampling import ByteTokenizer, Sampler
from tests.sampling.helpers import tiny_model


def test_the_sampler_its_compiled_stages_and_the_model_loop_make_the_same_tokens() -> None:
    sampler = Sampler(tiny_model(ByteTokenizer.vocab_size), ByteTokenizer())
    contenders = generate.sampler_contenders(sampler, batch=3, new_tokens=10)
    call = contenders["sampler call"]()
    assert [len(row) for row in call] == [10, 10, 10]
    np.testing.assert_array_equal(np.asarray(contenders["compiled prefill + decode"]()), call)
    np.testing.assert_array_equal(np.asarray(contenders["model-only greedy loop"]()), call)
    for row, stopped in zip(call, contenders["sampler call, stop string"]()):
        assert row[: len(stopped)] == stopped


def test_the_shared_prefix_modes_make_the_same_tokens() -> None:
    sampler = Sampler(tiny_model(ByteTokenizer.vocab_size), ByteTokenizer())
    modes = {name: fn() for name, fn in generate.prefix_contenders(sampler, 3, prefix_length=40, new_tokens=5).items()}
    assert list(modes) == ["per-row prefill", "shared prefix (text)", "shared prefix (Prefix reused)"]
    assert modes["shared prefix (text)"] == modes["per-row prefill"] == modes["shared prefix (Prefix reused)"]
