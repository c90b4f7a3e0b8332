"""Validated argparse types: a bad value becomes argparse's error naming the flag and the value.

`main` (hybrid_seq/cli/__init__.py) prints that as one `hybrid-seq: error: ...` line and
exits with status 2.
"""

from __future__ import annotations

import argparse
import json
import math
from collections.abc import Callable
from typing import Any


def int_at_least(low: int) -> Callable[[str], int]:
    """An integer type that rejects values below `low`."""

    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected an integer, got {text!r}") from None
        if value < low:
            raise argparse.ArgumentTypeError(f"must be >= {low}, got {text!r}")
        return value

    return parse


def float_in(low: float, high: float = math.inf, *, low_open: bool = False) -> Callable[[str], float]:
    """A float type for `low <= x <= high` (`low < x` with `low_open`); NaN is rejected."""
    if high == math.inf:
        wanted = f"> {low:g}" if low_open else f">= {low:g}"
    else:
        wanted = f"in {'(' if low_open else '['}{low:g}, {high:g}]"

    def parse(text: str) -> float:
        try:
            value = float(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected a number, got {text!r}") from None
        if not ((value > low if low_open else value >= low) and value <= high):
            raise argparse.ArgumentTypeError(f"must be {wanted}, got {text!r}")
        return value

    return parse


def json_object(text: str) -> dict[str, Any]:
    """A JSON object, e.g. '{"width": 256}'."""
    try:
        value = json.loads(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a JSON object, got {text!r}") from None
    if not isinstance(value, dict):
        raise argparse.ArgumentTypeError(f"expected a JSON object, got {text!r}")
    return value


def field_assignment(text: str) -> tuple[str, Any]:
    """`FIELD=VALUE`, the value parsed as JSON where it is JSON and kept as a string otherwise."""
    name, sep, value = text.partition("=")
    if not sep or not name:
        raise argparse.ArgumentTypeError(f"expected FIELD=VALUE, got {text!r}")
    try:
        return name, json.loads(value)
    except ValueError:
        return name, value


def preset_name(text: str) -> str:
    """A known preset name."""
    from hybrid_seq import presets

    if text not in presets.names():
        raise argparse.ArgumentTypeError(f"unknown preset {text!r} (known: {', '.join(presets.names())})")
    return text


def kind_bindings(text: str) -> tuple[tuple[str, Any], ...]:
    """A JSON object of letter -> kind config, e.g. '{"X": {"kind": "mamba2", "num_heads": 4, "head_dim": 8}}'."""
    from hybrid_seq.kinds import KindConfig

    bindings = json_object(text)
    out = []
    for letter, data in bindings.items():
        if len(letter) != 1:
            raise argparse.ArgumentTypeError(f"kind letters are single characters, got {letter!r}")
        try:
            out.append((letter, KindConfig.from_dict(data, where=f"--kinds {letter!r}")))
        except (TypeError, ValueError) as error:
            raise argparse.ArgumentTypeError(str(error)) from None
    return tuple(out)
