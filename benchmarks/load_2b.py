"""Load a full-size RecurrentGemma-2B checkpoint in bf16 and report the loader's peak RSS.

No download: a child process writes a synthetic bf16 checkpoint with the real 2B tree and
shapes, tensor by tensor (each filled with a constant), then a second child loads it with
`hybrid_seq.io.load` and reports `resource.getrusage` peak RSS before and after. The
checkpoint is about 5.4 GB on disk (HuggingFace or our own safetensors layout).

    python benchmarks/load_2b.py [--format huggingface|hybrid_seq] [--dir DIR] [--preset NAME]
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import tempfile
import time
import zlib
from pathlib import Path

import ml_dtypes
import numpy as np


def fill_value(path: tuple) -> float:
    """The constant a synthetic leaf is filled with (distinct per leaf, exact in bf16)."""
    return float((zlib.crc32(".".join(map(str, path)).encode()) % 255 + 1) / 256)


def write(preset: str, format: str, directory: Path, overrides: dict) -> None:
    from hybrid_seq import presets
    from hybrid_seq.io.flax import leaf_shapes
    from hybrid_seq.io.huggingface import write_huggingface
    from hybrid_seq.io.native import write_native

    config = presets.get(preset, **overrides)
    shapes = leaf_shapes(config)
    writer = write_huggingface if format == "huggingface" else write_native
    directory.mkdir(parents=True)
    writer(config, directory, lambda path: np.full(shapes[path], fill_value(path), ml_dtypes.bfloat16),
           ml_dtypes.bfloat16)


def load(directory: Path) -> dict:
    import jax

    import hybrid_seq.io as hio

    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    start = time.perf_counter()
    model = hio.load(directory, dtype="bfloat16")
    jax.block_until_ready(model)
    seconds = time.perf_counter() - start
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    leaves = jax.tree_util.tree_leaves(model)
    return {
        "params": int(sum(x.size for x in leaves)),
        "weight_bytes": int(sum(x.nbytes for x in leaves)),
        "rss_before_load": before,
        "peak_rss": peak,
        "load_seconds": seconds,
        "embedder_ok": bool(float(model.embedder.weight[0, 0]) == fill_value(("embedder", "weight"))),
    }


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--format", choices=("huggingface", "hybrid_seq"), default="huggingface")
    parser.add_argument("--preset", default="recurrentgemma-2b")
    parser.add_argument("--set", default="{}", help="JSON dict of preset overrides (for reduced sizes)")
    parser.add_argument("--dir", help="where to write the checkpoint (default: a temporary directory)")
    parser.add_argument("--child", choices=("write", "load"), help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child == "write":
        write(args.preset, args.format, Path(args.dir), json.loads(args.set))
        return {}
    if args.child == "load":
        print(json.dumps(load(Path(args.dir))))
        return {}
    with tempfile.TemporaryDirectory(dir=args.dir) as scratch:
        directory = Path(scratch) / "ckpt"
        common = [sys.executable, __file__, "--format", args.format, "--preset", args.preset, "--set", args.set,
                  "--dir", str(directory)]
        start = time.perf_counter()
        subprocess.run([*common, "--child", "write"], check=True)
        written = time.perf_counter() - start
        disk = sum(f.stat().st_size for f in directory.iterdir())
        out = subprocess.run([*common, "--child", "load"], check=True, capture_output=True, text=True)
        result = {**json.loads(out.stdout.strip().splitlines()[-1]), "checkpoint_bytes": disk, "write_seconds": written}
    rise = result["peak_rss"] - result["rss_before_load"]
    result["rss_rise_over_checkpoint"] = rise / result["checkpoint_bytes"]
    gib = 2**30
    print(f"{args.preset} ({args.format}, bf16): {result['params']:,} params, checkpoint {disk / gib:.2f} GiB, "
          f"written in {written:.0f} s, loaded in {result['load_seconds']:.1f} s")
    print(f"peak RSS {result['peak_rss'] / gib:.2f} GiB (before load {result['rss_before_load'] / gib:.2f} GiB; "
          f"rise {rise / gib:.2f} GiB = {result['rss_rise_over_checkpoint']:.2f} x checkpoint); "
          f"values {'ok' if result['embedder_ok'] else 'WRONG'}")
    return result


if __name__ == "__main__":
    main()
