"""Causal grouped-query attention over the whole document (or a sliding window), with a growing KV cache; its kind.

`num_heads` query heads share `num_kv_heads` key/value heads (head `h` reads KV head
`h // (num_heads / num_kv_heads)`), each `head_dim` wide. RoPE rotates a fraction of each
head (none, half or all) with exact angles at any position. A query sees the earlier
tokens of its document (at most `window_size` of them when a window is set), never across
a document start; -1 positions are padding, visible to nothing after the next document start.

The cache holds every key and value seen, preallocated to the `max_length` the state
interface gives (`init_state`); feeding more is a runtime error naming the capacity. The
counts are per row, so rows can be sliced and forked. Scores are computed in the activation
dtype, scaled by `score_scale` (default `head_dim^-0.5`), softmax in float32; queries are
processed in blocks of `QUERY_BLOCK` against the cache so memory is O(block * cache).
"""

from __future__ import annotations

import dataclasses
from typing import Any, ClassVar

import equinox as eqx
import jax
import jax.numpy as jnp
from jax.typing import DTypeLike
from jaxtyping import Array, Float, Int, Int32, PRNGKeyArray

from hybrid_seq.blocks.axes import EMBED, HEADS, KV, Axes
from hybrid_seq.blocks.hf_names import HFTensor, linear
from hybrid_seq.blocks.linear import Linear
from hybrid_seq.blocks.mixer import AbstractMixer
from hybrid_seq.blocks.rope import ROPE_MAX_WAVELENGTH, apply_rope
from hybrid_seq.kinds import KindConfig, check_divides, check_int, check_number, register_kind

#: Value given to masked attention logits (finite, so fully masked rows stay finite).
MASKED_LOGIT = -2.3819763e38
QUERY_BLOCK = 256
_FAR = 2**30


class KVCache(eqx.Module):
    """Keys (after RoPE) and values of every token each row has seen, in slots `0 .. num_tokens - 1`.

    `doc_start` is the slot where each row's current document began.
    """

    keys: Float[Array, "B S G K"]
    values: Float[Array, "B S G K"]
    num_tokens: Int32[Array, " B"]
    doc_start: Int32[Array, " B"]


