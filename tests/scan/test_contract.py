"""The registry and the input contract: names, auto, platforms, errors, user backends."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from hybrid_seq import scan
from hybrid_seq.testing import scan_oracle

X = jnp.ones((2, 4, 3), jnp.float32)


def test_names_lists_the_builtin_backends():
    assert {"sequential", "associative"} <= set(scan.names())
    assert "auto" not in scan.names()


def test_unknown_name_lists_known_names():
    with pytest.raises(ValueError, match="unknown backend 'nope'.*sequential"):
        scan.get("nope")


def test_auto_resolves_to_a_native_backend_for_every_platform():
    for platform in scan.registry.PLATFORMS:
        choice = scan.resolve("auto", platform)
        assert platform in scan.get_backend(choice).platforms, (platform, choice)
    assert scan.get("auto").name == scan.resolve("auto")


def test_auto_never_picks_interpreted_or_foreign_backends(monkeypatch):
    platform = scan.current_platform()
    scan.register("_only_elsewhere", lambda x, a, h0: (x, h0), platforms=[p for p in scan.registry.PLATFORMS if p != platform])
    try:
        monkeypatch.setitem(scan.registry._AUTO, platform, "_only_elsewhere")
        assert scan.resolve("auto") == "sequential"
        with pytest.raises(ValueError, match=f"'_only_elsewhere' cannot run on platform '{platform}'"):
            scan.get("_only_elsewhere")
    finally:
        scan.unregister("_only_elsewhere")


@pytest.mark.parametrize(
    ("x", "a", "h0", "error", "match"),
    [
        (jnp.ones((4, 3)), jnp.ones((4, 3)), None, ValueError, "`x` must have rank 3"),
        (X, jnp.ones((2, 5, 3)), None, ValueError, "shapes differ"),
        (X, X.astype(jnp.bfloat16), None, TypeError, "dtypes differ"),
        (X.astype(jnp.int32), X.astype(jnp.int32), None, TypeError, "`x` must be float32, bfloat16 or float16"),
        (X, X, jnp.ones((2, 4)), ValueError, r"`h0` must have shape \[B, D\] = \[2, 3\]"),
        (X, X, jnp.ones((2, 3), jnp.bfloat16), TypeError, "`h0` must be float32"),
        (X, X, [0.0], TypeError, "h0"),
        (jnp.ones((2, 0, 3)), jnp.ones((2, 0, 3)), None, ValueError, "B, T, D >= 1"),
    ],
    ids=["rank", "shape", "dtype-mismatch", "int-dtype", "h0-shape", "h0-dtype", "h0-list", "empty"],
)
@pytest.mark.parametrize("name", ["sequential", "associative"])
def test_bad_inputs_raise_at_trace_time(name, x, a, h0, error, match):
    with pytest.raises(error, match=match):
        jax.eval_shape(scan.get(name), x, a, h0)


def test_user_registered_backend_gets_contract_and_gradient():
    def numpy_like(x, a, h0):
        hs, h = [], h0
        for t in range(x.shape[1]):
            h = a[:, t].astype(jnp.float32) * h + x[:, t].astype(jnp.float32)
            hs.append(h)
        return jnp.stack(hs, axis=1).astype(x.dtype), h

    scan.register("python_loop", numpy_like, description="unrolled Python loop")
    try:
        with pytest.raises(ValueError, match="already exists"):
            scan.register("python_loop", numpy_like)
        user = scan.get("python_loop")
        rng = np.random.default_rng(1)
        x = jnp.asarray(rng.standard_normal((2, 5, 3)), jnp.float32)
        a = jnp.asarray(rng.uniform(size=(2, 5, 3)), jnp.float32)
        y, h = jax.jit(user)(x, a)
        np.testing.assert_allclose(y, scan_oracle(x, a)[0], rtol=1e-5, atol=1e-6)
        grads = jax.grad(lambda x, a: user(x, a)[0].sum(), argnums=(0, 1))(x, a)
        seq = jax.grad(lambda x, a: scan.get("sequential")(x, a)[0].sum(), argnums=(0, 1))(x, a)
        for g, s in zip(grads, seq):
            np.testing.assert_allclose(g, s, rtol=1e-5, atol=1e-6)
        with pytest.raises(TypeError, match="dtypes differ"):
            user(x, a.astype(jnp.float16))
    finally:
        scan.unregister("python_loop")
    assert "python_loop" not in scan.names()


def test_register_rejects_auto_and_unknown_platforms():
    with pytest.raises(ValueError, match="reserved"):
        scan.register("auto", lambda x, a, h0: (x, h0))
    with pytest.raises(ValueError, match="unknown platforms"):
        scan.register("x", lambda x, a, h0: (x, h0), platforms=["quantum"])


def test_works_inside_lax_scan_over_layers_and_grad():
    layers = jnp.linspace(0.1, 0.9, 3)
    rng = np.random.default_rng(2)
    x = jnp.asarray(rng.standard_normal((2, 6, 4)), jnp.float32)

    def model(x):
        def layer(h, decay):
            y, _ = scan.get("auto")(h, jnp.full_like(h, decay))
            return y, None

        return jax.lax.scan(layer, x, layers)[0].sum()

    g = jax.jit(jax.grad(model))(x)
    assert g.shape == x.shape and bool(jnp.all(jnp.isfinite(g)))


def test_benchmark_runs_on_a_tiny_shape():
    from hybrid_seq.bench import scan as bench

    rows = bench.run(
        shapes=((1, 8, 4),), dtypes=("float32",), modes=("fwd", "fwd+bwd"),
        backends=["sequential"], with_reference=False, reps=1, log=lambda _: None,
    )
    assert {(r.contender, r.mode) for r in rows} == {("sequential", "fwd"), ("sequential", "fwd+bwd")}
    assert "sequential" in bench.format_table(rows)
