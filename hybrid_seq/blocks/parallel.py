"""Temporal mixers run in parallel on one normalised input, their outputs summed (Falcon-H1's layer)."""

from __future__ import annotations

import dataclasses
from typing import Any, ClassVar

import equinox as eqx
import jax
from jax.typing import DTypeLike
from jaxtyping import Array, Float, Int, PRNGKeyArray

from hybrid_seq.blocks.mixer import AbstractMixer
from hybrid_seq.kinds import KindConfig, check_number, register_kind


class ParallelMixers(AbstractMixer):
    """`y = sum_i out_multipliers[i] * branches[i](in_multipliers[i] * x)`; the state is one per branch."""

    branches: tuple[AbstractMixer, ...]
    in_multipliers: tuple[float, ...] = eqx.field(static=True)
    out_multipliers: tuple[float, ...] = eqx.field(static=True)

    def init_state(self, batch_size: int, max_length: int | None, dtype: DTypeLike) -> tuple[Any, ...]:
        """One state per branch."""
        return tuple(branch.init_state(batch_size, max_length, dtype) for branch in self.branches)

    def state_capacity(self, state: tuple[Any, ...]) -> int | None:
        """The largest `max_length` a branch's state was made for (None: fixed size)."""
        found = [branch.state_capacity(s) for branch, s in zip(self.branches, state)]
        return max((c for c in found if c is not None), default=None)

    def __call__(
        self, x: Float[Array, "B T D"], positions: Int[Array, "B T"], state: tuple[Any, ...] | None = None
    ) -> tuple[Float[Array, "B T D"], tuple[Any, ...]]:
        """The branches' scaled outputs summed, and their states."""
        states = (None,) * len(self.branches) if state is None else state
        total, new_states = None, []
        for branch, scale_in, scale_out, branch_state in zip(
            self.branches, self.in_multipliers, self.out_multipliers, states
        ):
            y, branch_state = branch(x if scale_in == 1 else x * scale_in, positions, branch_state)
            y = y if scale_out == 1 else y * scale_out
            total = y if total is None else total + y
            new_states.append(branch_state)
        return total, tuple(new_states)


@register_kind
@dataclasses.dataclass(frozen=True)
class ParallelConfig(KindConfig):
    """Two or more temporal kinds on the same normalised input, each with an input and an
    output multiplier (default 1), outputs summed."""

    kind: ClassVar[str] = "parallel"
    role: ClassVar[str] = "temporal"
    branches: tuple[KindConfig, ...] = ()
    in_multipliers: tuple[float, ...] | None = None
    out_multipliers: tuple[float, ...] | None = None

    def __post_init__(self) -> None:
        if len(self.branches) < 2 or not all(isinstance(b, KindConfig) and b.role == "temporal" for b in self.branches):
            raise ValueError(f"parallel: branches must be two or more temporal kind configs, got {self.branches!r}")
        for name in ("in_multipliers", "out_multipliers"):
            values = getattr(self, name)
            if values is None:
                continue
            if len(values) != len(self.branches):
                raise ValueError(f"parallel.{name}: {len(values)} values for {len(self.branches)} branches")
            for i, value in enumerate(values):
                check_number("parallel", f"{name}[{i}]", value)

    def validate(self, width: int) -> None:
        """Raise ValueError when a branch cannot live in a model of `width` features."""
        for branch in self.branches:
            branch.validate(width)

    def build(self, width: int, *, key: PRNGKeyArray, dtype: Any, num_layers: int) -> ParallelMixers:
        """The `ParallelMixers` of the branches' modules."""
        keys = jax.random.split(key, len(self.branches))
        ones = (1.0,) * len(self.branches)
        return ParallelMixers(
            branches=tuple(b.build(width, key=k, dtype=dtype, num_layers=num_layers) for b, k in zip(self.branches, keys)),
            in_multipliers=tuple(float(v) for v in (self.in_multipliers or ones)),
            out_multipliers=tuple(float(v) for v in (self.out_multipliers or ones)),
        )
