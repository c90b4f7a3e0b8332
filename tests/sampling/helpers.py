"""Helpers for the sampling tests: a SentencePiece model and a tokenizer.json trained on the spot, tiny models."""

from __future__ import annotations

import io
import json
import random
from pathlib import Path

import jax
import jax.numpy as jnp
import sentencepiece as spm
from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers

import hybrid_seq

_WORDS = (
    "the cat sat on a mat while dogs ran far away from home and birds sang songs in tall green trees "
    "every morning people walk to work think about lunch write code read books drink tea"
).split()


def train_tokenizer(path: str, vocab_size: int = 256) -> None:
    """Train a small Gemma-style SentencePiece model (pad 0, eos 1, bos 2, unk 3, turn markers)."""
    rng = random.Random(0)
    corpus = [" ".join(rng.choice(_WORDS) for _ in range(rng.randint(3, 15))) for _ in range(2000)]
    buffer = io.BytesIO()
    spm.SentencePieceTrainer.Train(
        sentence_iterator=iter(corpus),
        model_writer=buffer,
        vocab_size=vocab_size,
        model_type="bpe",
        pad_id=0,
        eos_id=1,
        bos_id=2,
        unk_id=3,
        user_defined_symbols=["<start_of_turn>", "<end_of_turn>"],
        minloglevel=2,
    )
    with open(path, "wb") as file:
        file.write(buffer.getvalue())


HF_SPECIAL = ["<|pad|>", "<|bos|>", "<|eos|>", "<start_of_turn>", "<end_of_turn>"]
HF_CORPUS = ["the cat sat on the mat", "state space models mix tokens", "héllo wörld, ça va?"] * 40


def write_hf_tokenizer(directory: Path, **tokenizer_config) -> Path:
    """A byte-level BPE tokenizer.json of 300 ids (specials 0-4) and the side files a checkpoint has."""
    backend = Tokenizer(models.BPE())
    backend.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    backend.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=300, special_tokens=HF_SPECIAL, initial_alphabet=pre_tokenizers.ByteLevel.alphabet())
    backend.train_from_iterator(HF_CORPUS, trainer)
    directory.mkdir(parents=True, exist_ok=True)
    backend.save(str(directory / "tokenizer.json"))
    config = {"bos_token": {"content": "<|bos|>", "special": True}, "pad_token": "<|pad|>", **tokenizer_config}
    (directory / "tokenizer_config.json").write_text(json.dumps(config))
    (directory / "generation_config.json").write_text(json.dumps({"eos_token_id": [2, 4]}))
    return directory


def tiny_config(vocab_size: int, window: int = 8) -> hybrid_seq.ModelConfig:
    return hybrid_seq.ModelConfig(
        vocab_size=vocab_size,
        width=64,
        mlp_expanded_width=192,
        num_heads=2,
        lru_width=64,
        block_pattern="RRA:3",
        attention_window_size=window,
        logits_soft_cap=30.0,
        embeddings_scale_by_sqrt_dim=True,
    )


def lively(model: hybrid_seq.Model, key: jax.Array, scale: float = 0.3) -> hybrid_seq.Model:
    """`model` with N(0, scale^2) noise added to every weight, so greedy text is not the last token repeated."""
    leaves, treedef = jax.tree_util.tree_flatten(model)
    keys = jax.random.split(key, len(leaves))
    noisy = [
        leaf + scale * jax.random.normal(k, leaf.shape, leaf.dtype)
        if isinstance(leaf, jax.Array) and jnp.issubdtype(leaf.dtype, jnp.floating)
        else leaf
        for leaf, k in zip(leaves, keys)
    ]
    return jax.tree_util.tree_unflatten(treedef, noisy)


def tiny_model(vocab_size: int, window: int = 8, seed: int = 1) -> hybrid_seq.Model:
    """A tiny random model (RRA, width 64) whose greedy text varies."""
    model = hybrid_seq.Model(tiny_config(vocab_size, window), key=jax.random.key(seed), dtype=jnp.dtype(jnp.float32))
    return lively(model, jax.random.key(seed + 1000))
