"""`pallas_gpu`: a chunked two-pass scan as Pallas kernels lowered through Triton.

Why Triton and not Mosaic GPU (JAX's default GPU Pallas path): the scan is a
bandwidth-bound loop of row loads and stores, which the Triton lowering expresses with
ordinary BlockSpecs (pointer arithmetic into HBM, no shared-memory staging of whole
blocks) and which the Pallas interpreter runs exactly on CPU. A Mosaic GPU kernel has to
be written in its own style (explicit SMEM/TMA copies) and its interpreter rejects such
BlockSpecs, so it could not be tested here. The choice is explicit:
``compiler_params=plgpu.CompilerParams(...)``.

Design (as flash-linear-attention's HGRN kernels): ``[B, T, D]`` is cut into time
chunks of ``C`` steps and channel blocks of ``BD`` lanes, so ``B * D/BD * T/C``
programs are in flight (5,120 at (8, 2048, 2560)) instead of ``B * D/BD``:

1. ``summarise`` (grid ``(B, D/BD, N)``): each chunk scanned from zero; keeps only its
   final state ``H_c`` and decay product ``A_c`` (``[B, N, D]`` float32 each).
2. ``fold`` (grid ``(B, D/BD)``): ``h_in[c] = A_{c-1} h_in[c-1] + H_{c-1}``, ``h_in[0] = h0``:
   a loop over the ``N`` chunks of the small summaries.
3. ``rescan`` (grid ``(B, D/BD, N)``): each chunk scanned again from ``h_in[c]``, writing
   ``y``; the last chunk writes ``h_last``.

Bytes moved: ``x`` and ``a`` are read twice and ``y`` written once, plus ``4/C`` of one
pass for the summaries: about 5/3 of the 3 B T D elements the recurrence must touch.
So at most ~60% of copy bandwidth, counted as the 3 B T D elements per second
(issue #16 measures it on a device). A sequence of at most ``C`` steps (decode:
``T = 1``) is a single ``rescan`` from ``h0``: 3 B T D elements, no padding.

Tiles: ``BD`` is a power of two, up to 128 channels (a coalesced 512-byte row load per
step in float32); channels are padded to a multiple of it when ``D`` is not one.
``C`` is ``T`` up to ``MAX_CHUNK``, else the largest chunk in ``[MAX_CHUNK / 2,
MAX_CHUNK]`` dividing ``T``, else ``MAX_CHUNK`` with time padded (``x = 0``, ``a = 1``).
Numerics: rows upcast to float32, float32 carries and summaries, each ``y`` row rounded
to ``x.dtype`` when stored.

Dispatch happens when lowering (`jax.lax.platform_dependent`): Triton kernels for CUDA
and ROCm, the Pallas interpreter elsewhere (CPU: exact, slow; `auto` never picks it).
The kernels have been lowered (exported for CUDA from a CPU host) but not yet run on a GPU.
"""

from __future__ import annotations

import functools
from typing import Any

import jax
import jax.numpy as jnp
from jax import lax
from jax.experimental import pallas as pl
from jax.experimental.pallas import triton as plgpu

from hybrid_seq.scan._padding import pad_scan_inputs, round_up, time_tile
from hybrid_seq.scan.contract import Sequence, State

MAX_BLOCK_D = 128
MAX_CHUNK = 64
NUM_WARPS = 4
UNROLL = 8


