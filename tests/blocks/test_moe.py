"""Mixture of experts: the ragged (chosen experts only) form equals the dense form for every router."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from hybrid_seq.blocks import MLPConfig, MoEConfig, replace_static

WIDTH = 8


def perturbed(config: MoEConfig, seed: int = 0):
    layer = config.build(WIDTH, key=jax.random.key(seed), dtype=jnp.float32, num_layers=2)
    leaves, treedef = jax.tree_util.tree_flatten(layer)
    rng = np.random.default_rng(seed)
    return jax.tree_util.tree_unflatten(treedef, [jnp.asarray(rng.normal(0, 0.7, x.shape), jnp.float32) for x in leaves])


CONFIGS = {
    "granite": MoEConfig(num_experts=4, top_k=2, hidden_width=6, router="softmax_topk",
                         shared=MLPConfig(hidden_width=5)),
    "mixtral": MoEConfig(num_experts=5, top_k=2, hidden_width=6, router="softmax", normalize_top_k=True),
    "nemotron": MoEConfig(num_experts=6, top_k=2, hidden_width=4, activation="relu2", gated=False, router="sigmoid",
                          normalize_top_k=True, routed_scaling=2.5, selection_bias=True, num_groups=3, topk_groups=2,
                          shared=MLPConfig(hidden_width=3, activation="relu2", gated=False)),
}


def oracle(layer, x):
    """The dense form in float64: every expert, weighted by the chosen experts' router weights."""
    f = lambda a: np.asarray(a, np.float64)  # noqa: E731
    weights, index = (np.asarray(a) for a in layer.route(jnp.asarray(x)))
    act = {"silu": lambda v: v / (1 + np.exp(-v)), "relu2": lambda v: np.maximum(v, 0) ** 2}[layer.activation]
    out = np.zeros(x.shape)
    for n in range(x.shape[0]):
        for w, e in zip(weights[n], index[n]):
            hidden = f(x[n]) @ f(layer.up[e])
            hidden = act(f(x[n]) @ f(layer.gate[e])) * hidden if layer.gate is not None else act(hidden)
            out[n] += w * (hidden @ f(layer.down[e]))
    return out


@pytest.mark.parametrize("name", list(CONFIGS))
def test_ragged_equals_dense_and_the_float64_form(name) -> None:
    layer = perturbed(CONFIGS[name])
    x = np.random.default_rng(1).standard_normal((13, WIDTH)).astype(np.float32)
    ragged = layer(jnp.asarray(x))
    dense = replace_static(layer, implementation="dense")
    np.testing.assert_allclose(dense(jnp.asarray(x)), ragged, rtol=1e-5, atol=1e-5)
    routed = ragged if layer.shared is None else ragged - layer.shared(jnp.asarray(x))
    np.testing.assert_allclose(np.asarray(routed, np.float64), oracle(layer, x), rtol=1e-4, atol=1e-4)


def test_router_weights_follow_each_normalisation() -> None:
    x = jnp.asarray(np.random.default_rng(2).standard_normal((7, WIDTH)), jnp.float32)
    for name in ("granite", "mixtral"):
        weights, _ = perturbed(CONFIGS[name]).route(x)
        np.testing.assert_allclose(weights.sum(-1), 1.0, rtol=1e-6)
    nemotron = perturbed(CONFIGS["nemotron"])
    weights, index = nemotron.route(x)
    np.testing.assert_allclose(weights.sum(-1), 2.5, rtol=1e-5)
    groups = np.asarray(index) // 2  # 6 experts in 3 groups of 2: the chosen lie in at most 2 groups
    assert all(len(set(row)) <= 2 for row in groups)


def test_batch_shapes_pass_through() -> None:
    layer = perturbed(CONFIGS["granite"])
    x = jnp.ones((2, 3, WIDTH))
    assert layer(x).shape == (2, 3, WIDTH)


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        (dict(num_experts=2, top_k=3), "top_k=3 exceeds num_experts=2"),
        (dict(router="softmax", selection_bias=True), "selection_bias is only used by the sigmoid router"),
        (dict(num_experts=4, num_groups=3), "num_groups=3 must divide num_experts=4"),
    ],
)
def test_bad_configs_name_the_field(fields, message) -> None:
    with pytest.raises(ValueError, match=message):
        MoEConfig(**fields)
