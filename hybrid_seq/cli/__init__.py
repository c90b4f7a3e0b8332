"""The `hybrid-seq` command line.

Each subcommand lives in its own module exposing `register(subparsers)`, which adds
its parser and sets `func` (called with the parsed namespace, returning an exit code).
"""

from __future__ import annotations

import argparse
import importlib
import sys

_SUBCOMMAND_MODULES = ("info", "bench", "convert", "generate", "train")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="hybrid-seq",
        description="Hybrid recurrent/attention sequence models (Griffin, Hawk, RecurrentGemma).",
    )
    subparsers = parser.add_subparsers(dest="command", required=True)
    for name in _SUBCOMMAND_MODULES:
        importlib.import_module(f"hybrid_seq.cli.{name}").register(subparsers)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    return int(args.func(args) or 0)


if __name__ == "__main__":
    sys.exit(main())
