"""The sampler's host stage: prompts encoded, left-padded and bucketed before anything runs on the device."""

from __future__ import annotations

import numpy as np
import pytest

from hybrid_seq import Sampler
from hybrid_seq.sampling import ByteTokenizer, SamplingOptions, buckets
from tests.sampling.helpers import tiny_model


@pytest.fixture(scope="module")
def sampler() -> Sampler:
    return Sampler(tiny_model(ByteTokenizer.vocab_size), ByteTokenizer(), prefill_chunk_size=64)


def test_buckets() -> None:
    assert [buckets.power_of_two(n) for n in (0, 1, 16, 17, 33)] == [16, 16, 16, 32, 64]
    assert [buckets.prompt_length(n, 64) for n in (5, 40, 64, 65, 129)] == [16, 64, 64, 128, 192]
    assert [buckets.stop_id_slots(n) for n in (0, 3, 4)] == [4, 4, 8]


def test_plan_pads_buckets_and_keeps_settings(sampler: Sampler) -> None:
    options = SamplingOptions(20, temperature=0.5, seed=3, stop_token_ids=[1, 4])
    plan = sampler.plan(["ab", "a" * 40], options)
    assert plan.ids[0] == [2, 5 + ord("a"), 5 + ord("b")] and len(plan.ids[1]) == 41
    assert plan.tokens.shape == plan.positions.shape == (2, 64) and plan.chunk_size is None
    np.testing.assert_array_equal(plan.positions[0], [-1] * 61 + [0, 1, 2])
    assert (plan.slots, plan.seeds, plan.stop_ids) == (32, [3, 4], [1, 4])
    np.testing.assert_array_equal(plan.settings.stop_ids, [1, 4, -1, -1])
    assert not plan.settings.greedy
    long = sampler.plan(["a" * 100], options)
    assert long.tokens.shape == (1, 128) and long.chunk_size == 64


def test_plan_rejects_an_empty_batch_and_ids_outside_the_vocabulary(sampler: Sampler) -> None:
    with pytest.raises(ValueError, match="no prompts given"):
        sampler.plan([], SamplingOptions(4))
    with pytest.raises(ValueError, match="produced id 127, outside the model's vocabulary of 100"):
        Sampler(tiny_model(100), ByteTokenizer()).plan(["az"], SamplingOptions(4))
