"""`pallas_tpu`: a Pallas kernel in the Mosaic TPU style (BlockSpecs over VMEM tiles).

Layout: ``[B, T, D]`` is viewed (a free reshape) as ``[B, T, D/128, 128]``, so time is a
leading, untiled axis and every step reads one ``(rows, 128)`` slab of full vector
registers (``rows`` = 8 sublanes, or all the lane tiles when there are fewer). Grid
``(B, lane tile groups, time tiles)``, batch and channels parallel, time innermost and
sequential ("arbitrary"). Each program runs a ``fori_loop`` over its ``seq_tile`` steps;
the float32 carry lives in a VMEM scratch buffer that persists across the time tiles,
is set from ``h0`` at the first tile and written to ``h_last`` at the last one.

Mosaic's block rule (the last two block dims divisible by (8, 128) or equal to the
array's) holds for every shape: ``h0``/``h_last`` are ``[B, D/128, 128]`` blocks of
``(rows, 128)``, and the batch axis is squeezed out of every block. A channel count that
is not a multiple of 128 is padded (``x = 0``, ``a = 1``) and sliced back; a last group of
lane tiles may run past the array (channels are independent, Mosaic masks the write).
Time needs no padding up to ``MAX_SEQ_TILE`` steps (one tile of exactly ``T`` steps, so
the decode step ``T = 1`` is one step, not a padded tile); longer sequences use the
largest tile in ``[MAX_SEQ_TILE / 2, MAX_SEQ_TILE]`` that divides ``T``, else pad time.
Numerics: rows are upcast to float32, the carry is float32, each ``y`` row is rounded
to ``x.dtype`` when stored.

Dispatch happens when lowering (`jax.lax.platform_dependent`): the Mosaic kernel for
TPU, the Pallas interpreter elsewhere (CPU: exact, about `lax.scan` speed; `auto`
never picks it there). So `jax.export(..., platforms=["tpu"])` from a CPU host
contains the TPU kernel.
"""

from __future__ import annotations

import functools
from typing import Any

import jax
import jax.numpy as jnp
from jax import lax
from jax.experimental import pallas as pl
from jax.experimental.pallas import tpu as pltpu

from hybrid_seq.scan._padding import pad_scan_inputs, round_up, time_tile
from hybrid_seq.scan.contract import Sequence, State

LANES = 128
SUBLANES = 8
MAX_SEQ_TILE = 256


def _kernel(x_ref, a_ref, h0_ref, y_ref, h_last_ref, carry_ref, *, seq_tile: int) -> None:
    @pl.when(pl.program_id(2) == 0)
    def _init():
        carry_ref[...] = h0_ref[...]

    def step(t, h):
        h = a_ref[t].astype(jnp.float32) * h + x_ref[t].astype(jnp.float32)
        y_ref[t] = h.astype(y_ref.dtype)
        return h

    carry_ref[...] = lax.fori_loop(0, seq_tile, step, carry_ref[...])

    @pl.when(pl.program_id(2) == pl.num_programs(2) - 1)
    def _finish():
        h_last_ref[...] = carry_ref[...]


def tiles(length: int, width: int) -> tuple[int, int, int]:
    """``(seq_tile, padded_length, rows)`` for a ``[*, length, width]`` input."""
    seq_tile, padded_length = time_tile(length, MAX_SEQ_TILE)
    lane_tiles = round_up(width, LANES) // LANES
    return seq_tile, padded_length, min(SUBLANES, lane_tiles)


def tpu_scan(x: Sequence, a: Sequence, h0: State, *, interpret: Any = False) -> tuple[Sequence, State]:
    """The kernel on checked inputs; ``interpret`` as for `pl.pallas_call` (False: Mosaic)."""
    batch, length, width = x.shape
    seq_tile, padded_length, rows = tiles(length, width)
    xp, ap, h0p = pad_scan_inputs(x, a, h0, padded_length, round_up(width, LANES))
    lane_tiles = xp.shape[2] // LANES
    as_tiles = lambda v: v.reshape(*v.shape[:-1], lane_tiles, LANES)  # noqa: E731
    grid = (batch, pl.cdiv(lane_tiles, rows), padded_length // seq_tile)
    seq_spec = pl.BlockSpec((None, seq_tile, rows, LANES), lambda b, d, t: (b, t, d, 0))
    state_spec = pl.BlockSpec((None, rows, LANES), lambda b, d, t: (b, d, 0))
    y, h_last = pl.pallas_call(
        functools.partial(_kernel, seq_tile=seq_tile),
        out_shape=(
            jax.ShapeDtypeStruct(as_tiles(xp).shape, x.dtype),
            jax.ShapeDtypeStruct(as_tiles(h0p).shape, jnp.float32),
        ),
        grid=grid,
        in_specs=[seq_spec, seq_spec, state_spec],
        out_specs=(seq_spec, state_spec),
        scratch_shapes=[pltpu.VMEM((rows, LANES), jnp.float32)],
        compiler_params=pltpu.CompilerParams(dimension_semantics=("parallel", "parallel", "arbitrary")),
        interpret=interpret,
        name="hybrid_seq_scan_tpu",
    )(as_tiles(xp), as_tiles(ap), as_tiles(h0p))
    y = y.reshape(xp.shape)[:, :length, :width]
    return y, h_last.reshape(h0p.shape)[:, :width]


def pallas_tpu_scan(x: Sequence, a: Sequence, h0: State) -> tuple[Sequence, State]:
    """Forward kernel of the `pallas_tpu` backend: Mosaic on TPU, interpreted elsewhere."""
    return lax.platform_dependent(
        x, a, h0,
        tpu=functools.partial(tpu_scan, interpret=False),
        default=functools.partial(tpu_scan, interpret=True),
    )
