"""Block kinds: each kind's own frozen, validated, JSON-serialisable config, which builds its module.

A kind config is a frozen dataclass subclassing `KindConfig`, registered under its
``kind`` name with `register_kind`, so it can be written into a checkpoint's config and
read back. Its ``role`` says where it sits in a layer: a ``"temporal"`` kind mixes along
time and is stateful (`hybrid_seq.blocks.AbstractMixer`), a ``"channel"`` kind mixes
features token by token (`hybrid_seq.blocks.AbstractChannelMixer`)::

    @hs.register_kind
    @dataclasses.dataclass(frozen=True)
    class ShiftConfig(hs.KindConfig):
        kind: ClassVar[str] = "shift"
        role: ClassVar[str] = "temporal"
        state_size: int = 4

        def build(self, width, *, key, dtype, num_layers):
            return ShiftMix(width, self.state_size, key=key, dtype=dtype)

Fields must be JSON values (numbers, strings, bools, None, tuples of them) or nested
kind configs; lists read from JSON become tuples.
"""

from __future__ import annotations

import dataclasses
import math
from typing import Any, ClassVar

#: Where a kind sits in a layer: a temporal (stateful, along time) or a channel (per token) mixer.
ROLES = ("temporal", "channel")

_KINDS: dict[str, type[KindConfig]] = {}


@dataclasses.dataclass(frozen=True)
class KindConfig:
    """Base of every kind's config: `build` makes the module, `to_dict`/`from_dict` round-trip it."""

    kind: ClassVar[str]
    role: ClassVar[str]

    def build(self, width: int, *, key: Any, dtype: Any, num_layers: int) -> Any:
        """The module for a model of `width` features and `num_layers` layers (the depth sets
        the reference's output-projection init scale, 2 / num_layers)."""
        raise NotImplementedError(f"{type(self).__name__} must implement build(width, *, key, dtype, num_layers)")

    def validate(self, width: int) -> None:
        """Raise ValueError when this kind cannot live in a model of `width` features."""

    def to_dict(self) -> dict[str, Any]:
        """``{"kind": name, **fields}``, JSON-serialisable; `from_dict` inverts it exactly."""
        return {"kind": self.kind, **{f.name: _to_json(getattr(self, f.name)) for f in dataclasses.fields(self)}}

    @staticmethod
    def from_dict(data: dict[str, Any], *, where: str = "kind config") -> KindConfig:
        """The registered config named by ``data["kind"]``, built from the other keys."""
        if not isinstance(data, dict) or not isinstance(data.get("kind"), str):
            raise ValueError(f"{where}: expected an object with a 'kind' name, got {data!r}")
        cls = kind_config(data["kind"], where=where)
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(data) - known - {"kind"})
        if unknown:
            raise ValueError(f"{where}: kind {data['kind']!r} has no fields {unknown}; its fields are {sorted(known)}")
        values = {name: _from_json(value, where=f"{where}.{name}") for name, value in data.items() if name != "kind"}
        return cls(**values)


def register_kind(cls: type[KindConfig]) -> type[KindConfig]:
    """Register a `KindConfig` subclass under its ``kind`` name (a class decorator)."""
    if not (isinstance(cls, type) and issubclass(cls, KindConfig) and dataclasses.is_dataclass(cls)):
        raise TypeError(f"register_kind expects a dataclass subclassing KindConfig, got {cls!r}")
    name = getattr(cls, "kind", None)
    if not isinstance(name, str) or not name.isidentifier():
        raise ValueError(f"{cls.__name__}.kind must be an identifier string, got {name!r}")
    if getattr(cls, "role", None) not in ROLES:
        raise ValueError(f"{cls.__name__}.role must be one of {ROLES}, got {getattr(cls, 'role', None)!r}")
    if not cls.__dataclass_params__.frozen:
        raise TypeError(f"{cls.__name__} must be a frozen dataclass (@dataclasses.dataclass(frozen=True))")
    existing = _KINDS.get(name)
    if existing is not None and existing.__qualname__ != cls.__qualname__:
        raise ValueError(f"kind {name!r} is already registered by {existing.__module__}.{existing.__qualname__}")
    _KINDS[name] = cls
    return cls


def unregister_kind(name: str) -> None:
    """Remove a kind added with `register_kind`."""
    if name not in _KINDS:
        raise ValueError(f"unknown kind {name!r}; registered: {sorted(_KINDS)}")
    del _KINDS[name]


def kind_config(name: str, *, where: str = "kind") -> type[KindConfig]:
    """The config class registered as ``name``."""
    if name not in _KINDS:
        raise ValueError(
            f"{where}: kind {name!r} is not registered (registered: {', '.join(sorted(_KINDS))}); "
            "import the module that defines it before building or loading the model"
        )
    return _KINDS[name]


def kinds() -> dict[str, type[KindConfig]]:
    """Every registered kind config class, by name."""
    return dict(_KINDS)


def _to_json(value: Any) -> Any:
    if isinstance(value, KindConfig):
        return value.to_dict()
    if isinstance(value, tuple):
        return [_to_json(v) for v in value]
    return value


def _from_json(value: Any, *, where: str) -> Any:
    if isinstance(value, dict) and "kind" in value:
        return KindConfig.from_dict(value, where=where)
    if isinstance(value, list):
        return tuple(_from_json(v, where=where) for v in value)
    return value


def check_int(owner: str, name: str, value: Any, *, minimum: int = 1) -> None:
    """Raise unless ``value`` is an int >= ``minimum``, naming ``owner.name``."""
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(f"{owner}.{name} must be an int, got {value!r}")
    if value < minimum:
        raise ValueError(f"{owner}.{name} must be >= {minimum}, got {value}")


def check_number(owner: str, name: str, value: Any, *, minimum: float | None = None) -> None:
    """Raise unless ``value`` is a finite number (>= ``minimum`` when given), naming ``owner.name``."""
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise TypeError(f"{owner}.{name} must be a finite number, got {value!r}")
    if minimum is not None and value < minimum:
        raise ValueError(f"{owner}.{name} must be >= {minimum}, got {value}")


def check_choice(owner: str, name: str, value: Any, choices: tuple[Any, ...]) -> None:
    """Raise unless ``value`` is one of ``choices``, naming ``owner.name``."""
    if value not in choices:
        raise ValueError(f"{owner}.{name} must be one of {list(choices)}, got {value!r}")


def check_divides(owner: str, divisor_name: str, divisor: int, name: str, value: int) -> None:
    """Raise unless ``divisor`` divides ``value``, naming both fields."""
    if value % divisor:
        raise ValueError(f"{owner}: {divisor_name}={divisor} must divide {name}={value}")
