"""The interfaces every mixer implements: temporal (stateful, along time) and channel (per token).

The state interface, shared by the model, the sampler and serving:

* ``init_state(batch_size, max_length, dtype)`` is the state before any token: ``max_length``
  is the most tokens (padding included) the state will ever have seen, so a cache that
  grows with the sequence can be preallocated; fixed-size states ignore it.
* Every array leaf of a state has the batch on axis 0 (no values shared across rows), so
  a state can be sliced, stacked, snapshotted and forked row by row with a tree map.
* Calling on a whole sequence equals calling on any split of it, threading the state.
"""

from __future__ import annotations

import abc
import dataclasses
from typing import Any, ClassVar, TypeVar

import equinox as eqx
from jax.typing import DTypeLike
from jaxtyping import Array, Float, Int

from hybrid_seq import scan as scan_lib

_Module = TypeVar("_Module", bound=eqx.Module)


class AbstractMixer(eqx.Module):
    """Mixes along time: ``(x [B, T, D], positions [B, T], state) -> (y [B, T, D], new_state)``.

    ``positions`` are int32 document positions: 0 starts a document (nothing before it may
    influence what follows), -1 marks padding. ``state`` is this mixer's explicit pytree
    from the previous chunk; None starts fresh.
    """

    @abc.abstractmethod
    def __call__(
        self, x: Float[Array, "B T D"], positions: Int[Array, "B T"], state: Any | None = None
    ) -> tuple[Float[Array, "B T D"], Any]:
        """The mixed sequence and the state after its last token."""
        raise NotImplementedError

    @abc.abstractmethod
    def init_state(self, batch_size: int, max_length: int | None, dtype: DTypeLike) -> Any:
        """The state for `batch_size` rows before any token (see the module docstring)."""
        raise NotImplementedError

    def state_capacity(self, state: Any) -> int | None:
        """The `max_length` that `state` was made for; None for states whose size does not
        depend on it (the default). Kinds with a growing cache override it."""
        return None


class AbstractChannelMixer(eqx.Module):
    """Mixes features token by token, with no state: ``x [..., D] -> y [..., D]``."""

    @abc.abstractmethod
    def __call__(self, x: Float[Array, "*batch D"]) -> Float[Array, "*batch D"]:
        """The mixed features, token by token."""
        raise NotImplementedError


class AbstractScanning(eqx.Module):
    """A module whose recurrence runs through a scan backend named `scan_backend`.

    `scan_registry` is the registry the name belongs to: `hybrid_seq.scan` (diagonal
    recurrences, the default) or `hybrid_seq.matrix_scan` (matrix states).
    `Model.with_scan_backend` reaches every such module, a user's own included.
    """

    scan_backend: eqx.AbstractVar[str]
    scan_registry: ClassVar[Any] = scan_lib

    @classmethod
    def knows_backend(cls, name: str) -> bool:
        """Whether `name` is a backend of this module's registry ('auto' always is)."""
        registry = cls.scan_registry
        return name == "auto" or name in registry.names() or name in getattr(registry, "contextual_names", list)()

    def with_scan_backend(self: _Module, name: str) -> _Module:
        """The same module (same weights) running its recurrence with the backend `name`."""
        type(self).scan_registry.validate(name)
        return replace_static(self, scan_backend=name)


def replace_static(module: _Module, **changes: Any) -> _Module:
    """A shallow copy of `module` with static fields changed (array leaves are shared, not copied)."""
    new = object.__new__(type(module))
    for field in dataclasses.fields(module):
        object.__setattr__(new, field.name, changes.get(field.name, getattr(module, field.name)))
    return new
