"""Padding the time axis so that the padded steps leave the state unchanged.

Zeros everywhere do it: ``k = v = 0`` adds nothing, ``log_decay = 0`` keeps the state
(decay 1), ``reset = False`` does not clear it, and ``q = 0`` outputs are sliced off.
"""

from __future__ import annotations

import jax.numpy as jnp
from jaxtyping import Array, Shaped


def round_up(n: int, multiple: int) -> int:
    return -(-n // multiple) * multiple


def pad_time(x: Shaped[Array, "B T *rest"], length: int) -> Shaped[Array, "B T_pad *rest"]:
    """Append zeros (False for booleans) along axis 1 up to ``length``."""
    pads = [(0, 0)] * x.ndim
    pads[1] = (0, length - x.shape[1])
    return jnp.pad(x, pads)
