"""Against DeepMind's reference `recurrentgemma.jax.Sampler` with the same weights, and two of its bugs.

The third (finished rows keep generating) is `test_sampler.test_finished_rows_stop_and_others_continue`.
"""

from __future__ import annotations

import numpy as np
import pytest

from hybrid_seq import Sampler, Tokenizer
from tests.parity.reference import Case, ours_from, reference_model

rg = pytest.importorskip("recurrentgemma.jax")

pytestmark = [
    pytest.mark.parity,
    # The reference sampler donates buffers that XLA:CPU cannot reuse; JAX warns about it.
    pytest.mark.filterwarnings("ignore:Some donated buffers were not usable:UserWarning"),
]

CASE = Case(kinds="RRA", width=64, mlp_expanded_width=96, num_heads=2, lru_width=64, window=8, vocab_size=256)
NEW = 10
LONG = "dogs ran far away from home and birds sang"  # > window tokens
PROMPTS = ["the cat sat on a mat", "every morning people walk to work", LONG]  # all >= 4 tokens with BOS


@pytest.fixture(scope="module")
def pair(tokenizer: Tokenizer) -> tuple:
    reference, params = reference_model(CASE, seed=3)
    ours = Sampler(ours_from(CASE, params), tokenizer)
    return ours, rg.Sampler(model=reference.model, vocab=tokenizer.processor, params=params)


def test_greedy_matches_reference_token_for_token(pair: tuple) -> None:
    ours, reference = pair
    for prompt in PROMPTS:
        assert len(ours.encode_prompt(prompt)) >= 4
        expected = np.asarray(reference([prompt], NEW, end_sampling_at_eos_token=False).tokens[0]).tolist()
        assert ours(prompt, NEW, stop_token_ids=()).tokens[0] == expected


def test_pad_slicing_bug_fixed(pair: tuple) -> None:
    """Reference: a shorter row in a batch loses its first `pad_len` generated tokens. Ours keeps all."""
    ours, reference = pair
    batch = [LONG, "the cat sat on"]
    ref = reference(batch, NEW, end_sampling_at_eos_token=False)
    assert len(ref.tokens[1]) < NEW  # the bug, as documented
    out = ours(batch, NEW, stop_token_ids=())
    assert [len(t) for t in out.tokens] == [NEW, NEW]
    assert out.tokens[1] == ours("the cat sat on", NEW, stop_token_ids=()).tokens[0]


def test_conv_pad_leak_fixed(pair: tuple) -> None:
    """Reference: prompts under 4 tokens see pad activations in the conv window when batched.
    Ours: a 2-token prompt next to a long one gives the same log-probs as alone."""
    ours, _ = pair
    out = ours([LONG, "the"], NEW, stop_token_ids=(), return_logprobs=True)
    single = ours("the", NEW, stop_token_ids=(), return_logprobs=True)
    assert len(ours.encode_prompt("the")) < 4
    assert out.tokens[1] == single.tokens[0]
    np.testing.assert_allclose(out.logprobs[1], single.logprobs[0], rtol=1e-5, atol=1e-5)

