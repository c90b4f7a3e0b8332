"""The `hybrid-seq` command line.

Each subcommand lives in its own module exposing `register(subparsers)`, which adds
its parser and sets `func` (called with the parsed namespace, returning an exit code).

Errors are reported here, in one place: a bad argument (argparse, or the validated types
of `hybrid_seq.cli.args`) and a `ValueError` / `OSError` / `ImportError` from the library
(a bad value, a missing file, a missing extra) each print one `hybrid-seq: error: ...`
line and exit with status 2, never a traceback.

Before anything runs, the command adds the XLA:CPU flags `hybrid_seq.xla_cpu` recommends for
the installed jaxlib (the command is an application; the library itself changes no flags).
"""

from __future__ import annotations

import argparse
import importlib
import sys
from typing import NoReturn

from hybrid_seq.xla_cpu import apply_recommended_flags

_SUBCOMMAND_MODULES = ("info", "bench", "convert", "generate", "train", "finetune")


class UsageError(SystemExit):
    """Exit status 2 after the one error line; `str()` is the message (so callers can match on it)."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.code = 2


class _Parser(argparse.ArgumentParser):
    """An ArgumentParser whose errors (its own and its subcommands') reach `main` as a `UsageError`."""

    def error(self, message: str) -> NoReturn:
        raise UsageError(message)


def build_parser() -> argparse.ArgumentParser:
    """The `hybrid-seq` parser with every subcommand registered (its errors raise `UsageError`)."""
    parser = _Parser(
        prog="hybrid-seq",
        description="Hybrid recurrent/attention sequence models (Griffin, RecurrentGemma, Mamba-2 and its hybrids).",
    )
    subparsers = parser.add_subparsers(dest="command", required=True)
    for name in _SUBCOMMAND_MODULES:
        importlib.import_module(f"hybrid_seq.cli.{name}").register(subparsers)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Run `hybrid-seq ARGV`; errors print one line to stderr and raise `UsageError` (exit status 2)."""
    apply_recommended_flags()
    try:
        args = build_parser().parse_args(argv)
        return int(args.func(args) or 0)
    except (UsageError, ValueError, OSError, ImportError) as error:
        message = " ".join(str(error).split())
    print(f"hybrid-seq: error: {message}", file=sys.stderr)
    raise UsageError(message) from None


if __name__ == "__main__":
    sys.exit(main())
