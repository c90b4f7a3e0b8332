"""`hybrid-seq generate`: stream a completion from a checkpoint, or from a random demo model with no downloads."""

from __future__ import annotations

import argparse
import sys

from hybrid_seq.sampling.demo import DEMO_PRESET


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "generate",
        help="generate text from a prompt (streams tokens)",
        description=(
            "Generate a completion. With --checkpoint and --tokenizer it loads a model (any format "
            "hybrid_seq.io.load detects). Without them it runs a random-weights "
            f"{DEMO_PRESET} model with the byte tokenizer: no downloads, meaningless text."
        ),
    )
    parser.add_argument("prompt", help="the prompt (in --chat mode: the user's message)")
    parser.add_argument("--checkpoint", help="model checkpoint path (default: random demo model)")
    parser.add_argument("--tokenizer", help="SentencePiece tokenizer.model (required with --checkpoint)")
    parser.add_argument("--preset", help="preset to check the checkpoint against / take unknown settings from")
    parser.add_argument("--max-new-tokens", type=int, default=64)
    parser.add_argument("--temperature", type=float, default=0.0, help="0 = greedy (default)")
    parser.add_argument("--top-k", type=int, default=0, help="keep the k most likely tokens (0: all)")
    parser.add_argument("--top-p", type=float, default=1.0, help="nucleus sampling mass (1: all)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--stop", action="append", default=[], help="stop string (repeatable)")
    parser.add_argument("--chat", action="store_true", help="wrap the prompt in the instruction-tuned chat format")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from hybrid_seq.sampling import Sampler, Tokenizer, random_demo

    if args.checkpoint is None:
        if args.tokenizer is not None:
            print("error: --tokenizer needs --checkpoint", file=sys.stderr)
            return 2
        model, tokenizer = random_demo()
        print(f"[demo: random-weights {DEMO_PRESET} model, byte tokenizer; the output is noise]", file=sys.stderr)
    else:
        if args.tokenizer is None:
            print("error: --checkpoint needs --tokenizer PATH (a SentencePiece model)", file=sys.stderr)
            return 2
        from hybrid_seq.io import load

        try:
            tokenizer = Tokenizer(args.tokenizer)
        except (FileNotFoundError, ValueError) as error:
            print(f"error: {error}", file=sys.stderr)
            return 2
        model = load(args.checkpoint, preset=args.preset)
    sampler = Sampler(model, tokenizer, chat=args.chat)
    pieces = sampler.stream(
        args.prompt,
        args.max_new_tokens,
        temperature=args.temperature,
        top_k=args.top_k,
        top_p=args.top_p,
        seed=args.seed,
        stop=args.stop,
    )
    for piece in pieces:
        sys.stdout.write(piece.text)
        sys.stdout.flush()
    sys.stdout.write("\n")
    return 0
