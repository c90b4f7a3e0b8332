"""`hybrid-seq finetune`: fine-tune any checkpoint on a local text or JSONL corpus, on one device or a mesh."""

from __future__ import annotations

import argparse
import time

from hybrid_seq.cli import distributed
from hybrid_seq.cli.args import float_in, int_at_least, preset_name

_COMPUTE_DTYPES = ("float32", "bfloat16")


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add `finetune` to the `hybrid-seq` subcommands."""
    from hybrid_seq.training.finetune import BYTE_TOKENIZER, TOKENIZER_FILE, FinetuneConfig

    defaults = FinetuneConfig(checkpoint="", corpus="", out="")
    parser = subparsers.add_parser(
        "finetune",
        help="fine-tune a checkpoint on a local text or JSONL corpus",
        description=(
            "Fine-tune a checkpoint (any format hybrid_seq.io.load reads) on a corpus: plain text with documents "
            "separated by blank lines, or JSONL with a 'text' field. Documents are tokenised with the checkpoint's "
            "tokenizer and packed with positions restarting at 0. Prints one loss line per log, writes "
            "OUT/metrics.jsonl, checkpoints under OUT/checkpoints (rerunning resumes) and the model in OUT/model."
        ),
    )
    parser.add_argument("checkpoint", help="the checkpoint to start from")
    parser.add_argument("corpus", help="a .txt (documents split at blank lines) or .jsonl ('text' field) file")
    parser.add_argument("--out", required=True, help="output folder (resumes from its checkpoints)")
    parser.add_argument(
        "--tokenizer", default=None,
        help=f"SentencePiece model, or '{BYTE_TOKENIZER}' (default: the checkpoint folder's {TOKENIZER_FILE})",
    )
    parser.add_argument("--preset", type=preset_name, default=None, help="preset to check the checkpoint against")
    parser.add_argument("--steps", type=int_at_least(1), default=defaults.steps)
    parser.add_argument("--seq-len", type=int_at_least(1), default=defaults.seq_len)
    parser.add_argument("--batch-size", type=int_at_least(1), default=defaults.batch_size)
    parser.add_argument("--lr", type=float_in(0.0, low_open=True), default=defaults.peak_lr)
    parser.add_argument("--warmup-steps", type=int_at_least(0), default=defaults.warmup_steps)
    parser.add_argument("--log-every", type=int_at_least(1), default=defaults.log_every)
    parser.add_argument("--checkpoint-every", type=int_at_least(1), default=None)
    parser.add_argument("--compute-dtype", choices=_COMPUTE_DTYPES, default=None,
                        help="compute in this dtype (master weights stay float32)")
    parser.add_argument("--remat", action="store_true", help="rematerialise each layer in the backward pass")
    parser.add_argument("--seed", type=int, default=defaults.seed, help="seed of the shuffle over the corpus")
    distributed.add_arguments(parser)
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    """Fine-tune as the flags say (see `hybrid_seq.training.finetune`)."""
    import jax

    from hybrid_seq.training.finetune import FinetuneConfig, finetune

    layout = distributed.layout(args)
    config = FinetuneConfig(
        checkpoint=args.checkpoint,
        corpus=args.corpus,
        out=args.out,
        tokenizer=args.tokenizer,
        preset=args.preset,
        steps=args.steps,
        seq_len=args.seq_len,
        batch_size=args.batch_size,
        peak_lr=args.lr,
        warmup_steps=args.warmup_steps,
        log_every=args.log_every,
        checkpoint_every=args.checkpoint_every,
        compute_dtype=None if args.compute_dtype == "float32" else args.compute_dtype,
        checkpoint_blocks=args.remat,
        seed=args.seed,
    )
    main = jax.process_index() == 0
    if main and layout is not None:
        print(f"fine-tuning on a mesh of {layout.mesh.devices.size} devices: {layout.describe()}", flush=True)
    start = time.perf_counter()
    finetune(config, layout=layout)
    if main:
        print(f"wrote {args.out}/model and {args.out}/metrics.jsonl in {time.perf_counter() - start:.0f} s")
    return 0
