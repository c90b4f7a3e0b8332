"""`pallas_gpu`: a Pallas kernel in the Triton style (one program per channel block).

Grid ``(B, D / block_d)``; each program owns ``block_d`` channels of one sequence
(``[T, block_d]`` of ``x`` and ``a``) and loops over time, loading one row per step
and keeping the float32 carry in registers. ``block_d`` is a power of two (Triton
block shapes must be), at most 64 so a (B=8, D=2560) input gives 320 programs.
Channels are padded to a multiple of ``block_d`` and sliced back.
Numerics: rows are upcast to float32, the carry is float32, each ``y`` row is rounded
to ``x.dtype`` when stored.
On CPU it runs through the Pallas interpreter (exact, slow); `auto` never picks it
there. The GPU lowering has not been run in this project (no GPU was available).
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
from jax import lax
from jax.experimental import pallas as pl

from hybrid_seq.scan._padding import pad_scan_inputs, round_up
from hybrid_seq.scan.contract import Sequence, State

MAX_BLOCK_D = 64


def _kernel(x_ref, a_ref, h0_ref, y_ref, h_ref, *, length: int) -> None:
    def step(t, h):
        h = a_ref[t, :].astype(jnp.float32) * h + x_ref[t, :].astype(jnp.float32)
        y_ref[t, :] = h.astype(y_ref.dtype)
        return h

    h_ref[...] = lax.fori_loop(0, length, step, h0_ref[...])


def pallas_gpu_scan(x: Sequence, a: Sequence, h0: State) -> tuple[Sequence, State]:
    """Forward kernel of the `pallas_gpu` backend (see the module docstring)."""
    batch, length, width = x.shape
    block_d = min(MAX_BLOCK_D, pl.next_power_of_2(width))
    xp, ap, h0p = pad_scan_inputs(x, a, h0, length, round_up(width, block_d))
    seq_spec = pl.BlockSpec((None, length, block_d), lambda b, d: (b, 0, d))
    state_spec = pl.BlockSpec((None, block_d), lambda b, d: (b, d))
    y, h_last = pl.pallas_call(
        functools.partial(_kernel, length=length),
        out_shape=(
            jax.ShapeDtypeStruct(xp.shape, x.dtype),
            jax.ShapeDtypeStruct(h0p.shape, jnp.float32),
        ),
        grid=(batch, xp.shape[2] // block_d),
        in_specs=[seq_spec, seq_spec, state_spec],
        out_specs=(seq_spec, state_spec),
        interpret=jax.default_backend() != "gpu",
        name="hybrid_seq_scan_gpu",
    )(xp, ap, h0p)
    return y[:, :, :width], h_last[:, :width]
