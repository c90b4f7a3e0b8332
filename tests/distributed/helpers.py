"""Helpers for the mesh tests: a few AdamW steps on MQAR, on one device or on a mesh."""

from __future__ import annotations

import equinox as eqx
import jax
import numpy as np

import hybrid_seq as hs
from hybrid_seq.distributed import Layout
from hybrid_seq.training import MQAR, OptimConfig, StepConfig, make_optimizer, make_train_step

TASK = MQAR(vocab_size=32, seq_len=16, batch_size=8, num_pairs=3)
OPTIM = OptimConfig(peak_lr=1e-3, warmup_steps=1, total_steps=10)


def train(config: hs.ModelConfig | hs.HybridConfig, layout: Layout | None, steps: int = 3):
    """Losses and gradient norms of `steps` steps, and the final model and optimizer state (on the host)."""
    model = hs.Model(config, key=jax.random.key(0))
    optimizer = make_optimizer(OPTIM)
    if layout is None:
        opt_state = optimizer.init(eqx.filter(model, eqx.is_inexact_array))
    else:
        model = layout.shard_model(model)
        opt_state = layout.init_state(optimizer, model)
    step = make_train_step(optimizer, StepConfig(), layout=layout)
    losses, grad_norms = [], []
    for s in range(steps):
        model, opt_state, metrics = step(model, opt_state, TASK.batch(s))
        losses.append(float(metrics.loss))
        grad_norms.append(float(metrics.grad_norm))
    return np.array(losses), np.array(grad_norms), jax.device_get((model, opt_state))
