"""`SamplingOptions`: validated once, errors name the field and the value; the Sampler takes it or keywords."""

from __future__ import annotations

import numpy as np
import pytest

from hybrid_seq import Sampler, Tokenizer
from hybrid_seq.sampling import SamplingOptions


@pytest.mark.parametrize(
    ("settings", "error", "message"),
    [
        (dict(max_new_tokens=-3), ValueError, "max_new_tokens must be >= 0, got -3"),
        (dict(max_new_tokens=True), TypeError, "max_new_tokens must be an int, got True"),
        (dict(temperature=-1), ValueError, "temperature must be finite and >= 0, got -1"),
        (dict(temperature=float("nan")), ValueError, "temperature must be finite and >= 0, got nan"),
        (dict(top_k=-1), ValueError, "top_k must be >= 0, got -1"),
        (dict(top_p=0), ValueError, "top_p must be finite and > 0 and <= 1, got 0"),
        (dict(top_p=1.5), ValueError, "top_p must be finite and > 0 and <= 1, got 1.5"),
        (dict(seed=2**31), ValueError, r"seed must be in \[-2147483648, 2147483647\], got 2147483648"),
        (dict(seed=(1, True)), TypeError, r"seed\[1\] must be an int, got True"),
        (dict(stop=[""], stop_token_ids=[1, -2]), ValueError, r"stop_token_ids\[1\] must be in \[0, 2147483647\], got -2"),
    ],
)
def test_a_bad_setting_is_named_with_its_value(settings: dict, error: type, message: str) -> None:
    with pytest.raises(error, match=message):
        SamplingOptions(**{"max_new_tokens": 4, **settings})


def test_values_are_normalised() -> None:
    options = SamplingOptions(4, temperature=1, top_p=1, seed=[3, 4], stop="\n\n", stop_token_ids=[1])
    assert (options.temperature, options.top_p, options.seed) == (1.0, 1.0, (3, 4))
    assert (options.stop, options.stop_token_ids) == (("\n\n",), (1,))
    assert SamplingOptions(4, stop=["", "x"]).stop == ("x",)
    assert SamplingOptions(4, seed=7).seeds(3) == [7, 8, 9]
    with pytest.raises(ValueError, match="got 2 seeds for 3 prompts"):
        SamplingOptions(4, seed=[1, 2]).seeds(3)


def test_resolve_puts_keywords_over_the_options() -> None:
    base = SamplingOptions(8, temperature=0.5)
    assert SamplingOptions.resolve(base, None, {}) is base
    assert SamplingOptions.resolve(base, 3, {"top_k": 2}) == SamplingOptions(3, temperature=0.5, top_k=2)
    with pytest.raises(TypeError, match="unknown sampling option 'temprature'; the options are chat, max_new_tokens"):
        SamplingOptions.resolve(None, 3, {"temprature": 1.0})
    with pytest.raises(TypeError, match="give max_new_tokens"):
        SamplingOptions.resolve(None, None, {})


def test_the_sampler_takes_an_options_object_or_keywords(model, tokenizer: Tokenizer) -> None:
    sampler = Sampler(model, tokenizer)
    options = SamplingOptions(5, stop_token_ids=(), return_logprobs=True)
    by_object = sampler(["the cat", "the"], options=options)
    assert by_object == sampler(["the cat", "the"], 5, stop_token_ids=(), return_logprobs=True)
    streamed = [p for p in sampler.stream("the cat", options=options) if p.token is not None]
    assert [p.token for p in streamed] == by_object.tokens[0]
    np.testing.assert_allclose([p.logprob for p in streamed], by_object.logprobs[0], rtol=1e-5, atol=1e-5)
    with pytest.raises(ValueError, match="temperature must be finite and >= 0, got -2"):
        sampler("the", 4, temperature=-2)
