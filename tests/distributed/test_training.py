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
from tests.distributed.helpers import train

CONFIG = hs.ModelConfig(
    vocab_size=32, width=16, mlp_expanded_width=32, num_heads=2, block_pattern="RA", attention_window_size=6
)
MESHES = ["data=8", "fsdp=8", "tensor=2 x data=4", "data=2,fsdp=2,tensor=2", "data=2,seq=4"]


@pytest.fixture(scope="module")
def one_device():
    return train(CONFIG, None)


@pytest.mark.parametrize("spec", MESHES)
def test_three_steps_on_a_mesh_equal_one_device(one_device, spec: str) -> None:
    layout = Layout.from_spec(spec)
    losses, grad_norms, (model, opt_state) = train(CONFIG, layout)
    want_losses, want_norms, (want_model, want_state) = one_device
    np.testing.assert_allclose(losses, want_losses, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(grad_norms, want_norms, rtol=1e-5, atol=1e-5)
    for name, got, want in (("params", model, want_model), ("optimizer state", opt_state, want_state)):
        for (path, g), w in zip(jax.tree_util.tree_leaves_with_path(eqx.filter(got, eqx.is_array)),
                                jax.tree_util.tree_leaves(eqx.filter(want, eqx.is_array))):
            np.testing.assert_allclose(g, w, rtol=1e-5, atol=1e-5, err_msg=f"{name}{jax.tree_util.keystr(path)}")
