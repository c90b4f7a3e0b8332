"""RG-LRU gates in bf16 round slow decays to 1.0 (as the reference does); `gate_dtype="float32"` keeps them."""

from __future__ import annotations

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np

from hybrid_seq.blocks import RGLRU

#: a = exp(-8 * sigmoid(0) * softplus(a_param)) = 0.999 when softplus(a_param) = -ln(0.999) / 4.
A_PARAM = float(np.log(np.expm1(-np.log(0.999) / 4)))


def slow_layer(gate_dtype: str | None) -> RGLRU:
    """A bf16 RG-LRU whose gates are zero, so every channel decays by exactly 0.999 per step."""
    lru = RGLRU(8, 2, key=jax.random.key(0), dtype=jnp.bfloat16, gate_dtype=gate_dtype)
    zero = lambda m: jax.tree_util.tree_map(jnp.zeros_like, m)  # noqa: E731
    return eqx.tree_at(
        lambda m: (m.a_param, m.input_gate, m.a_gate),
        lru,
        (jnp.full((8,), A_PARAM, jnp.bfloat16), zero(lru.input_gate), zero(lru.a_gate)),
    )


def test_bf16_gates_collapse_a_0_999_decay_to_one_and_float32_gates_do_not() -> None:
    x = jnp.zeros((1, 300, 8), jnp.bfloat16)
    positions = jnp.arange(1, 301, dtype=jnp.int32)[None]  # no document start: the state is carried
    h0 = jnp.ones((1, 8), jnp.float32)
    _, bf16_state = slow_layer(None)(x, positions, h0)
    _, fp32_state = slow_layer("float32")(x, positions, h0)
    # bf16 rounds a ~ 0.999 to 1.0, so the state never decays; float32 keeps a^300 ~ 0.74, with a
    # from the bf16-stored a_param.
    stored = float(jnp.asarray(A_PARAM, jnp.bfloat16))
    decay = np.exp(-4 * np.log1p(np.exp(stored)))
    np.testing.assert_allclose(bf16_state, 1.0)
    np.testing.assert_allclose(fp32_state, decay**300, rtol=1e-4)
    assert float(fp32_state[0, 0]) < 0.76
