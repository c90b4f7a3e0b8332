"""Training-throughput benchmark: our train step vs DeepMind's reference Flax `Griffin`, same weights, same optax optimizer.

Both sides run one full optimizer step per call (forward, backward, clip + AdamW with the
same decay rule, buffers donated) on the same batch, in fp32, with gradient checkpointing
off on both by default (`--remat` turns it on on both). Timings are medians of
interleaved repetitions (ours, reference, ours, ...) so a shared machine's drift hits
both; compile times are reported separately.
"""

from __future__ import annotations

import argparse
import os
import platform
from typing import Any

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np

from hybrid_seq.bench.reference import reference_griffin
from hybrid_seq.bench.timing import interleaved
from hybrid_seq.cli.args import int_at_least, preset_name

PRESET = "griffin-small"


def flax_decay_mask(params: Any) -> Any:
    """The decay rule of `hybrid_seq.training.decay_mask` on the reference's Flax tree: matrices outside `rg_lru`/`embedder`."""

    def rule(path, leaf):
        names = [str(getattr(k, "key", k)) for k in path]
        return leaf.ndim >= 2 and names[-1] not in ("b", "bias", "scale") and "rg_lru" not in names and "embedder" not in names

    return jax.tree_util.tree_map_with_path(rule, params)


def _reference_model(config: Any, remat: bool) -> Any:
    return reference_griffin(config, gradient_checkpointing=remat)


def _reference_step(ref_model: Any, optimizer: Any) -> Any:
    """A jitted reference train step `(params, opt_state, batch) -> (params, opt_state, loss)` with the same loss as ours."""
    import optax

    def loss_fn(params, batch):
        logits, _ = ref_model.apply({"params": params}, batch.tokens, batch.positions, return_cache=False)
        log_probs = jax.nn.log_softmax(logits.astype(jnp.float32), axis=-1)
        nll = -jnp.take_along_axis(log_probs, batch.targets[..., None], axis=-1)[..., 0]
        mask = batch.loss_mask
        return jnp.sum(jnp.where(mask, nll, 0.0)) / jnp.maximum(jnp.sum(mask), 1)

    def step(params, opt_state, batch):
        loss, grads = jax.value_and_grad(loss_fn)(params, batch)
        updates, opt_state = optimizer.update(grads, opt_state, params)
        return optax.apply_updates(params, updates), opt_state, loss

    return jax.jit(step, donate_argnums=(0, 1))


def machine() -> str:
    """A one-line description of the host."""
    return f"{platform.processor() or platform.machine()}, {os.cpu_count()} CPU cores visible, jax {jax.__version__} on {jax.devices()[0].platform}"


def run(args: argparse.Namespace) -> int:
    from hybrid_seq import presets
    from hybrid_seq.io import to_flax_params
    from hybrid_seq.model import Model
    from hybrid_seq.training import (
        OptimConfig,
        StepConfig,
        make_optimizer,
        make_train_step,
    )
    from hybrid_seq.training.data import shift_for_next_token

    config = presets.get(args.preset)
    model = Model(config, key=jax.random.key(0))
    params = jax.tree_util.tree_map(jnp.copy, to_flax_params(model))  # own buffers: our step donates the model's
    optim = OptimConfig(warmup_steps=10, total_steps=1000)
    ours_opt = make_optimizer(optim)
    ref_opt = make_optimizer(optim, mask=flax_decay_mask)
    rng = np.random.default_rng(0)
    tokens = rng.integers(0, config.vocab_size, size=(args.batch, args.seq_len + 1))
    positions = np.broadcast_to(np.arange(args.seq_len + 1), tokens.shape)
    batch = shift_for_next_token(tokens, positions, np.ones(tokens.shape, bool))

    ours = {"state": (model, ours_opt.init(eqx.filter(model, eqx.is_inexact_array)))}
    ours_step = make_train_step(ours_opt, StepConfig(checkpoint_blocks=args.remat))
    ref = {"state": (params, ref_opt.init(params))}
    ref_step = _reference_step(_reference_model(config, args.remat), ref_opt)

    losses: dict[str, list[float]] = {"ours": [], "reference": []}

    def call_ours():
        m, s, metrics = ours_step(*ours["state"], batch)
        ours["state"] = (m, s)
        losses["ours"].append(float(metrics.loss))

    def call_ref():
        p, s, loss = ref_step(*ref["state"], batch)
        ref["state"] = (p, s)
        losses["reference"].append(float(loss))

    timings = interleaved({"ours": call_ours, "reference": call_ref}, args.reps, desc="train steps")
    loss_ours, loss_ref = losses["ours"][0], losses["reference"][0]
    tokens_per_step = args.batch * args.seq_len
    print(f"training throughput, preset {args.preset} ({', '.join(config.layer_kinds)}), B={args.batch}, T={args.seq_len}, "
          f"fp32, remat={'on' if args.remat else 'off'}, AdamW recipe")
    print(f"machine: {machine()}")
    print(f"first-step loss: ours {loss_ours:.5f}, reference {loss_ref:.5f} (same weights, same batch)")
    print(f"{'':12}{'tokens/s':>12}{'step s (median)':>18}{'first call s':>15}   all step times")
    for name, timing in timings.items():
        print(f"{name:12}{tokens_per_step / timing.median:>12.0f}{timing.median:>18.2f}{timing.first_call_s:>15.1f}   "
              + " ".join(f"{t:.2f}" for t in timing.samples))
    ratio = timings["reference"].median / timings["ours"].median
    print(f"ratio (ours / reference tokens/s): {ratio:.2f}x over {args.reps} interleaved repetitions")
    return 0


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser("train", help="training tokens/s: ours vs the reference Flax Griffin, same weights and optimizer")
    parser.add_argument("--preset", type=preset_name, default=PRESET)
    parser.add_argument("--seq-len", type=int_at_least(1), default=2048)
    parser.add_argument("--batch", type=int_at_least(1), default=1)
    parser.add_argument("--reps", type=int_at_least(1), default=3)
    parser.add_argument("--remat", action="store_true", help="gradient checkpointing per block on both sides")
    parser.set_defaults(func=run)
