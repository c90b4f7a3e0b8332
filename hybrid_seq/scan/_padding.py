"""Padding that leaves a linear scan unchanged (``x = 0``, ``a = 1`` after the end), and tile choice.

Padded time steps carry the state through unchanged, so ``h_last`` stays exact;
padded channels are independent and are sliced off.
"""

from __future__ import annotations

import jax.numpy as jnp
from jaxtyping import Array, Float, Float32

from hybrid_seq.scan.contract import Sequence, State

Padded = Float[Array, "B T_pad D_pad"]


def round_up(n: int, multiple: int) -> int:
    return -(-n // multiple) * multiple


def time_tile(length: int, max_tile: int) -> tuple[int, int]:
    """``(tile, padded_length)``: one tile of ``length`` steps up to ``max_tile``; beyond,
    the largest tile in ``[max_tile / 2, max_tile]`` that divides ``length`` (no padding),
    else ``max_tile`` with time padded to a multiple of it."""
    if length <= max_tile:
        return length, length
    for tile in range(max_tile, max_tile // 2 - 1, -1):
        if length % tile == 0:
            return tile, length
    return max_tile, round_up(length, max_tile)


def pad_scan_inputs(
    x: Sequence, a: Sequence, h0: State, length: int, width: int
) -> tuple[Padded, Padded, Float32[Array, "B D_pad"]]:
    """Pad time to ``length`` and channels to ``width`` (no copy when nothing is padded)."""
    extra_t, extra_d = length - x.shape[1], width - x.shape[2]
    if not extra_t and not extra_d:
        return x, a, h0
    pads = ((0, 0), (0, extra_t), (0, extra_d))
    return (
        jnp.pad(x, pads),
        jnp.pad(a, pads, constant_values=1),
        jnp.pad(h0, ((0, 0), (0, extra_d))),
    )
