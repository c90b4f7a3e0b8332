"""Exact parameter counts from shapes (no allocation), against the reference's published numbers."""

from __future__ import annotations

import jax.numpy as jnp
import pytest

from hybrid_seq import param_count, presets
from hybrid_seq.sampling import kv_cache_bytes, state_bytes

# (total, embedding, non-embedding) of the reference model at vocab 256000 (reference-facts §8).
EXPECTED = {
    "recurrentgemma-2b": (2_682_862_080, 655_360_000, 2_027_502_080),
    "recurrentgemma-9b": (8_579_977_216, 1_048_576_000, 7_531_401_216),
    "griffin-7b": (7_795_144_704, 1_048_576_000, 6_746_568_704),
    "hawk-7b": (8_161_562_624, 1_048_576_000, 7_112_986_624),
}


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_param_counts_are_exact(name: str) -> None:
    counts = param_count(presets.get(name))
    assert (counts.total, counts.embedding, counts.non_embedding) == EXPECTED[name]


def _formula(config) -> int:
    """Per-layer closed form (reference-facts §8), independent of the model code."""
    d, e, h, lru, v = config.width, config.mlp_expanded_width, config.num_heads, config.resolved_lru_width, config.vocab_size
    mlp = 3 * d * e + 2 * e + d
    recurrent = 2 * d + 3 * d * lru + 2 * lru + d + 5 * lru + lru + 2 * (lru * lru // h + lru) + mlp
    attention = 2 * d + 2 * d * d + 2 * d * (d // h) + d + mlp
    layers = sum(recurrent if k == "recurrent" else attention for k in config.layer_kinds)
    return v * d + d + layers


@pytest.mark.parametrize("name", [n for n in presets.names() if n not in presets.hf.CONFIGS])
def test_param_count_matches_closed_form(name: str) -> None:
    config = presets.get(name)
    assert param_count(config).total == _formula(config)


def test_state_is_fixed_and_far_below_a_kv_cache() -> None:
    config = presets.get("recurrentgemma-2b")
    # 18 recurrent layers x (fp32 LRU state + 3 bf16 conv rows) + 8 attention layers x (window + 1)-slot bf16 K and V.
    assert state_bytes(config, dtype=jnp.bfloat16) == 18 * (2560 * 4 + 3 * 2560 * 2) + 8 * (2 * 2049 * 256 * 2 + 4 + 4)
    assert kv_cache_bytes(config, 8192, dtype=jnp.bfloat16) == 2 * 26 * 8192 * 2560 * 2
