"""Logits equal DeepMind's reference JAX Griffin on the same (fully randomised) weights.

Tolerance: fp32 logits within 1e-5 absolute (logits are up to ~30 in magnitude here; the
observed error is ~3e-6). bf16: within 2% of the logit range, about 2 bf16 ulps at 30,
since both sides round every intermediate to bf16 but fuse and reduce in different orders.
"""

from __future__ import annotations

import jax.numpy as jnp
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tests.parity.reference import (
    Case,
    batch,
    call,
    max_abs_diff,
    ours_from,
    reference_model,
)

FP32_TOL = 1e-5

CASES = [
    Case(kinds="RAR"),
    Case(kinds="RRARRAR", lru_width=None, window=4),
    Case(kinds="AAR", width=32, mlp_expanded_width=64, num_heads=2, lru_width=48, window=9),
    Case(kinds="RR", lru_width=96, soft_cap=0.0, scale_embeddings=False),
    Case(kinds="AA", num_heads=2, window=3, soft_cap=0.0),
]


@pytest.mark.parametrize("case", CASES, ids=str)
@pytest.mark.parametrize("length", [5, 23])
def test_fp32_logits_match_reference(case: Case, length: int) -> None:
    ref, params = reference_model(case)
    ours = ours_from(case, params)
    tokens, positions = batch(case, length)
    want, _ = ref(params, tokens, positions)
    got, _ = call(ours, tokens, positions)
    assert max_abs_diff(got, want) < FP32_TOL


def test_blockwise_attention_beyond_one_block_matches_reference() -> None:
    """T = 300 > the 128-query block: the O(T * window) path, with packing and padding."""
    case = Case(kinds="AR", window=40)
    ref, params = reference_model(case)
    ours = ours_from(case, params)
    tokens, positions = batch(case, 300)
    want, _ = ref(params, tokens, positions)
    got, _ = call(ours, tokens, positions)
    assert max_abs_diff(got, want) < FP32_TOL


def test_bf16_logits_match_reference() -> None:
    case = Case(kinds="RAR")
    ref, params = reference_model(case, param_dtype=jnp.bfloat16)
    ours = ours_from(case, params)
    assert ours.dtype == jnp.bfloat16
    tokens, positions = batch(case, 23)
    want, _ = ref(params, tokens, positions)
    got, _ = call(ours, tokens, positions)
    assert got.dtype == want.dtype == jnp.bfloat16
    scale = float(jnp.max(jnp.abs(want.astype(jnp.float32))))
    assert max_abs_diff(got, want) <= 0.02 * scale


def test_prefill_then_decode_matches_reference_full_pass() -> None:
    """Prefill 9 tokens (longer than the window), then decode one token at a time."""
    case = Case(kinds="RAR", window=4)
    ref, params = reference_model(case)
    ours = ours_from(case, params)
    tokens, positions = batch(case, 16, packed=False)
    want, _ = ref(params, tokens, positions)
    logits, cache = call(ours, tokens[:, :9], positions[:, :9])
    steps = [logits]
    for t in range(9, 16):
        step, cache = call(ours, tokens[:, t : t + 1], positions[:, t : t + 1], cache)
        steps.append(step)
    assert max_abs_diff(jnp.concatenate(steps, axis=1), want) < FP32_TOL


def test_decode_matches_reference_decode() -> None:
    """Our cached decode equals the reference's own cached decode, step by step."""
    case = Case(kinds="ARR", window=5)
    ref, params = reference_model(case)
    ours = ours_from(case, params)
    tokens, positions = batch(case, 14, packed=False, left_pad=False)
    _, ref_cache = ref(params, tokens[:, :6], positions[:, :6])
    _, cache = call(ours, tokens[:, :6], positions[:, :6])
    for t in range(6, 14):
        want, ref_cache = ref(params, tokens[:, t : t + 1], positions[:, t : t + 1], ref_cache)
        got, cache = call(ours, tokens[:, t : t + 1], positions[:, t : t + 1], cache)
        assert max_abs_diff(got, want) < FP32_TOL


@st.composite
def random_cases(draw) -> tuple[Case, int, int]:
    heads = draw(st.sampled_from([1, 2, 4]))
    head_dim = draw(st.sampled_from([4, 8, 16]))
    lru_block = draw(st.sampled_from([2, 4, 12]))
    kinds = draw(st.text(alphabet="RA", min_size=1, max_size=4))
    case = Case(
        kinds=kinds,
        width=heads * head_dim,
        mlp_expanded_width=draw(st.sampled_from([8, 24, 48])),
        num_heads=heads,
        lru_width=draw(st.sampled_from([None, heads * lru_block])),
        window=draw(st.integers(1, 12)),
        vocab_size=draw(st.integers(2, 50)),
        soft_cap=draw(st.sampled_from([0.0, 5.0, 30.0])),
        scale_embeddings=draw(st.booleans()),
    )
    return case, draw(st.integers(1, 20)), draw(st.integers(0, 2**16))


@settings(max_examples=8)
@given(random_cases())
def test_random_configs_match_reference(drawn: tuple[Case, int, int]) -> None:
    case, length, seed = drawn
    ref, params = reference_model(case, seed=seed)
    ours = ours_from(case, params)
    tokens, positions = batch(case, length, seed=seed)
    want, _ = ref(params, tokens, positions)
    got, _ = call(ours, tokens, positions)
    scale = max(1.0, float(jnp.max(jnp.abs(want))))
    assert max_abs_diff(got, want) < FP32_TOL * scale, str(case)
    assert np.isfinite(np.asarray(got)).all()
