"""The hybrid model: embed -> residual blocks (kinds from the pattern) -> norm -> tied logits -> soft cap."""

from __future__ import annotations

from typing import Any

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
from jax.typing import DTypeLike
from jaxtyping import Array, Float, Int, PRNGKeyArray

from hybrid_seq.blocks import RGLRU, GatedMLP, ResidualBlock, RMSNorm
from hybrid_seq.blocks.embed import Embedder
from hybrid_seq.blocks.stack import LayerStack
from hybrid_seq.config import ModelConfig
from hybrid_seq.pattern import temporal_kind

#: One state per layer, in layer order (each a block's own state pytree).
Cache = tuple[Any, ...]


class Model(eqx.Module):
    """A hybrid sequence model built from a `ModelConfig`.

    `model(tokens, positions, cache=None) -> (logits, cache)`: `tokens` and `positions` are
    int32 `[B, T]`; positions count tokens inside their document (0 starts a document:
    recurrences and convolutions reset and attention does not look across; -1 marks
    padding). The returned cache is the explicit per-layer state after the last token;
    passing it back continues the sequence, so any split into chunks (down to one token at
    a time) equals one call on the whole sequence. Nothing is stored on the module.

    The compute dtype follows the parameter dtype (`dtype`), except the recurrence state,
    the scan accumulation and the attention softmax, which are fp32.
    """

    embedder: Embedder
    blocks: tuple[ResidualBlock | LayerStack, ...]
    final_norm: RMSNorm
    config: ModelConfig = eqx.field(static=True)

    def __init__(
        self,
        config: ModelConfig,
        *,
        key: PRNGKeyArray,
        dtype: DTypeLike = jnp.float32,
        scan_backend: str = "auto",
        scan_layers: bool = False,
    ):
        """Random weights with the reference's initialisation.

        `scan_layers=True` stacks the whole repeats of the pattern unit and runs them with
        `lax.scan` (see `stack_layers`): same results, much faster compilation for deep models.
        """
        keys = jax.random.split(key, config.num_layers + 1)
        self.config = config
        self.embedder = Embedder(
            config.vocab_size,
            config.width,
            scale_by_sqrt_dim=config.embeddings_scale_by_sqrt_dim,
            key=keys[0],
            dtype=dtype,
        )
        self.blocks = tuple(
            _residual_block(config, kind, key=k, dtype=dtype) for kind, k in zip(config.layer_kinds, keys[1:])
        )
        self.final_norm = RMSNorm(config.width, dtype=dtype)
        if scan_backend != "auto":
            self.blocks = with_scan_backend(self.blocks, scan_backend)
        if scan_layers:
            self.blocks = _stacked(self.blocks, config)

    @property
    def dtype(self) -> jnp.dtype:
        """Parameter (and activation) dtype."""
        return self.embedder.weight.dtype

    def init_cache(self, batch_size: int) -> Cache:
        """An empty cache for `batch_size` rows (activation entries in the model's dtype)."""
        return tuple(block.init_state(batch_size, self.dtype) for block in self.blocks)

    @property
    def layers_stacked(self) -> bool:
        """Whether repeats of the pattern unit run as one `lax.scan` (see `stack_layers`)."""
        return any(isinstance(block, LayerStack) for block in self.blocks)

    def stack_layers(self) -> Model:
        """The same model with the whole repeats of the pattern unit stacked and scanned over.

        Leftover layers (26 layers of RRA leave RR) stay separate. The cache layout changes
        with it: one stacked state per unit position for the stack, then one per leftover layer.
        """
        if self.layers_stacked:
            return self
        return eqx.tree_at(lambda m: m.blocks, self, _stacked(self.blocks, self.config))

    def unstack_layers(self) -> Model:
        """The same model with one block per layer (the layout checkpoints are written in)."""
        blocks: list[ResidualBlock] = []
        for block in self.blocks:
            blocks.extend(block.to_blocks() if isinstance(block, LayerStack) else [block])
        return eqx.tree_at(lambda m: m.blocks, self, tuple(blocks))

    def with_scan_backend(self, name: str) -> Model:
        """The same model (same weights) with every RG-LRU using the scan backend `name`."""
        return with_scan_backend(self, name)

    def __call__(
        self,
        tokens: Int[Array | np.ndarray, "B T"],
        positions: Int[Array | np.ndarray, "B T"],
        cache: Cache | None = None,
        *,
        checkpoint_blocks: bool = False,
    ) -> tuple[Float[Array, "B T V"], Cache]:
        """Logits `[B, T, V]` and the cache after the last token.

        `checkpoint_blocks=True` rematerialises each residual block in the backward pass
        (gradient checkpointing: activation memory of one block instead of all).
        """
        tokens, positions = check_tokens(tokens, positions, self.config.vocab_size)
        if cache is not None:
            check_cache(self, cache, tokens.shape[0])
        x = self.embedder.encode(tokens)
        states = []
        for i, block in enumerate(self.blocks):
            state = None if cache is None else cache[i]
            if isinstance(block, LayerStack):
                x, state = block(x, positions, state, checkpoint=checkpoint_blocks)
            else:
                x, state = (eqx.filter_checkpoint(block) if checkpoint_blocks else block)(x, positions, state)
            states.append(state)
        logits = self.embedder.decode(self.final_norm(x))
        cap = self.config.logits_soft_cap
        if cap:
            logits = jnp.tanh(logits / cap) * cap
        return logits, tuple(states)


