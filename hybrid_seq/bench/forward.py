"""Full-sequence forward of a whole model: ours vs DeepMind's reference, same weights.

Each (implementation, length) runs in a fresh subprocess so that compile time and peak
RSS belong to that call alone. Reported: compile time of the jitted forward, median run
time (tokens/s), XLA's temporary buffer size for the compiled call, and the child's peak RSS.
"""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

import jax
import jax.numpy as jnp

from hybrid_seq.bench.timing import in_child, interleaved, progress_bar, timed
from hybrid_seq.cli.args import int_at_least, preset_name

IMPLEMENTATIONS = ("ours", "reference")


def _compiled_forward(which: str, preset: str, length: int) -> tuple[Any, tuple[Any, ...]]:
    import equinox as eqx

    import hybrid_seq as hs
    from hybrid_seq.bench.reference import reference_griffin
    from hybrid_seq.io import to_flax_params

    config = hs.presets.get(preset)
    model = hs.Model(config, key=jax.random.key(0))
    tokens = jax.random.randint(jax.random.key(1), (1, length), 0, config.vocab_size, jnp.int32)
    positions = jnp.arange(length, dtype=jnp.int32)[None]
    if which == "ours":
        params, static = eqx.partition(model, eqx.is_array)
        fn = jax.jit(lambda p, t, s: eqx.combine(p, static)(t, s)[0])
        return fn, (params, tokens, positions)
    reference = reference_griffin(config)
    params = {"params": to_flax_params(model)}
    fn = jax.jit(lambda p, t, s: reference.apply(p, t, s, return_cache=False)[0])
    return fn, (params, tokens, positions)


def measure(which: str, preset: str, length: int, reps: int) -> dict[str, Any]:
    """Compile time, median run time and XLA temp bytes of one forward, in this process."""
    fn, args = _compiled_forward(which, preset, length)
    compile_s, compiled = timed(lambda: fn.lower(*args).compile())
    run_s = interleaved({which: lambda: compiled(*args)}, reps, progress=False)[which].median
    return {
        "implementation": which,
        "length": length,
        "compile_s": compile_s,
        "run_s": run_s,
        "tokens_per_s": length / run_s,
        "xla_temp_bytes": compiled.memory_analysis().temp_size_in_bytes,
    }


def _in_subprocess(which: str, preset: str, length: int, reps: int) -> dict[str, Any]:
    row, peak = in_child("hybrid_seq.bench.forward:measure", which=which, preset=preset, length=length, reps=reps)
    return {**row, "peak_rss_bytes": peak}


def format_table(rows: list[dict[str, Any]]) -> str:
    header = f"{'impl':<10} {'T':>6} {'compile s':>10} {'run s':>8} {'tok/s':>9} {'XLA temp MiB':>13} {'peak RSS MiB':>13}"
    lines = [header, "-" * len(header)]
    for r in rows:
        lines.append(
            f"{r['implementation']:<10} {r['length']:>6} {r['compile_s']:>10.2f} {r['run_s']:>8.3f} "
            f"{r['tokens_per_s']:>9.0f} {r['xla_temp_bytes'] / 2**20:>13.1f} {r['peak_rss_bytes'] / 2**20:>13.1f}"
        )
    return "\n".join(lines)


def run(args: argparse.Namespace) -> int:
    implementations = [i for i in IMPLEMENTATIONS if i != "reference" or _has_reference()]
    jobs = progress_bar([(which, length) for length in args.lengths for which in implementations], desc="forward",
                        unit="process")
    rows = []
    for which, length in jobs:
        jobs.set_postfix_str(f"{which} T={length}")
        rows.append(_in_subprocess(which, args.preset, length, args.reps))
    print(f"forward pass, preset {args.preset}, batch 1, fp32, {jax.devices()[0].platform}")
    print(format_table(rows))
    if args.json:
        with open(args.json, "w") as out:
            json.dump(rows, out, indent=2)
    return 0


def _has_reference() -> bool:
    try:
        import recurrentgemma.jax  # noqa: F401
    except ImportError:
        print("reference not installed (pip install recurrentgemma): measuring ours only", file=sys.stderr)
        return False
    return True


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser("forward", help="full-sequence forward: compile time, speed, memory vs the reference")
    parser.add_argument("--preset", type=preset_name, default="griffin-small", help="model preset (default: width 512, 6 layers RRA)")
    parser.add_argument("--lengths", type=int_at_least(1), nargs="+", default=[1024, 4096], help="sequence lengths")
    parser.add_argument("--reps", type=int_at_least(1), default=3, help="timed repetitions per measurement")
    parser.add_argument("--json", help="also write the rows to this JSON file")
    parser.set_defaults(func=run)
