"""Mamba-2 (SSD): the float64 recurrence written out, any chunking, packed documents, both scan backends."""

from __future__ import annotations

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from hybrid_seq.blocks import Mamba2Config
from hybrid_seq.testing import padded_positions

WIDTH = 12


def perturbed(config: Mamba2Config, seed: int = 0):
    """The layer with every leaf random and nonzero (A_log, dt_bias, D and the norm included)."""
    layer = config.build(WIDTH, key=jax.random.key(seed), dtype=jnp.float32, num_layers=2)
    leaves, treedef = jax.tree_util.tree_flatten(layer)
    rng = np.random.default_rng(seed)
    leaves = [jnp.asarray(rng.normal(0.0, 0.4, x.shape) + 0.1, jnp.float32) for x in leaves]
    return jax.tree_util.tree_unflatten(treedef, leaves)


def silu(x):
    return x / (1 + np.exp(-x))


def oracle(layer, x, positions):
    """Token by token in float64, straight from the math (HF's recurrence plus document resets)."""
    f = lambda a: np.asarray(a, np.float64)  # noqa: E731
    heads, groups, size, p = layer.num_heads, layer.n_groups, layer.state_size, layer.head_dim
    lin = lambda m, v: v @ f(m.weight) + (0 if m.bias is None else f(m.bias))  # noqa: E731
    x = f(x)
    mult = layer.projection_multipliers or (1,) * 5
    z, xs, bs, cs, dt = (lin(m, x) * s for m, s in zip(
        (layer.z_proj, layer.x_proj, layer.b_proj, layer.c_proj, layer.dt_proj), mult))

    def conv(conv, v):
        w, b = f(conv.weight), f(conv.bias)
        k = w.shape[0]
        out = np.zeros_like(v)
        for bi in range(v.shape[0]):
            for t in range(v.shape[1]):
                out[bi, t] = b
                for s in range(k):
                    if t - s < 0 or any(positions[bi, t - s + 1 : t + 1] == 0):
                        break
                    out[bi, t] += w[k - 1 - s] * v[bi, t - s]
        return silu(out)

    xs, bs, cs = conv(layer.conv_x, xs), conv(layer.conv_b, bs), conv(layer.conv_c, cs)
    dt = np.log1p(np.exp(dt + f(layer.dt_bias)))
    low, high = layer.time_step_limit
    dt = np.clip(dt, low, np.inf if high is None else high)
    a_neg = -np.exp(f(layer.A_log))
    y = np.zeros(xs.shape[:2] + (heads, p))
    for bi in range(x.shape[0]):
        state = np.zeros((heads, size, p))
        for t in range(x.shape[1]):
            if positions[bi, t] == 0:
                state[:] = 0
            for h in range(heads):
                g = h // (heads // groups)
                xh = xs[bi, t, h * p : (h + 1) * p]
                bg, cg = bs[bi, t, g * size : (g + 1) * size], cs[bi, t, g * size : (g + 1) * size]
                state[h] = np.exp(dt[bi, t, h] * a_neg[h]) * state[h] + np.outer(bg, dt[bi, t, h] * xh)
                y[bi, t, h] = cg @ state[h] + f(layer.D)[h] * xh
    y = y.reshape(*y.shape[:2], heads * p)
    gate = silu(z)

    def norm(v):
        grouped = v.reshape(*v.shape[:-1], groups, -1)
        grouped = grouped / np.sqrt(np.mean(grouped**2, -1, keepdims=True) + layer.norm.eps)
        return grouped.reshape(v.shape) * f(layer.norm.scale)

    if layer.norm_position == "gated":
        y = norm(y * gate)
    elif layer.norm_position == "before_gate":
        y = norm(y) * gate
    else:
        y = y * gate
    return lin(layer.out_proj, y)


