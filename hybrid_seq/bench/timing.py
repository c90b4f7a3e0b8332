"""The one timing helper of every benchmark: interleaved repetitions, first calls apart, medians; peak RSS per process.

Why this shape: on a shared machine a slow drift (another job starting) hits every
contender alike when each repetition runs all of them once, so ratios within one run stay
comparable. The first call of each contender (compile + one run) is reported apart and
never mixed into the repetitions. Every call is timed until `jax.block_until_ready` returns
on its outputs, so asynchronous dispatch cannot make a contender look fast. Progress is a
tqdm bar on stderr (`progress_bar`), drawn only on a terminal and cleared when done.

Peak memory is measured only where it is reliable: as the peak RSS of a fresh child process
that runs one contender (`in_child`, `peak_rss_bytes`). Resetting the peak inside a running
process (`/proc/self/clear_refs`) does not work everywhere, and a process's peak never goes
down, so "rise during one call" figures are not offered.

    timings = interleaved({"ours": lambda: f(x), "reference": lambda: g(x)}, reps=5)
    timings["ours"].median, timings["ours"].first_call_s
"""

from __future__ import annotations

import dataclasses
import importlib
import json
import os
import resource
import statistics
import subprocess
import sys
import time
from collections.abc import Callable, Iterable, Mapping
from typing import Any

import jax
from tqdm import tqdm

#: A source of seconds, `time.perf_counter` by default (tests pass a fake one).
Clock = Callable[[], float]


@dataclasses.dataclass(frozen=True)
class Timing:
    """Seconds of one contender: its first call (compile + one run) and its timed repetitions."""

    first_call_s: float
    samples: tuple[float, ...]

    @property
    def median(self) -> float:
        """Median seconds of the repetitions (the figure the benchmarks report)."""
        return statistics.median(self.samples)

    @property
    def min(self) -> float:
        """Fastest repetition, in seconds."""
        return min(self.samples)

    @property
    def max(self) -> float:
        """Slowest repetition, in seconds."""
        return max(self.samples)

    @property
    def quartiles(self) -> tuple[float, float]:
        """First and third quartile of the repetitions (the interquartile range's ends)."""
        if len(self.samples) < 2:
            return self.samples[0], self.samples[0]
        q1, _, q3 = statistics.quantiles(self.samples, n=4, method="inclusive")
        return q1, q3


def timed(fn: Callable[[], Any], *, clock: Clock = time.perf_counter) -> tuple[float, Any]:
    """Seconds one call of `fn()` takes until its outputs are ready, and the outputs."""
    start = clock()
    out = jax.block_until_ready(fn())
    return clock() - start, out


def interleaved(
    contenders: Mapping[str, Callable[[], Any]],
    reps: int,
    *,
    desc: str = "timing",
    clock: Clock = time.perf_counter,
    progress: bool | None = None,
) -> dict[str, Timing]:
    """Time zero-argument contenders: a first call each, then `reps` rounds that call every contender once, in order.

    `progress`: draw a tqdm bar on stderr (`None`: only when stderr is a terminal).
    """
    if reps < 1:
        raise ValueError(f"reps must be >= 1, got {reps}")
    names = list(contenders)
    first: dict[str, float] = {}
    samples: dict[str, list[float]] = {name: [] for name in names}
    with progress_bar(total=len(names) * (reps + 1), desc=desc, unit="call", show=progress) as bar:
        for name in names:
            bar.set_postfix_str(f"{name} (first call)")
            first[name] = timed(contenders[name], clock=clock)[0]
            bar.update()
        for _ in range(reps):
            for name in names:
                bar.set_postfix_str(name)
                samples[name].append(timed(contenders[name], clock=clock)[0])
                bar.update()
    return {name: Timing(first[name], tuple(samples[name])) for name in names}


def progress_bar(iterable: Iterable[Any] | None = None, *, show: bool | None = None, **kwargs: Any) -> tqdm:
    """The benchmarks' progress bar: tqdm on stderr, cleared when done; `show=None` draws it only on a terminal."""
    return tqdm(iterable, leave=False, disable=None if show is None else not show, **kwargs)


def peak_rss_bytes() -> int:
    """This process's peak resident set size so far, in bytes.

    On Linux this is `VmHWM` from /proc/self/status, the high-water mark of the address
    space this process got at exec: `getrusage`'s max RSS there carries the *parent's* peak
    over fork and exec, so a small child of a big parent would report the parent's figure.
    Elsewhere it is `getrusage` max RSS.
    """
    try:
        with open("/proc/self/status") as status:
            for line in status:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak if sys.platform == "darwin" else peak * 1024  # macOS reports bytes, Linux KiB


def in_child(target: str, /, **kwargs: Any) -> tuple[Any, int]:
    """Run `"module:function"(**kwargs)` in a fresh Python process: its (JSON) result and that process's peak RSS.

    The peak covers everything the child did (imports, weights, compiling, running) and
    nothing before it, so it belongs to that one contender. The child sees this process's
    import path, so it measures the same code.
    """
    command = [sys.executable, "-m", __name__, json.dumps({"target": target, "kwargs": kwargs})]
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(p for p in sys.path if p)}
    done = subprocess.run(command, capture_output=True, text=True, env=env, check=False)
    if done.returncode:
        raise RuntimeError(f"{target}({kwargs}) failed in its child process:\n{done.stderr[-3000:]}")
    reply = json.loads(done.stdout.strip().splitlines()[-1])
    return reply["result"], reply["peak_rss_bytes"]


def _child(spec: str) -> None:
    request = json.loads(spec)
    module, _, name = request["target"].partition(":")
    result = getattr(importlib.import_module(module), name)(**request["kwargs"])
    print(json.dumps({"result": result, "peak_rss_bytes": peak_rss_bytes()}))


if __name__ == "__main__":
    _child(sys.argv[1])
