"""MLPs: Griffin's gated-GeLU MLP, and the general gated or plain MLP of the HF families; their kind configs."""

from __future__ import annotations

import dataclasses
from typing import Any, ClassVar

import equinox as eqx
import jax
import jax.numpy as jnp
from jax.typing import DTypeLike
from jaxtyping import Array, Float, PRNGKeyArray

from hybrid_seq.blocks.activations import ACTIVATIONS, activation
from hybrid_seq.blocks.axes import EMBED, Axes
from hybrid_seq.blocks.axes import MLP as MLP_AXIS
from hybrid_seq.blocks.linear import Linear
from hybrid_seq.blocks.mixer import AbstractChannelMixer
from hybrid_seq.blocks.reference_names import ReferenceLeaf, ReferenceNames
from hybrid_seq.kinds import KindConfig, check_choice, check_int, check_number, register_kind


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
        ("gate", "weight"): (EMBED, MLP_AXIS),
        ("gate", "bias"): (MLP_AXIS,),
        ("up", "weight"): (EMBED, MLP_AXIS),
        ("up", "bias"): (MLP_AXIS,),
        ("down", "weight"): (MLP_AXIS, EMBED),
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
        """`down(gelu(gate(x)) * up(x))`."""
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
        """The `GatedMLP` (down-projection init scale 2 / num_layers)."""
        return GatedMLP(width, self.expanded_width, final_init_scale=2.0 / num_layers, key=key, dtype=dtype)


class MLP(AbstractChannelMixer):
    """A gated (`down(act(gate(x) * m_gate) * up(x)) * m_down`) or plain (`down(act(up(x)))`) MLP.

    The general channel mixer of the HF families: SiLU-gated (Llama, Granite, Falcon-H1,
    with Falcon's two multipliers) or ReLU²-plain (Nemotron-H). Computed in the promoted
    dtype of `x` and the weights.
    """

    up: Linear
    gate: Linear | None
    down: Linear
    activation: str = eqx.field(static=True)
    gate_multiplier: float = eqx.field(static=True)
    down_multiplier: float = eqx.field(static=True)

    param_axes: ClassVar[dict[tuple[str, ...], Axes]] = {
        ("up", "weight"): (EMBED, MLP_AXIS),
        ("up", "bias"): (MLP_AXIS,),
        ("gate", "weight"): (EMBED, MLP_AXIS),
        ("gate", "bias"): (MLP_AXIS,),
        ("down", "weight"): (MLP_AXIS, EMBED),
        ("down", "bias"): (EMBED,),
    }

    def __call__(self, x: Float[Array, "*batch D"]) -> Float[Array, "*batch D"]:
        """The gated or plain MLP of `x` (see the class docstring)."""
        act = activation(self.activation)
        if self.gate is None:
            hidden = act(self.up(x))
        else:
            gate = self.gate(x)
            hidden = act(gate if self.gate_multiplier == 1 else gate * self.gate_multiplier) * self.up(x)
        out = self.down(hidden)
        return out if self.down_multiplier == 1 else out * self.down_multiplier


@register_kind
@dataclasses.dataclass(frozen=True)
class MLPConfig(KindConfig):
    """An MLP of hidden width `hidden_width`: gated or plain, any `activation` of
    `blocks.activations`, with or without biases, and Falcon-H1's gate/down multipliers."""

    kind: ClassVar[str] = "mlp"
    role: ClassVar[str] = "channel"
    hidden_width: int = 1
    activation: str = "silu"
    gated: bool = True
    bias: bool = False
    gate_multiplier: float = 1.0
    down_multiplier: float = 1.0

    def __post_init__(self) -> None:
        check_int("mlp", "hidden_width", self.hidden_width)
        check_choice("mlp", "activation", self.activation, tuple(ACTIVATIONS))
        for name in ("gated", "bias"):
            if not isinstance(getattr(self, name), bool):
                raise TypeError(f"mlp.{name} must be a bool, got {getattr(self, name)!r}")
        check_number("mlp", "gate_multiplier", self.gate_multiplier)
        check_number("mlp", "down_multiplier", self.down_multiplier)

    def build(self, width: int, *, key: PRNGKeyArray, dtype: Any, num_layers: int) -> MLP:
        """The `MLP` module (down-projection init scale 2 / num_layers)."""
        k_up, k_gate, k_down = jax.random.split(key, 3)
        return MLP(
            up=Linear(width, self.hidden_width, use_bias=self.bias, key=k_up, dtype=dtype),
            gate=Linear(width, self.hidden_width, use_bias=self.bias, key=k_gate, dtype=dtype) if self.gated else None,
            down=Linear(self.hidden_width, width, use_bias=self.bias, init_scale=2.0 / num_layers, key=k_down, dtype=dtype),
            activation=self.activation,
            gate_multiplier=float(self.gate_multiplier),
            down_multiplier=float(self.down_multiplier),
        )
