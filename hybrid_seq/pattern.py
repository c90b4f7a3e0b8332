"""Block patterns: which kind each layer uses, as a unit cycled over the layers.

A pattern is a repeating *unit* cycled over `num_layers` layers (Griffin is the unit
(recurrent, recurrent, attention) over 26 layers). Users write it in one short line:

- ``"RRA"``: one letter per layer, explicit (3 layers);
- ``"RRA:26"``: the unit ``RRA`` cycled and truncated to 26 layers;
- ``["recurrent", "attention"]``: kind names per layer;
- ``{"unit": ["recurrent", "recurrent", "attention"], "num_layers": 26}``: the JSON form.

Two readings share that syntax. `BlockPattern` (the `ModelConfig` form) reads letters and
names from the registry of Griffin's temporal kinds below (``R``, ``A`` and kinds added
with `register_temporal_block`). `LayerPattern` (the `HybridConfig` form) reads letters
that the config itself binds to configured kinds, so ``"M-M*-"`` can read as Nemotron-H.
"""

from __future__ import annotations

import dataclasses
import itertools
from collections.abc import Callable, Mapping, Sequence
from typing import Any


@dataclasses.dataclass(frozen=True)
class TemporalKind:
    """A temporal kind a `ModelConfig` pattern can name.

    `kind_config(config)` is its `KindConfig` for the `ModelConfig` `config` (the built-in
    kinds); a kind registered with `register_temporal_block` instead has
    `build(config, *, key, dtype)`, which returns its block. `validate(config)` raises
    ValueError when `config` cannot host this kind.
    """

    name: str
    letter: str
    build: Callable[..., Any] | None = None
    validate: Callable[[Any], None] | None = None
    kind_config: Callable[[Any], Any] | None = None


_KINDS: dict[str, TemporalKind] = {}


def register_temporal_block(
    name: str,
    *,
    letter: str,
    build: Callable[..., Any] | None = None,
    validate: Callable[[Any], None] | None = None,
    kind_config: Callable[[Any], Any] | None = None,
) -> TemporalKind:
    """Register a temporal kind for `ModelConfig` patterns under `name` and the letter `letter`.

    Give `build(config, *, key, dtype)` (the first interface: the block gets the whole
    `ModelConfig`) or `kind_config(config)` returning a `KindConfig`. Kinds with settings of
    their own are better written as a `KindConfig` and used in a `HybridConfig`.
    """
    if (build is None) == (kind_config is None):
        raise ValueError("register_temporal_block: give exactly one of build= and kind_config=")
    if not name.isidentifier():
        raise ValueError(f"block kind name must be an identifier, got {name!r}")
    if len(letter) != 1 or not letter.isalpha():
        raise ValueError(f"block kind letter must be a single letter, got {letter!r}")
    for kind in _KINDS.values():
        if kind.name != name and kind.letter == letter:
            raise ValueError(f"letter {letter!r} is already used by block kind {kind.name!r}")
    kind = TemporalKind(name=name, letter=letter, build=build, validate=validate, kind_config=kind_config)
    _KINDS[name] = kind
    return kind


def unregister_temporal_block(name: str) -> None:
    """Remove a user-registered kind (the built-in kinds cannot be removed)."""
    if name in ("recurrent", "attention"):
        raise ValueError(f"cannot unregister the built-in block kind {name!r}")
    _KINDS.pop(name, None)


def temporal_kind(name: str) -> TemporalKind:
    """Look up a registered kind by name or letter."""
    if name in _KINDS:
        return _KINDS[name]
    for kind in _KINDS.values():
        if kind.letter == name:
            return kind
    known = ", ".join(f"{k.letter}={k.name}" for k in _KINDS.values())
    raise ValueError(f"unknown block kind {name!r}; known kinds: {known}")


def temporal_kinds() -> dict[str, TemporalKind]:
    """All registered kinds, by name."""
    return dict(_KINDS)


@dataclasses.dataclass(frozen=True)
class BlockPattern:
    """A unit of kind names cycled over `num_layers` layers."""

    unit: tuple[str, ...]
    num_layers: int

    def __post_init__(self) -> None:
        if not self.unit:
            raise ValueError("block pattern is empty: give at least one block kind")
        if isinstance(self.num_layers, bool) or not isinstance(self.num_layers, int):
            raise TypeError(f"num_layers must be an int, got {self.num_layers!r}")
        if self.num_layers < 1:
            raise ValueError(f"block pattern must have at least one layer, got num_layers={self.num_layers}")
        object.__setattr__(self, "unit", tuple(temporal_kind(k).name for k in self.unit))

    @property
    def layer_kinds(self) -> tuple[str, ...]:
        """The kind name of every layer, in order."""
        return tuple(itertools.islice(itertools.cycle(self.unit), self.num_layers))

    @property
    def num_full_units(self) -> int:
        """How many whole repetitions of the unit the layers contain."""
        return self.num_layers // len(self.unit)

    def count(self, kind: str) -> int:
        """Number of layers of `kind`."""
        return self.layer_kinds.count(temporal_kind(kind).name)

    def __str__(self) -> str:
        letters = "".join(temporal_kind(k).letter for k in self.unit)
        return letters if self.num_layers == len(self.unit) else f"{letters}:{self.num_layers}"

    def to_json(self) -> dict[str, Any]:
        """The JSON-serialisable form."""
        return {"unit": list(self.unit), "num_layers": self.num_layers}


