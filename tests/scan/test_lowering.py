"""The Pallas backends lower to their real kernels for TPU and CUDA, from this CPU host.

`jax.export` with a target platform runs the real Pallas lowering (Mosaic for TPU,
Triton for CUDA) without the hardware. Each case asserts that the exported module holds
the kernel's custom call and no loop of the Pallas interpreter. Lowering is not
compiling: Mosaic's and Triton's later passes run only on a device. For TPU semantics
beyond the generic interpreter, the TPU kernel also runs under Pallas's TPU interpret
mode on small shapes.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax import export
from jax.experimental.pallas import tpu as pltpu

import hybrid_seq as hs
from hybrid_seq import scan
from hybrid_seq.scan import pallas_tpu
from hybrid_seq.testing import scan_oracle
from tests.scan.conftest import assert_close

#: backend -> (export platform, the kernel's custom call target)
TARGETS = {"pallas_tpu": ("tpu", "tpu_custom_call"), "pallas_gpu": ("cuda", "__gpu$xla.gpu.triton")}
SHAPES = [(8, 2048, 2560), (2, 37, 200), (3, 1, 128), (1, 300, 1100)]


def exported_text(fn, platform: str, target: str, *args) -> str:
    # Triton's custom call carries no serialization guarantee, so its check is disabled.
    checks = [export.DisabledSafetyCheck.custom_call(target)]
    return export.export(jax.jit(fn), platforms=[platform], disabled_checks=checks)(*args).mlir_module()


def assert_kernel_only(text: str, target: str, what: str) -> None:
    assert target in text, f"{what}: no {target} custom call in the exported module"
    assert "stablehlo.while" not in text, f"{what}: the Pallas interpreter's loop is in the exported module"


def structs(shape, dtype):
    x = jax.ShapeDtypeStruct(shape, dtype)
    return x, x, jax.ShapeDtypeStruct((shape[0], shape[2]), jnp.float32)


@pytest.mark.parametrize("mode", ["fwd", "fwd+bwd"])
@pytest.mark.parametrize("dtype", ["float32", "bfloat16"])
@pytest.mark.parametrize("shape", SHAPES, ids=lambda s: "B{}-T{}-D{}".format(*s))
@pytest.mark.parametrize("name", list(TARGETS))
def test_exports_the_kernel_for_its_platform(name, shape, dtype, mode):
    platform, target = TARGETS[name]
    backend = scan.get(name)

    def loss(x, a, h0):
        y, h_last = backend(x, a, h0)
        return jnp.sum(y.astype(jnp.float32)) + jnp.sum(h_last)

    fn = backend if mode == "fwd" else jax.grad(loss, argnums=(0, 1, 2))
    assert_kernel_only(exported_text(fn, platform, target, *structs(shape, dtype)), target, f"{name} {shape} {mode}")


def test_cpu_lowering_keeps_the_interpreter():
    text = export.export(jax.jit(scan.get("pallas_tpu")), platforms=["cpu"])(*structs((2, 37, 200), jnp.float32))
    assert "tpu_custom_call" not in text.mlir_module() and "stablehlo.while" in text.mlir_module()


@pytest.mark.parametrize("name", list(TARGETS))
def test_whole_model_forward_and_backward_exports_with_the_kernel(name):
    platform, target = TARGETS[name]
    config = hs.ModelConfig(vocab_size=64, width=32, mlp_expanded_width=48, num_heads=2, block_pattern="RA",
                            attention_window_size=8)
    model = hs.Model(config, key=jax.random.key(0), scan_backend=name)
    params, static = jax.tree_util.tree_flatten(model)

    def loss(params, tokens, positions):
        logits, _ = jax.tree_util.tree_unflatten(static, params)(tokens, positions)
        return jnp.mean(logits.astype(jnp.float32) ** 2)

    ints = jax.ShapeDtypeStruct((2, 24), jnp.int32)
    args = ([jax.ShapeDtypeStruct(p.shape, p.dtype) for p in params], ints, ints)
    text = exported_text(jax.value_and_grad(loss), platform, target, *args)
    assert text.count(target) >= 2, "the forward and the backward scan should both be kernels"


@pytest.mark.parametrize(
    ("shape", "max_tile"),
    [((2, 5, 128), 256), ((1, 11, 130), 4), ((9, 2, 1100), 256)],
    ids=["one-tile", "time-tiles+padding", "partial-lane-group"],
)
@pytest.mark.parametrize("dtype", ["float32", "bfloat16"])
def test_tpu_kernel_under_tpu_interpret_mode_matches_oracle(shape, max_tile, dtype, monkeypatch):
    monkeypatch.setattr(pallas_tpu, "MAX_SEQ_TILE", max_tile)
    rng = np.random.default_rng(0)
    x = jnp.asarray(rng.standard_normal(shape), dtype)
    a = jnp.asarray(rng.uniform(0.5, 1.0, shape), dtype)
    h0 = jnp.asarray(rng.standard_normal((shape[0], shape[2])), jnp.float32)
    y, h_last = pallas_tpu.tpu_scan(x, a, h0, interpret=pltpu.InterpretParams())
    y_ref, h_ref = scan_oracle(x, a, h0)
    assert_close(y, y_ref, dtype, what="y")
    assert_close(h_last, h_ref, "float32", what="h_last")
