"""The first temporal-block interface (`init_state(batch_size, dtype)`), kept working through an adapter.

Blocks written for it, and registered for `ModelConfig` patterns with
`register_temporal_block(name, letter=..., build=...)`, get the whole `ModelConfig` when
built and are wrapped in `LegacyTemporal`, which gives them the current `AbstractMixer`
interface. New kinds subclass `AbstractMixer` and carry their own `KindConfig`.
"""

from __future__ import annotations

import abc
import dataclasses
from typing import Any, ClassVar

import equinox as eqx
from jax.typing import DTypeLike
from jaxtyping import Array, Float, Int, PRNGKeyArray

from hybrid_seq.blocks.mixer import AbstractMixer
from hybrid_seq.kinds import KindConfig
from hybrid_seq.pattern import temporal_kind


class AbstractTemporalBlock(eqx.Module):
    """The first interface: `(x, positions, state) -> (y, new_state)` and `init_state(batch_size, dtype)`.

    `x` is `[B, T, D]`; `positions` `[B, T]` int32 are document positions (0 starts a
    document, -1 marks padding); `state` is this block's explicit pytree state from the
    previous chunk (None starts fresh). Calling on a whole sequence must equal calling on
    any split of it into chunks, threading the state through.
    """

    @abc.abstractmethod
    def __call__(
        self, x: Float[Array, "B T D"], positions: Int[Array, "B T"], state: Any | None = None
    ) -> tuple[Float[Array, "B T D"], Any]:
        """The mixed sequence and the state after its last token."""
        raise NotImplementedError

    @abc.abstractmethod
    def init_state(self, batch_size: int, dtype: DTypeLike) -> Any:
        """An empty state (as if nothing had been seen) for `batch_size` rows."""
        raise NotImplementedError


class LegacyTemporal(AbstractMixer):
    """A block of the first interface, seen through the current one (`max_length` is not passed on)."""

    block: AbstractTemporalBlock

    def init_state(self, batch_size: int, max_length: int | None, dtype: DTypeLike) -> Any:
        """The wrapped block's state (it takes no `max_length`)."""
        return self.block.init_state(batch_size, dtype)

    def __call__(
        self, x: Float[Array, "B T D"], positions: Int[Array, "B T"], state: Any | None = None
    ) -> tuple[Float[Array, "B T D"], Any]:
        """The wrapped block's call."""
        return self.block(x, positions, state)


@dataclasses.dataclass(frozen=True)
class LegacyKindConfig(KindConfig):
    """A kind registered with `register_temporal_block(..., build=...)`, built from its `ModelConfig`.

    It has no settings of its own (they live in `model_config`), so it is serialised as part
    of the `ModelConfig` (by name), never on its own.
    """

    kind: ClassVar[str] = "legacy_temporal"
    role: ClassVar[str] = "temporal"
    name: str = ""
    model_config: Any = None

    def build(self, width: int, *, key: PRNGKeyArray, dtype: Any, num_layers: int) -> AbstractMixer:
        """The registered block, built from the whole `ModelConfig` (adapted when it has the first interface)."""
        block = temporal_kind(self.name).build(self.model_config, key=key, dtype=dtype)
        return LegacyTemporal(block) if isinstance(block, AbstractTemporalBlock) else block
