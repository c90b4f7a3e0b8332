"""`hybrid-seq info [PRESET | PATH]`: presets with exact sizes, or what a checkpoint holds."""

from __future__ import annotations

import argparse
import importlib
import os

import jax.numpy as jnp

from hybrid_seq import presets
from hybrid_seq.architecture import HybridConfig
from hybrid_seq.cli import UsageError
from hybrid_seq.cli.args import int_at_least
from hybrid_seq.config import ModelConfig
from hybrid_seq.params import param_count
from hybrid_seq.sampling.state import kv_cache_bytes, state_bytes


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "info",
        help="preset sizes (parameters, weight memory, state vs KV cache), or describe a checkpoint",
        description="Without an argument: every preset. With a preset name: that preset. With a path: the checkpoint.",
    )
    parser.add_argument("target", nargs="?", help="a preset name or a checkpoint path")
    parser.add_argument(
        "--length", type=int_at_least(1), default=8192, help="sequence length for the KV-cache comparison (default 8192)"
    )
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    if args.target is not None and os.path.exists(args.target):
        inspect = importlib.import_module("hybrid_seq.io.inspect")
        print(inspect.format_description(inspect.describe(args.target)))
        return 0
    if args.target is not None and args.target not in presets.names():
        raise UsageError(f"{args.target!r} is neither a preset ({', '.join(presets.names())}) nor a path")
    names = presets.names() if args.target is None else [args.target]
    print(preset_table(names, args.length))
    return 0


def preset_table(names: list[str], length: int) -> str:
    """A text table: pattern, exact parameter counts, weight memory, bf16 state vs a transformer's KV cache."""
    header = (
        "preset", "pattern", "params", "embedding", "non-embedding", "bf16 weights", "fp32 weights",
        f"state/seq @{length} (bf16)", f"KV cache @{length} (bf16)",
    )
    rows = [header]
    for name in names:
        config = presets.get(name)
        counts = param_count(config)
        rows.append((
            name,
            _pattern(config),
            f"{counts.total:,}",
            f"{counts.embedding:,}",
            f"{counts.non_embedding:,}",
            _bytes(2 * counts.total),
            _bytes(4 * counts.total),
            _bytes(state_bytes(config, dtype=jnp.bfloat16, max_length=length)),
            _bytes(kv_cache_bytes(config, length, dtype=jnp.bfloat16)),
        ))
    widths = [max(len(row[i]) for row in rows) for i in range(len(header))]
    lines = ["  ".join(cell.rjust(w) if i > 1 else cell.ljust(w) for i, (cell, w) in enumerate(zip(row, widths)))
             for row in rows]
    lines.insert(1, "  ".join("-" * w for w in widths))
    note = (
        f"state/seq: the decoding state of one sequence at {length} tokens: fixed for recurrences, Mamba-2 and "
        f"local attention, while global attention layers (GQA) keep every key and value. KV cache: a multi-head "
        f"transformer of the same width and depth at {length} tokens. Patterns: M Mamba-2, * attention, - MLP, "
        f"E MoE, P attention beside Mamba-2 (Falcon-H1); a count like M24 is the number of such layers."
    )
    return "\n".join(lines + ["", note])


def _pattern(config: ModelConfig | HybridConfig) -> str:
    """The pattern, or for a long one without a short unit the count of each letter's layers."""
    pattern = str(config.block_pattern if isinstance(config, ModelConfig) else config.pattern)
    if len(pattern) <= 16:
        return pattern
    letters = config.pattern.layer_letters
    return " ".join(f"{letter}{letters.count(letter)}" for letter in dict.fromkeys(letters))


def _bytes(n: int) -> str:
    for unit, size in (("GiB", 2**30), ("MiB", 2**20), ("KiB", 2**10)):
        if n >= size:
            return f"{n / size:.2f} {unit}"
    return f"{n} B"
