"""A model and tokenizer that need no downloads: random weights plus the byte tokenizer (demo output is noise).

Why the demo samples at `DEMO_TEMPERATURE` rather than greedily: the embedding is tied to
the output head and the input is scaled by sqrt(width), so in a random model the residual
stream stays close to the current token's embedding and the largest logit is that same
token. Greedy decoding therefore repeats the prompt's last character forever, which looks
like a broken sampler; sampling at a high temperature shows the sampler at work.
"""

from __future__ import annotations

import unicodedata

import jax
import jax.numpy as jnp

from hybrid_seq import presets
from hybrid_seq.model import Model
from hybrid_seq.sampling.tokenizer import ByteTokenizer

DEMO_PRESET = "griffin-tiny"
DEMO_TEMPERATURE = 2.0


def random_demo(preset: str = DEMO_PRESET, seed: int = 0) -> tuple[Model, ByteTokenizer]:
    """A `preset` model with random weights (vocabulary cut to the byte tokenizer's) and a `ByteTokenizer`.

    For trying the pipeline end to end on a fresh machine; the text it produces is meaningless.
    """
    tokenizer = ByteTokenizer()
    config = presets.get(preset, vocab_size=tokenizer.vocab_size)
    return Model(config, key=jax.random.key(seed), dtype=jnp.dtype(jnp.float32)), tokenizer


def printable(text: str) -> str:
    """`text` safe for a terminal: control characters (random bytes include escapes) shown as '·', newlines kept."""
    return "".join("·" if unicodedata.category(c) == "Cc" and c != "\n" else c for c in text)
