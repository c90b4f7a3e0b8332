"""`hybrid-seq convert SRC DST --to FORMAT [--quantize int8]`: read any supported checkpoint, write it in another format."""

from __future__ import annotations

import argparse

from hybrid_seq.cli.args import field_assignment, preset_name
from hybrid_seq.io import FORMATS, load, save
from hybrid_seq.quantize import SCHEMES, quantize


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
        "--quantize", choices=SCHEMES,
        help="quantize the weights (after --dtype, which then sets the scales' dtype); needs --to hybrid_seq",
    )
    parser.add_argument(
        "--set", dest="overrides", type=field_assignment, action="append", default=[], metavar="FIELD=JSON",
        help="a ModelConfig field the weights do not determine, e.g. --set attention_window_size=2048",
    )
    parser.add_argument("--overwrite", action="store_true", help="replace DST if it exists")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    if args.quantize is not None and args.format != "hybrid_seq":
        raise ValueError(f"--quantize writes the hybrid_seq format only (it holds int8 weights), not {args.format}")
    model = load(args.src, preset=args.preset, dtype=args.dtype, **dict(args.overrides))
    if args.quantize is not None:
        model = quantize(model, args.quantize)
    save(model, args.dst, format=args.format, overwrite=args.overwrite)
    print(f"wrote {args.dst} ({args.format}{'' if args.quantize is None else ', ' + args.quantize})")
    return 0
