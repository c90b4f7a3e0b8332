"""Moved to `hybrid_seq.bench.load` (`hybrid-seq bench load`).

Kept only while `tests/io/test_memory.py` loads this file; delete it once that test calls
`hybrid_seq.bench.load.measure` directly.
"""

from __future__ import annotations

import argparse
from typing import Any

from hybrid_seq.bench import load


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(prog="benchmarks/load_2b.py")
    load.register(parser.add_subparsers(dest="target", required=True))
    args = parser.parse_args(["load", *(argv or [])])
    result = load.measure(args.preset, args.format, args.set, args.dir)
    print(load.format_report(result, args.preset, args.format))
    return result
