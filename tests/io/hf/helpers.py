"""Tiny HF models of the hybrid families, with every parameter perturbed, and the comparisons the tests share."""

from __future__ import annotations

from pathlib import Path

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
