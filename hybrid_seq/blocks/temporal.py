"""The interface every temporal-mixing block implements (built-in or a user's own)."""

from __future__ import annotations

import abc
from typing import Any

import equinox as eqx
from jax.typing import DTypeLike
from jaxtyping import Array, Float, Int


class AbstractTemporalBlock(eqx.Module):
    """Mixes information along time: `(x, positions, state) -> (y, new_state)`.

    `x` is `[B, T, D]`; `positions` `[B, T]` int32 are document positions (0 starts a
    document, -1 marks padding); `state` is this block's explicit pytree state from the
    previous chunk (None starts fresh). Calling on a whole sequence must equal calling on
    any split of it into chunks, threading the state through.
    """

    @abc.abstractmethod
    def __call__(
        self, x: Float[Array, "B T D"], positions: Int[Array, "B T"], state: Any | None = None
    ) -> tuple[Float[Array, "B T D"], Any]:
        raise NotImplementedError

    @abc.abstractmethod
    def init_state(self, batch_size: int, dtype: DTypeLike) -> Any:
        """An empty state (as if nothing had been seen) for `batch_size` rows."""
        raise NotImplementedError
