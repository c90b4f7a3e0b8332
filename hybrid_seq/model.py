"""The hybrid model: embed -> residual blocks (kinds from the pattern) -> norm -> tied logits -> soft cap."""

from __future__ import annotations

from typing import Any

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, Float, Int, PRNGKeyArray

from hybrid_seq.blocks import GatedMLP, ResidualBlock, RGLRU, RMSNorm
from hybrid_seq.blocks.embed import Embedder
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
    blocks: tuple[ResidualBlock, ...]
    final_norm: RMSNorm
    config: ModelConfig = eqx.field(static=True)

    def __init__(
        self,
        config: ModelConfig,
        *,
        key: PRNGKeyArray,
        dtype: Any = jnp.float32,
        scan_backend: str = "auto",
    ):
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

    @property
    def dtype(self) -> jnp.dtype:
        """Parameter (and activation) dtype."""
        return self.embedder.weight.dtype

    def init_cache(self, batch_size: int) -> Cache:
        """An empty cache for `batch_size` rows (activation entries in the model's dtype)."""
        return tuple(block.init_state(batch_size, self.dtype) for block in self.blocks)

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
            call = eqx.filter_checkpoint(block) if checkpoint_blocks else block
            x, state = call(x, positions, None if cache is None else cache[i])
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
    if not isinstance(cache, tuple) or len(cache) != len(model.blocks):
        got = f"{type(cache).__name__} of length {len(cache)}" if isinstance(cache, (tuple, list)) else repr(type(cache))
        raise ValueError(f"cache must be a tuple with one state per layer ({len(model.blocks)}), got {got}")
    expected = jax.eval_shape(lambda: model.init_cache(batch_size))
    for layer, (want, got) in enumerate(zip(expected, cache)):
        want_leaves, want_def = jax.tree_util.tree_flatten_with_path(want)
        got_leaves, got_def = jax.tree_util.tree_flatten_with_path(got)
        if want_def != got_def:
            raise ValueError(
                f"cache layer {layer} ({model.config.layer_kinds[layer]}) has the wrong structure: "
                f"expected {type(want).__name__}, got {type(got).__name__}"
            )
        for (path, w), (_, g) in zip(want_leaves, got_leaves):
            if tuple(w.shape) != tuple(g.shape) or w.dtype != g.dtype:
                field = jax.tree_util.keystr(path)
                raise ValueError(
                    f"cache layer {layer} ({model.config.layer_kinds[layer]}){field} does not fit this model and "
                    f"batch size {batch_size}: expected {w.dtype}{list(w.shape)}, got {g.dtype}{list(g.shape)}"
                )

