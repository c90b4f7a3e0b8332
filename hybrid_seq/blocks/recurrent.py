"""Griffin's recurrent temporal block (gated branch x: Conv1D -> RG-LRU, times GeLU branch y) and its kind."""

from __future__ import annotations

import dataclasses
from typing import Any, ClassVar

import equinox as eqx
import jax
import jax.numpy as jnp
from jax.typing import DTypeLike
from jaxtyping import Array, Float, Float32, Int, PRNGKeyArray

from hybrid_seq.blocks.axes import EMBED, LRU, LRU_BLOCKS, Axes
from hybrid_seq.blocks.conv1d import Conv1D
from hybrid_seq.blocks.linear import Linear
from hybrid_seq.blocks.mixer import AbstractMixer
from hybrid_seq.blocks.reference_names import ReferenceLeaf, ReferenceNames, dense
from hybrid_seq.blocks.rglru import GATE_DTYPES, RGLRU
from hybrid_seq.distributed import context
from hybrid_seq.kinds import KindConfig, check_choice, check_divides, check_int, register_kind


class RecurrentState(eqx.Module):
    """State of a recurrent block: RG-LRU hidden state (fp32) and the Conv1D's last inputs."""

    rg_lru: Float32[Array, "B L"]
    conv1d: Float[Array, "B K1 L"]


class RecurrentBlock(AbstractMixer):
    """`linear_out(RG_LRU(Conv1D(linear_x(x))) * gelu(linear_y(x)))`, width D -> L -> D."""

    linear_y: Linear
    linear_x: Linear
    conv_1d: Conv1D
    rg_lru: RGLRU
    linear_out: Linear

    # Channels split in whole gate blocks: the recurrence needs no communication.
    param_axes: ClassVar[dict[tuple[str, ...], Axes]] = {
        ("linear_x", "weight"): (EMBED, LRU),
        ("linear_x", "bias"): (LRU,),
        ("linear_y", "weight"): (EMBED, LRU),
        ("linear_y", "bias"): (LRU,),
        ("conv_1d", "weight"): (None, LRU),
        ("conv_1d", "bias"): (LRU,),
        ("rg_lru", "a_param"): (LRU,),
        ("rg_lru", "input_gate", "weight"): (LRU_BLOCKS, None, None),
        ("rg_lru", "input_gate", "bias"): (LRU_BLOCKS, None),
        ("rg_lru", "a_gate", "weight"): (LRU_BLOCKS, None, None),
        ("rg_lru", "a_gate", "bias"): (LRU_BLOCKS, None),
        ("linear_out", "weight"): (LRU, EMBED),
        ("linear_out", "bias"): (EMBED,),
    }
    reference_names: ClassVar[ReferenceNames] = ReferenceNames(
        flax_block="recurrent_block",
        hf_block="temporal_block",
        leaves={
            **dense("linear_x"),
            **dense("linear_y"),
            **dense("linear_out"),
            ("conv_1d", "weight"): ReferenceLeaf(("conv_1d", "w"), None, "conv_1d.weight", "conv"),
            ("conv_1d", "bias"): ReferenceLeaf(("conv_1d", "b"), None, "conv_1d.bias", "none"),
            ("rg_lru", "a_param"): ReferenceLeaf(("rg_lru", "a_param"), None, "rg_lru.recurrent_param", "none"),
            ("rg_lru", "input_gate", "weight"): ReferenceLeaf(
                ("rg_lru", "input_gate", "w"), None, "rg_lru.input_gate_weight", "none"
            ),
            ("rg_lru", "input_gate", "bias"): ReferenceLeaf(
                ("rg_lru", "input_gate", "b"), None, "rg_lru.input_gate_bias", "none"
            ),
            ("rg_lru", "a_gate", "weight"): ReferenceLeaf(
                ("rg_lru", "a_gate", "w"), None, "rg_lru.recurrent_gate_weight", "none"
            ),
            ("rg_lru", "a_gate", "bias"): ReferenceLeaf(
                ("rg_lru", "a_gate", "b"), None, "rg_lru.recurrent_gate_bias", "none"
            ),
        },
    )

    def __init__(
        self,
        width: int,
        lru_width: int,
        num_heads: int,
        *,
        conv1d_temporal_width: int = 4,
        final_init_scale: float = 1.0,
        key: PRNGKeyArray,
        dtype: DTypeLike = jnp.float32,
        scan_backend: str = "auto",
        gate_dtype: str | None = None,
    ):
        k_y, k_x, k_conv, k_lru, k_out = jax.random.split(key, 5)
        self.linear_y = Linear(width, lru_width, use_bias=True, key=k_y, dtype=dtype)
        self.linear_x = Linear(width, lru_width, use_bias=True, key=k_x, dtype=dtype)
        self.conv_1d = Conv1D(lru_width, conv1d_temporal_width, key=k_conv, dtype=dtype)
        self.rg_lru = RGLRU(
            lru_width, num_heads, key=k_lru, dtype=dtype, scan_backend=scan_backend, gate_dtype=gate_dtype
        )
        self.linear_out = Linear(
            lru_width, width, use_bias=True, init_scale=final_init_scale, key=k_out, dtype=dtype
        )

    def axis_units(self) -> dict[str, int]:
        """Sharding splits the RG-LRU channels only in whole gate blocks (see `hybrid_seq.distributed.rules`)."""
        blocks = self.rg_lru.input_gate.weight.shape[-3]
        return {LRU: blocks, LRU_BLOCKS: blocks}

    def init_state(self, batch_size: int, max_length: int | None, dtype: DTypeLike) -> RecurrentState:
        """Fixed size whatever `max_length`: `[B, L]` float32 and the conv's last `K - 1` inputs."""
        return RecurrentState(
            rg_lru=self.rg_lru.init_state(batch_size),
            conv1d=self.conv_1d.init_state(batch_size, dtype),
        )

    def __call__(
        self, x: Float[Array, "B T D"], positions: Int[Array, "B T"], state: RecurrentState | None = None
    ) -> tuple[Float[Array, "B T D"], RecurrentState]:
        """The block's output and its RG-LRU and conv states."""
        units = self.axis_units()[LRU]
        y = context.constrain(jax.nn.gelu(self.linear_y(x), approximate=True), channel_dim=2, units=units)
        u = context.constrain(self.linear_x(x), channel_dim=2, units=units)
        u, conv_state = self.conv_1d(u, positions, None if state is None else state.conv1d)
        u, lru_state = self.rg_lru(u, positions, None if state is None else state.rg_lru)
        return self.linear_out(u * y), RecurrentState(rg_lru=lru_state, conv1d=conv_state)