PatternSpec = str | Sequence[str] | Mapping[str, Any] | BlockPattern


def parse_pattern(spec: PatternSpec) -> BlockPattern:
    """Parse any accepted pattern form (see the module docstring) into a BlockPattern."""
    if isinstance(spec, BlockPattern):
        return spec
    if isinstance(spec, str):
        return _parse_string(spec)
    if isinstance(spec, Mapping):
        unknown = set(spec) - {"unit", "num_layers"}
        if unknown or "unit" not in spec:
            raise ValueError(
                f"pattern dict must have keys 'unit' and optionally 'num_layers', got {sorted(spec)}"
            )
        unit = _as_kind_list(spec["unit"])
        return BlockPattern(unit=unit, num_layers=spec.get("num_layers", len(unit)))
    if isinstance(spec, Sequence):
        unit = _as_kind_list(spec)
        return BlockPattern(unit=unit, num_layers=len(unit))
    raise TypeError(f"cannot read a block pattern from {type(spec).__name__}: {spec!r}")


def _as_kind_list(unit: Any) -> tuple[str, ...]:
    if isinstance(unit, str):
        return tuple(_letters(unit))
    if not isinstance(unit, Sequence) or not all(isinstance(k, str) for k in unit):
        raise TypeError(f"pattern unit must be a string or a list of kind names, got {unit!r}")
    return tuple(temporal_kind(k).name for k in unit)


def _letters(text: str) -> list[str]:
    kinds = []
    for position, char in enumerate(text):
        if char in " ,":
            continue
        try:
            kinds.append(temporal_kind(char).name)
        except ValueError as err:
            raise ValueError(f"in block pattern {text!r} at position {position}: {err}") from None
    return kinds


def _parse_string(text: str) -> BlockPattern:
    unit_text, sep, layers_text = text.strip().partition(":")
    unit = _letters(unit_text)
    if not unit:
        raise ValueError(f"block pattern {text!r} is empty: give at least one block letter")
    if not sep:
        return BlockPattern(unit=tuple(unit), num_layers=len(unit))
    try:
        num_layers = int(layers_text)
    except ValueError:
        raise ValueError(
            f"in block pattern {text!r}: expected an integer layer count after ':', got {layers_text!r}"
        ) from None
    return BlockPattern(unit=tuple(unit), num_layers=num_layers)


@dataclasses.dataclass(frozen=True)
class LayerPattern:
    """A unit of letters cycled over `num_layers` layers; each letter is bound by a `HybridConfig`."""

    unit: tuple[str, ...]
    num_layers: int

    def __post_init__(self) -> None:
        if not self.unit:
            raise ValueError("layer pattern is empty: give at least one letter")
        if isinstance(self.num_layers, bool) or not isinstance(self.num_layers, int):
            raise TypeError(f"num_layers must be an int, got {self.num_layers!r}")
        if self.num_layers < 1:
            raise ValueError(f"layer pattern must have at least one layer, got num_layers={self.num_layers}")
        for letter in self.unit:
            if not isinstance(letter, str) or len(letter) != 1 or letter in _SEPARATORS:
                raise ValueError(f"layer pattern letters must be single characters other than {_SEPARATORS!r}, got {letter!r}")

    @property
    def layer_letters(self) -> tuple[str, ...]:
        """The letter of every layer, in order."""
        return tuple(itertools.islice(itertools.cycle(self.unit), self.num_layers))

    @property
    def num_full_units(self) -> int:
        return self.num_layers // len(self.unit)

    def __str__(self) -> str:
        letters = "".join(self.unit)
        return letters if self.num_layers == len(self.unit) else f"{letters}:{self.num_layers}"

    def to_json(self) -> dict[str, Any]:
        return {"unit": "".join(self.unit), "num_layers": self.num_layers}


_SEPARATORS = " ,:"


def parse_layer_pattern(spec: str | Mapping[str, Any] | LayerPattern) -> LayerPattern:
    """A `LayerPattern` from ``"M-M*-"``, ``"M-M*-:52"`` or ``{"unit": "M-M*-", "num_layers": 52}``."""
    if isinstance(spec, LayerPattern):
        return spec
    if isinstance(spec, Mapping):
        if set(spec) - {"unit", "num_layers"} or "unit" not in spec or not isinstance(spec["unit"], str):
            raise ValueError(f"layer pattern dict must have a string 'unit' and optionally 'num_layers', got {spec!r}")
        unit = tuple(c for c in spec["unit"] if c not in " ,")
        return LayerPattern(unit=unit, num_layers=spec.get("num_layers", len(unit)))
    if not isinstance(spec, str):
        raise TypeError(f"cannot read a layer pattern from {type(spec).__name__}: {spec!r}")
    unit_text, sep, layers_text = spec.strip().rpartition(":") if ":" in spec else (spec, "", "")
    unit = tuple(c for c in unit_text if c not in " ,")
    if not sep:
        return LayerPattern(unit=unit, num_layers=len(unit))
    try:
        num_layers = int(layers_text)
    except ValueError:
        raise ValueError(
            f"in layer pattern {spec!r}: expected an integer layer count after ':', got {layers_text!r}"
        ) from None
    return LayerPattern(unit=unit, num_layers=num_layers)
