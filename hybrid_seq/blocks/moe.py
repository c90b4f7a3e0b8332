"""Mixture of experts: a router picks `top_k` of `num_experts` MLPs per token, plus an optional shared MLP; its kind.

Routers (the families' normalisation options):

* ``"softmax_topk"`` (Granite): the top-k router logits, then a softmax over those k;
* ``"softmax"`` (Mixtral, Qwen): a softmax over all experts, then the top k (renormalised to
  sum to 1 when `normalize_top_k`);
* ``"sigmoid"`` (Nemotron-H, DeepSeek-V3): sigmoid scores; the choice adds a per-expert
  `selection_bias` (selection only) and may be limited to the best `topk_groups` of
  `num_groups` expert groups; the weights are the chosen scores (divided by their sum when
  `normalize_top_k`) times `routed_scaling`.

The output is `sum_j w_j * expert_{i_j}(x)` over the chosen experts, exactly the dense form
`sum_e w~_e * expert_e(x)` with `w~` zero off the chosen set. `implementation="ragged"`
computes only the chosen experts (tokens grouped by expert, `jax.lax.ragged_dot`);
``"dense"`` runs every expert (the reference form, for checks). Router logits and weights in
float32; expert matmuls in the activation dtype; the weighted sum in float32, cast back.
"""

from __future__ import annotations

import dataclasses
from typing import Any, ClassVar

import equinox as eqx
import jax
import jax.numpy as jnp
from jaxtyping import Array, Float, Int, PRNGKeyArray

from hybrid_seq.blocks.activations import ACTIVATIONS, activation
from hybrid_seq.blocks.axes import EMBED, MLP, Axes
from hybrid_seq.blocks.linear import Linear
from hybrid_seq.blocks.mixer import AbstractChannelMixer
from hybrid_seq.blocks.mlp import MLPConfig
from hybrid_seq.blocks.numerics import variance_scaling
from hybrid_seq.kinds import KindConfig, check_choice, check_divides, check_int, check_number, register_kind

#: The logical axis of the experts.
EXPERTS = "experts"
ROUTERS = ("softmax_topk", "softmax", "sigmoid")
IMPLEMENTATIONS = ("ragged", "dense")


