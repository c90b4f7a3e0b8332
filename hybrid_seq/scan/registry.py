"""The backend registry: names -> scans, platform checks, and the one `auto` rule.

A backend registers a forward `Kernel` and the platforms it runs on. `get` wraps it
into a `Scan` that checks inputs at trace time, supplies ``h0 = 0`` when it is None and
adds the shared reverse-scan VJP. Backends may also run *interpreted* on some platform
(the Pallas kernels on CPU): `get` allows that, `auto` never picks it.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Iterable

import jax.numpy as jnp
from jaxtyping import Array

from hybrid_seq.backends import PLATFORMS, Backends, check_platforms
from hybrid_seq.scan._vjp import with_scan_vjp
from hybrid_seq.scan.contract import Kernel, Scan, Sequence, State, check_inputs

# The single place where `auto` is decided, on the evidence in docs/scan.md: on CPU
# `sequential` is the measured fastest forward and forward+backward in fp32 and bf16; on
# TPU the Mosaic kernel, which lowers at every shape (the reference's design there); on
# GPU XLA's own log-depth scan until the Triton kernel has been timed on a device.
_AUTO = {"cpu": "sequential", "gpu": "associative", "tpu": "pallas_tpu"}


@dataclasses.dataclass(frozen=True)
class Backend:
    """A registered backend: its kernel and where it can run."""

    name: str
    kernel: Kernel
    platforms: frozenset[str]
    interpreted_on: frozenset[str]
    description: str

    def runs_on(self, platform: str) -> bool:
        """Whether it runs on `platform` at all, natively or interpreted."""
        return platform in self.platforms or platform in self.interpreted_on


@dataclasses.dataclass(frozen=True)
class BoundScan:
    """A `Scan` for one backend: ``scan(x, a, h0=None) -> (y, h_last)``.

    The public entry checks its arguments itself (rather than via annotations) so a bad
    call raises a ValueError/TypeError that names the argument.
    """

    backend: Backend
    differentiable: Callable[[Sequence, Sequence, State], tuple[Sequence, State]]

    @property
    def name(self) -> str:
        return self.backend.name

    def __call__(self, x: Array, a: Array, h0: Array | None = None) -> tuple[Sequence, State]:
        """Check the inputs (naming the bad argument), default `h0` to float32 zeros, run the backend."""
        check_inputs(x, a, h0)
        if h0 is None:
            h0 = jnp.zeros((x.shape[0], x.shape[2]), jnp.float32)
        return self.differentiable(x, a, h0)


_REGISTRY: dict[str, BoundScan] = {}
#: Names bound when called to their context (e.g. the mesh set with `jax.set_mesh`): name -> factory.
_CONTEXTUAL: dict[str, Callable[[], Scan]] = {}
_BACKENDS: Backends[BoundScan] = Backends("scan", _REGISTRY, _AUTO, extra_names=lambda: list(_CONTEXTUAL))


def register(
    name: str,
    fn: Kernel,
    *,
    platforms: Iterable[str] = PLATFORMS,
    interpreted_on: Iterable[str] = (),
    custom_vjp: bool = True,
    description: str = "",
    overwrite: bool = False,
) -> None:
    """Add a backend.

    ``fn(x, a, h0) -> (y, h_last)`` receives checked inputs and an explicit float32
    ``h0``. With ``custom_vjp=True`` (default) its gradient is the shared reverse scan
    run with ``fn`` itself; with False, JAX differentiates ``fn`` directly.
    ``platforms``: where it runs natively (eligible for `auto`); ``interpreted_on``:
    where it runs only in an interpreter (allowed by `get`, never chosen by `auto`).
    """
    check_platforms("scan", platforms, interpreted_on)
    backend = Backend(name, fn, frozenset(platforms), frozenset(interpreted_on), description)
    _BACKENDS.add(name, BoundScan(backend, with_scan_vjp(fn) if custom_vjp else fn), overwrite=overwrite)


def register_contextual(name: str, factory: Callable[[], Scan]) -> None:
    """Add a backend name that `get` resolves by calling ``factory()`` (e.g. from the current mesh).

    ``factory`` raises a ValueError saying what the context lacks.
    """
    if name == "auto" or name in _REGISTRY or name in _CONTEXTUAL:
        raise ValueError(f"scan.register_contextual: name {name!r} is reserved or taken")
    _CONTEXTUAL[name] = factory


def contextual_names() -> list[str]:
    """Backend names bound to the calling context (such as 'sharded'), not in `names()`."""
    return list(_CONTEXTUAL)


def unregister(name: str) -> None:
    """Remove a backend added with `register`."""
    _BACKENDS.remove(name)


def get_backend(name: str) -> Backend:
    """The `Backend` record (kernel, platforms) of a registered name."""
    return _BACKENDS.record(name)


def validate(name: str) -> None:
    """Raise a ValueError unless ``name`` can be passed to `get` on this platform.

    A contextual name (such as 'sharded') is only checked to exist: its context (the
    mesh) is needed when the scan is called, not when a model is built.
    """
    if name not in _CONTEXTUAL:
        get(name)


def names() -> list[str]:
    """Registered backend names, in registration order (excluding 'auto')."""
    return _BACKENDS.names()


def available(platform: str | None = None) -> list[str]:
    """Backends that run (natively or interpreted) on ``platform`` (default: current)."""
    return _BACKENDS.available(platform)


def resolve(name: str, platform: str | None = None) -> str:
    """Map ``name`` to a concrete backend name; 'auto' picks the fastest native one."""
    return _BACKENDS.resolve(name, platform)


def get(name: str) -> Scan:
    """The scan called ``name`` ('auto' allowed) for the current platform.

    A contextual name is bound now to its context: 'sharded' splits time over the 'seq'
    axis of the mesh set with `jax.set_mesh` (a clear error without one).
    """
    if name in _CONTEXTUAL:
        return _CONTEXTUAL[name]()
    return _BACKENDS.get(name)
