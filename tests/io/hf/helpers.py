"""Tiny HF models of the hybrid families, with every parameter perturbed, and the comparisons the tests share."""

from __future__ import annotations

import contextlib
from pathlib import Path

import equinox as eqx
import jax.numpy as jnp
import numpy as np
import pytest

torch = pytest.importorskip("torch", reason="the HF parity tests need torch: pip install '.[hf]'")
transformers = pytest.importorskip("transformers", reason="the HF parity tests need transformers: pip install '.[hf]'")


def perturb(model, seed: int = 0, router_scale: float = 1.0) -> None:
    """Overwrite every parameter (and the MoE correction buffer) from a seeded generator.

    A_log = log U[1, 4), dt_bias ~ U[-1.5, 0.5), D ~ 1 + N/2, norm weights 1 + 0.3 N, biases
    0.1 N, embeddings and heads 0.5 N, routers N (clear top-k margins), other matrices
    N / sqrt(fan_in).
    """
    generator = torch.Generator().manual_seed(seed)
    normal = lambda shape: torch.randn(shape, generator=generator)  # noqa: E731
    with torch.no_grad():
        for name, parameter in model.named_parameters():
            shape = parameter.shape
            if name.endswith("A_log"):
                value = torch.log(1 + 3 * torch.rand(shape, generator=generator))
            elif name.endswith("dt_bias"):
                value = torch.rand(shape, generator=generator) * 2 - 1.5
            elif name.endswith(".D"):
                value = 1 + 0.5 * normal(shape)
            elif "norm" in name and name.endswith("weight"):
                value = 1 + 0.3 * normal(shape)
            elif name.endswith("bias"):
                value = 0.1 * normal(shape)
            elif "embed" in name or "lm_head" in name:
                value = 0.5 * normal(shape)
            elif "router" in name or name.endswith("mixer.gate.weight"):
                value = router_scale * normal(shape)
            else:
                value = normal(shape) / np.sqrt(shape[-1])
            parameter.copy_(value)
        for name, buffer in model.named_buffers():
            if name.endswith("e_score_correction_bias"):
                buffer.copy_(0.1 * normal(buffer.shape))


def hf_logits(model, tokens: np.ndarray) -> np.ndarray:
    """HF's fp32 logits for int token rows (no cache, no mask)."""
    with torch.no_grad():
        out = model(torch.as_tensor(np.asarray(tokens), dtype=torch.long), use_cache=False)
    return out.logits.float().numpy()


def saved(model, directory: Path) -> Path:
    model.save_pretrained(directory)
    return directory


def greedy(model, prompt: list[int], new_tokens: int) -> list[int]:
    """HF `generate`, greedy, no EOS stop."""
    with torch.no_grad():
        out = model.generate(
            torch.as_tensor([prompt]), max_new_tokens=new_tokens, do_sample=False, eos_token_id=None, pad_token_id=0
        )
    return out[0, len(prompt):].tolist()


# --- The checks every family's tests share (ours jitted once per shape: `forward`). -----------

#: Our forward pass, compiled once per model structure and shape (shared by the tests of a session).
forward = eqx.filter_jit(lambda model, tokens, positions, cache=None: model(tokens, positions, cache))


def packed_batch(vocab_size: int, documents: tuple[int, ...] = (7, 5, 8), seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Two rows of `sum(documents)` tokens: row 0 one document, row 1 the `documents` packed (positions restart)."""
    length = sum(documents)
    tokens = np.random.default_rng(seed).integers(0, vocab_size, (2, length))
    positions = np.stack([np.arange(length), np.concatenate([np.arange(n) for n in documents])])
    return tokens, positions


def parity(hf, ours, tokens: np.ndarray, positions: np.ndarray) -> tuple[np.ndarray, dict[str, float]]:
    """Our logits of the batch, and their max |diff| from HF's: row 0 (`full`) and each packed document run alone (`packed`)."""
    logits = np.asarray(forward(ours, jnp.asarray(tokens, jnp.int32), jnp.asarray(positions, jnp.int32))[0])
    full = np.abs(logits[0] - hf_logits(hf, tokens[:1])[0]).max()
    starts = [*np.flatnonzero(positions[1] == 0), tokens.shape[1]]
    packed = max(
        np.abs(logits[1, a:b] - hf_logits(hf, tokens[1:, a:b])[0]).max() for a, b in zip(starts[:-1], starts[1:])
    )
    return logits, {"full": float(full), "packed": float(packed)}


def decoding_diff(ours, tokens: np.ndarray, full: np.ndarray, prefill: int = 9) -> float:
    """Max |diff| between prefilling `prefill` tokens then decoding one at a time, and the full pass `full` [T, V]."""
    length = tokens.shape[-1]
    tokens = jnp.asarray(tokens[None], jnp.int32)
    positions = jnp.arange(length, dtype=jnp.int32)[None]
    logits, cache = forward(ours, tokens[:, :prefill], positions[:, :prefill], ours.init_cache(1, length))
    steps = [logits[0]]
    for t in range(prefill, length):
        step, cache = forward(ours, tokens[:, t : t + 1], positions[:, t : t + 1], cache)
        steps.append(step[0])
    return float(np.abs(np.concatenate(steps) - full).max())


def assert_saved_loads_in_hf(ours, hf, hf_class, directory: Path) -> None:
    """`io.save(format="huggingface")` loads in transformers with HF's weights exactly, and back in ours to the same config."""
    from hybrid_seq import io as hio

    path = hio.save(ours, directory, format="huggingface")
    again = hf_class.from_pretrained(path).eval()
    want, got = hf.state_dict(), again.state_dict()
    assert sorted(got) == sorted(want)
    for name, value in want.items():
        np.testing.assert_array_equal(got[name].numpy(), value.numpy(), err_msg=name)
    assert hio.load(path).config == ours.config


def assert_greedy_equals_hf(hf, ours, text: str = "hybrid state", new_tokens: int = 8) -> None:
    """Our `Sampler` (greedy, byte tokenizer) gives HF `generate`'s tokens."""
    from hybrid_seq.sampling import ByteTokenizer, Sampler

    tokenizer = ByteTokenizer()
    out = Sampler(ours, tokenizer)(text, new_tokens, stop_token_ids=[])
    assert out.tokens[0] == greedy(hf, tokenizer.encode(text, add_bos=True), new_tokens)


@contextlib.contextmanager
def router_margins(hf, moe_suffix: str, gaps):
    """Collect, over every forward of `hf` inside, the smallest top-k margin of each MoE layer (modules named
    `...{moe_suffix}`); `gaps(module, x)` returns that margin for the layer's input `x` [N, D]."""
    found = []
    hooks = [
        module.register_forward_pre_hook(lambda m, args: found.append(gaps(m, args[0].reshape(-1, args[0].shape[-1]))))
        for name, module in hf.named_modules() if name.endswith(moe_suffix)
    ]
    try:
        yield found
    finally:
        for hook in hooks:
            hook.remove()


def top_k_gap(scores: np.ndarray, k: int) -> float:
    """The smallest gap between each row's k-th and (k+1)-th largest score."""
    ordered = -np.sort(-scores, axis=-1)
    return float((ordered[:, k - 1] - ordered[:, k]).min())
