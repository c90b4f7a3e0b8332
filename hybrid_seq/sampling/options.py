"""What to generate and how: one frozen, validated settings object for every Sampler entry point."""

from __future__ import annotations

import dataclasses
import functools
import math
from collections.abc import Mapping, Sequence
from numbers import Integral, Real
from typing import Any

_INT32 = (-(2**31), 2**31 - 1)


@dataclasses.dataclass(frozen=True)
class SamplingOptions:
    """Generation settings, checked once on construction (a bad one raises naming the field and its value).

    `temperature=0` is greedy; otherwise logits are divided by it, filtered by `top_k` (0: off)
    and the `top_p` nucleus (1: off) and sampled. `seed` is an int (row `i` uses `seed + i`)
    or one seed per prompt. A row ends at a token of `stop_token_ids` (None: the sampler's
    defaults, EOS plus `<end_of_turn>` in chat mode) or once its text contains one of `stop`
    (a single string is one stop string). `chat=None` uses the sampler's mode.
    `return_logprobs` adds the model's log-probabilities of the chosen tokens to the output.
    Stored normalised: numbers as `int` / `float`, sequences as tuples, empty stop strings dropped.
    """

    max_new_tokens: int
    temperature: float | int = 0.0
    top_k: int = 0
    top_p: float | int = 1.0
    seed: int | Sequence[int] = 0
    stop: str | Sequence[str] = ()
    stop_token_ids: Sequence[int] | None = None
    chat: bool | None = None
    return_logprobs: bool = False

    def __post_init__(self) -> None:
        put = functools.partial(object.__setattr__, self)
        put("max_new_tokens", _int("max_new_tokens", self.max_new_tokens, low=0))
        put("temperature", _real("temperature", self.temperature, low=0.0))
        put("top_k", _int("top_k", self.top_k, low=0))
        put("top_p", _real("top_p", self.top_p, low=0.0, low_open=True, high=1.0))
        if isinstance(self.seed, Sequence) and not isinstance(self.seed, str):
            put("seed", tuple(_int(f"seed[{i}]", s, low=_INT32[0], high=_INT32[1]) for i, s in enumerate(self.seed)))
        else:
            put("seed", _int("seed", self.seed, low=_INT32[0], high=_INT32[1], what="an int or a sequence of ints"))
        stop = (self.stop,) if isinstance(self.stop, str) else self.stop
        if not isinstance(stop, Sequence) or not all(isinstance(s, str) for s in stop):
            raise TypeError(f"stop must be a string or a sequence of strings, got {self.stop!r}")
        put("stop", tuple(s for s in stop if s))
        if self.stop_token_ids is not None:
            if not isinstance(self.stop_token_ids, Sequence) or isinstance(self.stop_token_ids, str):
                raise TypeError(f"stop_token_ids must be None or a sequence of ints, got {self.stop_token_ids!r}")
            ids = self.stop_token_ids
            put("stop_token_ids", tuple(_int(f"stop_token_ids[{i}]", t, low=0, high=_INT32[1]) for i, t in enumerate(ids)))
        if self.chat is not None and not isinstance(self.chat, bool):
            raise TypeError(f"chat must be None or a bool, got {self.chat!r}")
        if not isinstance(self.return_logprobs, bool):
            raise TypeError(f"return_logprobs must be a bool, got {self.return_logprobs!r}")

    @classmethod
    def resolve(
        cls, options: SamplingOptions | None, max_new_tokens: int | None, settings: Mapping[str, Any]
    ) -> SamplingOptions:
        """`options` (or the defaults) with `max_new_tokens` and keyword `settings` put over it."""
        names = {field.name for field in dataclasses.fields(cls)}
        unknown = sorted(set(settings) - names)
        if unknown:
            raise TypeError(f"unknown sampling option {unknown[0]!r}; the options are {', '.join(sorted(names))}")
        if options is not None and not isinstance(options, cls):
            raise TypeError(f"options must be a SamplingOptions, got {type(options).__name__}")
        changes = dict(settings) if max_new_tokens is None else {**settings, "max_new_tokens": max_new_tokens}
        if options is None:
            if "max_new_tokens" not in changes:
                raise TypeError("give max_new_tokens (or options=SamplingOptions(max_new_tokens, ...))")
            return cls(**changes)
        return dataclasses.replace(options, **changes) if changes else options

    @property
    def greedy(self) -> bool:
        return self.temperature == 0

    def seeds(self, batch_size: int) -> list[int]:
        """One seed per row: `seed + i`, or the given list (which must have one per prompt)."""
        if isinstance(self.seed, tuple):
            if len(self.seed) != batch_size:
                raise ValueError(f"got {len(self.seed)} seeds for {batch_size} prompts")
            return list(self.seed)
        seeds = [self.seed + i for i in range(batch_size)]
        if seeds[-1] > _INT32[1]:
            raise ValueError(f"seed={self.seed} + row index must fit in int32 (up to {_INT32[1]})")
        return seeds


def _int(name: str, value: Any, *, low: int, high: int | None = None, what: str = "an int") -> int:
    """`value` as an int, or a TypeError / ValueError naming `name` and the value."""
    if isinstance(value, bool) or not isinstance(value, Integral):
        raise TypeError(f"{name} must be {what}, got {value!r}")
    if value < low or (high is not None and value > high):
        bound = f">= {low}" if high is None else f"in [{low}, {high}]"
        raise ValueError(f"{name} must be {bound}, got {value}")
    return int(value)


def _real(name: str, value: Any, *, low: float, low_open: bool = False, high: float | None = None) -> float:
    """`value` as a finite float in the bounds, or a TypeError / ValueError naming `name` and the value."""
    if isinstance(value, bool) or not isinstance(value, Real):
        raise TypeError(f"{name} must be a number, got {value!r}")
    too_low = value <= low if low_open else value < low
    if not math.isfinite(value) or too_low or (high is not None and value > high):
        bound = f"{'>' if low_open else '>='} {low:g}" + ("" if high is None else f" and <= {high:g}")
        raise ValueError(f"{name} must be finite and {bound}, got {value}")
    return float(value)
