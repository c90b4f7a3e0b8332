"""`hybrid-seq convert SRC DST --to FORMAT`: read any supported checkpoint, write it in another format."""

from __future__ import annotations

import argparse
import json

from hybrid_seq.io import FORMATS, load, save


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "convert",
        help="convert a checkpoint between formats (ours, HuggingFace, reference Flax/orbax, reference .pt)",
        description="Load SRC (format detected) and write it to DST in FORMAT. Nothing is written on failure.",
    )
    parser.add_argument("src", help="checkpoint file or directory")
    parser.add_argument("dst", help="where to write (must not exist unless --overwrite)")
    parser.add_argument("--to", dest="format", choices=FORMATS, required=True, help="output format")
    parser.add_argument("--preset", help="check the weights against this preset and take its settings")
    parser.add_argument("--dtype", choices=("float32", "bfloat16", "float16"), help="cast the weights")
    parser.add_argument(
        "--set", dest="overrides", action="append", default=[], metavar="FIELD=JSON",
        help="a ModelConfig field the weights do not determine, e.g. --set attention_window_size=2048",
    )
    parser.add_argument("--overwrite", action="store_true", help="replace DST if it exists")
    parser.set_defaults(func=run)


def _parse_override(text: str) -> tuple[str, object]:
    name, sep, value = text.partition("=")
    if not sep:
        raise SystemExit(f"hybrid-seq convert: --set expects FIELD=VALUE, got {text!r}")
    try:
        return name, json.loads(value)
    except ValueError:
        return name, value


def run(args: argparse.Namespace) -> int:
    overrides = dict(_parse_override(text) for text in args.overrides)
    try:
        model = load(args.src, preset=args.preset, dtype=args.dtype, **overrides)
        save(model, args.dst, format=args.format, overwrite=args.overwrite)
    except (ValueError, FileNotFoundError, FileExistsError, ImportError) as error:
        raise SystemExit(f"hybrid-seq convert: {error}") from None
    print(f"wrote {args.dst} ({args.format})")
    return 0