class Attention(AbstractMixer):
    """Causal GQA attention (see the module docstring)."""

    q_proj: Linear
    k_proj: Linear
    v_proj: Linear
    o_proj: Linear
    gate_proj: Linear | None
    num_heads: int = eqx.field(static=True)
    num_kv_heads: int = eqx.field(static=True)
    rope_fraction: float = eqx.field(static=True)
    rope_theta: float = eqx.field(static=True)
    window_size: int | None = eqx.field(static=True)
    score_scale: float = eqx.field(static=True)
    key_multiplier: float = eqx.field(static=True)

    param_axes: ClassVar[dict[tuple[str, ...], Axes]] = {
        ("q_proj", "weight"): (EMBED, HEADS),
        ("q_proj", "bias"): (HEADS,),
        ("k_proj", "weight"): (EMBED, KV),
        ("k_proj", "bias"): (KV,),
        ("v_proj", "weight"): (EMBED, KV),
        ("v_proj", "bias"): (KV,),
        ("o_proj", "weight"): (HEADS, EMBED),
        ("o_proj", "bias"): (EMBED,),
        ("gate_proj", "weight"): (EMBED, HEADS),
        ("gate_proj", "bias"): (HEADS,),
    }

    def axis_units(self) -> dict[str, int]:
        """Sharding splits query and key/value heads only whole (see `hybrid_seq.distributed.rules`)."""
        return {HEADS: self.num_heads, KV: self.num_kv_heads}

    @property
    def head_dim(self) -> int:
        """Width of each head."""
        return self.k_proj.weight.shape[1] // self.num_kv_heads

    def hf_tensors(self) -> dict[tuple[str, ...], HFTensor]:
        """HF's attention names (`q_proj`, `k_proj`, `v_proj`, `o_proj`) in every family."""
        names = {}
        for ours in ("q_proj", "k_proj", "v_proj", "o_proj", "gate_proj"):
            layer = getattr(self, ours)
            if layer is not None:
                names.update(linear(ours, ours, bias=layer.bias is not None))
        return names

    def init_state(self, batch_size: int, max_length: int | None, dtype: DTypeLike) -> KVCache:
        """Room for `max_length` tokens per row (required: the cache grows with the sequence)."""
        if max_length is None:
            raise ValueError(
                "attention keeps every key and value: give the state a max_length "
                "(Model.init_cache(batch_size, max_length) or prefill(..., max_length=...))"
            )
        empty = jnp.zeros((batch_size, max_length, self.num_kv_heads, self.head_dim), dtype)
        zeros = jnp.zeros((batch_size,), jnp.int32)
        return KVCache(keys=empty, values=empty, num_tokens=zeros, doc_start=zeros)

    def state_capacity(self, state: KVCache) -> int:
        """The cache's preallocated length."""
        return state.keys.shape[1]

    def __call__(
        self, x: Float[Array, "B T D"], positions: Int[Array, "B T"], state: KVCache | None = None
    ) -> tuple[Float[Array, "B T D"], KVCache]:
        """Attend each token to its document's earlier tokens (cache included); write its key and value."""
        batch, length, _ = x.shape
        heads, kv_heads, head_dim = self.num_heads, self.num_kv_heads, self.head_dim
        if state is None:
            state = self.init_state(batch, length, jnp.result_type(x, self.k_proj.weight))
        capacity = state.keys.shape[1]
        state = eqx.error_if(
            state, jnp.any(state.num_tokens + length > capacity), f"attention: the KV cache of {capacity} tokens is full"
        )
        q = self.q_proj(x).reshape(batch, length, heads, head_dim)
        k = self.k_proj(x).reshape(batch, length, kv_heads, head_dim)
        v = self.v_proj(x).reshape(batch, length, kv_heads, head_dim)
        if self.key_multiplier != 1:
            k = k * self.key_multiplier
        if self.rope_fraction:
            q = apply_rope(q, positions, self.rope_theta, fraction=self.rope_fraction)
            k = apply_rope(k, positions, self.rope_theta, fraction=self.rope_fraction)

        n = state.num_tokens
        q_index = n[:, None] + jnp.arange(length, dtype=jnp.int32)
        starts = jnp.where(positions == 0, q_index, -_FAR)
        doc_start = jnp.maximum(state.doc_start[:, None], jax.lax.cummax(starts, axis=1))
        rows = jnp.arange(batch, dtype=jnp.int32)[:, None]
        keys = state.keys.at[rows, q_index].set(k.astype(state.keys.dtype), unique_indices=True)
        values = state.values.at[rows, q_index].set(v.astype(state.values.dtype), unique_indices=True)
        encoded = _attend(
            q.reshape(batch, length, kv_heads, heads // kv_heads, head_dim),
            keys.astype(k.dtype),
            values.astype(v.dtype),
            q_index,
            doc_start,
            self.window_size,
            self.score_scale,
        ).reshape(batch, length, heads * head_dim)
        if self.gate_proj is not None:
            encoded = encoded * jax.nn.sigmoid(self.gate_proj(x))
        new_state = KVCache(keys=keys, values=values, num_tokens=n + length, doc_start=doc_start[:, -1])
        return self.o_proj(encoded), new_state


def _attend(
    q: Float[Array, "B T G R K"],
    keys: Float[Array, "B S G K"],
    values: Float[Array, "B S G K"],
    q_index: Int[Array, "B T"],
    doc_start: Int[Array, "B T"],
    window: int | None,
    scale: float,
) -> Float[Array, "B T G R K"]:
    """Each query against every cache slot it may see, `QUERY_BLOCK` queries at a time."""
    length = q.shape[1]
    slots = jnp.arange(keys.shape[1], dtype=jnp.int32)

    def block(q_block: Array, qi: Array, start: Array) -> Array:
        visible = (slots[None, None, :] <= qi[..., None]) & (slots[None, None, :] >= start[..., None])
        if window is not None:
            visible = visible & (qi[..., None] - slots[None, None, :] <= window)
        logits = jnp.einsum("btgrk,bsgk->bgrts", q_block, keys) * jnp.asarray(scale, q_block.dtype)
        logits = jnp.where(visible[:, None, None], logits, MASKED_LOGIT)
        probs = jax.nn.softmax(logits.astype(jnp.float32), axis=-1).astype(values.dtype)
        return jnp.einsum("bgrts,bsgk->btgrk", probs, values)

    if length <= QUERY_BLOCK:
        return block(q, q_index, doc_start)
    pieces = [
        block(q[:, s : s + QUERY_BLOCK], q_index[:, s : s + QUERY_BLOCK], doc_start[:, s : s + QUERY_BLOCK])
        for s in range(0, length, QUERY_BLOCK)
    ]
    return jnp.concatenate(pieces, axis=1)


@register_kind
@dataclasses.dataclass(frozen=True)
class AttentionConfig(KindConfig):
    """Causal GQA attention: `num_heads` query heads over `num_kv_heads` key/value heads (None:
    as many), `head_dim` each (None: width / num_heads); RoPE on `rope_fraction` of each head
    (0: none) with base `rope_theta`; an optional `window_size` (earlier tokens seen); biases
    on q/k/v (`qkv_bias`) and the output (`out_bias`); `score_scale` (None: head_dim^-0.5;
    Granite's `attention_multiplier`); Falcon-H1's `key_multiplier`; an optional sigmoid
    `output_gate` on the heads before the output projection."""

    kind: ClassVar[str] = "attention"
    role: ClassVar[str] = "temporal"
    num_heads: int = 1
    num_kv_heads: int | None = None
    head_dim: int | None = None
    rope_fraction: float = 1.0
    rope_theta: float = float(ROPE_MAX_WAVELENGTH)
    window_size: int | None = None
    qkv_bias: bool = False
    out_bias: bool = False
    score_scale: float | None = None
    key_multiplier: float = 1.0
    output_gate: bool = False

    def __post_init__(self) -> None:
        check_int("attention", "num_heads", self.num_heads)
        if self.num_kv_heads is not None:
            check_int("attention", "num_kv_heads", self.num_kv_heads)
            check_divides("attention", "num_kv_heads", self.num_kv_heads, "num_heads", self.num_heads)
        if self.head_dim is not None:
            check_int("attention", "head_dim", self.head_dim)
        if self.rope_fraction not in (0, 0.25, 0.5, 1, 0.0, 1.0):
            raise ValueError(f"attention.rope_fraction must be 0, 0.25, 0.5 or 1, got {self.rope_fraction!r}")
        check_number("attention", "rope_theta", self.rope_theta, minimum=1.0)
        if self.window_size is not None:
            check_int("attention", "window_size", self.window_size)
        for name in ("qkv_bias", "out_bias", "output_gate"):
            if not isinstance(getattr(self, name), bool):
                raise TypeError(f"attention.{name} must be a bool, got {getattr(self, name)!r}")
        if self.score_scale is not None:
            check_number("attention", "score_scale", self.score_scale)
        check_number("attention", "key_multiplier", self.key_multiplier)

    def resolved_head_dim(self, width: int) -> int:
        """`head_dim`, or width / num_heads when it is None."""
        return width // self.num_heads if self.head_dim is None else self.head_dim

    def validate(self, width: int) -> None:
        """Raise ValueError when the heads do not fit `width` or RoPE would rotate an odd number of features."""
        if self.head_dim is None:
            check_divides("attention", "num_heads", self.num_heads, "width", width)
        rotary = self.resolved_head_dim(width) * self.rope_fraction
        if rotary % 2 or rotary != int(rotary):
            raise ValueError(
                f"attention: RoPE rotates {rotary} features of each head ({self.rope_fraction} of head_dim="
                f"{self.resolved_head_dim(width)}); that must be an even whole number"
            )

    def build(self, width: int, *, key: PRNGKeyArray, dtype: Any, num_layers: int) -> Attention:
        """The `Attention` module (output projection init scale 2 / num_layers)."""
        head_dim = self.resolved_head_dim(width)
        kv_heads = self.num_kv_heads or self.num_heads
        k_q, k_k, k_v, k_o, k_g = jax.random.split(key, 5)
        linear = lambda n_in, n_out, bias, k, scale=1.0: Linear(  # noqa: E731
            n_in, n_out, use_bias=bias, init_scale=scale, key=k, dtype=dtype
        )
        return Attention(
            q_proj=linear(width, self.num_heads * head_dim, self.qkv_bias, k_q),
            k_proj=linear(width, kv_heads * head_dim, self.qkv_bias, k_k),
            v_proj=linear(width, kv_heads * head_dim, self.qkv_bias, k_v),
            o_proj=linear(self.num_heads * head_dim, width, self.out_bias, k_o, 2.0 / num_layers),
            gate_proj=linear(width, self.num_heads * head_dim, False, k_g) if self.output_gate else None,
            num_heads=self.num_heads,
            num_kv_heads=kv_heads,
            rope_fraction=float(self.rope_fraction),
            rope_theta=float(self.rope_theta),
            window_size=self.window_size,
            score_scale=head_dim**-0.5 if self.score_scale is None else float(self.score_scale),
            key_multiplier=float(self.key_multiplier),
        )
