"""HybridConfig: letters bound to configured kinds, layers of optional sub-blocks, model-level options."""

from __future__ import annotations

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

import hybrid_seq as hs
from hybrid_seq.blocks import (
    GatedMLPConfig,
    LocalAttentionConfig,
    NormConfig,
    ParallelConfig,
    ParallelMixers,
    RecurrentConfig,
)
from hybrid_seq.testing import padded_positions

#: Every layer form and model option at once: Griffin's pair (R), a lone MLP (-), parallel
#: mixers (P), a bound LayerConfig without MLP (L); untied head, plain-weight norms in fp32,
#: multipliers everywhere.
EVERYTHING = hs.HybridConfig(
    vocab_size=29,
    width=16,
    pattern="RP-L:5",
    kinds={
        "R": RecurrentConfig(lru_width=8, num_heads=2),
        "P": ParallelConfig(
            branches=(LocalAttentionConfig(num_heads=2, window_size=3), RecurrentConfig(num_heads=4)),
            in_multipliers=(1.0, 0.5),
            out_multipliers=(2.0, 0.25),
        ),
        "-": GatedMLPConfig(expanded_width=12),
        "L": hs.LayerConfig(temporal=LocalAttentionConfig(num_heads=4, window_size=2)),
    },
    channel=GatedMLPConfig(expanded_width=20),
    norm=NormConfig(eps=1e-5, offset=False, upcast=True),
    tie_embeddings=False,
    embedding_multiplier=3.0,
    residual_multiplier=0.7,
    logits_multiplier=0.5,
    logits_soft_cap=15.0,
)


@eqx.filter_jit
def run(model, tokens, positions, cache):
    return model(tokens, positions, cache)


def test_layers_follow_the_bindings() -> None:
    model = hs.Model(EVERYTHING, key=jax.random.key(0))
    kinds = [
        (type(b.temporal).__name__ if b.temporal is not None else None, type(b.mlp).__name__ if b.mlp is not None else None)
        for b in model.blocks
    ]
    assert kinds == [
        ("RecurrentBlock", "GatedMLP"), ("ParallelMixers", "GatedMLP"), (None, "GatedMLP"),
        ("LocalAttention", None), ("RecurrentBlock", "GatedMLP"),
    ]
    assert model.blocks[2].mlp.up.weight.shape == (16, 12) and model.blocks[0].mlp.up.weight.shape == (16, 20)
    assert model.blocks[3].channel_pre_norm is None and model.blocks[2].temporal_pre_norm is None
    assert isinstance(model.blocks[1].temporal, ParallelMixers) and model.head.weight.shape == (16, 29)
    assert float(model.final_norm.scale[0]) == 1.0 and not model.final_norm.offset
    assert EVERYTHING.layer_kinds[:3] == ("recurrent+gated_mlp", "parallel+gated_mlp", "gated_mlp")


def test_json_round_trip_is_exact() -> None:
    assert hs.HybridConfig.from_json(EVERYTHING.to_json()) == EVERYTHING
    griffin = hs.presets.get("recurrentgemma-2b").to_hybrid()
    assert hs.HybridConfig.from_json(griffin.to_json()) == griffin


def test_model_config_builds_the_same_model_as_its_hybrid_form() -> None:
    config = hs.ModelConfig(vocab_size=23, width=16, mlp_expanded_width=24, num_heads=2, lru_width=8,
                            block_pattern="RAR", attention_window_size=4, logits_soft_cap=10.0,
                            embeddings_scale_by_sqrt_dim=True)
    a = hs.Model(config, key=jax.random.key(3))
    b = hs.Model(config.to_hybrid(), key=jax.random.key(3))
    for x, y in zip(jax.tree_util.tree_leaves(a), jax.tree_util.tree_leaves(b)):
        np.testing.assert_array_equal(x, y)
    tokens = jnp.arange(14, dtype=jnp.int32).reshape(2, 7) % 23
    positions = jnp.tile(jnp.arange(7, dtype=jnp.int32), (2, 1))
    np.testing.assert_array_equal(a(tokens, positions)[0], b(tokens, positions)[0])
    assert hs.param_count(config) == hs.param_count(config.to_hybrid())


@given(
    st.integers(1, 11).flatmap(
        lambda length: st.tuples(
            st.just(length), padded_positions(2, length), st.lists(st.integers(1, max(1, length - 1)), max_size=3)
        )
    )
)
def test_any_chunking_equals_one_pass_for_every_layer_form(case) -> None:
    length, positions, cuts = case
    model = hs.Model(EVERYTHING, key=jax.random.key(1))
    tokens = jax.random.randint(jax.random.key(length), (2, length), 0, 29, jnp.int32)
    positions = jnp.asarray(positions, jnp.int32)
    whole, final = run(model, tokens, positions, None)
    pieces, cache = [], model.init_cache(2)
    for start, stop in zip([0, *sorted(set(c for c in cuts if c < length))], [*sorted(set(c for c in cuts if c < length)), length]):
        logits, cache = run(model, tokens[:, start:stop], positions[:, start:stop], cache)
        pieces.append(logits)
    np.testing.assert_allclose(jnp.concatenate(pieces, axis=1), whole, atol=2e-5)
    for got, want in zip(jax.tree_util.tree_leaves(cache), jax.tree_util.tree_leaves(final)):
        np.testing.assert_allclose(got, want, atol=2e-5)


