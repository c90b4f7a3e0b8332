"""The matrix-scan registry: names -> backends, platform checks, and the one `auto` rule.

A backend registers a `Kernel` and the platforms it runs on. `get` wraps it into a
`MatrixScan` that checks inputs at trace time and supplies ``h0 = 0`` when it is None.
Unlike `hybrid_seq.scan`, there is no shared custom VJP: the transpose of a matrix
recurrence needs every ``h_{t-1}``, so each backend states how it keeps its gradient's
memory bounded (rematerialisation, or residuals per chunk).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable

import jax.numpy as jnp
from jaxtyping import Array

from hybrid_seq.backends import PLATFORMS, Backends, check_platforms
from hybrid_seq.matrix_scan.contract import Kernel, State, Values, check_inputs

# The single place where `auto` is decided. On CPU by measurement (docs/matrix_scan.md): at
# (B=2, T=2048, H=8, K=V=64) `chunked` runs forward+backward 6-12x faster than `sequential`
# (forward alone: on par under scalar decay, 2.5x slower under per-key decay). GPU and TPU
# were not measured (no accelerator); `chunked` is the form built for them (its work is matmuls).
_AUTO = {"cpu": "chunked", "gpu": "chunked", "tpu": "chunked"}


@dataclasses.dataclass(frozen=True)
class Backend:
    """A registered backend: its kernel and where it runs."""

    name: str
    kernel: Kernel
    platforms: frozenset[str]
    description: str

    def runs_on(self, platform: str) -> bool:
        """Whether it runs on `platform` (natively: matrix scans have no interpreted backends)."""
        return platform in self.platforms


@dataclasses.dataclass(frozen=True)
class BoundMatrixScan:
    """A `MatrixScan` for one backend: ``(q, k, v, log_decay, h0=None, *, reset=None)``.

    The public entry checks its arguments itself (rather than via annotations) so a bad
    call raises a ValueError/TypeError that names the argument.
    """

    backend: Backend

    @property
    def name(self) -> str:
        return self.backend.name

    def __call__(
        self, q: Array, k: Array, v: Array, log_decay: Array, h0: Array | None = None, *, reset: Array | None = None
    ) -> tuple[Values, State]:
        """Check the inputs (naming the bad argument), default `h0` to float32 zeros, run the backend."""
        check_inputs(q, k, v, log_decay, h0, reset)
        if h0 is None:
            batch, _, _, key = q.shape
            h0 = jnp.zeros((batch, v.shape[2], key, v.shape[3]), jnp.float32)
        return self.backend.kernel(q, k, v, log_decay, h0, reset)


def bind(name: str, fn: Kernel, *, platforms: Iterable[str] = PLATFORMS, description: str = "") -> BoundMatrixScan:
    """A `MatrixScan` for ``fn`` without registering it (e.g. a kernel with other options)."""
    check_platforms("matrix_scan", platforms)
    return BoundMatrixScan(Backend(name, fn, frozenset(platforms), description))


_REGISTRY: dict[str, BoundMatrixScan] = {}
_BACKENDS: Backends[BoundMatrixScan] = Backends("matrix_scan", _REGISTRY, _AUTO)


def register(
    name: str,
    fn: Kernel,
    *,
    platforms: Iterable[str] = PLATFORMS,
    description: str = "",
    overwrite: bool = False,
) -> None:
    """Add a backend.

    ``fn(q, k, v, log_decay, h0, reset) -> (y, h_last)`` receives checked inputs, an
    explicit float32 ``h0`` and ``reset`` or None; JAX differentiates it as it stands.
    ``platforms``: where it runs (eligible for `auto`).
    """
    _BACKENDS.add(name, bind(name, fn, platforms=platforms, description=description), overwrite=overwrite)


def unregister(name: str) -> None:
    """Remove a backend added with `register`."""
    _BACKENDS.remove(name)


def get_backend(name: str) -> Backend:
    """The `Backend` record (kernel, platforms) of a registered name."""
    return _BACKENDS.record(name)


def names() -> list[str]:
    """Registered backend names, in registration order (excluding 'auto')."""
    return _BACKENDS.names()


def available(platform: str | None = None) -> list[str]:
    """Backends that run on ``platform`` (default: current)."""
    return _BACKENDS.available(platform)


def resolve(name: str, platform: str | None = None) -> str:
    """Map ``name`` to a concrete backend name; 'auto' picks the measured fastest one."""
    return _BACKENDS.resolve(name, platform)


def get(name: str) -> BoundMatrixScan:
    """The matrix scan called ``name`` ('auto' allowed) for the current platform."""
    return _BACKENDS.get(name)


def validate(name: str) -> None:
    """Raise a ValueError unless ``name`` can be passed to `get` on this platform."""
    get(name)
