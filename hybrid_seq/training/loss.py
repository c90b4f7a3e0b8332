"""Next-token cross-entropy with a loss mask, computed in fp32.

Normaliser: the loss is the masked NLL summed over the whole (global) batch divided by
the number of masked tokens (`"tokens"`, the default). Summing first and dividing once
is what makes gradient accumulation equal the large batch exactly: microbatches add
their sums and counts. The reference fine-tuning recipe divides by `B * (count + 1e-8)`
instead (`"reference"`); for Adam-type optimizers the two differ only by a constant
factor that Adam normalises away (up to `eps`).
"""

from __future__ import annotations

from typing import Any, Literal

import equinox as eqx
import jax
import jax.numpy as jnp
from jaxtyping import Array, Float, Int

from hybrid_seq.model import Model
from hybrid_seq.training.data import Batch

Normaliser = Literal["tokens", "reference"]


class LossTerms(eqx.Module):
    """Additive loss statistics of a batch (fp32/int32 scalars): sum of masked NLL, masked tokens, correct argmax predictions."""

    nll_sum: Float[Array, ""]
    num_tokens: Int[Array, ""]
    num_correct: Int[Array, ""]

    def __add__(self, other: LossTerms) -> LossTerms:
        return jax.tree_util.tree_map(jnp.add, self, other)


def cast_floating(tree: Any, dtype: Any) -> Any:
    """`tree` with every floating-point array cast to `dtype` (for mixed precision: differentiable, so grads return in the master dtype)."""
    return jax.tree_util.tree_map(
        lambda x: x.astype(dtype) if eqx.is_inexact_array(x) else x, tree
    )


def loss_terms(
    model: Model, batch: Batch, *, compute_dtype: Any = None, checkpoint_blocks: bool = False
) -> LossTerms:
    """Run `model` on `batch` (optionally in `compute_dtype`, e.g. bf16) and return the fp32 loss statistics."""
    if compute_dtype is not None:
        model = cast_floating(model, compute_dtype)
    logits, _ = model(batch.tokens, batch.positions, checkpoint_blocks=checkpoint_blocks)
    logits = logits.astype(jnp.float32)
    log_probs = jax.nn.log_softmax(logits, axis=-1)
    nll = -jnp.take_along_axis(log_probs, batch.targets[..., None], axis=-1)[..., 0]
    mask = batch.loss_mask
    correct = (jnp.argmax(logits, axis=-1) == batch.targets) & mask
    return LossTerms(
        nll_sum=jnp.sum(jnp.where(mask, nll, 0.0)),
        num_tokens=jnp.sum(mask, dtype=jnp.int32),
        num_correct=jnp.sum(correct, dtype=jnp.int32),
    )


def normaliser(terms: LossTerms, batch_size: int, kind: Normaliser = "tokens") -> Float[Array, ""]:
    """The divisor that turns `terms.nll_sum` into the loss (see the module docstring)."""
    count = terms.num_tokens.astype(jnp.float32)
    if kind == "tokens":
        return jnp.maximum(count, 1.0)
    if kind == "reference":
        return batch_size * (count + 1e-8)
    raise ValueError(f"unknown loss normaliser {kind!r}; use 'tokens' or 'reference'")


def next_token_loss(
    model: Model,
    batch: Batch,
    *,
    compute_dtype: Any = None,
    checkpoint_blocks: bool = False,
    kind: Normaliser = "tokens",
) -> Float[Array, ""]:
    """The masked next-token cross-entropy of `batch` (fp32 scalar)."""
    terms = loss_terms(model, batch, compute_dtype=compute_dtype, checkpoint_blocks=checkpoint_blocks)
    return terms.nll_sum / normaliser(terms, batch.tokens.shape[0], kind)