def test_model_options_act_where_they_should() -> None:
    plain = EVERYTHING.replace(embedding_multiplier=1.0, logits_multiplier=1.0, logits_soft_cap=0.0)
    model = hs.Model(plain, key=jax.random.key(2))
    tokens = jnp.arange(6, dtype=jnp.int32).reshape(1, 6)
    positions = jnp.arange(6, dtype=jnp.int32)[None]
    logits, _ = model(tokens, positions)
    scaled = hs.Model(plain.replace(logits_multiplier=0.5, embedding_multiplier=2.0), key=jax.random.key(2))
    x = 2.0 * scaled.embedder.encode(tokens)
    for block in scaled.blocks:
        x, _ = block(x, positions)
    np.testing.assert_allclose(scaled(tokens, positions)[0], 0.5 * scaled.head(scaled.final_norm(x)), rtol=1e-5)
    np.testing.assert_allclose(logits, model.head(model.final_norm(_hidden(model, tokens, positions))), rtol=1e-6)


def _hidden(model, tokens, positions):
    x = model.embedder.encode(tokens)
    for block in model.blocks:
        x, _ = block(x, positions)
    return x


def test_scan_over_layers_works_for_hybrid_units() -> None:
    config = EVERYTHING.replace(pattern="RP-L:9")
    model = hs.Model(config, key=jax.random.key(4))
    stacked = model.stack_layers()
    assert stacked.layers_stacked and len(stacked.blocks) == 2
    tokens = jnp.arange(10, dtype=jnp.int32).reshape(2, 5) % 29
    positions = jnp.tile(jnp.arange(5, dtype=jnp.int32), (2, 1))
    np.testing.assert_allclose(run(stacked, tokens, positions, None)[0], run(model, tokens, positions, None)[0], atol=1e-5)


@pytest.mark.parametrize(
    ("change", "error", "message"),
    [
        (dict(pattern="RXR"), ValueError, r"letters \['X'\] that kinds does not bind"),
        (dict(channel=RecurrentConfig()), ValueError, "channel must be a channel kind"),
        # Under the suite's jaxtyping + beartype hook the annotation may reject first.
        (dict(kinds={"R": "recurrent"}), TypeError, r"kinds\['R'\] must be a KindConfig|parameter 'kinds'"),
        (dict(pattern="R", kinds={"R": RecurrentConfig(num_heads=3)}), ValueError,
         r"kinds\['R'\]: recurrent: num_heads=3 must divide lru_width=16"),
        (dict(pattern="A", kinds={"A": LocalAttentionConfig(num_heads=8)}), ValueError, "multiple of 4"),
        (dict(width=0), ValueError, "HybridConfig.width must be >= 1"),
        (dict(logits_soft_cap=-1.0), ValueError, "logits_soft_cap"),
        (dict(tie_embeddings=1), TypeError, "tie_embeddings must be a bool|parameter 'tie_embeddings'"),
    ],
)
def test_bad_configs_name_the_field(change, error, message) -> None:
    with pytest.raises(error, match=message):
        EVERYTHING.replace(**change)


@pytest.mark.parametrize(
    ("build", "message"),
    [
        (lambda: hs.LayerConfig(), "needs a temporal kind, a channel kind, or both"),
        (lambda: hs.LayerConfig(temporal=GatedMLPConfig(expanded_width=4)), "must be a temporal kind config, got a channel kind"),
        (lambda: ParallelConfig(branches=(RecurrentConfig(),)), "two or more temporal kind configs"),
        (lambda: ParallelConfig(branches=(RecurrentConfig(), RecurrentConfig()), out_multipliers=(1.0,)), "1 values for 2 branches"),
        (lambda: RecurrentConfig(gate_dtype="float16"), "gate_dtype must be one of"),
        (lambda: GatedMLPConfig(expanded_width=0), "gated_mlp.expanded_width must be >= 1"),
        (lambda: hs.KindConfig.from_dict({"kind": "nope"}), "kind 'nope' is not registered"),
        (lambda: hs.KindConfig.from_dict({"kind": "recurrent", "width": 3}), r"has no fields \['width'\]"),
        (lambda: hs.HybridConfig.from_dict({**EVERYTHING.to_dict(), "hidden": 3}), r"unknown HybridConfig fields: \['hidden'\]"),
    ],
)
def test_bad_kind_configs_name_the_field(build, message) -> None:
    with pytest.raises((TypeError, ValueError), match=message):
        build()


def test_register_kind_checks_the_class() -> None:
    sideways = type("Sideways", (GatedMLPConfig,), {"kind": "test_sideways", "role": "sideways"})
    with pytest.raises(ValueError, match="role must be one of"):
        hs.register_kind(sideways)
    with pytest.raises(ValueError, match="already registered"):
        hs.kinds.register_kind(type("Other", (GatedMLPConfig,), {"__module__": "elsewhere"}))
