"""One table of named backends for an operation that runs differently per platform, and its single `auto` rule.

`hybrid_seq.scan` (diagonal recurrences) and `hybrid_seq.matrix_scan` (matrix states) each
keep one: names -> bound backends (each with the platforms it runs on natively, and
possibly interpreted), `auto` resolved in exactly one place from a per-platform choice,
and errors that name the operation, the backend and the platform.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any, Generic, Protocol, TypeVar, runtime_checkable

import jax

PLATFORMS = ("cpu", "gpu", "tpu")


@runtime_checkable
class BackendRecord(Protocol):
    """What the table needs of a backend: where it runs natively, and where at all."""

    platforms: frozenset[str]

    def runs_on(self, platform: str) -> bool: ...


@runtime_checkable
class Bound(Protocol):
    """A callable backend of the table, carrying its record."""

    backend: BackendRecord


B = TypeVar("B", bound=Bound)


def current_platform() -> str:
    """The platform of JAX's default backend: 'cpu', 'gpu' or 'tpu'."""
    platform = jax.default_backend()
    return "gpu" if platform in ("cuda", "rocm") else platform


def check_platforms(label: str, *groups: Iterable[str]) -> None:
    """Raise unless every platform named is one of `PLATFORMS`."""
    unknown = set().union(*map(set, groups)) - set(PLATFORMS)
    if unknown:
        raise ValueError(f"{label}.register: unknown platforms {sorted(unknown)}; use {list(PLATFORMS)}")


class Backends(Generic[B]):
    """The named backends of operation `label` (`entries` and `auto` are the module's own dicts)."""

    def __init__(self, label: str, entries: dict[str, B], auto: dict[str, str], *, fallback: str = "sequential",
                 extra_names: Any = list):
        self.label, self.entries, self.auto, self.fallback = label, entries, auto, fallback
        self._extra_names = extra_names

    def add(self, name: str, bound: B, *, overwrite: bool) -> None:
        if name == "auto":
            raise ValueError(f"{self.label}.register: 'auto' is reserved")
        if name in self.entries and not overwrite:
            raise ValueError(f"{self.label}.register: backend {name!r} already exists (pass overwrite=True)")
        self.entries[name] = bound

    def remove(self, name: str) -> None:
        if name not in self.entries:
            raise ValueError(f"{self.label}.unregister: unknown backend {name!r}; known: {self.names()}")
        del self.entries[name]

    def names(self) -> list[str]:
        return list(self.entries)

    def record(self, name: str) -> BackendRecord:
        if name not in self.entries:
            known = ["auto", *self.names(), *self._extra_names()]
            raise ValueError(f"{self.label}: unknown backend {name!r}; known: {known}")
        return self.entries[name].backend

    def available(self, platform: str | None = None) -> list[str]:
        platform = platform or current_platform()
        return [name for name, bound in self.entries.items() if bound.backend.runs_on(platform)]

    def resolve(self, name: str, platform: str | None = None) -> str:
        """`name`, or for 'auto' the platform's choice when it runs natively there (else the fallback)."""
        platform = platform or current_platform()
        if name != "auto":
            return name
        choice = self.auto.get(platform, self.fallback)
        if choice not in self.entries or platform not in self.entries[choice].backend.platforms:
            choice = self.fallback
        return choice

    def get(self, name: str) -> B:
        platform = current_platform()
        resolved = self.resolve(name, platform)
        record = self.record(resolved)
        if not record.runs_on(platform):
            where = sorted(set(record.platforms) | set(getattr(record, "interpreted_on", ())))
            raise ValueError(
                f"{self.label}.get: backend {resolved!r} cannot run on platform {platform!r} (it runs on {where})"
            )
        return self.entries[resolved]
