"""Gated-GeLU MLP (Griffin's channel mixer) and its kind config."""

from __future__ import annotations

import dataclasses
from typing import Any, ClassVar

import jax
import jax.numpy as jnp
from jax.typing import DTypeLike
from jaxtyping import Array, Float, PRNGKeyArray

from hybrid_seq.blocks.axes import EMBED, MLP, Axes
from hybrid_seq.blocks.linear import Linear
from hybrid_seq.blocks.mixer import AbstractChannelMixer
from hybrid_seq.blocks.reference_names import ReferenceLeaf, ReferenceNames
from hybrid_seq.kinds import KindConfig, check_int, register_kind


class GatedMLP(AbstractChannelMixer):
    """`down(gelu(gate(x)) * up(x))` with the tanh-approximate GeLU.

    `gate` and `up` are the reference's `ffw_up.w[0]` and `w[1]`; both are initialised with
    variance `1 / (2 * width)` (the reference's fan-in counts the two branches), `down` with
    `final_init_scale / expanded_width`. Computed in the promoted dtype of `x` and the weights.
    """

    gate: Linear
    up: Linear
    down: Linear

    # The reference stacks gate and up into `ffw_up/w [2, D, E]` and `ffw_up/b [2, 1, 1, E]`.
    reference_names: ClassVar[ReferenceNames] = ReferenceNames(
        flax_block="mlp_block",
        hf_block="mlp_block",
        leaves={
            ("gate", "weight"): ReferenceLeaf(("ffw_up", "w"), (0,), "gate_proj.weight", "T"),
            ("up", "weight"): ReferenceLeaf(("ffw_up", "w"), (1,), "up_proj.weight", "T"),
            ("gate", "bias"): ReferenceLeaf(("ffw_up", "b"), (0, 0, 0), "gate_proj.bias", "none"),
            ("up", "bias"): ReferenceLeaf(("ffw_up", "b"), (1, 0, 0), "up_proj.bias", "none"),
            ("down", "weight"): ReferenceLeaf(("ffw_down", "kernel"), None, "down_proj.weight", "T"),
            ("down", "bias"): ReferenceLeaf(("ffw_down", "bias"), None, "down_proj.bias", "none"),
        },
    )

    param_axes: ClassVar[dict[tuple[str, ...], Axes]] = {
        ("gate", "weight"): (EMBED, MLP),
        ("gate", "bias"): (MLP,),
        ("up", "weight"): (EMBED, MLP),
        ("up", "bias"): (MLP,),
        ("down", "weight"): (MLP, EMBED),
        ("down", "bias"): (EMBED,),
    }

    def __init__(
        self,
        width: int,
        expanded_width: int,
        *,
        final_init_scale: float,
        key: PRNGKeyArray,
        dtype: DTypeLike = jnp.float32,
    ):
        k_gate, k_up, k_down = jax.random.split(key, 3)
        self.gate = Linear(width, expanded_width, use_bias=True, init_scale=0.5, key=k_gate, dtype=dtype)
        self.up = Linear(width, expanded_width, use_bias=True, init_scale=0.5, key=k_up, dtype=dtype)
        self.down = Linear(
            expanded_width, width, use_bias=True, init_scale=final_init_scale, key=k_down, dtype=dtype
        )

    def __call__(self, x: Float[Array, "*batch D"]) -> Float[Array, "*batch D"]:
        return self.down(jax.nn.gelu(self.gate(x), approximate=True) * self.up(x))


@register_kind
@dataclasses.dataclass(frozen=True)
class GatedMLPConfig(KindConfig):
    """Griffin's gated-GeLU MLP of hidden width `expanded_width` (the reference's `mlp_expanded_width`)."""

    kind: ClassVar[str] = "gated_mlp"
    role: ClassVar[str] = "channel"
    expanded_width: int = 1

    def __post_init__(self) -> None:
        check_int("gated_mlp", "expanded_width", self.expanded_width)

    def build(self, width: int, *, key: PRNGKeyArray, dtype: Any, num_layers: int) -> GatedMLP:
        return GatedMLP(width, self.expanded_width, final_init_scale=2.0 / num_layers, key=key, dtype=dtype)