def _loop(length: int, step, carry):
    """``fori_loop(0, length, step, carry)`` with ``UNROLL`` steps per iteration, unrolled by
    hand (the Triton lowering rejects ``unroll``) so the row loads can be issued early."""

    def unrolled(i, carry):
        for j in range(UNROLL):
            carry = step(i * UNROLL + j, carry)
        return carry

    whole = length // UNROLL * UNROLL
    carry = lax.fori_loop(0, length // UNROLL, unrolled, carry)
    return lax.fori_loop(whole, length, step, carry)


def _summarise_kernel(x_ref, a_ref, h_ref, decay_ref, *, chunk: int) -> None:
    def step(t, carry):
        h, decay = carry
        a_t = a_ref[t, :].astype(jnp.float32)
        return a_t * h + x_ref[t, :].astype(jnp.float32), a_t * decay

    zeros = jnp.zeros(h_ref.shape, jnp.float32)
    h, decay = _loop(chunk, step, (zeros, zeros + 1.0))
    h_ref[...] = h
    decay_ref[...] = decay


def _fold_kernel(h_ref, decay_ref, h0_ref, h_in_ref, *, chunks: int) -> None:
    def step(c, h):
        h_in_ref[c, :] = h
        return decay_ref[c, :] * h + h_ref[c, :]

    lax.fori_loop(0, chunks, step, h0_ref[...])


def _rescan_kernel(x_ref, a_ref, h_in_ref, y_ref, h_last_ref, *, chunk: int) -> None:
    def step(t, h):
        h = a_ref[t, :].astype(jnp.float32) * h + x_ref[t, :].astype(jnp.float32)
        y_ref[t, :] = h.astype(y_ref.dtype)
        return h

    h = _loop(chunk, step, h_in_ref[...])

    @pl.when(pl.program_id(2) == pl.num_programs(2) - 1)
    def _finish():
        h_last_ref[...] = h


def tiles(length: int, width: int) -> tuple[int, int, int]:
    """``(chunk, padded_length, block_d)`` for a ``[*, length, width]`` input."""
    chunk, padded_length = time_tile(length, MAX_CHUNK)
    return chunk, padded_length, min(MAX_BLOCK_D, pl.next_power_of_2(width))


def gpu_scan(x: Sequence, a: Sequence, h0: State, *, interpret: Any = False) -> tuple[Sequence, State]:
    """The kernels on checked inputs; ``interpret`` as for `pl.pallas_call` (False: Triton)."""
    batch, length, width = x.shape
    chunk, padded_length, block_d = tiles(length, width)
    xp, ap, h0p = pad_scan_inputs(x, a, h0, padded_length, round_up(width, block_d))
    chunks, blocks = padded_length // chunk, xp.shape[2] // block_d
    call = functools.partial(
        pl.pallas_call,
        compiler_params=plgpu.CompilerParams(num_warps=NUM_WARPS, num_stages=1),
        interpret=interpret,
    )
    seq_spec = pl.BlockSpec((None, chunk, block_d), lambda b, d, c: (b, c, d))
    chunk_spec = pl.BlockSpec((None, None, block_d), lambda b, d, c: (b, c, d))
    state_spec = pl.BlockSpec((None, block_d), lambda b, d, c: (b, d))
    summary = jax.ShapeDtypeStruct((batch, chunks, xp.shape[2]), jnp.float32)
    if chunks == 1:
        h_in = h0p[:, None, :]
    else:
        h_chunk, decay_chunk = call(
            functools.partial(_summarise_kernel, chunk=chunk),
            out_shape=(summary, summary),
            grid=(batch, blocks, chunks),
            in_specs=[seq_spec, seq_spec],
            out_specs=(chunk_spec, chunk_spec),
            name="hybrid_seq_scan_gpu_summarise",
        )(xp, ap)
        all_chunks = pl.BlockSpec((None, chunks, block_d), lambda b, d: (b, 0, d))
        h_in = call(
            functools.partial(_fold_kernel, chunks=chunks),
            out_shape=summary,
            grid=(batch, blocks),
            in_specs=[all_chunks, all_chunks, pl.BlockSpec((None, block_d), lambda b, d: (b, d))],
            out_specs=all_chunks,
            name="hybrid_seq_scan_gpu_fold",
        )(h_chunk, decay_chunk, h0p)
    y, h_last = call(
        functools.partial(_rescan_kernel, chunk=chunk),
        out_shape=(jax.ShapeDtypeStruct(xp.shape, x.dtype), jax.ShapeDtypeStruct(h0p.shape, jnp.float32)),
        grid=(batch, blocks, chunks),
        in_specs=[seq_spec, seq_spec, chunk_spec],
        out_specs=(seq_spec, state_spec),
        name="hybrid_seq_scan_gpu_rescan",
    )(xp, ap, h_in)
    return y[:, :length, :width], h_last[:, :width]


def pallas_gpu_scan(x: Sequence, a: Sequence, h0: State) -> tuple[Sequence, State]:
    """Forward kernel of the `pallas_gpu` backend: Triton on CUDA/ROCm, interpreted elsewhere."""
    kernel = functools.partial(gpu_scan, interpret=False)
    return lax.platform_dependent(
        x, a, h0, cuda=kernel, rocm=kernel, default=functools.partial(gpu_scan, interpret=True)
    )
