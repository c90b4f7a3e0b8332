"""The hybrid model: embed -> layers (kinds from the pattern) -> norm -> output head -> soft cap."""

from __future__ import annotations

from typing import Any, ClassVar

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
from jax.typing import DTypeLike
from jaxtyping import Array, Float, Int, PRNGKeyArray

from hybrid_seq import scan as scan_lib
from hybrid_seq.architecture import HybridConfig
from hybrid_seq.blocks import AbstractScanning, Linear, ResidualBlock, RMSNorm
from hybrid_seq.blocks.axes import EMBED, VOCAB, Axes
from hybrid_seq.blocks.embed import Embedder
from hybrid_seq.blocks.stack import LayerStack
from hybrid_seq.config import ModelConfig

#: One state per entry of `Model.blocks`, in order (each a layer's own state pytree).
Cache = tuple[Any, ...]
#: What `Model` is built from: Griffin's reference fields, or any hybrid.
Config = ModelConfig | HybridConfig


class Model(eqx.Module):
    """A hybrid sequence model built from a `ModelConfig` or a `HybridConfig`.

    `model(tokens, positions, cache=None) -> (logits, cache)`: `tokens` and `positions` are
    int32 `[B, T]`; positions count tokens inside their document (0 starts a document:
    recurrences and convolutions reset and attention does not look across; -1 marks
    padding). The returned cache is the explicit per-layer state after the last token;
    passing it back continues the sequence, so any split into chunks (down to one token at
    a time) equals one call on the whole sequence. Nothing is stored on the module.

    The compute dtype follows the parameter dtype (`dtype`), except where a kind says
    otherwise (the recurrence state and scan accumulation, the attention softmax: fp32).
    Every entry of `blocks` (a `ResidualBlock` or a `LayerStack`) has one call signature,
    `(x, positions, state, *, checkpoint=False) -> (x, state)`.
    """

    embedder: Embedder
    blocks: tuple[ResidualBlock | LayerStack, ...]
    final_norm: RMSNorm | None
    head: Linear | None
    config: Config = eqx.field(static=True)
    embedding_multiplier: float = eqx.field(static=True)
    logits_soft_cap: float = eqx.field(static=True)
    logits_multiplier: float = eqx.field(static=True)

    param_axes: ClassVar[dict[tuple[str, ...], Axes]] = {("head", "weight"): (EMBED, VOCAB)}

    def __init__(
        self,
        config: Config,
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
        if not isinstance(config, (ModelConfig, HybridConfig)):
            raise TypeError(f"Model needs a ModelConfig or a HybridConfig, got {type(config).__name__}")
        if not jnp.issubdtype(jnp.dtype(dtype), jnp.floating):
            raise TypeError(f"Model dtype must be a floating dtype (float32, bfloat16, ...), got {jnp.dtype(dtype)}")
        hybrid = hybrid_config(config)
        keys = jax.random.split(key, hybrid.num_layers + 1)
        self.config = config
        self.embedder = Embedder(
            hybrid.vocab_size,
            hybrid.width,
            scale_by_sqrt_dim=hybrid.embeddings_scale_by_sqrt_dim,
            key=keys[0],
            dtype=dtype,
        )
        self.blocks = tuple(
            layer.build(
                hybrid.width,
                key=k,
                dtype=dtype,
                num_layers=hybrid.num_layers,
                norm=hybrid.norm,
                residual_multiplier=hybrid.residual_multiplier,
            )
            for layer, k in zip(hybrid.layers, keys[1:])
        )
        self.final_norm = hybrid.norm.build(hybrid.width, dtype=dtype) if hybrid.final_norm else None
        self.head = None
        if not hybrid.tie_embeddings:
            self.head = Linear(hybrid.width, hybrid.vocab_size, use_bias=False, key=jax.random.fold_in(key, hybrid.num_layers + 1), dtype=dtype)
        self.embedding_multiplier = hybrid.embedding_multiplier
        self.logits_soft_cap = hybrid.logits_soft_cap
        self.logits_multiplier = hybrid.logits_multiplier
        if scan_backend != "auto":
            self.blocks = with_scan_backend(self.blocks, scan_backend)
        if scan_layers:
            self.blocks = _stacked(self.blocks, hybrid)

    @property
    def dtype(self) -> jnp.dtype:
        """Parameter (and activation) dtype."""
        return self.embedder.dtype

    @property
    def vocab_size(self) -> int:
        """Number of tokens (rows of the embedding)."""
        return self.embedder.vocab_size

    def init_cache(self, batch_size: int, max_length: int | None = None) -> Cache:
        """The state of every layer for `batch_size` rows before any token.

        `max_length` is the most tokens (padding included) the state will see; kinds whose
        cache grows with the sequence preallocate that much (fixed-size states ignore it;
        None means "unbounded" for those and is an error for growing ones). Activation
        entries are in the model's dtype.
        """
        if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
            raise ValueError(f"batch_size must be an int >= 1, got {batch_size!r}")
        if max_length is not None and (isinstance(max_length, bool) or not isinstance(max_length, int) or max_length < 1):
            raise ValueError(f"max_length must be an int >= 1 or None, got {max_length!r}")
        return tuple(block.init_state(batch_size, max_length, self.dtype) for block in self.blocks)

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
        return eqx.tree_at(lambda m: m.blocks, self, _stacked(self.blocks, hybrid_config(self.config)))

    def unstack_layers(self) -> Model:
        """The same model with one block per layer (the layout checkpoints are written in)."""
        blocks: list[ResidualBlock] = []
        for block in self.blocks:
            blocks.extend(block.to_blocks() if isinstance(block, LayerStack) else [block])
        return eqx.tree_at(lambda m: m.blocks, self, tuple(blocks))

    def with_config(self, config: Config, *, key: PRNGKeyArray) -> Model:
        """The model of `config`, keeping every part whose config did not change and building the rest from `key`.

        This is how to swap a kind (the channel mixer for a user's own, say) and keep the other
        weights: a module swapped in by hand (`eqx.tree_at`) leaves the config behind, so its
        checkpoint could not be loaded back. Sub-blocks are compared layer by layer (the
        temporal mixer and the channel mixer each with its pre-norm); the embedding table is
        kept, so vocab_size and width must stay.
        """
        old, new = hybrid_config(self.config), hybrid_config(config)
        if (old.vocab_size, old.width) != (new.vocab_size, new.width):
            raise ValueError(
                f"with_config keeps the embedding, so vocab_size and width must stay ({old.vocab_size}, {old.width}); "
                f"got ({new.vocab_size}, {new.width})"
            )
        fresh = Model(config, key=key, dtype=self.dtype)
        unstacked = self.unstack_layers()
        same_norm = old.norm == new.norm and old.residual_multiplier == new.residual_multiplier
        blocks = []
        for i, layer in enumerate(new.layers):
            block = fresh.blocks[i]
            before = old.layers[i] if same_norm and i < old.num_layers else None
            if before is not None and before.temporal == layer.temporal:
                block = eqx.tree_at(
                    lambda b: (b.temporal_pre_norm, b.temporal), block,
                    (unstacked.blocks[i].temporal_pre_norm, unstacked.blocks[i].temporal), is_leaf=lambda n: n is None,
                )
            if before is not None and before.channel == layer.channel:
                block = eqx.tree_at(
                    lambda b: (b.channel_pre_norm, b.mlp), block,
                    (unstacked.blocks[i].channel_pre_norm, unstacked.blocks[i].mlp), is_leaf=lambda n: n is None,
                )
            blocks.append(block)
        keep_head = old.tie_embeddings == new.tie_embeddings
        return eqx.tree_at(
            lambda m: (m.embedder.weight, m.blocks, m.final_norm, m.head),
            fresh,
            (
                unstacked.embedder.weight,
                tuple(blocks),
                unstacked.final_norm if old.norm == new.norm and old.final_norm == new.final_norm else fresh.final_norm,
                unstacked.head if keep_head else fresh.head,
            ),
            is_leaf=lambda node: node is None,
        )

    def with_scan_backend(self, name: str) -> Model:
        """The same model (same weights) with every scanning module using the backend `name`."""
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

        `checkpoint_blocks=True` rematerialises each layer in the backward pass (gradient
        checkpointing: activation memory of one layer instead of all).
        """
        tokens, positions = check_tokens(tokens, positions, self.vocab_size)
        if cache is not None:
            check_cache(self, cache, tokens.shape[0])
        x = self.embedder.encode(tokens)
        if self.embedding_multiplier != 1:
            x = x * jnp.asarray(self.embedding_multiplier, x.dtype)
        states = []
        for i, block in enumerate(self.blocks):
            x, state = block(x, positions, None if cache is None else cache[i], checkpoint=checkpoint_blocks)
            states.append(state)
        if self.final_norm is not None:
            x = self.final_norm(x)
        logits = self.embedder.decode(x) if self.head is None else self.head(x)
        if self.logits_multiplier != 1:
            logits = logits * jnp.asarray(self.logits_multiplier, logits.dtype)
        cap = self.logits_soft_cap
        if cap:
            logits = jnp.tanh(logits / cap) * cap
        return logits, tuple(states)


def hybrid_config(config: Config) -> HybridConfig:
    """`config` as a `HybridConfig` (a `ModelConfig` through its Griffin builder)."""
    return config.to_hybrid() if isinstance(config, ModelConfig) else config


def _stacked(blocks: tuple[ResidualBlock, ...], config: HybridConfig) -> tuple[ResidualBlock | LayerStack, ...]:
    unit = len(config.pattern.unit)
    whole = config.pattern.num_full_units * unit
    if whole // unit < 2:
        return blocks
    return (LayerStack.from_blocks(list(blocks[:whole]), unit), *blocks[whole:])


def with_scan_backend(tree: Any, name: str) -> Any:
    """`tree` with every scanning module (`AbstractScanning`) whose registry has a backend `name`
    switched to it (weights untouched).

    The diagonal scans (`hybrid_seq.scan`) and the matrix scans (`hybrid_seq.matrix_scan`)
    are separate registries: a name only one of them has (``"associative"``) switches the
    modules of that one; a name none of the model's registries has is an error.
    """
    scans = lambda node: isinstance(node, AbstractScanning)  # noqa: E731
    found = [node for node in jax.tree_util.tree_leaves(tree, is_leaf=scans) if scans(node)]
    if not any(node.knows_backend(name) for node in found):
        (type(found[0]).scan_registry if found else scan_lib).validate(name)
    switch = lambda node: node.with_scan_backend(name) if scans(node) and node.knows_backend(name) else node  # noqa: E731
    return jax.tree_util.tree_map(switch, tree, is_leaf=scans)


def check_tokens(tokens: Any, positions: Any, vocab_size: int) -> tuple[Array, Array]:
    """Validate model inputs: int `[B, T]` arrays of one shape, token ids in `[0, vocab_size)`,
    positions >= -1.

    Values are checked when they are concrete (eager calls); under `jit` an out-of-range id
    yields NaN logits for that token instead (never a silently clamped row).
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
    concrete_tokens, concrete_positions = _concrete(tokens), _concrete(positions)
    if concrete_tokens is not None and (concrete_tokens.min() < 0 or concrete_tokens.max() >= vocab_size):
        bad = concrete_tokens[(concrete_tokens < 0) | (concrete_tokens >= vocab_size)]
        raise ValueError(f"token ids must be in [0, {vocab_size}), got {bad[:5].tolist()}")
    if concrete_positions is not None and concrete_positions.min() < -1:
        rows, cols = np.nonzero(concrete_positions < -1)
        raise ValueError(
            f"positions must be >= -1 (-1 marks padding), got {concrete_positions[rows[0], cols[0]]} "
            f"at row {rows[0]}, column {cols[0]}"
        )
    return jnp.asarray(tokens).astype(jnp.int32), jnp.asarray(positions).astype(jnp.int32)


def _concrete(value: Any) -> np.ndarray | None:
    try:
        return np.asarray(value)
    except (jax.errors.TracerArrayConversionError, jax.errors.ConcretizationTypeError):
        return None


def check_cache(model: Model, cache: Any, batch_size: int) -> None:
    """Raise a ValueError naming the first layer/field where `cache` does not fit `model` and the batch."""
    names = _entry_names(model)
    if not isinstance(cache, tuple) or len(cache) != len(names):
        got = f"{type(cache).__name__} of length {len(cache)}" if isinstance(cache, (tuple, list)) else repr(type(cache))
        raise ValueError(f"cache must be a tuple with one state per layer ({len(names)}), got {got}")
    for name, block, got in zip(names, model.blocks, cache):
        got_leaves, got_def = jax.tree_util.tree_flatten_with_path(got)
        try:
            capacity = block.state_capacity(got)
        except (AttributeError, IndexError, TypeError, ValueError):
            capacity = None
        want = jax.eval_shape(lambda b=block: b.init_state(batch_size, capacity, model.dtype))
        want_leaves, want_def = jax.tree_util.tree_flatten_with_path(want)
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
        count = block.num_layers
        if count == 1:
            names.append(f"layer {layer} ({kinds[layer]})")
        else:
            unit = tuple(kinds[layer : layer + len(block.unit)])
            names.append(f"layers {layer}-{layer + count - 1} (stacked {unit})")
        layer += count
    return names
