"""`quantize(model, "int8")`: the same model with weight-only int8 linear layers and embedding.

The quantized model has the float model's call and state: only weights change (see
`hybrid_seq.blocks.quantized` for what becomes int8, what stays float and why). It saves
and loads in our format with its int8 tensors and scales (`hybrid_seq.io`), and the
`Sampler` runs it like any model. It is for inference: nothing here trains int8 weights.
"""

from __future__ import annotations

from typing import Any

import jax

from hybrid_seq.blocks.embed import Embedder
from hybrid_seq.blocks.linear import Linear
from hybrid_seq.blocks.quantized import QuantizedEmbedder, QuantizedLinear
from hybrid_seq.model import Model

#: The schemes `quantize` knows: "int8" is symmetric int8 with one scale per output channel.
SCHEMES = ("int8",)

#: Each float layer that is quantized, and what it becomes.
_QUANTIZED = {Linear: QuantizedLinear, Embedder: QuantizedEmbedder}
_QUANTIZED_TYPES = tuple(_QUANTIZED.values())


def check_scheme(scheme: Any) -> str:
    """`scheme` if it is one of `SCHEMES`, else a ValueError listing them."""
    if not isinstance(scheme, str) or scheme not in SCHEMES:
        raise ValueError(f"unknown quantization scheme {scheme!r}; expected one of: {', '.join(SCHEMES)}")
    return scheme


def quantization_of(model: Any) -> str | None:
    """The scheme `model` (or any module) is quantized with, or None if it holds no quantized layer."""
    found = [node for node in jax.tree_util.tree_leaves(model, is_leaf=_is_quantized) if _is_quantized(node)]
    return "int8" if found else None


def quantize(model: Model, scheme: str) -> Model:
    """`model` with every `Linear` (an untied head's too) and its `Embedder` quantized by `scheme`.

    Per output channel: a `Linear`'s output features, and each vocabulary row of the
    embedding (so the tied output head's too). Stacked layers stay
    stacked. A model that is already quantized, even in part, is refused: quantize the
    float model it came from.
    """
    check_scheme(scheme)
    if not isinstance(model, Model):
        raise TypeError(f"quantize needs a hybrid_seq Model, got {type(model).__name__}")
    already = quantization_of(model)
    if already is not None:
        raise ValueError(f"the model is already quantized ({already}); quantize the float model instead")
    stacked = model.layers_stacked
    floats = lambda node: type(node) in _QUANTIZED  # noqa: E731
    swapped = jax.tree_util.tree_map(
        lambda node: _QUANTIZED[type(node)].from_float(node) if floats(node) else node,
        model.unstack_layers(),
        is_leaf=floats,
    )
    return swapped.stack_layers() if stacked else swapped


def _is_quantized(node: Any) -> bool:
    return isinstance(node, _QUANTIZED_TYPES)
