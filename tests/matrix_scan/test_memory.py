"""Neither backend's gradient keeps one ``[K, V]`` state per token (compiled memory)."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import pytest

from hybrid_seq import matrix_scan

B, T, G, H, K, V = 1, 1024, 1, 2, 64, 64
ONE_STATE_PER_TOKEN = B * T * H * K * V * 4


@pytest.mark.parametrize("decay", ["scalar", "per_key"])
@pytest.mark.parametrize("name", matrix_scan.names())
def test_gradient_work_space_is_below_one_state_per_token(name, decay):
    scan = matrix_scan.get(name)
    spec = jax.ShapeDtypeStruct
    keys = spec((B, T, G, K), jnp.float32)
    log_decay = spec((B, T, H, K) if decay == "per_key" else (B, T, H), jnp.float32)

    def loss(q, k, v, log_decay):
        return jnp.sum(scan(q, k, v, log_decay)[0])

    grad = jax.jit(jax.grad(loss, argnums=(0, 1, 2, 3)))
    memory = grad.lower(keys, keys, spec((B, T, H, V), jnp.float32), log_decay).compile().memory_analysis()
    assert memory.temp_size_in_bytes < ONE_STATE_PER_TOKEN / 2, memory
