"""The decay mask excludes exactly the RG-LRU, norms, biases and the embedding; the schedule warms up then decays."""

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np

from hybrid_seq import Model, ModelConfig
from hybrid_seq.training import OptimConfig, decay_mask, decayed_paths, make_optimizer, warmup_cosine

CONFIG = ModelConfig(vocab_size=32, width=16, mlp_expanded_width=32, num_heads=2, block_pattern="RA", attention_window_size=8)

DECAYED = [
    ".blocks[0].temporal.linear_y.weight",
    ".blocks[0].temporal.linear_x.weight",
    ".blocks[0].temporal.conv_1d.weight",
    ".blocks[0].temporal.linear_out.weight",
    ".blocks[0].mlp.gate.weight",
    ".blocks[0].mlp.up.weight",
    ".blocks[0].mlp.down.weight",
    ".blocks[1].temporal.proj_q.weight",
    ".blocks[1].temporal.proj_k.weight",
    ".blocks[1].temporal.proj_v.weight",
    ".blocks[1].temporal.proj_final.weight",
    ".blocks[1].mlp.gate.weight",
    ".blocks[1].mlp.up.weight",
    ".blocks[1].mlp.down.weight",
]

NOT_DECAYED = [
    ".embedder.weight",
    ".blocks[0].temporal_pre_norm.scale",
    ".blocks[0].temporal.linear_y.bias",
    ".blocks[0].temporal.linear_x.bias",
    ".blocks[0].temporal.conv_1d.bias",
    ".blocks[0].temporal.rg_lru.a_param",
    ".blocks[0].temporal.rg_lru.input_gate.weight",
    ".blocks[0].temporal.rg_lru.input_gate.bias",
    ".blocks[0].temporal.rg_lru.a_gate.weight",
    ".blocks[0].temporal.rg_lru.a_gate.bias",
    ".blocks[0].temporal.linear_out.bias",
    ".blocks[0].channel_pre_norm.scale",
    ".blocks[0].mlp.gate.bias",
    ".blocks[0].mlp.up.bias",
    ".blocks[0].mlp.down.bias",
    ".blocks[1].temporal_pre_norm.scale",
    ".blocks[1].temporal.proj_final.bias",
    ".blocks[1].channel_pre_norm.scale",
    ".blocks[1].mlp.gate.bias",
    ".blocks[1].mlp.up.bias",
    ".blocks[1].mlp.down.bias",
    ".final_norm.scale",
]


def test_decay_mask_lists_exactly_the_matrices_outside_rglru_and_embedder():
    model = Model(CONFIG, key=jax.random.PRNGKey(0))
    assert decayed_paths(model) == DECAYED
    assert decayed_paths(model, decayed=False) == NOT_DECAYED
    mask = decay_mask(model)
    assert jax.tree_util.tree_structure(mask) == jax.tree_util.tree_structure(eqx.filter(model, eqx.is_array))


def test_optimizer_decays_only_masked_leaves():
    """With zero gradients AdamW's update is pure weight decay: masked leaves shrink, the rest stay put."""
    model = Model(CONFIG, key=jax.random.PRNGKey(0))
    model = jax.tree_util.tree_map(lambda x: x + 0.5 if eqx.is_inexact_array(x) else x, model)
    params = eqx.filter(model, eqx.is_inexact_array)
    optimizer = make_optimizer(OptimConfig(peak_lr=0.1, warmup_steps=0, total_steps=10, weight_decay=0.5))
    zeros = jax.tree_util.tree_map(jnp.zeros_like, params)
    updates, _ = optimizer.update(zeros, optimizer.init(params), params)
    changed = jax.tree_util.tree_map(lambda u: bool(jnp.any(u != 0)), updates)
    assert jax.tree_util.tree_leaves(changed) == jax.tree_util.tree_leaves(decay_mask(model))


def test_warmup_cosine_schedule():
    schedule = warmup_cosine(1e-3, warmup_steps=10, total_steps=100, final_fraction=0.1)
    assert float(schedule(0)) == 0.0
    np.testing.assert_allclose(float(schedule(10)), 1e-3, rtol=1e-6)
    np.testing.assert_allclose(float(schedule(100)), 1e-4, rtol=1e-5)
    assert float(schedule(5)) < float(schedule(10)) and float(schedule(50)) < float(schedule(10))
