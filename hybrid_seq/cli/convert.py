"""`hybrid-seq convert SRC DST --to FORMAT`: read any supported checkpoint, write it in another format."""

from __future__ import annotations

import argparse

from hybrid_seq.cli.args import field_assignment, preset_name
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
    parser.add_argument("--preset", type=preset_name, help="check the weights against this preset and take its settings")
    parser.add_argument("--dtype", choices=("float32", "bfloat16", "float16"), help="cast the weights")
    parser.add_argument(
        "--set", dest="overrides", type=field_assignment, action="append", default=[], metavar="FIELD=JSON",
        help="a ModelConfig field the weights do not determine, e.g. --set attention_window_size=2048",
    )
    parser.add_argument("--overwrite", action="store_true", help="replace DST if it exists")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    model = load(args.src, preset=args.preset, dtype=args.dtype, **dict(args.overrides))
    save(model, args.dst, format=args.format, overwrite=args.overwrite)
    print(f"wrote {args.dst} ({args.format})")
    return 0
