"""Scan benchmark: every backend (and the reference's scans) on the same inputs.

Timings are medians of interleaved repetitions (each rep runs every contender once),
so slow drifts of a shared machine hit all contenders alike. Bandwidth counts the
unavoidable traffic: forward reads ``x``, ``a`` and writes ``y`` (3 arrays); forward +
backward adds reading ``dy``, ``a``, ``y`` and writing ``dx``, ``da`` (8 arrays). The
ceiling is a measured elementwise ``a + x`` over the same bytes ("copy").
"""

from __future__ import annotations

import argparse
import dataclasses
import itertools
from collections.abc import Callable

import jax
import jax.numpy as jnp
from tqdm import tqdm

from hybrid_seq import scan
from hybrid_seq.bench.timing import interleaved, progress_bar
from hybrid_seq.cli.args import int_at_least

#: `(B, T, D)` shapes timed by default: RecurrentGemma-2B's width at batch 8, and a long sequence.
FULL_SHAPES = ((8, 2048, 2560), (1, 8192, 4096))
#: The shapes of `--small`.
SMALL_SHAPES = ((2, 512, 512), (1, 1024, 1024))
#: Input dtypes timed, by name.
DTYPES = {"float32": jnp.float32, "bfloat16": jnp.bfloat16}
#: Forward only, and forward plus backward (a VJP with a non-constant cotangent).
MODES = ("fwd", "fwd+bwd")
#: `[B, T, D]` arrays each mode must read or write at least, for the bandwidth figures.
ARRAYS_MOVED = {"fwd": 3, "fwd+bwd": 8}
#: The contender the "x ref" column divides by: recurrentgemma's `vmap` of `lax.scan`.
REFERENCE_BASELINE = "ref:LINEAR_NATIVE"


@dataclasses.dataclass(frozen=True)
class Row:
    """One timed contender on one configuration."""

    contender: str
    shape: tuple[int, int, int]
    dtype: str
    mode: str
    seconds: float
    gb_per_s: float
    pct_of_copy: float
    ratio_to_reference: float | None


def _reference_scans() -> dict[str, Callable]:
    """The reference's native scans, if `recurrentgemma` is importable."""
    try:
        from recurrentgemma import common
        from recurrentgemma.jax import scan as reference
    except ImportError:
        return {}
    kinds = ["LINEAR_NATIVE", "ASSOCIATIVE_NATIVE"]
    if scan.current_platform() == "tpu":
        kinds.append("LINEAR_PALLAS")
    return {
        f"ref:{kind}": (
            lambda x, a, kind=kind: reference.linear_scan(x, a, scan_type=getattr(common.ScanType, kind))
        )
        for kind in kinds
    }


def contenders(backends: list[str] | None, with_reference: bool) -> dict[str, Callable]:
    """Name -> ``f(x, a) -> (y, h_last)`` for the chosen backends (default: all available)."""
    names = backends or scan.available()
    chosen: dict[str, Callable] = {name: scan.get(name) for name in names}
    if with_reference:
        chosen.update(_reference_scans())
    return chosen


def _compiled(fn: Callable, mode: str) -> Callable:
    if mode == "fwd":
        return jax.jit(lambda x, a: fn(x, a)[0])

    def forward_backward(x, a):
        y, pullback = jax.vjp(lambda x, a: fn(x, a)[0], x, a)
        # The cotangent is an input (x itself), so XLA cannot constant-fold the backward.
        return y, pullback(x)

    return jax.jit(forward_backward)


def _medians(fns: dict[str, Callable], args: tuple, reps: int, desc: str) -> dict[str, float]:
    timings = interleaved({name: (lambda fn=fn: fn(*args)) for name, fn in fns.items()}, reps, desc=desc)
    return {name: timing.median for name, timing in timings.items()}


def run(
    shapes: tuple[tuple[int, int, int], ...] = FULL_SHAPES,
    dtypes: tuple[str, ...] = tuple(DTYPES),
    modes: tuple[str, ...] = MODES,
    backends: list[str] | None = None,
    with_reference: bool = True,
    reps: int = 5,
    log: Callable[[str], None] = tqdm.write,
) -> list[Row]:
    """Time every contender on every (shape, dtype, mode); returns one `Row` each.

    Progress: a tqdm bar over the configurations, and one `log` line as each starts.
    """
    rows = []
    fns = contenders(backends, with_reference)
    with progress_bar(total=len(shapes) * len(dtypes) * len(modes), desc="scan", unit="config") as bar:
        for shape, dtype in itertools.product(shapes, dtypes):
            kx, ka = jax.random.split(jax.random.key(0))
            x = jax.random.normal(kx, shape, DTYPES[dtype])
            a = jax.random.uniform(ka, shape, DTYPES[dtype], 0.9, 1.0)
            copy = _medians({"copy": jax.jit(lambda x, a: a + x)}, (x, a), reps, f"{shape} {dtype} copy")["copy"]
            for mode in modes:
                log(f"timing {shape} {dtype} {mode} ...")
                timed = _medians({n: _compiled(f, mode) for n, f in fns.items()}, (x, a), reps, f"{shape} {dtype} {mode}")
                rows += _rows(timed, shape, dtype, mode, bytes_per_array=x.size * x.dtype.itemsize, copy_s=copy)
                bar.update()
    return rows


