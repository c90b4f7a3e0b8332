"""The block-pattern spec: parsing, expansion, registration, errors."""

from __future__ import annotations

import json

import jax
import jax.numpy as jnp
import pytest
from hypothesis import given
from hypothesis import strategies as st

import hybrid_seq as hs
from hybrid_seq.blocks import AbstractTemporalBlock, Linear
from hybrid_seq.pattern import BlockPattern, parse_pattern, temporal_kind, unregister_temporal_block


def test_griffin_unit_cycled_and_truncated() -> None:
    pattern = parse_pattern("RRA:26")
    kinds = pattern.layer_kinds
    assert len(kinds) == 26
    assert [i for i, k in enumerate(kinds) if k == "attention"] == list(range(2, 26, 3))
    assert kinds[-1] == "recurrent"
    assert str(pattern) == "RRA:26"


@pytest.mark.parametrize(
    "spec",
    ["RRA:6", "RRARRA", "R, R, A, R, R, A", ["recurrent", "recurrent", "attention"] * 2,
     {"unit": ["recurrent", "recurrent", "attention"], "num_layers": 6}, {"unit": "RRA", "num_layers": 6}],
)
def test_equivalent_spellings(spec) -> None:
    assert parse_pattern(spec).layer_kinds == parse_pattern("RRA:6").layer_kinds


@given(st.text(alphabet="RA", min_size=1, max_size=6), st.integers(1, 40))
def test_json_round_trip(unit: str, layers: int) -> None:
    pattern = parse_pattern(f"{unit}:{layers}")
    assert parse_pattern(json.loads(json.dumps(pattern.to_json()))) == pattern
    assert parse_pattern(str(pattern)).layer_kinds == pattern.layer_kinds


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ("RXA", "unknown block kind 'X'"),
        ("", "empty"),
        ("RRA:0", "at least one layer"),
        ("RRA:x", "expected an integer layer count"),
        ([], "empty"),
        ({"unit": "RRA", "layers": 3}, "must have keys"),
        (["recurrent", "mamba"], "unknown block kind 'mamba'"),
    ],
)
def test_bad_patterns_name_the_problem(spec, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        parse_pattern(spec)


def test_bad_pattern_position_is_reported() -> None:
    with pytest.raises(ValueError, match="position 2"):
        parse_pattern("RRx")


class ShiftMix(AbstractTemporalBlock):
    """A user's own temporal block: mixes each token with the previous one."""

    mix: Linear

    def init_state(self, batch_size: int, dtype):
        return jnp.zeros((batch_size, self.mix.weight.shape[0]), dtype)

    def __call__(self, x, positions, state=None):
        previous = jnp.zeros_like(x[:, 0]) if state is None else state
        shifted = jnp.concatenate([previous[:, None], x[:, :-1]], axis=1)
        shifted = jnp.where((positions == 0)[..., None], 0, shifted)
        return self.mix(shifted) + x, x[:, -1]


def test_user_block_registered_and_used_in_a_pattern() -> None:
    hs.register_temporal_block(
        "shift", letter="S", build=lambda config, *, key, dtype: ShiftMix(Linear(config.width, config.width, use_bias=False, key=key, dtype=dtype))
    )
    try:
        config = hs.ModelConfig(vocab_size=11, width=8, mlp_expanded_width=16, num_heads=2, block_pattern="SRA")
        assert config.layer_kinds == ("shift", "recurrent", "attention")
        model = hs.Model(config, key=jax.random.key(0))
        tokens = jnp.arange(12, dtype=jnp.int32).reshape(2, 6) % 11
        positions = jnp.tile(jnp.arange(6, dtype=jnp.int32), (2, 1))
        whole, _ = model(tokens, positions)
        first, cache = model(tokens[:, :4], positions[:, :4])
        second, _ = model(tokens[:, 4:], positions[:, 4:], cache)
        assert jnp.allclose(jnp.concatenate([first, second], 1), whole, atol=1e-5)
    finally:
        unregister_temporal_block("shift")
    with pytest.raises(ValueError, match="unknown block kind"):
        temporal_kind("S")


def test_registration_errors() -> None:
    with pytest.raises(ValueError, match="already used"):
        hs.register_temporal_block("other", letter="R", build=lambda *a, **k: None)
    with pytest.raises(ValueError, match="single letter"):
        hs.register_temporal_block("other", letter="RR", build=lambda *a, **k: None)
    with pytest.raises(ValueError, match="built-in"):
        unregister_temporal_block("recurrent")


def test_block_pattern_counts() -> None:
    pattern = BlockPattern(unit=("recurrent", "recurrent", "attention"), num_layers=38)
    assert pattern.count("A") == 12 and pattern.count("recurrent") == 26
    assert pattern.num_full_units == 12
