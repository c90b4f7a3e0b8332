"""Fine-tuning a checkpoint on a local corpus (the `hybrid-seq finetune` command), on one device or a mesh.

The checkpoint is anything `hybrid_seq.io.load` reads, loaded as fp32 master weights. The
corpus is plain text (documents separated by blank lines) or JSONL (a `text` field per
line), tokenised with the checkpoint's tokenizer (a SentencePiece file, or the byte
tokenizer) and packed into rows with positions restarting at 0 at every document
(`TextDataset`). Training is the papers' AdamW recipe through `Trainer`, always on a mesh
(one device by default) with sharded checkpoints: it resumes from the newest checkpoint in
`out` whatever mesh wrote it, prints one loss line per log, and ends by writing the
fine-tuned model (our format) to `out/model`.
"""

from __future__ import annotations

import dataclasses
import pathlib
from typing import Any

import equinox as eqx
import jax

from hybrid_seq.distributed.layout import Layout, fetch
from hybrid_seq.training.data import TextDataset
from hybrid_seq.training.optim import OptimConfig, make_optimizer
from hybrid_seq.training.step import StepConfig
from hybrid_seq.training.trainer import Trainer, TrainerConfig, TrainState

#: The `tokenizer` value naming the byte tokenizer.
BYTE_TOKENIZER = "byte"
#: The file name a checkpoint folder's own SentencePiece model is looked up under.
TOKENIZER_FILE = "tokenizer.model"


@dataclasses.dataclass(frozen=True)
class FinetuneConfig:
    """What to fine-tune, on what, and how (defaults: a small, careful learning rate for pretrained weights)."""

    checkpoint: str
    corpus: str
    out: str
    tokenizer: str | None = None
    preset: str | None = None
    steps: int = 100
    seq_len: int = 256
    batch_size: int = 8
    peak_lr: float = 1e-5
    warmup_steps: int = 10
    log_every: int = 10
    checkpoint_every: int | None = None
    compute_dtype: str | None = None
    checkpoint_blocks: bool = False
    seed: int = 0


def checkpoint_tokenizer(checkpoint: str | pathlib.Path, tokenizer: str | None) -> Any:
    """The tokenizer of a checkpoint: `tokenizer` (a SentencePiece file or ``"byte"``), else the
    checkpoint folder's own `tokenizer.model`."""
    from hybrid_seq.sampling import ByteTokenizer, Tokenizer

    if tokenizer == BYTE_TOKENIZER:
        return ByteTokenizer()
    if tokenizer is None:
        folder = pathlib.Path(checkpoint)
        found = (folder if folder.is_dir() else folder.parent) / TOKENIZER_FILE
        if not found.is_file():
            raise ValueError(
                f"{checkpoint}: no {TOKENIZER_FILE} next to the checkpoint; pass the SentencePiece file with "
                f"--tokenizer PATH, or --tokenizer {BYTE_TOKENIZER} for the byte tokenizer"
            )
        tokenizer = str(found)
    return Tokenizer(tokenizer)


def finetune(config: FinetuneConfig, *, layout: Layout | None = None, verbose: bool = True) -> TrainState:
    """Fine-tune as the module docstring says; returns the final train state.

    Without a `layout` it trains on a mesh of this process's first device, so that its
    checkpoints are the same sharded ones as on any mesh and a run can resume on another.
    """
    from hybrid_seq import io

    layout = layout if layout is not None else Layout.from_spec("data=1", devices=jax.local_devices()[:1])

    model = io.load(config.checkpoint, preset=config.preset, dtype="float32")
    tokenizer = checkpoint_tokenizer(config.checkpoint, config.tokenizer)
    if tokenizer.vocab_size > model.vocab_size:
        raise ValueError(
            f"the tokenizer has {tokenizer.vocab_size} ids but {config.checkpoint} embeds only {model.vocab_size}"
        )
    data = TextDataset(
        config.corpus, seq_len=config.seq_len, batch_size=config.batch_size, tokenizer=tokenizer, seed=config.seed
    )
    optim = OptimConfig(peak_lr=config.peak_lr, warmup_steps=config.warmup_steps, total_steps=config.steps)
    trainer = Trainer(
        model,
        make_optimizer(optim),
        data,
        config=TrainerConfig(
            total_steps=config.steps,
            log_every=config.log_every,
            checkpoint_every=config.checkpoint_every,
            out_dir=config.out,
            name="finetune",
        ),
        step_config=StepConfig(compute_dtype=config.compute_dtype, checkpoint_blocks=config.checkpoint_blocks),
        schedule=optim.schedule(),
        record={"checkpoint": str(config.checkpoint), "corpus": str(config.corpus)},
        verbose=verbose,
        log_lines=True,
        layout=layout,
    )
    trainer.restore()
    state = trainer.run()
    final = fetch(state.model)
    if jax.process_index() == 0:
        host = jax.tree_util.tree_map(jax.numpy.asarray, eqx.filter(final, eqx.is_array))
        io.save(eqx.combine(host, final), pathlib.Path(config.out) / "model", overwrite=True)
    return state