class MoE(AbstractChannelMixer):
    """Routed experts (`[E, D, F]` up and gate, `[E, F, D]` down) and an optional shared MLP."""

    router: Linear
    selection_bias: Float[Array, " E"] | None
    up: Float[Array, "E D F"]
    gate: Float[Array, "E D F"] | None
    down: Float[Array, "E F D"]
    shared: AbstractChannelMixer | None
    top_k: int = eqx.field(static=True)
    router_kind: str = eqx.field(static=True)
    normalize_top_k: bool = eqx.field(static=True)
    routed_scaling: float = eqx.field(static=True)
    num_groups: int = eqx.field(static=True)
    topk_groups: int = eqx.field(static=True)
    activation: str = eqx.field(static=True)
    implementation: str = eqx.field(static=True)

    param_axes: ClassVar[dict[tuple[str, ...], Axes]] = {
        ("router", "weight"): (EMBED, None),
        ("selection_bias",): (None,),
        ("up",): (EXPERTS, EMBED, MLP),
        ("gate",): (EXPERTS, EMBED, MLP),
        ("down",): (EXPERTS, MLP, EMBED),
    }

    @property
    def num_experts(self) -> int:
        """Number of routed experts E."""
        return self.up.shape[0]

    def route(self, x: Float[Array, "N D"]) -> tuple[Float[Array, "N k"], Int[Array, "N k"]]:
        """The weights (float32) and indices of each token's chosen experts."""
        logits = self.router(x).astype(jnp.float32)
        if self.router_kind == "softmax_topk":
            values, index = jax.lax.top_k(logits, self.top_k)
            return jax.nn.softmax(values, axis=-1), index
        if self.router_kind == "softmax":
            values, index = jax.lax.top_k(jax.nn.softmax(logits, axis=-1), self.top_k)
        else:
            scores = jax.nn.sigmoid(logits)
            choice = scores if self.selection_bias is None else scores + self.selection_bias.astype(jnp.float32)
            _, index = jax.lax.top_k(self._limit_groups(choice), self.top_k)
            values = jnp.take_along_axis(scores, index, axis=-1)
        if self.normalize_top_k:
            values = values / (jnp.sum(values, axis=-1, keepdims=True) + 1e-20)
        return values * self.routed_scaling, index

    def _limit_groups(self, choice: Float[Array, "N E"]) -> Float[Array, "N E"]:
        """Mask all but the `topk_groups` expert groups with the best top-2 sums (a no-op with one group)."""
        if self.num_groups == 1:
            return choice
        grouped = choice.reshape(choice.shape[0], self.num_groups, -1)
        group_score = jnp.sum(jax.lax.top_k(grouped, 2)[0], axis=-1)
        _, keep = jax.lax.top_k(group_score, self.topk_groups)
        kept = jnp.zeros(group_score.shape, bool).at[jnp.arange(choice.shape[0])[:, None], keep].set(True)
        return jnp.where(kept[..., None], grouped, -jnp.inf).reshape(choice.shape)

    def __call__(self, x: Float[Array, "*batch D"]) -> Float[Array, "*batch D"]:
        """The chosen experts' weighted sum (plus the shared MLP) of each token."""
        tokens = x.reshape(-1, x.shape[-1])
        weights, index = self.route(tokens)
        routed = (self._dense if self.implementation == "dense" else self._ragged)(tokens, weights, index)
        out = routed.astype(x.dtype).reshape(x.shape)
        return out if self.shared is None else out + self.shared(x)

    def _expert(self, x: Array, up: Array, gate: Array | None, down: Array, matmul: Any) -> Array:
        hidden = matmul(x, up)
        if gate is not None:
            hidden = activation(self.activation)(matmul(x, gate)) * hidden
        else:
            hidden = activation(self.activation)(hidden)
        return matmul(hidden, down)

    def _dense(self, tokens: Array, weights: Array, index: Array) -> Float[Array, "N D"]:
        every = jax.vmap(lambda up, gate, down: self._expert(tokens, up, gate, down, jnp.matmul))(
            self.up, self.gate, self.down
        )
        dense = jnp.zeros((tokens.shape[0], self.num_experts), jnp.float32)
        dense = dense.at[jnp.arange(tokens.shape[0])[:, None], index].add(weights)
        return jnp.einsum("ne,end->nd", dense, every.astype(jnp.float32))

    def _ragged(self, tokens: Array, weights: Array, index: Array) -> Float[Array, "N D"]:
        count, k = index.shape
        flat = index.reshape(-1)
        order = jnp.argsort(flat, stable=True)
        grouped = tokens[order // k]
        sizes = jnp.bincount(flat, length=self.num_experts).astype(jnp.int32)
        ragged = lambda lhs, rhs: jax.lax.ragged_dot(lhs, rhs, sizes)  # noqa: E731
        out = self._expert(grouped, self.up, self.gate, self.down, ragged)
        unsorted = jnp.zeros_like(out).at[order].set(out, unique_indices=True)
        return jnp.einsum("nk,nkd->nd", weights, unsorted.reshape(count, k, -1).astype(jnp.float32))


@register_kind
@dataclasses.dataclass(frozen=True)
class MoEConfig(KindConfig):
    """`num_experts` expert MLPs of `hidden_width` (gated or plain, `activation`), `top_k` per
    token by `router` (`ROUTERS`, see the module docstring), and an optional `shared` MLP
    applied to every token."""

    kind: ClassVar[str] = "moe"
    role: ClassVar[str] = "channel"
    num_experts: int = 2
    top_k: int = 1
    hidden_width: int = 1
    activation: str = "silu"
    gated: bool = True
    router: str = "softmax_topk"
    normalize_top_k: bool = False
    routed_scaling: float = 1.0
    selection_bias: bool = False
    num_groups: int = 1
    topk_groups: int = 1
    shared: MLPConfig | None = None
    implementation: str = "ragged"

    def __post_init__(self) -> None:
        for name in ("num_experts", "top_k", "hidden_width", "num_groups", "topk_groups"):
            check_int("moe", name, getattr(self, name))
        if self.top_k > self.num_experts:
            raise ValueError(f"moe: top_k={self.top_k} exceeds num_experts={self.num_experts}")
        check_divides("moe", "num_groups", self.num_groups, "num_experts", self.num_experts)
        if self.topk_groups > self.num_groups:
            raise ValueError(f"moe: topk_groups={self.topk_groups} exceeds num_groups={self.num_groups}")
        check_choice("moe", "activation", self.activation, tuple(ACTIVATIONS))
        check_choice("moe", "router", self.router, ROUTERS)
        check_choice("moe", "implementation", self.implementation, IMPLEMENTATIONS)
        check_number("moe", "routed_scaling", self.routed_scaling)
        for name in ("gated", "normalize_top_k", "selection_bias"):
            if not isinstance(getattr(self, name), bool):
                raise TypeError(f"moe.{name} must be a bool, got {getattr(self, name)!r}")
        if self.selection_bias and self.router != "sigmoid":
            raise ValueError("moe: selection_bias is only used by the sigmoid router")
        if self.shared is not None and not isinstance(self.shared, MLPConfig):
            raise TypeError(f"moe.shared must be an MLPConfig or None, got {self.shared!r}")

    def build(self, width: int, *, key: PRNGKeyArray, dtype: Any, num_layers: int) -> MoE:
        """The `MoE` module (down-projection init scale 2 / num_layers)."""
        k_router, k_up, k_gate, k_down, k_shared = jax.random.split(key, 5)
        experts, hidden = self.num_experts, self.hidden_width
        return MoE(
            router=Linear(width, experts, use_bias=False, key=k_router, dtype=dtype),
            selection_bias=jnp.zeros((experts,), jnp.float32) if self.selection_bias else None,
            up=variance_scaling(k_up, (experts, width, hidden), width, 1.0, dtype),
            gate=variance_scaling(k_gate, (experts, width, hidden), width, 1.0, dtype) if self.gated else None,
            down=variance_scaling(k_down, (experts, hidden, width), hidden, 2.0 / num_layers, dtype),
            shared=None if self.shared is None else self.shared.build(width, key=k_shared, dtype=dtype, num_layers=num_layers),
            top_k=self.top_k,
            router_kind=self.router,
            normalize_top_k=self.normalize_top_k,
            routed_scaling=float(self.routed_scaling),
            num_groups=self.num_groups,
            topk_groups=self.topk_groups,
            activation=self.activation,
            implementation=self.implementation,
        )