@register_kind
@dataclasses.dataclass(frozen=True)
class RecurrentConfig(KindConfig):
    """Griffin's recurrent block: RG-LRU of width `lru_width` (None: the model width) with
    `num_heads` gate blocks, after a causal conv of `conv1d_temporal_width` taps.

    `gate_dtype="float32"` computes the RG-LRU gates and decays in float32 even for bf16
    weights (bf16 rounds a decay of 0.999 to 1.0); None follows the weights, as the reference.
    """

    kind: ClassVar[str] = "recurrent"
    role: ClassVar[str] = "temporal"
    lru_width: int | None = None
    num_heads: int = 1
    conv1d_temporal_width: int = 4
    gate_dtype: str | None = None

    def __post_init__(self) -> None:
        if self.lru_width is not None:
            check_int("recurrent", "lru_width", self.lru_width)
        check_int("recurrent", "num_heads", self.num_heads)
        check_int("recurrent", "conv1d_temporal_width", self.conv1d_temporal_width)
        check_choice("recurrent", "gate_dtype", self.gate_dtype, GATE_DTYPES)

    def resolved_lru_width(self, width: int) -> int:
        """L: `lru_width`, or `width` when it is None."""
        return width if self.lru_width is None else self.lru_width

    def validate(self, width: int) -> None:
        """Raise ValueError unless num_heads divides the RG-LRU width."""
        check_divides("recurrent", "num_heads", self.num_heads, "lru_width", self.resolved_lru_width(width))

    def build(self, width: int, *, key: PRNGKeyArray, dtype: Any, num_layers: int) -> RecurrentBlock:
        """The `RecurrentBlock` (output projection init scale 2 / num_layers)."""
        return RecurrentBlock(
            width,
            self.resolved_lru_width(width),
            self.num_heads,
            conv1d_temporal_width=self.conv1d_temporal_width,
            final_init_scale=2.0 / num_layers,
            key=key,
            dtype=dtype,
            gate_dtype=self.gate_dtype,
        )
