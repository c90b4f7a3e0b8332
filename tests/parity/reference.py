"""Build DeepMind's reference `recurrentgemma.jax.Griffin` with every parameter randomised."""

from __future__ import annotations

import dataclasses

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import pytest

rg = pytest.importorskip(
    "recurrentgemma.jax", reason="parity tests need the reference: pip install -e '.[test]'"
)

from hybrid_seq.bench.reference import reference_griffin  # noqa: E402
from hybrid_seq.config import ModelConfig  # noqa: E402
from hybrid_seq.io import from_flax_params  # noqa: E402


@dataclasses.dataclass(frozen=True)
class Case:
    """A small reference configuration (letters R/A per layer)."""

    kinds: str = "RAR"
    width: int = 64
    mlp_expanded_width: int = 96
    num_heads: int = 4
    lru_width: int | None = 128
    window: int = 6
    vocab_size: int = 97
    soft_cap: float = 30.0
    scale_embeddings: bool = True

    def __str__(self) -> str:
        return f"{self.kinds}-D{self.width}-L{self.lru_width}-H{self.num_heads}-W{self.window}"


def model_config(case: Case) -> ModelConfig:
    return ModelConfig(
        vocab_size=case.vocab_size,
        width=case.width,
        mlp_expanded_width=case.mlp_expanded_width,
        num_heads=case.num_heads,
        lru_width=case.lru_width,
        block_pattern=case.kinds,
        attention_window_size=case.window,
        logits_soft_cap=case.soft_cap,
        embeddings_scale_by_sqrt_dim=case.scale_embeddings,
    )


def reference_model(case: Case, seed: int = 0, param_dtype=jnp.float32):
    """(reference Griffin, its bare params with every leaf perturbed by N(0, 0.1^2))."""
    model = reference_griffin(
        model_config(case), config_overrides={"scan_type": rg.ScanType.LINEAR_NATIVE}, param_dtype=param_dtype
    )
    dummy = jnp.zeros((1, 2), jnp.int32)
    params = jax.jit(model.init)(jax.random.key(seed), dummy, dummy)["params"]
    leaves, treedef = jax.tree_util.tree_flatten(params)
    keys = jax.random.split(jax.random.key(seed + 1), len(leaves))
    leaves = [
        (leaf.astype(jnp.float32) + 0.1 * jax.random.normal(k, leaf.shape)).astype(leaf.dtype)
        for leaf, k in zip(leaves, keys)
    ]
    return Reference(model), jax.tree_util.tree_unflatten(treedef, leaves)


class Reference:
    """The reference model with a compiled `apply` (eager reference calls are very slow)."""

    def __init__(self, model) -> None:
        self.model = model
        self._apply = jax.jit(model.apply)

    def __call__(self, params, tokens, positions, cache=None):
        return self._apply({"params": params}, tokens, positions, cache)


def call(model, tokens, positions, cache=None):
    """Our model, compiled (one compilation per input shape)."""
    return _compiled_call(model, tokens, positions, cache)


@eqx.filter_jit
def _compiled_call(model, tokens, positions, cache):
    return model(tokens, positions, cache)


def ours_from(case: Case, params, **kwargs):
    return from_flax_params(
        params,
        attention_window_size=case.window,
        logits_soft_cap=case.soft_cap,
        embeddings_scale_by_sqrt_dim=case.scale_embeddings,
        **kwargs,
    )


def batch(case: Case, length: int, *, seed: int = 2, packed: bool = True, left_pad: bool = True):
    """Tokens and positions `[3, T]`: a plain row, a row of packed documents, a left-padded row."""
    tokens = jax.random.randint(jax.random.key(seed), (3, length), 0, case.vocab_size, jnp.int32)
    positions = np.tile(np.arange(length), (3, 1))
    if packed:
        cut1, cut2 = length // 3, (2 * length) // 3
        positions[1, cut1:] = np.arange(length - cut1)
        positions[1, cut2:] = np.arange(length - cut2)
    if left_pad:
        pad = max(1, length // 4)
        positions[2, :pad] = -1
        positions[2, pad:] = np.arange(length - pad)
    return tokens, jnp.asarray(positions, jnp.int32)


def max_abs_diff(a, b) -> float:
    return float(jnp.max(jnp.abs(jnp.asarray(a, jnp.float32) - jnp.asarray(b, jnp.float32))))
