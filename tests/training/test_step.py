"""Train step: loss decreases, packed documents do not leak, remat and accumulation do not change results, bf16 keeps fp32 masters."""

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from hybrid_seq import Model, ModelConfig
from hybrid_seq.training import (
    MQAR,
    Batch,
    OptimConfig,
    StepConfig,
    loss_terms,
    make_optimizer,
    make_train_step,
    shift_for_next_token,
)
from hybrid_seq.training.step import summed_grads

CONFIG = ModelConfig(
    vocab_size=32, width=16, mlp_expanded_width=32, num_heads=2, block_pattern="RA", attention_window_size=8
)


def tiny_model(seed=0, config=CONFIG):
    return Model(config, key=jax.random.PRNGKey(seed))


def random_batch(seed, rows=4, length=16, vocab=32):
    rng = np.random.default_rng(seed)
    tokens = rng.integers(0, vocab, size=(rows, length + 1))
    positions = np.broadcast_to(np.arange(length + 1), tokens.shape)
    return shift_for_next_token(tokens, positions, rng.random(tokens.shape) < 0.8)


def test_loss_decreases_on_tiny_task():
    task = MQAR(vocab_size=32, seq_len=16, num_pairs=4, batch_size=16)
    model = tiny_model()
    optimizer = make_optimizer(OptimConfig(peak_lr=1e-2, warmup_steps=5, total_steps=30))
    opt_state = optimizer.init(eqx.filter(model, eqx.is_inexact_array))
    step = make_train_step(optimizer)
    losses = []
    for i in range(30):
        model, opt_state, metrics = step(model, opt_state, task.batch(i % 4))
        losses.append(float(metrics.loss))
    assert np.mean(losses[-4:]) < 0.8 * np.mean(losses[:4])


def _forward_from_embeddings(model, x, positions):
    """The model's forward pass from the embedded inputs on (to differentiate w.r.t. the inputs)."""
    for block in model.blocks:
        x, _ = block(x, positions, None)
    logits = model.embedder.decode(model.final_norm(x))
    cap = model.config.logits_soft_cap
    return jnp.tanh(logits / cap) * cap if cap else logits


@pytest.mark.parametrize("pattern", ["RA", "R", "A"])
def test_packed_documents_do_not_leak(pattern):
    """d(loss of document 2)/d(embedded inputs of document 1) is exactly zero, and nonzero inside document 2."""
    config = ModelConfig(
        vocab_size=32, width=16, mlp_expanded_width=32, num_heads=2, block_pattern=pattern,
        attention_window_size=32, logits_soft_cap=30.0,
    )
    model = tiny_model(1, config)
    rng = np.random.default_rng(0)
    tokens = rng.integers(3, 32, size=(2, 25))
    positions = np.concatenate([np.arange(10), np.arange(15)])[None].repeat(2, 0)
    batch = shift_for_next_token(tokens, positions, np.ones_like(tokens, bool))
    assert not np.asarray(batch.loss_mask[:, 9]).any()  # document 2's first token is never a target
    doc2 = jnp.arange(24) >= 10  # inputs (and their next-token targets) of document 2

    x = model.embedder.encode(batch.tokens)
    logits, _ = eqx.filter_jit(model)(batch.tokens, batch.positions)
    forward = eqx.filter_jit(_forward_from_embeddings)
    np.testing.assert_allclose(forward(model, x, batch.positions), logits, rtol=1e-6, atol=1e-6)

    def doc2_loss(x):
        lp = jax.nn.log_softmax(forward(model, x, batch.positions).astype(jnp.float32))
        nll = -jnp.take_along_axis(lp, batch.targets[..., None], -1)[..., 0]
        return jnp.sum(jnp.where(batch.loss_mask & doc2, nll, 0.0))

    grad = jax.jit(jax.grad(doc2_loss))(x)
    assert np.all(np.asarray(grad[:, :10]) == 0.0)
    assert np.all(np.abs(np.asarray(grad[:, 10:])).sum(-1) > 0)


def test_checkpoint_blocks_changes_memory_not_results():
    config = ModelConfig(vocab_size=32, width=32, mlp_expanded_width=128, num_heads=2, block_pattern="RRA:3", attention_window_size=64)
    model = tiny_model(2, config)
    batch = random_batch(3, rows=4, length=64)
    params, static = eqx.partition(model, eqx.is_array)
    results, temp_bytes = [], []
    for remat in (False, True):
        config = StepConfig(checkpoint_blocks=remat)
        fn = jax.jit(lambda p, b, config=config: summed_grads(eqx.combine(p, static), b, config))
        results.append(fn(params, batch))
        temp_bytes.append(fn.lower(params, batch).compile().memory_analysis().temp_size_in_bytes)
    for a, b in zip(jax.tree_util.tree_leaves(results[0]), jax.tree_util.tree_leaves(results[1])):
        np.testing.assert_allclose(np.asarray(a), np.asarray(b), rtol=1e-5, atol=1e-6)
    assert temp_bytes[1] < temp_bytes[0]


def test_gradient_accumulation_equals_large_batch():
    batch = random_batch(4, rows=8)
    optimizer = make_optimizer(OptimConfig(peak_lr=1e-2, warmup_steps=0, total_steps=10))
    outputs = []
    for accum in (1, 4):
        model = tiny_model(3)
        opt_state = optimizer.init(eqx.filter(model, eqx.is_inexact_array))
        step = make_train_step(optimizer, StepConfig(accum_steps=accum))
        model, opt_state, metrics = step(model, opt_state, batch)
        outputs.append((model, metrics))
    (ref_model, ref_metrics), *others = outputs
    for model, metrics in others:
        np.testing.assert_allclose(float(metrics.loss), float(ref_metrics.loss), rtol=1e-6)
        np.testing.assert_allclose(float(metrics.grad_norm), float(ref_metrics.grad_norm), rtol=1e-5)
        for a, b in zip(jax.tree_util.tree_leaves(eqx.filter(model, eqx.is_array)), jax.tree_util.tree_leaves(eqx.filter(ref_model, eqx.is_array))):
            np.testing.assert_allclose(np.asarray(a), np.asarray(b), rtol=1e-5, atol=1e-6)


def test_bf16_compute_keeps_fp32_master_weights():
    batch = random_batch(5)
    model = tiny_model(4)
    fp32_loss = loss_terms(model, batch).nll_sum
    bf16_loss = loss_terms(model, batch, compute_dtype=jnp.bfloat16).nll_sum
    assert bf16_loss.dtype == jnp.float32
    np.testing.assert_allclose(float(bf16_loss), float(fp32_loss), rtol=3e-2)
    optimizer = make_optimizer(OptimConfig(warmup_steps=0, total_steps=4))
    opt_state = optimizer.init(eqx.filter(model, eqx.is_inexact_array))
    model, opt_state, metrics = make_train_step(optimizer, StepConfig(compute_dtype="bfloat16"))(model, opt_state, batch)
    assert np.isfinite(float(metrics.loss))
    assert {leaf.dtype for leaf in jax.tree_util.tree_leaves(eqx.filter(model, eqx.is_inexact_array))} == {jnp.dtype(jnp.float32)}


def test_batch_is_a_pytree_of_int_and_bool():
    batch = random_batch(6)
    assert isinstance(batch, Batch)
    assert batch.tokens.dtype == jnp.int32 and batch.loss_mask.dtype == jnp.bool_
    assert batch.num_tokens == 4 * 16
