"""Weight-only int8 layers: `Linear` and the tied embedding with int8 weights and float scales.

Each output channel `o` of a float weight `W` gets a scale `s[o] = max|W[:, o]| / 127`
(stored in the float weight's dtype, rounded before use) and int8 values
`q = clip(round(W / s), -127, 127)`; the layer computes with `q * s`. Output channels are
a `Linear`'s columns and the embedding's vocabulary rows (which are also the tied output
head's output channels).

Numerics: the activation dtype is the promoted dtype of the input and the scales (the
float model's dtype). Right before the matmul the int8 values are cast to it (exact: every
integer up to 127 is a bfloat16, float16 and float32), the product runs in that dtype as
`Linear`'s does, and the scale multiplies the product's output channels once (equal to
dequantising the weight first, with one rounding fewer). The embedding lookup gathers
int8 rows and multiplies them by their scales in the activation dtype.

Only these weights are int8. Everything else keeps the float model's dtype (and fp32
where the blocks always use it: the scan's accumulation, the RG-LRU state, the attention
softmax, RoPE angles), and why:

* the whole RG-LRU: `a_param`, the block-diagonal gates and the recurrence. The decay
  `exp(-8 sigmoid(gate) softplus(a_param))` is raised to the power of up to thousands of
  steps, so an error there compounds along the sequence instead of averaging out; and the
  gates are under 1% of RecurrentGemma's weights;
* norm scales, biases and the conv taps: a handful of values per channel (no memory to
  win), and each multiplies or shifts a whole channel of every token;
* attention scores and the softmax: activations, not weights.
"""

from __future__ import annotations

from typing import ClassVar

import equinox as eqx
import jax.numpy as jnp
from jaxtyping import Array, Float, Int, Int8

from hybrid_seq.blocks.axes import EMBED, VOCAB, Axes
from hybrid_seq.blocks.embed import Embedder
from hybrid_seq.blocks.linear import Linear

#: The largest int8 magnitude used: symmetric, so -128 is never produced.
INT8_MAX = 127


def quantize_channels(weight: Float[Array, "..."], axis: int) -> tuple[Int8[Array, "..."], Float[Array, "..."]]:
    """Symmetric int8 values of `weight` and one scale per slice along `axis` (the reduced input axis).

    Scales are rounded to `weight.dtype` before the values are computed from them (in
    fp32), so `q * s` is what the layer uses; an all-zero channel gets scale 1.
    """
    w = weight.astype(jnp.float32)
    peak = jnp.max(jnp.abs(w), axis=axis)
    scale = jnp.where(peak > 0, peak / INT8_MAX, 1.0).astype(weight.dtype)
    values = jnp.round(w / jnp.expand_dims(scale.astype(jnp.float32), axis))
    return jnp.clip(values, -INT8_MAX, INT8_MAX).astype(jnp.int8), scale


class QuantizedLinear(eqx.Module):
    """`Linear` with an int8 weight `[in, out]` and a scale per output: `y = (x @ q) * scale + bias`.

    Same call as `Linear`; `weight` keeps its path and shape, so the enclosing kind's
    `param_axes` name it as before. The scales are replicated (a few floats per channel).
    """

    weight: Int8[Array, "I O"]
    scale: Float[Array, " O"]
    bias: Float[Array, " O"] | None

    param_axes: ClassVar[dict[tuple[str, ...], Axes]] = {("scale",): (None,)}

    @classmethod
    def from_float(cls, linear: Linear) -> QuantizedLinear:
        """`linear` quantized per output channel (its bias kept as it is)."""
        weight, scale = quantize_channels(linear.weight, axis=-2)
        return cls(weight=weight, scale=scale, bias=linear.bias)

    def __call__(self, x: Float[Array, "*batch I"]) -> Float[Array, "*batch O"]:
        dtype = jnp.result_type(x, self.scale) if self.bias is None else jnp.result_type(x, self.scale, self.bias)
        y = (x.astype(dtype) @ self.weight.astype(dtype)) * self.scale.astype(dtype)
        return y if self.bias is None else y + self.bias.astype(dtype)


class QuantizedEmbedder(eqx.Module):
    """`Embedder` with an int8 table `[V, D]` (`quantized`) and a scale per vocabulary row.

    Same `encode`, `decode`, `dtype` and `vocab_size` as `Embedder`: the row scale
    dequantises a looked-up row, and scales a logit of the tied head; `dtype` is the float
    dtype of the table it stands for.
    """

    quantized: Int8[Array, "V D"]
    scale: Float[Array, " V"]
    scale_by_sqrt_dim: bool = eqx.field(static=True)

    param_axes: ClassVar[dict[tuple[str, ...], Axes]] = {("quantized",): (VOCAB, EMBED), ("scale",): (VOCAB,)}

    @classmethod
    def from_float(cls, embedder: Embedder) -> QuantizedEmbedder:
        """`embedder` quantized per vocabulary row."""
        quantized, scale = quantize_channels(embedder.weight, axis=-1)
        return cls(quantized=quantized, scale=scale, scale_by_sqrt_dim=embedder.scale_by_sqrt_dim)

    @property
    def dtype(self) -> jnp.dtype:
        """The float dtype of the table this one stands for (that of the scales)."""
        return self.scale.dtype

    @property
    def vocab_size(self) -> int:
        """Rows of the table."""
        return self.quantized.shape[0]

    def encode(self, tokens: Int[Array, "*batch"]) -> Float[Array, "*batch D"]:
        """Rows times their scales (NaN rows for out-of-range ids, as `Embedder`), times `bf16(sqrt(D))` when scaling."""
        rows = self.quantized.at[tokens].get(mode="fill", fill_value=0, wrap_negative_indices=False)
        scale = self.scale.at[tokens].get(mode="fill", fill_value=jnp.nan, wrap_negative_indices=False)
        x = rows.astype(self.scale.dtype) * scale[..., None]
        if self.scale_by_sqrt_dim:
            x = x * jnp.sqrt(jnp.float32(self.quantized.shape[1])).astype(jnp.bfloat16)
        return x

    def decode(self, x: Float[Array, "*batch D"]) -> Float[Array, "*batch V"]:
        """Logits `(x @ quantized.T) * scale` in the promoted dtype of `x` and the scales."""
        dtype = jnp.result_type(x, self.scale)
        return (x.astype(dtype) @ self.quantized.T.astype(dtype)) * self.scale.astype(dtype)
