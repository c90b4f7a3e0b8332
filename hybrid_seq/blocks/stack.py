"""A repeated unit of residual blocks applied with `lax.scan`: one compiled body for all repeats."""

from __future__ import annotations

from typing import Any

import equinox as eqx
import jax
import jax.numpy as jnp
from jax.typing import DTypeLike
from jaxtyping import Array, Float, Int

from hybrid_seq.blocks.residual import ResidualBlock


def _stack(trees: list[Any]) -> Any:
    return jax.tree_util.tree_map(lambda *xs: jnp.stack(xs), *trees)


class LayerStack(eqx.Module):
    """`repeats` copies of a unit of residual blocks, every array stacked on a leading axis.

    Calling it equals calling the blocks `unit[0], unit[1], ..., unit[0], ...` in order, but
    XLA compiles the unit once (scan over layers), which cuts compile time for deep models.
    Its state is the unit's states stacked the same way.
    """

    unit: tuple[ResidualBlock, ...]
    repeats: int = eqx.field(static=True)

    @classmethod
    def from_blocks(cls, blocks: list[ResidualBlock], unit_size: int) -> LayerStack:
        """Stack `blocks` (a whole number of units, in layer order)."""
        repeats = len(blocks) // unit_size
        unit = tuple(_stack([blocks[r * unit_size + p] for r in range(repeats)]) for p in range(unit_size))
        return cls(unit=unit, repeats=repeats)

    def to_blocks(self) -> list[ResidualBlock]:
        """The individual blocks, in layer order."""
        return [
            jax.tree_util.tree_map(lambda leaf, r=r: leaf[r], block)
            for r in range(self.repeats)
            for block in self.unit
        ]

    @property
    def num_layers(self) -> int:
        """Layers the stack holds: repeats times the unit's length."""
        return self.repeats * len(self.unit)

    def init_state(self, batch_size: int, max_length: int | None, dtype: DTypeLike) -> tuple[Any, ...]:
        """The unit's states, stacked over the repeats."""
        return tuple(_stack([block.init_state(batch_size, max_length, dtype)] * self.repeats) for block in self._first())

    def state_capacity(self, state: tuple[Any, ...]) -> int | None:
        """The largest `max_length` any of the unit's states was made for (None: fixed size)."""
        first_repeat = jax.tree_util.tree_map(lambda leaf: leaf[0], state)
        found = [block.state_capacity(s) for block, s in zip(self._first(), first_repeat)]
        return max((c for c in found if c is not None), default=None)

    def _first(self) -> tuple[ResidualBlock, ...]:
        """The unit's blocks of the first repeat."""
        return jax.tree_util.tree_map(lambda leaf: leaf[0], self.unit)

    def __call__(
        self,
        x: Float[Array, "B T D"],
        positions: Int[Array, "B T"],
        state: tuple[Any, ...] | None = None,
        *,
        checkpoint: bool = False,
    ) -> tuple[Float[Array, "B T D"], tuple[Any, ...]]:
        """The unit's blocks in order, `repeats` times, as one `lax.scan`; the stacked states."""
        params, static = eqx.partition(self.unit, eqx.is_array)

        def body(x: Array, layer: tuple[Any, Any]) -> tuple[Array, tuple[Any, ...]]:
            unit_params, unit_state = layer
            states = []
            for i, block in enumerate(eqx.combine(unit_params, static)):
                x, block_state = block(x, positions, None if unit_state is None else unit_state[i], checkpoint=checkpoint)
                states.append(block_state)
            return x, tuple(states)

        return jax.lax.scan(body, x, (params, state))
