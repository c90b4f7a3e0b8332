"""A model and tokenizer that need no downloads: random weights plus the byte tokenizer (demo output is noise)."""

from __future__ import annotations

import jax
import jax.numpy as jnp

from hybrid_seq import presets
from hybrid_seq.model import Model
from hybrid_seq.sampling.tokenizer import ByteTokenizer

DEMO_PRESET = "griffin-tiny"


def random_demo(preset: str = DEMO_PRESET, seed: int = 0) -> tuple[Model, ByteTokenizer]:
    """A `preset` model with random weights (vocabulary cut to the byte tokenizer's) and a `ByteTokenizer`.

    For trying the pipeline end to end on a fresh machine; the text it produces is meaningless.
    """
    tokenizer = ByteTokenizer()
    config = presets.get(preset, vocab_size=tokenizer.vocab_size)
    return Model(config, key=jax.random.key(seed), dtype=jnp.dtype(jnp.float32)), tokenizer
