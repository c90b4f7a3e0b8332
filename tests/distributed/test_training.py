"""Three training steps on each mesh give the losses, gradients and parameters of one device (fp32, within 1e-5).

Gradients are compared twice: as the global gradient norm of each step, and through
Adam's moment estimates after three steps (`mu` is a moving average of the gradients,
`nu` of their squares), leaf by leaf.
"""

from __future__ import annotations

import equinox as eqx
import jax
import numpy as np
import pytest

import hybrid_seq as hs
from hybrid_seq.distributed import Layout
from hybrid_seq.training import MQAR, OptimConfig, StepConfig, make_optimizer, make_train_step

CONFIG = hs.ModelConfig(
    vocab_size=32, width=16, mlp_expanded_width=32, num_heads=2, block_pattern="RA", attention_window_size=6
)
TASK = MQAR(vocab_size=32, seq_len=16, batch_size=8, num_pairs=3)
OPTIM = OptimConfig(peak_lr=1e-3, warmup_steps=1, total_steps=10)
MESHES = ["data=8", "fsdp=8", "tensor=2 x data=4", "data=2,fsdp=2,tensor=2", "data=2,seq=4"]


def train(layout: Layout | None, steps: int = 3):
    """Losses and gradient norms of `steps` steps, and the final model and optimizer state (on the host)."""
    model = hs.Model(CONFIG, key=jax.random.key(0))
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


@pytest.fixture(scope="module")
def one_device():
    return train(None)


@pytest.mark.parametrize("spec", MESHES)
def test_three_steps_on_a_mesh_equal_one_device(one_device, spec: str) -> None:
    layout = Layout.from_spec(spec)
    losses, grad_norms, (model, opt_state) = train(layout)
    want_losses, want_norms, (want_model, want_state) = one_device
    np.testing.assert_allclose(losses, want_losses, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(grad_norms, want_norms, rtol=1e-5, atol=1e-5)
    for name, got, want in (("params", model, want_model), ("optimizer state", opt_state, want_state)):
        for (path, g), w in zip(jax.tree_util.tree_leaves_with_path(eqx.filter(got, eqx.is_array)),
                                jax.tree_util.tree_leaves(eqx.filter(want, eqx.is_array))):
            np.testing.assert_allclose(g, w, rtol=1e-5, atol=1e-5, err_msg=f"{name}{jax.tree_util.keystr(path)}")
