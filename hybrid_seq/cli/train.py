"""`hybrid-seq train`: the built-in pattern comparison (default: MQAR; RG-LRU, Griffin, local attention, Mamba-2, a Mamba-2 hybrid)."""

from __future__ import annotations

import argparse
import datetime
import time

import jax

from hybrid_seq.cli import distributed
from hybrid_seq.cli.args import float_in, int_at_least, kind_bindings
from hybrid_seq.training.experiment import ExperimentConfig, run_experiment
from hybrid_seq.training.tasks import task_names

_DEFAULTS = ExperimentConfig()


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "train",
        help="train small models of several block patterns on a synthetic task and compare them",
        description=(
            "Train one small model per block pattern on a synthetic task at (about) equal parameter "
            "counts, print accuracy vs steps, and write metrics.jsonl, summary.json and accuracy.png. "
            "The default runs on a laptop CPU in a few minutes with no downloads."
        ),
    )
    parser.add_argument("--task", default=_DEFAULTS.task, choices=task_names())
    parser.add_argument(
        "--patterns",
        default=",".join(_DEFAULTS.patterns),
        help="comma-separated patterns of letters: R RG-LRU, A local attention, M Mamba-2, G global GQA attention, "
        "and any letter bound with --kinds",
    )
    parser.add_argument(
        "--kinds",
        type=kind_bindings,
        default=(),
        help='more letters, as JSON: \'{"X": {"kind": "mamba2", "num_heads": 4, "head_dim": 8, "state_size": 8}}\'',
    )
    parser.add_argument("--steps", type=int_at_least(1), default=_DEFAULTS.steps)
    parser.add_argument("--width", type=int_at_least(1), default=_DEFAULTS.width)
    parser.add_argument("--num-heads", type=int_at_least(1), default=_DEFAULTS.num_heads)
    parser.add_argument("--seq-len", type=int_at_least(1), default=_DEFAULTS.seq_len)
    parser.add_argument("--num-pairs", type=int_at_least(1), default=_DEFAULTS.num_pairs, help="MQAR key-value pairs")
    parser.add_argument("--vocab-size", type=int_at_least(1), default=_DEFAULTS.vocab_size)
    parser.add_argument("--window", type=int_at_least(1), default=None, help="attention window (default: the sequence length)")
    parser.add_argument("--batch-size", type=int_at_least(1), default=_DEFAULTS.batch_size)
    parser.add_argument("--lr", type=float_in(0.0, low_open=True), default=_DEFAULTS.peak_lr)
    parser.add_argument("--eval-every", type=int_at_least(1), default=_DEFAULTS.eval_every)
    parser.add_argument("--seed", type=int, default=_DEFAULTS.seed)
    parser.add_argument("--out", default=None, help="output folder (default: runs/<task>-<timestamp>)")
    distributed.add_arguments(parser)
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    layout = distributed.layout(args)
    out = distributed.shared_out(args, f"runs/{args.task}-{datetime.datetime.now().strftime('%Y%m%d-%H%M%S')}")
    config = ExperimentConfig(
        task=args.task,
        patterns=tuple(p.strip() for p in args.patterns.split(",") if p.strip()),
        kinds=args.kinds,
        width=args.width,
        num_heads=args.num_heads,
        vocab_size=args.vocab_size,
        seq_len=args.seq_len,
        num_pairs=args.num_pairs,
        attention_window=args.window,
        steps=args.steps,
        batch_size=args.batch_size,
        peak_lr=args.lr,
        warmup_steps=min(_DEFAULTS.warmup_steps, max(args.steps // 10, 1)),
        eval_every=min(args.eval_every, args.steps),
        seed=args.seed,
        out=out,
    )
    start = time.perf_counter()
    if layout is not None:
        print(f"training on a mesh of {layout.mesh.devices.size} devices: {layout.describe()}", flush=True)
    run_experiment(config, layout=layout)
    if jax.process_index() == 0:
        print(f"wrote {out}/metrics.jsonl, {out}/summary.json, {out}/accuracy.png in {time.perf_counter() - start:.0f} s")
    return 0
