"""The compiled train and eval steps: `eqx.filter_value_and_grad` + optax, with accumulation, mixed precision and remat.

- Mixed precision: the model keeps fp32 master weights; with `compute_dtype="bfloat16"`
  the loss casts a copy to bf16 inside the differentiated function, so the forward and
  backward run in bf16 and the gradients arrive in fp32 (the cast's transpose). Logits,
  the softmax and the loss are fp32 (`loss.loss_terms`).
- Gradient accumulation: the batch `[A*b, T]` is split into `A = accum_steps`
  microbatches scanned with `lax.scan`; summed NLL gradients and token counts are added
  and divided once by the global normaliser, so the result equals the large batch.
- Gradient checkpointing: `checkpoint_blocks=True` rematerialises each residual block.
- The model and optimizer state buffers are donated to the step (`donate=True`): do not
  reuse the arguments after calling it.
- On a mesh (`layout=`, a `hybrid_seq.distributed.Layout`): the step is traced and run
  under `jax.set_mesh(layout.mesh)` (so sequence-parallel blocks see the ``seq`` axis),
  the batch is placed on the layout's batch sharding, and the updated model and optimizer
  state are kept on the layout's shardings; the model and state passed in must already be
  placed (`layout.shard_model`, `layout.init_state`).
"""

from __future__ import annotations

import dataclasses
from typing import Any, Callable

import equinox as eqx
import jax
import jax.numpy as jnp
import optax
from jaxtyping import Array, Float, Int

from hybrid_seq.distributed.layout import Layout
from hybrid_seq.model import Model
from hybrid_seq.training.data import Batch
from hybrid_seq.training.loss import LossTerms, Normaliser, loss_terms, normaliser


@dataclasses.dataclass(frozen=True)
class StepConfig:
    """How one optimizer step computes its gradient."""

    accum_steps: int = 1
    compute_dtype: str | None = None
    checkpoint_blocks: bool = False
    normaliser: Normaliser = "tokens"


class StepMetrics(eqx.Module):
    """Scalars from one step: loss (fp32), global gradient norm before clipping, masked tokens and correct predictions."""

    loss: Float[Array, ""]
    grad_norm: Float[Array, ""]
    num_tokens: Int[Array, ""]
    num_correct: Int[Array, ""]


def _zero_terms() -> LossTerms:
    return LossTerms(nll_sum=jnp.zeros((), jnp.float32), num_tokens=jnp.zeros((), jnp.int32), num_correct=jnp.zeros((), jnp.int32))


def summed_grads(model: Model, batch: Batch, config: StepConfig) -> tuple[Any, LossTerms]:
    """Gradient of the summed masked NLL (not yet normalised) and the batch's loss terms, accumulated over microbatches."""
    compute_dtype = None if config.compute_dtype is None else jnp.dtype(config.compute_dtype)

    @eqx.filter_value_and_grad(has_aux=True)
    def value_and_grad(m: Model, micro: Batch):
        terms = loss_terms(m, micro, compute_dtype=compute_dtype, checkpoint_blocks=config.checkpoint_blocks)
        return terms.nll_sum, terms

    a = config.accum_steps
    if a == 1:
        (_, terms), grads = value_and_grad(model, batch)
        return grads, terms
    rows = batch.tokens.shape[0]
    if rows % a:
        raise ValueError(f"batch size {rows} is not divisible by accum_steps={a}")
    micro = jax.tree_util.tree_map(lambda x: x.reshape(a, rows // a, *x.shape[1:]), batch)

    def body(carry, mb):
        g_acc, t_acc = carry
        (_, t), g = value_and_grad(model, mb)
        return (jax.tree_util.tree_map(jnp.add, g_acc, g), t_acc + t), None

    zeros = jax.tree_util.tree_map(jnp.zeros_like, eqx.filter(model, eqx.is_inexact_array))
    (grads, terms), _ = jax.lax.scan(body, (zeros, _zero_terms()), micro)
    return grads, terms


def train_step_function(
    optimizer: optax.GradientTransformation, config: StepConfig = StepConfig(), *, layout: Layout | None = None
) -> Callable[[Batch, Model, Any], tuple[Model, Any, StepMetrics]]:
    """The step `make_train_step` compiles, not yet jitted: `(batch, model, opt_state) -> (model, opt_state, metrics)`.

    For lowering it yourself, e.g. from abstract arrays for XLA's memory analysis.
    """

    def step(batch: Batch, model: Model, opt_state: Any) -> tuple[Model, Any, StepMetrics]:
        grads, terms = summed_grads(model, batch, config)
        divisor = normaliser(terms, batch.tokens.shape[0], config.normaliser)
        grads = jax.tree_util.tree_map(lambda g: g / divisor, grads)
        params = eqx.filter(model, eqx.is_inexact_array)
        updates, opt_state = optimizer.update(grads, opt_state, params)
        model = eqx.apply_updates(model, updates)
        if layout is not None:
            model, opt_state = layout.constrain(model, opt_state)
        metrics = StepMetrics(
            loss=terms.nll_sum / divisor,
            grad_norm=optax.global_norm(grads),
            num_tokens=terms.num_tokens,
            num_correct=terms.num_correct,
        )
        return model, opt_state, metrics

    return step


def make_train_step(
    optimizer: optax.GradientTransformation,
    config: StepConfig = StepConfig(),
    *,
    donate: bool = True,
    layout: Layout | None = None,
) -> Callable[[Model, Any, Batch], tuple[Model, Any, StepMetrics]]:
    """A jitted `step(model, opt_state, batch) -> (model, opt_state, metrics)`; `opt_state = optimizer.init(eqx.filter(model, eqx.is_inexact_array))`.

    With a `layout`, everything runs on its mesh (see the module docstring).
    """
    step = train_step_function(optimizer, config, layout=layout)
    # Batch first so that "all-except-first" donates exactly the model and the optimizer state.
    compiled = eqx.filter_jit(step, donate="all-except-first" if donate else "none")
    if layout is None:
        return lambda model, opt_state, batch: compiled(batch, model, opt_state)

    def on_mesh(model: Model, opt_state: Any, batch: Batch) -> tuple[Model, Any, StepMetrics]:
        with jax.set_mesh(layout.mesh):
            return compiled(layout.shard_batch(batch), model, opt_state)

    return on_mesh


def make_eval_step(config: StepConfig = StepConfig(), *, layout: Layout | None = None) -> Callable[[Model, Batch], LossTerms]:
    """A jitted `eval_step(model, batch) -> LossTerms` (same compute dtype as training, no remat), on `layout`'s mesh if given."""
    compute_dtype = None if config.compute_dtype is None else jnp.dtype(config.compute_dtype)

    @eqx.filter_jit
    def eval_step(model: Model, batch: Batch) -> LossTerms:
        return loss_terms(model, batch, compute_dtype=compute_dtype)

    if layout is None:
        return eval_step

    def on_mesh(model: Model, batch: Batch) -> LossTerms:
        with jax.set_mesh(layout.mesh):
            return eval_step(model, layout.shard_batch(batch))

    return on_mesh