CONFIGS = {
    "mamba2": Mamba2Config(num_heads=4, head_dim=3, state_size=5, n_groups=2, in_bias=True, out_bias=True),
    "falcon": Mamba2Config(num_heads=2, head_dim=4, state_size=3, n_groups=1, norm="before_gate",
                           projection_multipliers=(0.5, 1.5, 0.7, 1.2, 0.9), time_step_limit=(0.05, 2.0)),
    "no-norm": Mamba2Config(num_heads=3, head_dim=2, state_size=4, n_groups=3, norm="none"),
}


@pytest.mark.parametrize("name", list(CONFIGS))
def test_matches_the_float64_recurrence_with_packed_documents(name) -> None:
    layer = perturbed(CONFIGS[name])
    rng = np.random.default_rng(1)
    x = rng.standard_normal((2, 11, WIDTH)).astype(np.float32)
    positions = np.array([np.arange(11), np.r_[-1, -1, np.arange(4), np.arange(5)]], np.int32)
    y, _ = eqx.filter_jit(layer)(jnp.asarray(x), jnp.asarray(positions))
    np.testing.assert_allclose(np.asarray(y, np.float64), oracle(layer, x, positions), rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize("backend", ["sequential", "chunked"])
@given(
    st.integers(1, 20).flatmap(
        lambda length: st.tuples(st.just(length), padded_positions(2, length), st.lists(st.integers(1, 19), max_size=3))
    )
)
def test_any_chunking_equals_one_pass(backend, case) -> None:
    length, positions, cuts = case
    layer = perturbed(CONFIGS["mamba2"]).with_scan_backend(backend)
    x = jnp.asarray(np.random.default_rng(length).standard_normal((2, length, WIDTH)), jnp.float32)
    positions = jnp.asarray(positions, jnp.int32)
    call = eqx.filter_jit(layer)
    whole, final = call(x, positions)
    bounds = [0, *sorted({c for c in cuts if c < length}), length]
    state, pieces = layer.init_state(2, None, jnp.float32), []
    for start, stop in zip(bounds, bounds[1:]):
        y, state = call(x[:, start:stop], positions[:, start:stop], state)
        pieces.append(y)
    np.testing.assert_allclose(jnp.concatenate(pieces, 1), whole, atol=2e-5)
    for got, want in zip(jax.tree_util.tree_leaves(state), jax.tree_util.tree_leaves(final)):
        np.testing.assert_allclose(got, want, atol=2e-5)


def test_a_packed_row_equals_its_documents_alone() -> None:
    layer = perturbed(CONFIGS["mamba2"], seed=3)
    x = jnp.asarray(np.random.default_rng(2).standard_normal((1, 13, WIDTH)), jnp.float32)
    packed, _ = layer(x, jnp.asarray([np.r_[np.arange(6), np.arange(7)]], jnp.int32))
    first, _ = layer(x[:, :6], jnp.arange(6)[None])
    second, _ = layer(x[:, 6:], jnp.arange(7)[None])
    np.testing.assert_allclose(packed, jnp.concatenate([first, second], 1), atol=2e-6)


def test_bf16_keeps_a_float32_state() -> None:
    layer = CONFIGS["mamba2"].build(WIDTH, key=jax.random.key(0), dtype=jnp.bfloat16, num_layers=1)
    y, state = layer(jnp.ones((1, 5, WIDTH), jnp.bfloat16), jnp.arange(5)[None])
    assert y.dtype == jnp.bfloat16 and state.ssm.dtype == jnp.float32 and state.conv_x.dtype == jnp.bfloat16


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        (dict(num_heads=4, n_groups=3), "n_groups=3 must divide num_heads=4"),
        (dict(norm="after"), "norm must be one of"),
        (dict(projection_multipliers=(1.0, 2.0)), "5 numbers"),
        (dict(time_step_limit=(0.5, 0.1)), r"time_step_limit\[1\] must be >= 0.5"),
    ],
)
def test_bad_configs_name_the_field(fields, message) -> None:
    with pytest.raises(ValueError, match=message):
        Mamba2Config(**fields)
