"""Full fine-tuning of a RecurrentGemma-architecture model on chat-formatted data.

By default this runs anywhere in a minute: a random-weight stand-in with the
recurrentgemma-2b architecture scaled down by overrides, the byte tokenizer, and a few
toy conversations. For the real model pass `--checkpoint` (any format `hybrid_seq.io.load`
reads) and `--tokenizer` (the Gemma SentencePiece file), and use your own data.

    python examples/finetune.py --steps 20 --out runs/finetune-demo

Only the model's reply (and its end-of-turn marker) is trained on; the prompt tokens are
masked out of the loss. The optimizer is the papers' recipe (`hybrid_seq.training.make_optimizer`):
AdamW (b2 0.96, decay 0.1 on matrices only), warmup + cosine, clipping at 1.
"""

from __future__ import annotations

import argparse

import jax
import numpy as np

import hybrid_seq
import hybrid_seq.io
from hybrid_seq.sampling import END_OF_TURN, ByteTokenizer, format_chat
from hybrid_seq.training import OptimConfig, StepConfig, Trainer, TrainerConfig, make_optimizer, shift_for_next_token

CONVERSATIONS = [
    ("What is the capital of France?", "Paris."),
    ("Name a prime number larger than ten.", "Eleven is one."),
    ("What does RG-LRU stand for?", "Real-Gated Linear Recurrent Unit."),
    ("Translate 'cat' into German.", "Katze."),
    ("How many legs does a spider have?", "Eight."),
    ("What colour is the sky on a clear day?", "Blue."),
]


class ChatData:
    """Chat examples as padded rows: BOS + prompt turn + reply + end-of-turn + EOS; loss on the reply only.

    `batch(step)` takes rows `step*B ...` cyclically (deterministic, so resumable).
    """

    def __init__(self, tokenizer, conversations, *, seq_len: int, batch_size: int):
        rows, masks = [], []
        for prompt, reply in conversations:
            prompt_ids = tokenizer.encode(format_chat(prompt), add_bos=True)
            reply_ids = tokenizer.encode(reply + END_OF_TURN) + [tokenizer.eos_id]
            ids = (prompt_ids + reply_ids)[: seq_len + 1]
            mask = ([False] * len(prompt_ids) + [True] * len(reply_ids))[: seq_len + 1]
            rows.append(ids + [tokenizer.pad_id] * (seq_len + 1 - len(ids)))
            masks.append(mask + [False] * (seq_len + 1 - len(mask)))
        self.tokens = np.asarray(rows, np.int32)
        self.mask = np.asarray(masks, bool)
        lengths = np.asarray([min(len(m), seq_len + 1) for m in masks])
        positions = np.broadcast_to(np.arange(seq_len + 1), self.tokens.shape)
        self.positions = np.where(positions < lengths[:, None], positions, -1).astype(np.int32)
        self.batch_size = batch_size

    def batch(self, step: int):
        rows = (step * self.batch_size + np.arange(self.batch_size)) % len(self.tokens)
        return shift_for_next_token(self.tokens[rows], self.positions[rows], self.mask[rows])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--checkpoint", help="a pretrained checkpoint (default: random-weight stand-in)")
    parser.add_argument("--tokenizer", help="SentencePiece model file (default: byte tokenizer)")
    parser.add_argument("--steps", type=int, default=30)
    parser.add_argument("--lr", type=float, default=1e-3, help="peak learning rate (use ~1e-5..1e-4 for a real 2B model)")
    parser.add_argument("--seq-len", type=int, default=96)
    parser.add_argument("--batch-size", type=int, default=4)
    parser.add_argument("--bf16", action="store_true", help="bf16 compute with fp32 master weights")
    parser.add_argument("--out", default="runs/finetune")
    args = parser.parse_args()

    tokenizer = hybrid_seq.Tokenizer(args.tokenizer) if args.tokenizer else ByteTokenizer()
    if args.checkpoint:
        model = hybrid_seq.io.load(args.checkpoint)
    else:
        config = hybrid_seq.presets.get(
            "recurrentgemma-2b", vocab_size=tokenizer.vocab_size, width=128, mlp_expanded_width=384,
            num_heads=2, lru_width=128, block_pattern="RRA:3", attention_window_size=64,
        )
        model = hybrid_seq.Model(config, key=jax.random.PRNGKey(0))
    print(f"model: {hybrid_seq.param_count(model.config).total:,} parameters, layers {model.config.layer_kinds}")

    data = ChatData(tokenizer, CONVERSATIONS, seq_len=args.seq_len, batch_size=args.batch_size)
    optim = OptimConfig(peak_lr=args.lr, warmup_steps=max(args.steps // 10, 1), total_steps=args.steps)
    trainer = Trainer(
        model,
        make_optimizer(optim),
        data,
        config=TrainerConfig(total_steps=args.steps, log_every=5, eval_every=args.steps, checkpoint_every=args.steps,
                             out_dir=args.out, name="finetune"),
        step_config=StepConfig(compute_dtype="bfloat16" if args.bf16 else None, checkpoint_blocks=True),
        eval_data=data,
        schedule=optim.schedule(),
    )
    trainer.restore()
    state = trainer.run()
    path = hybrid_seq.io.save(state.model, f"{args.out}/model", overwrite=True)
    print(f"saved the fine-tuned model to {path}")


if __name__ == "__main__":
    main()
