"""`hybrid_seq.bench.timing` on a fake clock: interleaving, first calls apart, waiting for outputs, statistics."""

from __future__ import annotations

import numpy as np
import pytest

from hybrid_seq.bench.timing import Timing, in_child, interleaved, peak_rss_bytes, timed


class FakeClock:
    """A clock that only moves when a contender says so."""

    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


class Pending:
    """An output whose work finishes only when it is waited on (like an asynchronously dispatched array)."""

    def __init__(self, clock: FakeClock, seconds: float) -> None:
        self.clock, self.seconds = clock, seconds

    def block_until_ready(self) -> Pending:
        self.clock.now += self.seconds
        return self


def contender(clock: FakeClock, calls: list[str], name: str, first: float, then: list[float]):
    durations = iter([first, *then])

    def call() -> Pending:
        calls.append(name)
        return Pending(clock, next(durations))

    return call


def test_interleaved_rounds_first_calls_apart_and_outputs_awaited() -> None:
    clock, calls = FakeClock(), []
    timings = interleaved(
        {"a": contender(clock, calls, "a", 10.0, [1.0, 3.0, 2.0]), "b": contender(clock, calls, "b", 20.0, [5.0, 4.0, 6.0])},
        reps=3, clock=clock, progress=False,
    )
    assert calls == ["a", "b"] + ["a", "b"] * 3
    assert timings["a"] == Timing(first_call_s=10.0, samples=(1.0, 3.0, 2.0))
    assert timings["b"] == Timing(first_call_s=20.0, samples=(5.0, 4.0, 6.0))
    assert (timings["a"].median, timings["a"].min, timings["a"].max) == (2.0, 1.0, 3.0)


def test_timed_returns_the_awaited_output() -> None:
    clock = FakeClock()
    seconds, out = timed(lambda: Pending(clock, 0.25), clock=clock)
    assert seconds == 0.25 and isinstance(out, Pending)


def test_quartiles() -> None:
    assert Timing(0.0, (4.0, 1.0, 3.0, 2.0, 5.0)).quartiles == (2.0, 4.0)
    assert Timing(0.0, (7.0,)).quartiles == (7.0, 7.0)


def test_reps_must_be_positive() -> None:
    with pytest.raises(ValueError, match="reps must be >= 1"):
        interleaved({"a": lambda: None}, reps=0, progress=False)


def allocate(mib: int) -> int:
    """Touch `mib` MiB in this process (run in a child by the test below)."""
    return int(np.ones(mib * 2**20, np.uint8).sum() // 2**20)


def test_in_child_reports_the_childs_own_peak_rss() -> None:
    # This process holds more than the children do, so a peak inherited from it would show.
    held = np.ones(600 * 2**20, np.uint8)
    assert peak_rss_bytes() > held.nbytes
    small, small_peak = in_child("tests.bench.test_timing:allocate", mib=1)
    large, large_peak = in_child("tests.bench.test_timing:allocate", mib=256)
    assert (small, large) == (1, 256)
    assert small_peak < held.nbytes
    # Shared library pages make a fresh process's RSS vary by tens of MiB, hence the band.
    assert 192 * 2**20 < large_peak - small_peak < 320 * 2**20
