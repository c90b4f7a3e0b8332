"""Load a full-size RecurrentGemma-2B checkpoint in bf16 and report the loader's peak RSS.

No download: a child process writes a synthetic bf16 checkpoint with the real 2B tree and
shapes, tensor by tensor (each filled with a constant), then a second, fresh child loads it
with `hybrid_seq.io.load` and reports its peak RSS (`timing.peak_rss_bytes`) before and after. The
checkpoint is about 5.4 GB on disk (HuggingFace or our own safetensors layout).

    hybrid-seq bench load [--format huggingface|hybrid_seq] [--dir DIR] [--preset NAME] [--set JSON]
"""

from __future__ import annotations

import argparse
import tempfile
import time
import zlib
from pathlib import Path
from typing import Any

import ml_dtypes
import numpy as np

from hybrid_seq.bench.timing import in_child, peak_rss_bytes, progress_bar
from hybrid_seq.cli.args import json_object, preset_name

FORMATS = ("huggingface", "hybrid_seq")


def fill_value(path: tuple) -> float:
    """The constant a synthetic leaf is filled with (distinct per leaf, exact in bf16)."""
    return float((zlib.crc32(".".join(map(str, path)).encode()) % 255 + 1) / 256)


def write(preset: str, format: str, directory: str, overrides: dict[str, Any]) -> None:
    """Write the synthetic bf16 checkpoint of `preset` (with `overrides`) to `directory`, tensor by tensor."""
    from hybrid_seq import presets
    from hybrid_seq.io.assemble import shapes_of, skeleton
    from hybrid_seq.io.huggingface import write_huggingface
    from hybrid_seq.io.native import write_native

    abstract = skeleton(presets.get(preset, **overrides), ml_dtypes.bfloat16)
    shapes = shapes_of(abstract)
    writer = write_huggingface if format == "huggingface" else write_native
    Path(directory).mkdir(parents=True)
    writer(abstract, Path(directory), lambda path: np.full(shapes[path], fill_value(path), ml_dtypes.bfloat16),
           ml_dtypes.bfloat16)


def load(directory: str) -> dict[str, Any]:
    """Load the checkpoint in bf16 in this process: sizes, peak RSS before loading, seconds, a value check."""
    import jax

    import hybrid_seq.io as hio

    before = peak_rss_bytes()
    start = time.perf_counter()
    model = jax.block_until_ready(hio.load(directory, dtype="bfloat16"))
    seconds = time.perf_counter() - start
    leaves = jax.tree_util.tree_leaves(model)
    return {
        "params": int(sum(x.size for x in leaves)),
        "weight_bytes": int(sum(x.nbytes for x in leaves)),
        "rss_before_load": before,
        "load_seconds": seconds,
        "embedder_ok": bool(float(model.embedder.weight[0, 0]) == fill_value(("embedder", "weight"))),
    }


def measure(preset: str, format: str, overrides: dict[str, Any], scratch: str | None = None) -> dict[str, Any]:
    """Write the checkpoint in one child, load it in a fresh one; the loader's figures and the checkpoint's size."""
    with tempfile.TemporaryDirectory(dir=scratch) as tmp, progress_bar(total=2, desc="load", unit="process") as bar:
        directory = str(Path(tmp) / "ckpt")
        bar.set_postfix_str("writing the checkpoint")
        start = time.perf_counter()
        in_child("hybrid_seq.bench.load:write", preset=preset, format=format, directory=directory, overrides=overrides)
        written = time.perf_counter() - start
        disk = sum(f.stat().st_size for f in Path(directory).iterdir())
        bar.update()
        bar.set_postfix_str("loading it in a fresh process")
        result, peak = in_child("hybrid_seq.bench.load:load", directory=directory)
        bar.update()
    rise = peak - result["rss_before_load"]
    return {**result, "peak_rss": peak, "checkpoint_bytes": disk, "write_seconds": written,
            "rss_rise_over_checkpoint": rise / disk}


def format_report(result: dict[str, Any], preset: str, format: str) -> str:
    gib = 2**30
    rise = result["peak_rss"] - result["rss_before_load"]
    return (
        f"{preset} ({format}, bf16): {result['params']:,} params, checkpoint {result['checkpoint_bytes'] / gib:.2f} GiB, "
        f"written in {result['write_seconds']:.0f} s, loaded in {result['load_seconds']:.1f} s\n"
        f"peak RSS {result['peak_rss'] / gib:.2f} GiB (before load {result['rss_before_load'] / gib:.2f} GiB; "
        f"rise {rise / gib:.2f} GiB = {result['rss_rise_over_checkpoint']:.2f} x checkpoint); "
        f"values {'ok' if result['embedder_ok'] else 'WRONG'}"
    )


def run(args: argparse.Namespace) -> int:
    result = measure(args.preset, args.format, args.set, args.dir)
    print(format_report(result, args.preset, args.format))
    return 0


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser("load", help="peak RSS of loading a synthetic bf16 RecurrentGemma-2B checkpoint")
    parser.add_argument("--format", choices=FORMATS, default="huggingface")
    parser.add_argument("--preset", type=preset_name, default="recurrentgemma-2b")
    parser.add_argument("--set", type=json_object, default={}, help="JSON dict of preset overrides (for reduced sizes)")
    parser.add_argument("--dir", help="where to write the checkpoint (default: a temporary directory)")
    parser.set_defaults(func=run)
