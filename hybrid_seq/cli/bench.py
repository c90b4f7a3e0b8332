"""`hybrid-seq bench TARGET`: benchmarks that compare against the reference in one run."""

from __future__ import annotations

import argparse
import importlib

_TARGETS = {
    "forward": "hybrid_seq.bench.forward",
    "scan": "hybrid_seq.bench.scan",
    "generate": "hybrid_seq.bench.generate",
    "train": "hybrid_seq.bench.train",
    "load": "hybrid_seq.bench.load",
    "memory": "hybrid_seq.bench.memory",
    "mamba2": "hybrid_seq.bench.mamba2",
}


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser("bench", help="run a benchmark and print a table")
    targets = parser.add_subparsers(dest="target", required=True)
    for name, module in _TARGETS.items():
        importlib.import_module(module).register(targets)
