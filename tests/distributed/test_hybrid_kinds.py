"""The Mamba-2, grouped-query attention and MoE kinds on a mesh: whole heads, groups and experts'
hidden units are split, and three training steps equal one device (fp32, within 1e-5)."""

from __future__ import annotations

import equinox as eqx
import jax
import numpy as np
import pytest
from jax.sharding import PartitionSpec as P

import hybrid_seq as hs
from hybrid_seq.blocks import AttentionConfig, Mamba2Config, MLPConfig, MoEConfig
from hybrid_seq.distributed import Layout, partition_specs
from tests.distributed.helpers import train

CONFIG = hs.HybridConfig(
    vocab_size=32,
    width=16,
    pattern="MG",
    kinds={
        "M": Mamba2Config(num_heads=4, head_dim=4, state_size=4, n_groups=2),
        "G": AttentionConfig(num_heads=4, num_kv_heads=2, head_dim=4),
    },
    channel=MoEConfig(num_experts=4, top_k=2, hidden_width=8, shared=MLPConfig(hidden_width=8)),
)

def test_heads_groups_and_expert_units_split_whole() -> None:
    model = eqx.filter_eval_shape(hs.Model, CONFIG, key=jax.random.key(0))
    specs = partition_specs(model, {"tensor": 2})
    mamba, attention = specs.blocks[0].temporal, specs.blocks[1].temporal
    assert mamba.x_proj.weight == P(None, "tensor") and mamba.b_proj.weight == P(None, "tensor")
    assert mamba.out_proj.weight == P("tensor", None) and mamba.A_log == P("tensor")
    assert attention.q_proj.weight == P(None, "tensor") and attention.k_proj.weight == P(None, "tensor")
    assert specs.blocks[0].mlp.up == P(None, None, "tensor")
    # Four devices split Mamba-2's four heads but not its two groups, nor the two key/value heads.
    wide = partition_specs(model, {"tensor": 4})
    assert wide.blocks[0].temporal.x_proj.weight == P(None, "tensor")
    assert wide.blocks[0].temporal.b_proj.weight == P(None, None) and wide.blocks[1].temporal.k_proj.weight == P(None, None)


@pytest.fixture(scope="module")
def one_device():
    losses, _, (model, _) = train(CONFIG, None)
    return losses, model


@pytest.mark.parametrize("spec", ["data=2,fsdp=2,tensor=2", "data=2,seq=4"])
def test_three_steps_on_a_mesh_equal_one_device(one_device, spec: str) -> None:
    losses, _, (model, _) = train(CONFIG, Layout.from_spec(spec))
    want_losses, want_model = one_device
    np.testing.assert_allclose(losses, want_losses, rtol=1e-5, atol=1e-5)
    for (path, got), want in zip(jax.tree_util.tree_leaves_with_path(eqx.filter(model, eqx.is_array)),
                                 jax.tree_util.tree_leaves(eqx.filter(want_model, eqx.is_array))):
        np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-5, err_msg=jax.tree_util.keystr(path))
