"""`pallas_tpu`: a Pallas kernel in the TPU style (BlockSpecs over VMEM tiles).

Grid ``(B, D / block_d, T / seq_tile)`` with time innermost and sequential. Each
program sees a ``(seq_tile, block_d)`` tile of ``x`` and ``a`` (``block_d`` = 128 lanes
times up to 8) and runs a ``fori_loop`` over its rows. The float32 carry lives in the
``h_last`` output block, which maps to the same block for every time tile: it is set
from ``h0`` at the first tile and carried across tiles. Inputs are padded (``x = 0``,
``a = 1``) to whole tiles and the result is sliced back.
Numerics: rows are upcast to float32, the carry is float32, each ``y`` row is rounded
to ``x.dtype`` when stored.
On CPU it runs through the Pallas interpreter (exact, about `lax.scan` speed); `auto`
never picks it there.
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
from jax import lax
from jax.experimental import pallas as pl

from hybrid_seq.scan._padding import pad_scan_inputs, round_up
from hybrid_seq.scan.contract import Sequence, State

LANES = 128
MAX_LANE_BLOCKS = 8
MAX_SEQ_TILE = 256
MIN_SEQ_TILE = 16


def _kernel(x_ref, a_ref, h0_ref, y_ref, h_ref, *, seq_tile: int) -> None:
    @pl.when(pl.program_id(2) == 0)
    def _init():
        h_ref[...] = h0_ref[...]

    def step(t, h):
        h = a_ref[t, :].astype(jnp.float32) * h + x_ref[t, :].astype(jnp.float32)
        y_ref[t, :] = h.astype(y_ref.dtype)
        return h

    h_ref[...] = lax.fori_loop(0, seq_tile, step, h_ref[...])


def tiles(length: int, width: int) -> tuple[int, int]:
    """``(seq_tile, block_d)`` for a ``[*, length, width]`` input."""
    seq_tile = min(MAX_SEQ_TILE, max(MIN_SEQ_TILE, pl.next_power_of_2(length)))
    lane_blocks = round_up(width, LANES) // LANES
    per_block = max(k for k in range(1, MAX_LANE_BLOCKS + 1) if lane_blocks % k == 0)
    return seq_tile, per_block * LANES


def pallas_tpu_scan(x: Sequence, a: Sequence, h0: State) -> tuple[Sequence, State]:
    """Forward kernel of the `pallas_tpu` backend (see the module docstring)."""
    batch, length, width = x.shape
    seq_tile, block_d = tiles(length, width)
    xp, ap, h0p = pad_scan_inputs(x, a, h0, round_up(length, seq_tile), round_up(width, LANES))
    grid = (batch, xp.shape[2] // block_d, xp.shape[1] // seq_tile)
    seq_spec = pl.BlockSpec((None, seq_tile, block_d), lambda b, d, t: (b, t, d))
    state_spec = pl.BlockSpec((None, block_d), lambda b, d, t: (b, d))
    y, h_last = pl.pallas_call(
        functools.partial(_kernel, seq_tile=seq_tile),
        out_shape=(
            jax.ShapeDtypeStruct(xp.shape, x.dtype),
            jax.ShapeDtypeStruct(h0p.shape, jnp.float32),
        ),
        grid=grid,
        in_specs=[seq_spec, seq_spec, state_spec],
        out_specs=(seq_spec, state_spec),
        interpret=jax.default_backend() != "tpu",
        name="hybrid_seq_scan_tpu",
    )(xp, ap, h0p)
    return y[:, :length, :width], h_last[:, :width]