def _rows(
    timed: dict[str, float], shape: tuple[int, int, int], dtype: str, mode: str, *, bytes_per_array: int, copy_s: float
) -> list[Row]:
    gigabytes = ARRAYS_MOVED[mode] * bytes_per_array / 1e9
    copy_gbps = 3 * bytes_per_array / 1e9 / copy_s
    reference = timed.get(REFERENCE_BASELINE)
    return [
        Row(name, shape, dtype, mode, seconds, gigabytes / seconds, 100 * gigabytes / seconds / copy_gbps,
            None if reference is None else reference / seconds)
        for name, seconds in timed.items()
    ]


def format_table(rows: list[Row]) -> str:
    """The rows as the fixed-width text table `hybrid-seq bench scan` prints (ms, GB/s, % of copy, x ref)."""
    header = f"{'shape':>16} {'dtype':>8} {'mode':>7} {'contender':>22} {'ms':>9} {'GB/s':>7} {'%copy':>6} {'x ref':>7}"
    lines = [header, "-" * len(header)]
    for r in rows:
        ratio = "-" if r.ratio_to_reference is None else f"{r.ratio_to_reference:.2f}"
        lines.append(
            f"{str(r.shape):>16} {r.dtype:>8} {r.mode:>7} {r.contender:>22} "
            f"{1e3 * r.seconds:9.1f} {r.gb_per_s:7.2f} {r.pct_of_copy:6.1f} {ratio:>7}"
        )
    return "\n".join(lines)


def plot(rows: list[Row], path: str) -> None:
    """Linear bars of GB/s (longer is faster) per contender, one panel per (shape, dtype) and mode.

    Each bar is labelled with its time and its speed-up over the reference. The measured
    `a + x` copy over the same bytes (the bandwidth ceiling) is a dashed line, or named in
    the title where it lies far beyond the bars.
    """
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
        from matplotlib.ticker import MaxNLocator
    except ImportError as error:
        raise RuntimeError("plotting needs matplotlib: pip install matplotlib") from error
    cases = list(dict.fromkeys((r.shape, r.dtype) for r in rows))
    modes = list(dict.fromkeys(r.mode for r in rows))
    names = list(dict.fromkeys(r.contender for r in rows))
    fig, axes = plt.subplots(len(cases), len(modes), figsize=(6.5 * len(modes), (0.4 * len(names) + 1.1) * len(cases)),
                             squeeze=False)
    for (shape, dtype), row_axes in zip(cases, axes):
        for mode, ax in zip(modes, row_axes):
            sel = sorted((r for r in rows if (r.shape, r.dtype, r.mode) == (shape, dtype, mode)),
                         key=lambda r: names.index(r.contender), reverse=True)
            bars = ax.barh([r.contender for r in sel], [r.gb_per_s for r in sel],
                           color=["0.6" if r.contender.startswith("ref:") else "C0" for r in sel])
            ax.bar_label(bars, [_bar_label(r) for r in sel], padding=3, fontsize=8)
            right = 1.5 * max(r.gb_per_s for r in sel)
            copy_gbps = 100 * sel[0].gb_per_s / sel[0].pct_of_copy
            title = f"{shape} {dtype} {mode}"
            if copy_gbps < right:
                ax.axvline(copy_gbps, color="k", linestyle="--", linewidth=1, label="a + x copy")
                ax.legend(loc="best", fontsize=8)
            else:
                title += f"  (a + x copy: {copy_gbps:.1f} GB/s)"
            ax.set_xlim(0, right)
            ax.xaxis.set_major_locator(MaxNLocator(nbins=5))
            ax.set_xlabel("GB/s (longer is faster)")
            ax.set_title(title, fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def _bar_label(row: Row) -> str:
    ms = f"{1e3 * row.seconds:,.1f} ms"
    if row.contender == REFERENCE_BASELINE:
        return f"{ms}, baseline"
    return ms if row.ratio_to_reference is None else f"{ms}, {row.ratio_to_reference:.2f}x ref"


def main(args: argparse.Namespace) -> int:
    """`hybrid-seq bench scan`: time, print the table and (with `--out`) write the plot; returns the exit code."""
    shapes = tuple(map(tuple, args.shape)) if args.shape else SMALL_SHAPES if args.small else FULL_SHAPES
    rows = run(
        shapes=shapes,
        dtypes=tuple(args.dtypes),
        modes=tuple(args.modes),
        backends=args.backends,
        with_reference=not args.no_reference,
        reps=args.reps,
    )
    print(f"platform: {scan.current_platform()}; auto -> {scan.resolve('auto')}")
    print(format_table(rows))
    if args.out:
        plot(rows, args.out)
        print(f"plot written to {args.out}")
    return 0


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add the `scan` target to `hybrid-seq bench`."""
    parser = subparsers.add_parser("scan", help="time the scan backends against the reference")
    parser.add_argument("--small", action="store_true", help=f"use shapes {SMALL_SHAPES}")
    parser.add_argument(
        "--shape", nargs=3, type=int_at_least(1), action="append", metavar=("B", "T", "D"),
        help="shape to time (repeatable; overrides --small)",
    )
    parser.add_argument("--dtypes", nargs="+", choices=list(DTYPES), default=list(DTYPES))
    parser.add_argument("--modes", nargs="+", choices=list(MODES), default=list(MODES))
    parser.add_argument("--backends", nargs="+", help="backend names (default: all available)")
    parser.add_argument("--no-reference", action="store_true", help="skip recurrentgemma's scans")
    parser.add_argument("--reps", type=int_at_least(1), default=5, help="interleaved repetitions (median)")
    parser.add_argument("--out", help="write a PNG plot here (needs matplotlib)")
    parser.set_defaults(func=main)
