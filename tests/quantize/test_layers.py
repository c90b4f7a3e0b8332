"""The int8 layers: per-channel rounding error, what they compute, their axes, NaN rows, stacked layers, bf16."""

from __future__ import annotations

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np

from hybrid_seq import Model
from hybrid_seq.blocks import Embedder, Linear
from hybrid_seq.blocks.axes import EMBED, LRU, VOCAB, logical_axes
from hybrid_seq.blocks.quantized import QuantizedEmbedder, QuantizedLinear, quantize_channels
from hybrid_seq.quantize import quantization_of, quantize
from tests.io.helpers import random_model
from tests.quantize.helpers import CONFIG, forward, inputs


def test_each_weight_is_within_half_a_step_of_its_channel_scale() -> None:
    weight = jax.random.normal(jax.random.key(0), (48, 16)) * jnp.linspace(0.01, 3.0, 16)
    weight = weight.at[:, 3].set(0.0)
    values, scale = quantize_channels(weight, axis=-2)
    assert values.dtype == jnp.int8 and scale.shape == (16,) and int(jnp.max(jnp.abs(values))) == 127
    error = np.abs(np.asarray(values, np.float32) * np.asarray(scale) - np.asarray(weight))
    assert (error <= np.asarray(scale) / 2 * (1 + 1e-6)).all()
    assert float(scale[3]) == 1.0 and not np.asarray(values[:, 3]).any()


def test_layers_compute_with_the_dequantised_weights() -> None:
    key_w, key_b, key_x = jax.random.split(jax.random.key(1), 3)
    linear = Linear(32, 24, use_bias=True, key=key_w)
    linear = jax.tree_util.tree_map(lambda leaf: leaf + 0.1 * jax.random.normal(key_b, leaf.shape), linear)
    x = jax.random.normal(key_x, (3, 5, 32))
    q = QuantizedLinear.from_float(linear)
    dense = np.asarray(q.weight, np.float32) * np.asarray(q.scale)
    np.testing.assert_allclose(q(x), np.asarray(x) @ dense + np.asarray(linear.bias), rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(q(x), linear(x), atol=0.02)

    embedder = Embedder(50, 32, scale_by_sqrt_dim=True, key=key_w)
    e = QuantizedEmbedder.from_float(embedder)
    table = np.asarray(e.quantized, np.float32) * np.asarray(e.scale)[:, None]
    tokens = jnp.asarray([[0, 7, 49]])
    np.testing.assert_allclose(e.encode(tokens), table[np.asarray(tokens)] * float(jnp.bfloat16(np.sqrt(32))), rtol=1e-6)
    np.testing.assert_allclose(e.decode(x), np.asarray(x) @ table.T, rtol=1e-5, atol=1e-5)
    assert e.vocab_size == 50 and e.dtype == jnp.float32
    rows = jax.jit(lambda ids: e.encode(ids))(jnp.asarray([50, -1, 3]))
    assert np.isnan(rows[:2]).all() and np.isfinite(rows[2]).all()


def test_quantized_model_keeps_its_state_and_names_its_axes(model: Model, quantized: Model) -> None:
    assert quantization_of(model) is None and quantization_of(quantized) == "int8"
    assert quantized.dtype == jnp.float32 and quantized.vocab_size == CONFIG.vocab_size
    assert isinstance(quantized.embedder, QuantizedEmbedder)
    recurrent = quantized.blocks[0].temporal
    assert isinstance(recurrent.linear_x, QuantizedLinear) and recurrent.linear_x.weight.dtype == jnp.int8
    # The RG-LRU (gates, a_param), norms, biases and conv taps stay float.
    assert recurrent.rg_lru.a_gate.weight.dtype == recurrent.rg_lru.a_param.dtype == jnp.float32
    assert recurrent.conv_1d.weight.dtype == quantized.blocks[0].temporal_pre_norm.scale.dtype == jnp.float32
    assert recurrent.linear_x.bias.dtype == jnp.float32
    axes = logical_axes(quantized)
    assert axes[("blocks", 0, "temporal", "linear_x", "weight")] == (EMBED, LRU)
    assert axes[("blocks", 0, "temporal", "linear_x", "scale")] == (None,)
    assert axes[("embedder", "quantized")] == (VOCAB, EMBED) and axes[("embedder", "scale")] == (VOCAB,)
    float_state, int8_state = model.init_cache(2, 12), quantized.init_cache(2, 12)
    assert jax.tree_util.tree_structure(float_state) == jax.tree_util.tree_structure(int8_state)
    assert [x.dtype for x in jax.tree_util.tree_leaves(float_state)] == [x.dtype for x in jax.tree_util.tree_leaves(int8_state)]


def test_stacked_layers_stay_stacked_and_bfloat16_stays_bfloat16() -> None:
    stacked = random_model(CONFIG.replace(block_pattern="RA:4")).stack_layers()
    q = quantize(stacked, "int8")
    assert q.layers_stacked
    for a, b in zip(jax.tree_util.tree_leaves(q.unstack_layers()), jax.tree_util.tree_leaves(quantize(stacked.unstack_layers(), "int8"))):
        assert a.dtype == b.dtype and (np.asarray(a) == np.asarray(b)).all()
    tokens, positions = inputs(batch=1, length=6)
    assert np.isfinite(forward(q, tokens, positions)).all()
    half = quantize(random_model(CONFIG, dtype=jnp.bfloat16), "int8")
    assert half.dtype == jnp.bfloat16 and half.embedder.scale.dtype == jnp.bfloat16
    logits, cache = eqx.filter_eval_shape(half, tokens, positions)
    assert logits.dtype == jnp.bfloat16 and cache[1].keys.dtype == jnp.bfloat16
