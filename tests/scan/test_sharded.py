"""Sequence-sharded scan on 8 fake CPU devices equals the unsharded scan."""

from __future__ import annotations

import functools

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from hybrid_seq import scan
from hybrid_seq.testing import scan_oracle, scan_oracle_vjp
from tests.scan.conftest import assert_close


@functools.cache
def _mesh(shape: tuple[int, ...], names: tuple[str, ...]):
    return jax.make_mesh(shape, names)


def _inputs(shape, dtype, seed=0):
    rng = np.random.default_rng(seed)
    x = jnp.asarray(rng.standard_normal(shape), dtype)
    a = jnp.asarray(rng.uniform(0.5, 1.0, shape), dtype)
    h0 = jnp.asarray(rng.standard_normal((shape[0], shape[2])), jnp.float32)
    return x, a, h0


def test_eight_devices_are_available():
    assert len(jax.devices()) == 8


@pytest.mark.parametrize("local", ["sequential", "associative", "pallas_tpu"])
@pytest.mark.parametrize("dtype", ["float32", "bfloat16"])
def test_sharded_equals_unsharded_forward_and_grads(local, dtype):
    mesh = _mesh((8,), ("seq",))
    sharded = scan.sharded(mesh, "seq", local=local)
    x, a, h0 = _inputs((2, 24, 5), dtype)
    y, h_last = jax.jit(sharded)(x, a, h0)
    y_ref, h_ref = scan_oracle(x, a, h0)
    assert y.dtype == x.dtype and h_last.dtype == jnp.float32
    assert_close(y, y_ref, dtype, what="y")
    assert_close(h_last, h_ref, "float32", scale=10.0, what="h_last")

    rng = np.random.default_rng(1)
    wy = jnp.asarray(rng.standard_normal(x.shape), jnp.float32)
    wh = jnp.asarray(rng.standard_normal(h0.shape), jnp.float32)

    def functional(x, a, h0):
        y, h = sharded(x, a, h0)
        return jnp.sum(y.astype(jnp.float32) * wy) + jnp.sum(h * wh)

    grads = jax.jit(jax.grad(functional, argnums=(0, 1, 2)))(x, a, h0)
    wy_rounded = np.asarray(jnp.asarray(wy, x.dtype), np.float64)
    expected = scan_oracle_vjp(x, a, h0, wy_rounded, wh)
    for name, g, e in zip(["dx", "da", "dh0"], grads, expected):
        assert_close(g, e, dtype, scale=1.0 + np.abs(e).max(), what=name)


def test_batch_and_sequence_axes_together():
    mesh = _mesh((2, 4), ("batch", "seq"))
    sharded = scan.sharded(mesh, "seq", batch_axis="batch")
    x, a, h0 = _inputs((4, 16, 3), "float32", seed=3)
    y, h_last = jax.jit(sharded)(x, a, h0)
    y_ref, h_ref = scan.get("sequential")(x, a, h0)
    assert_close(y, y_ref, "float32")
    assert_close(h_last, h_ref, "float32")


def test_sharded_errors_are_clear():
    mesh = _mesh((8,), ("seq",))
    with pytest.raises(ValueError, match="no axis 'time'"):
        scan.sharded(mesh, "time")
    with pytest.raises(ValueError, match="T = 12 must be divisible by the 8 shards"):
        scan.sharded(mesh, "seq")(*_inputs((1, 12, 2), "float32"))
    with pytest.raises(ValueError, match="unknown backend"):
        scan.sharded(mesh, "seq", local="nope")


def test_sharded_by_name_uses_the_mesh_in_context():
    mesh = _mesh((8,), ("seq",))
    x, a, h0 = _inputs((2, 16, 3), "float32", seed=4)
    with jax.set_mesh(mesh):
        backend = scan.get("sharded")
        assert backend.name == f"sharded[{scan.resolve('auto')}]"
        y, h_last = jax.jit(backend)(x, a, h0)
    y_ref, h_ref = scan_oracle(x, a, h0)
    assert_close(y, y_ref, "float32")
    assert_close(h_last, h_ref, "float32")
    assert "sharded" in scan.contextual_names() and "sharded" not in scan.names()


def test_model_with_sharded_backend_by_name_equals_unsharded():
    import hybrid_seq as hs

    config = hs.ModelConfig(vocab_size=32, width=16, mlp_expanded_width=16, num_heads=2, block_pattern="RA",
                            attention_window_size=4)
    model = hs.Model(config, key=jax.random.key(0))
    tokens = jax.random.randint(jax.random.key(1), (2, 16), 0, 32)
    positions = jnp.tile(jnp.arange(16), (2, 1))
    expected, _ = model(tokens, positions)
    sharded_model = hs.Model(config, key=jax.random.key(0), scan_backend="sharded")
    with jax.set_mesh(_mesh((8,), ("seq",))):
        logits, _ = eqx.filter_jit(sharded_model)(tokens, positions)
    np.testing.assert_allclose(np.asarray(logits), np.asarray(expected), rtol=1e-5, atol=1e-5)


def test_sharded_by_name_without_a_mesh_is_a_clear_error():
    with pytest.raises(ValueError, match="'sharded' needs a mesh with a 'seq' axis in context \\(no mesh is set\\)"):
        scan.get("sharded")
    with jax.set_mesh(_mesh((2, 4), ("data", "model"))):
        with pytest.raises(ValueError, match=r"the mesh has axes \['data', 'model'\]"):
            scan.get("sharded")
