"""`hybrid-seq generate`: stream a completion from a checkpoint, or from a random demo model with no downloads."""

from __future__ import annotations

import argparse
import os
import sys
from typing import Any

from hybrid_seq.cli import UsageError
from hybrid_seq.cli.args import float_in, int_at_least, preset_name
from hybrid_seq.sampling.demo import DEMO_PRESET, DEMO_TEMPERATURE

BYTE_TOKENIZER = "byte"


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "generate",
        help="generate text from a prompt (streams tokens)",
        description=(
            "Generate a completion. With --checkpoint it loads a model (any format hybrid_seq.io.load "
            "detects) and its tokenizer.json, or --tokenizer. Without them it runs a random-weights "
            f"{DEMO_PRESET} model with the byte tokenizer: no downloads, meaningless text."
        ),
    )
    parser.add_argument("prompt", help="the prompt (in --chat mode: the user's message)")
    parser.add_argument("--checkpoint", help="model checkpoint path (default: random demo model)")
    parser.add_argument(
        "--tokenizer",
        help=(
            f"a SentencePiece tokenizer.model, a tokenizer.json (or a directory holding one), or '{BYTE_TOKENIZER}' "
            "for the byte tokenizer (default with --checkpoint: the checkpoint's own tokenizer.json)"
        ),
    )
    parser.add_argument("--preset", type=preset_name, help="preset to check the checkpoint against / take unknown settings from")
    parser.add_argument("--max-new-tokens", type=int_at_least(0), default=64)
    parser.add_argument(
        "--temperature", type=float_in(0.0), default=None,
        help=f"0 = greedy (default with --checkpoint; the demo samples at {DEMO_TEMPERATURE:g})",
    )
    parser.add_argument("--top-k", type=int_at_least(0), default=0, help="keep the k most likely tokens (0: all)")
    parser.add_argument("--top-p", type=float_in(0.0, 1.0, low_open=True), default=1.0, help="nucleus sampling mass (1: all)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--stop", action="append", default=[], help="stop string (repeatable)")
    parser.add_argument("--chat", action="store_true", help="wrap the prompt in the instruction-tuned chat format")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from hybrid_seq.sampling import Sampler
    from hybrid_seq.sampling.demo import printable

    demo = args.checkpoint is None
    model, tokenizer = _demo(args) if demo else _from_checkpoint(args)
    temperature = args.temperature if args.temperature is not None else DEMO_TEMPERATURE if demo else 0.0
    if demo:
        print(_demo_banner(temperature), file=sys.stderr)
    pieces = Sampler(model, tokenizer, chat=args.chat).stream(
        args.prompt,
        args.max_new_tokens,
        temperature=temperature,
        top_k=args.top_k,
        top_p=args.top_p,
        seed=args.seed,
        stop=args.stop,
    )
    for piece in pieces:
        sys.stdout.write(printable(piece.text) if demo else piece.text)
        sys.stdout.flush()
    sys.stdout.write("\n")
    return 0


def _demo(args: argparse.Namespace) -> tuple[Any, Any]:
    from hybrid_seq.sampling import random_demo

    if args.tokenizer is not None:
        raise UsageError("--tokenizer needs --checkpoint (without one, the demo uses the byte tokenizer)")
    return random_demo()


def _from_checkpoint(args: argparse.Namespace) -> tuple[Any, Any]:
    from hybrid_seq.io import load
    from hybrid_seq.sampling.hf_tokenizer import has_tokenizer

    spec = args.tokenizer
    if spec is None:
        if not (os.path.isdir(args.checkpoint) and has_tokenizer(args.checkpoint)):
            raise UsageError(
                f"--checkpoint needs --tokenizer: {args.checkpoint} has no tokenizer.json (give a SentencePiece "
                f"tokenizer.model, a tokenizer.json, or '{BYTE_TOKENIZER}')"
            )
        spec = args.checkpoint
    try:
        tokenizer = _tokenizer(spec)
    except (ValueError, OSError) as error:
        raise UsageError(f"--tokenizer: {error}") from None
    try:
        return load(args.checkpoint, preset=args.preset), tokenizer
    except (ValueError, OSError) as error:
        raise UsageError(f"--checkpoint: {error}") from None


def _tokenizer(spec: str) -> Any:
    """The byte tokenizer, a tokenizer.json (a file ending in .json, or a directory holding one), or a SentencePiece model."""
    from hybrid_seq.sampling import ByteTokenizer, HFTokenizer, Tokenizer

    if spec == BYTE_TOKENIZER:
        return ByteTokenizer()
    return HFTokenizer(spec) if spec.endswith(".json") or os.path.isdir(spec) else Tokenizer(spec)


def _demo_banner(temperature: float) -> str:
    why = "a random model's tied embeddings make each token predict itself"
    if temperature == 0:
        how = f"greedy decoding repeats the last character ({why})"
    else:
        how = f"sampling at temperature {temperature:g}, as greedy decoding would repeat the last character ({why})"
    return (f"[demo: random-weights {DEMO_PRESET} model, byte tokenizer, output is noise (control characters shown "
            f"as '·'); {how}]")