def _residual_block(config: ModelConfig, kind: str, *, key: PRNGKeyArray, dtype: Any) -> ResidualBlock:
    k_temporal, k_mlp = jax.random.split(key)
    return ResidualBlock(
        temporal_pre_norm=RMSNorm(config.width, dtype=dtype),
        temporal=temporal_kind(kind).build(config, key=k_temporal, dtype=dtype),
        channel_pre_norm=RMSNorm(config.width, dtype=dtype),
        mlp=GatedMLP(
            config.width,
            config.mlp_expanded_width,
            final_init_scale=config.final_w_init_variance_scale,
            key=k_mlp,
            dtype=dtype,
        ),
    )


def _stacked(blocks: tuple[ResidualBlock, ...], config: ModelConfig) -> tuple[ResidualBlock | LayerStack, ...]:
    unit = len(config.block_pattern.unit)
    whole = config.block_pattern.num_full_units * unit
    if whole // unit < 2:
        return blocks
    return (LayerStack.from_blocks(list(blocks[:whole]), unit), *blocks[whole:])


def with_scan_backend(tree: Any, name: str) -> Any:
    """`tree` with every RG-LRU layer switched to the scan backend `name` (weights untouched)."""
    is_lru = lambda node: isinstance(node, RGLRU)  # noqa: E731
    return jax.tree_util.tree_map(
        lambda node: node.with_scan_backend(name) if is_lru(node) else node, tree, is_leaf=is_lru
    )


def check_tokens(tokens: Any, positions: Any, vocab_size: int) -> tuple[Array, Array]:
    """Validate model inputs: int `[B, T]` arrays of one shape, token ids in `[0, vocab_size)`.

    The id range is checked when the values are concrete (eager calls); under `jit` an
    out-of-range id yields NaN logits for that token instead (never a silently clamped row).
    """
    for name, value in (("tokens", tokens), ("positions", positions)):
        if not hasattr(value, "shape") or not hasattr(value, "dtype"):
            raise TypeError(f"{name} must be an integer array of shape [B, T], got {type(value).__name__}")
        if len(value.shape) != 2:
            raise ValueError(f"{name} must have shape [B, T] (rank 2), got shape {tuple(value.shape)}")
        if not jnp.issubdtype(value.dtype, jnp.integer):
            raise TypeError(f"{name} must have an integer dtype (int32), got {value.dtype}")
    if tuple(tokens.shape) != tuple(positions.shape):
        raise ValueError(
            f"tokens and positions must have the same shape, got {tuple(tokens.shape)} and {tuple(positions.shape)}"
        )
    if min(tokens.shape) == 0:
        raise ValueError(f"tokens must have B >= 1 and T >= 1, got shape {tuple(tokens.shape)}")
    try:
        concrete = np.asarray(tokens)
    except (jax.errors.TracerArrayConversionError, jax.errors.ConcretizationTypeError):
        concrete = None
    if concrete is not None and (concrete.min() < 0 or concrete.max() >= vocab_size):
        bad = concrete[(concrete < 0) | (concrete >= vocab_size)]
        raise ValueError(f"token ids must be in [0, {vocab_size}), got {bad[:5].tolist()}")
    return jnp.asarray(tokens).astype(jnp.int32), jnp.asarray(positions).astype(jnp.int32)


def check_cache(model: Model, cache: Any, batch_size: int) -> None:
    """Raise a ValueError naming the first layer/field where `cache` does not fit `model` and the batch."""
    names = _entry_names(model)
    if not isinstance(cache, tuple) or len(cache) != len(names):
        got = f"{type(cache).__name__} of length {len(cache)}" if isinstance(cache, (tuple, list)) else repr(type(cache))
        raise ValueError(f"cache must be a tuple with one state per layer ({len(names)}), got {got}")
    expected = jax.eval_shape(lambda: model.init_cache(batch_size))
    for name, want, got in zip(names, expected, cache):
        want_leaves, want_def = jax.tree_util.tree_flatten_with_path(want)
        got_leaves, got_def = jax.tree_util.tree_flatten_with_path(got)
        if want_def != got_def:
            raise ValueError(
                f"cache {name} has the wrong structure: expected {type(want).__name__}, got {type(got).__name__}"
            )
        for (path, w), (_, g) in zip(want_leaves, got_leaves):
            if tuple(w.shape) != tuple(g.shape) or w.dtype != g.dtype:
                raise ValueError(
                    f"cache {name}{jax.tree_util.keystr(path)} does not fit this model and batch size {batch_size}: "
                    f"expected {w.dtype}{list(w.shape)}, got {g.dtype}{list(g.shape)}"
                )


def _entry_names(model: Model) -> list[str]:
    """How each entry of `model.blocks` (and so of its cache) is named in errors."""
    kinds = model.config.layer_kinds
    names, layer = [], 0
    for block in model.blocks:
        if isinstance(block, LayerStack):
            count = block.repeats * len(block.unit)
            names.append(f"layers {layer}-{layer + count - 1} (stacked {model.config.block_pattern.unit})")
        else:
            count = 1
            names.append(f"layer {layer} ({kinds[layer]})")
        layer += count
    return names
