"""The papers' optimizer recipe: AdamW with a weight-decay mask, linear warmup + cosine decay, global-norm clipping.

Decay mask (explicit, inspectable via `decay_mask` / `decayed_paths`): a leaf is decayed
iff it is a matrix-like `weight` (ndim >= 2) outside the RG-LRU and outside the embedder.
So the RG-LRU (`a_param`, the input and a gates, their biases), every norm `scale`,
every bias and the (tied) embedding are not decayed; the Linear/MLP/attention
projection weights and the Conv1D taps are. This follows the reference fine-tuning
recipe, except that the reference also decays Dense biases; we never decay biases,
as the Griffin paper's recipe (and common practice) does.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import equinox as eqx
import jax
import optax


def _path_names(path: tuple) -> list[str]:
    return [str(getattr(k, "name", getattr(k, "key", getattr(k, "idx", k)))) for k in path]


def _is_decayed(path: tuple, leaf: Any) -> bool:
    names = _path_names(path)
    return names[-1] == "weight" and getattr(leaf, "ndim", 0) >= 2 and "rg_lru" not in names and "embedder" not in names


def decay_mask(params: Any) -> Any:
    """A pytree of bools shaped like the array leaves of `params` (a Model or its `eqx.filter`ed arrays): True where weight decay applies."""
    arrays = eqx.filter(params, eqx.is_array)
    return jax.tree_util.tree_map_with_path(_is_decayed, arrays)


def decayed_paths(params: Any, *, decayed: bool = True) -> list[str]:
    """Paths (e.g. `.blocks[0].mlp.gate.weight`) of the leaves that are decayed (or, with `decayed=False`, not decayed)."""
    flat = jax.tree_util.tree_leaves_with_path(decay_mask(params))
    return [jax.tree_util.keystr(path) for path, flag in flat if flag == decayed]


def warmup_cosine(peak_lr: float, warmup_steps: int, total_steps: int, final_fraction: float = 0.1) -> optax.Schedule:
    """Linear warmup from 0 to `peak_lr` over `warmup_steps`, then cosine decay to `final_fraction * peak_lr` at `total_steps`."""
    warmup_steps = min(warmup_steps, max(total_steps - 1, 0))
    return optax.warmup_cosine_decay_schedule(
        init_value=0.0,
        peak_value=peak_lr,
        warmup_steps=warmup_steps,
        decay_steps=max(total_steps, warmup_steps + 1),
        end_value=final_fraction * peak_lr,
    )


@dataclasses.dataclass(frozen=True)
class OptimConfig:
    """AdamW + schedule + clipping. Defaults: the reference fine-tuning betas (b2=0.96) and decay 0.1, clip 1.0."""

    peak_lr: float = 1e-3
    warmup_steps: int = 100
    total_steps: int = 1000
    final_lr_fraction: float = 0.1
    b1: float = 0.9
    b2: float = 0.96
    eps: float = 1e-8
    weight_decay: float = 0.1
    clip_norm: float | None = 1.0

    def schedule(self) -> optax.Schedule:
        """The learning-rate schedule: linear warmup to `peak_lr`, cosine decay to `final_lr_fraction * peak_lr`."""
        return warmup_cosine(self.peak_lr, self.warmup_steps, self.total_steps, self.final_lr_fraction)


def make_optimizer(config: OptimConfig = OptimConfig(), *, mask: Any = decay_mask) -> optax.GradientTransformation:
    """`clip_by_global_norm` (if `clip_norm`) then AdamW with `mask` (a pytree or a callable on the params) selecting decayed leaves.

    Use on `eqx.filter(model, eqx.is_inexact_array)`.
    """
    adamw = optax.adamw(
        config.schedule(), b1=config.b1, b2=config.b2, eps=config.eps, weight_decay=config.weight_decay, mask=mask
    )
    if config.clip_norm is None:
        return adamw
    return optax.chain(optax.clip_by_global_norm(config.clip_norm), adamw)
