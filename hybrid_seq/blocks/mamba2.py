"""Mamba-2 (SSD): projections, a causal conv, the selective state-space recurrence, a gated norm; its kind.

For each head `h` (of `H`, each `P` wide, reading the `B`/`C` group `h // (H / G)`):

    x, B, C = silu(conv([x_proj, b_proj, c_proj](u)))          z = z_proj(u)
    dt_t    = clamp(softplus(dt_proj(u)_t + dt_bias), limit)    a_t = exp(dt_t * A),  A = -exp(A_log)
    S_t     = a_t * S_{t-1} + B_t (outer) (dt_t * x_t)          (S is [N, P], reset at a document start)
    y_t     = C_t . S_t + D * x_t
    out     = out_proj(norm(y * silu(z)))    (or norm(y) * silu(z), or y * silu(z) without a norm)

The recurrence is a `hybrid_seq.matrix_scan` (queries C, keys B, values dt * x, scalar decay
per head), so it resets at document starts inside the kernel, any chunking equals one pass,
and the scan backend is switchable. HF's fused `in_proj` (rows z, x, B, C, dt) and conv over
`xBC` are held as separate projections and convs here (the same math): each can be split by
heads or groups for tensor parallelism, and Falcon-H1's per-segment multipliers apply to each.

Numerics: projections and the conv in the activation dtype; dt, the decay, the scan, the D
skip and the gated norm in float32 (HF's choices); the result is cast to the activation
dtype before `out_proj`. The state: the conv's last `K - 1` inputs (activation dtype) and
the `[B, H, N, P]` float32 SSM state.
"""

from __future__ import annotations

import dataclasses
from typing import Any, ClassVar

import equinox as eqx
import jax
import jax.numpy as jnp
from jax.typing import DTypeLike
from jaxtyping import Array, Float, Float32, Int, PRNGKeyArray

from hybrid_seq import matrix_scan as matrix_scan_lib
from hybrid_seq.blocks.axes import EMBED, HEADS, KV, Axes
from hybrid_seq.blocks.conv1d import Conv1D
from hybrid_seq.blocks.hf_names import HFTensor, linear
from hybrid_seq.blocks.linear import Linear
from hybrid_seq.blocks.mixer import AbstractMixer, AbstractScanning
from hybrid_seq.kinds import KindConfig, check_choice, check_int, check_number, register_kind

#: Where the gated norm sits: after the gate (Mamba-2, Nemotron-H, Granite), before it
#: (Falcon-H1's `mamba_norm_before_gate`), or nowhere (Falcon-H1's default).
NORMS = ("gated", "before_gate", "none")


class Mamba2State(eqx.Module):
    """The conv's last `K - 1` inputs (for x, B and C) and the SSM state `[B, H, N, P]` (float32)."""

    conv_x: Float[Array, "B K1 I"]
    conv_b: Float[Array, "B K1 GN"]
    conv_c: Float[Array, "B K1 GN"]
    ssm: Float32[Array, "B H N P"]


class GroupedRMSNorm(eqx.Module):
    """RMSNorm over `groups` equal slices of the last axis separately, times `scale` (float32)."""

    scale: Float[Array, " I"]
    groups: int = eqx.field(static=True)
    eps: float = eqx.field(static=True)

    def __call__(self, x: Float32[Array, "*batch I"]) -> Float32[Array, "*batch I"]:
        grouped = x.reshape(*x.shape[:-1], self.groups, x.shape[-1] // self.groups)
        normed = grouped * jax.lax.rsqrt(jnp.mean(jnp.square(grouped), axis=-1, keepdims=True) + self.eps)
        return normed.reshape(x.shape) * self.scale.astype(jnp.float32)


class Mamba2(AbstractMixer, AbstractScanning):
    """A Mamba-2 mixer (see the module docstring); `scan_backend` names a `hybrid_seq.matrix_scan` backend."""

    z_proj: Linear
    x_proj: Linear
    b_proj: Linear
    c_proj: Linear
    dt_proj: Linear
    conv_x: Conv1D
    conv_b: Conv1D
    conv_c: Conv1D
    dt_bias: Float[Array, " H"]
    A_log: Float[Array, " H"]
    D: Float[Array, " H"]
    norm: GroupedRMSNorm | None
    out_proj: Linear
    num_heads: int = eqx.field(static=True)
    n_groups: int = eqx.field(static=True)
    norm_position: str = eqx.field(static=True)
    time_step_limit: tuple[float, float | None] = eqx.field(static=True)
    projection_multipliers: tuple[float, ...] | None = eqx.field(static=True)
    scan_backend: str = eqx.field(static=True)

    scan_registry: ClassVar[Any] = matrix_scan_lib
    param_axes: ClassVar[dict[tuple[str, ...], Axes]] = {
        **{(name, "weight"): (EMBED, HEADS) for name in ("z_proj", "x_proj")},
        **{(name, "bias"): (HEADS,) for name in ("z_proj", "x_proj")},
        **{(name, "weight"): (EMBED, KV) for name in ("b_proj", "c_proj")},
        **{(name, "bias"): (KV,) for name in ("b_proj", "c_proj")},
        ("dt_proj", "weight"): (EMBED, HEADS),
        ("dt_proj", "bias"): (HEADS,),
        ("conv_x", "weight"): (None, HEADS),
        ("conv_x", "bias"): (HEADS,),
        **{(conv, leaf): (None, KV) if leaf == "weight" else (KV,)
           for conv in ("conv_b", "conv_c") for leaf in ("weight", "bias")},
        ("dt_bias",): (HEADS,),
        ("A_log",): (HEADS,),
        ("D",): (HEADS,),
        ("norm", "scale"): (HEADS,),
        ("out_proj", "weight"): (HEADS, EMBED),
        ("out_proj", "bias"): (EMBED,),
    }

    def axis_units(self) -> dict[str, int]:
        """Sharding splits heads and B/C groups only whole (see `hybrid_seq.distributed.rules`)."""
        return {HEADS: self.num_heads, KV: self.n_groups}

    @property
    def head_dim(self) -> int:
        """Width P of each head."""
        return self.x_proj.weight.shape[1] // self.num_heads

    @property
    def state_size(self) -> int:
        """State size N of each B/C group."""
        return self.b_proj.weight.shape[1] // self.n_groups

    def hf_tensors(self) -> dict[tuple[str, ...], HFTensor]:
        """The HF mixer's names (the same in every family): `in_proj` rows z, x, B, C, dt and
        `conv1d` rows x, B, C hold our separate projections and convs."""
        inner, groups = self.x_proj.weight.shape[1], self.b_proj.weight.shape[1]
        bias = self.x_proj.bias is not None
        bounds = dict(zip(("z", "x", "b", "c", "dt"), _segments(inner, inner, groups, groups, self.num_heads)))
        names = {}
        for part in bounds:
            names.update(linear(f"{part}_proj", "in_proj", bias=bias, rows=bounds[part]))
        for part, rows in zip(("x", "b", "c"), _segments(inner, groups, groups)):
            names[(f"conv_{part}", "weight")] = HFTensor("conv1d.weight", rows, "conv")
            names[(f"conv_{part}", "bias")] = HFTensor("conv1d.bias", rows)
        names.update({(leaf,): HFTensor(leaf) for leaf in ("dt_bias", "A_log", "D")})
        if self.norm is not None:
            names[("norm", "scale")] = HFTensor("norm.weight")
        names.update(linear("out_proj", "out_proj", bias=self.out_proj.bias is not None))
        return names

    def init_state(self, batch_size: int, max_length: int | None, dtype: DTypeLike) -> Mamba2State:
        """Fixed size whatever `max_length`."""
        return Mamba2State(
            conv_x=self.conv_x.init_state(batch_size, dtype),
            conv_b=self.conv_b.init_state(batch_size, dtype),
            conv_c=self.conv_c.init_state(batch_size, dtype),
            ssm=jnp.zeros((batch_size, self.num_heads, self.state_size, self.head_dim), jnp.float32),
        )

    def __call__(
        self, x: Float[Array, "B T D"], positions: Int[Array, "B T"], state: Mamba2State | None = None
    ) -> tuple[Float[Array, "B T D"], Mamba2State]:
        """The mixed sequence and the conv and SSM states after its last token."""
        batch, length, _ = x.shape
        if state is None:
            state = self.init_state(batch, length, jnp.result_type(x, self.x_proj.weight))
        projections = [self.z_proj(x), self.x_proj(x), self.b_proj(x), self.c_proj(x), self.dt_proj(x)]
        if self.projection_multipliers is not None:
            projections = [p * m for p, m in zip(projections, self.projection_multipliers)]
        z, xs, bs, cs, dt = projections
        xs, conv_x = self.conv_x(xs, positions, state.conv_x)
        bs, conv_b = self.conv_b(bs, positions, state.conv_b)
        cs, conv_c = self.conv_c(cs, positions, state.conv_c)
        heads, groups, size = self.num_heads, self.n_groups, self.state_size
        xs = jax.nn.silu(xs).astype(jnp.float32).reshape(batch, length, heads, self.head_dim)
        bs = jax.nn.silu(bs).astype(jnp.float32).reshape(batch, length, groups, size)
        cs = jax.nn.silu(cs).astype(jnp.float32).reshape(batch, length, groups, size)
        dt = jax.nn.softplus((dt + self.dt_bias).astype(jnp.float32))
        low, high = self.time_step_limit
        dt = jnp.clip(dt, low, high)
        log_decay = dt * -jnp.exp(self.A_log.astype(jnp.float32))
        scan = matrix_scan_lib.get(self.scan_backend)
        y, ssm = scan(cs, bs, xs * dt[..., None], log_decay, state.ssm, reset=positions == 0)
        y = y + self.D.astype(jnp.float32)[:, None] * xs
        y = y.reshape(batch, length, heads * self.head_dim)
        gate = jax.nn.silu(z.astype(jnp.float32))
        if self.norm_position == "gated":
            y = self.norm(y * gate)
        elif self.norm_position == "before_gate":
            y = self.norm(y) * gate
        else:
            y = y * gate
        out = self.out_proj(y.astype(x.dtype))
        return out, Mamba2State(conv_x=conv_x, conv_b=conv_b, conv_c=conv_c, ssm=ssm)


def _segments(*sizes: int) -> list[tuple[int, int]]:
    """Consecutive `[start, stop)` ranges of the given sizes."""
    stops = [sum(sizes[: i + 1]) for i in range(len(sizes))]
    return [(stop - size, stop) for size, stop in zip(sizes, stops)]


@register_kind
@dataclasses.dataclass(frozen=True)
class Mamba2Config(KindConfig):
    """A Mamba-2 (SSD) mixer: `num_heads` heads of `head_dim`, `n_groups` B/C groups of
    `state_size`, a causal conv of `conv_width` taps (with bias), projections with or without
    bias (`in_bias`, `out_bias`), the gated norm at `norm` (`NORMS`) with `norm_eps`, dt clamped
    to `time_step_limit` (None: no upper limit), and Falcon-H1's per-projection multipliers
    (z, x, B, C, dt) in `projection_multipliers`."""

    kind: ClassVar[str] = "mamba2"
    role: ClassVar[str] = "temporal"
    num_heads: int = 1
    head_dim: int = 64
    state_size: int = 128
    n_groups: int = 1
    conv_width: int = 4
    in_bias: bool = False
    out_bias: bool = False
    norm: str = "gated"
    norm_eps: float = 1e-5
    time_step_limit: tuple[float, float | None] = (0.0, None)
    projection_multipliers: tuple[float, ...] | None = None

    def __post_init__(self) -> None:
        for name in ("num_heads", "head_dim", "state_size", "n_groups", "conv_width"):
            check_int("mamba2", name, getattr(self, name))
        if self.num_heads % self.n_groups:
            raise ValueError(f"mamba2: n_groups={self.n_groups} must divide num_heads={self.num_heads}")
        for name in ("in_bias", "out_bias"):
            if not isinstance(getattr(self, name), bool):
                raise TypeError(f"mamba2.{name} must be a bool, got {getattr(self, name)!r}")
        check_choice("mamba2", "norm", self.norm, NORMS)
        check_number("mamba2", "norm_eps", self.norm_eps, minimum=0.0)
        low, high = self.time_step_limit
        check_number("mamba2", "time_step_limit[0]", low, minimum=0.0)
        if high is not None:
            check_number("mamba2", "time_step_limit[1]", high, minimum=low)
        if self.projection_multipliers is not None and len(self.projection_multipliers) != 5:
            raise ValueError(
                "mamba2.projection_multipliers must be 5 numbers (z, x, B, C, dt), "
                f"got {self.projection_multipliers!r}"
            )

    @property
    def inner_width(self) -> int:
        """I = num_heads * head_dim."""
        return self.num_heads * self.head_dim

    def build(self, width: int, *, key: PRNGKeyArray, dtype: Any, num_layers: int) -> Mamba2:
        """The `Mamba2` module with HF's initialisation of A, D and dt_bias."""
        keys = iter(jax.random.split(key, 10))
        inner, groups = self.inner_width, self.n_groups * self.state_size
        linear = lambda n_in, n_out, bias, scale=1.0: Linear(  # noqa: E731
            n_in, n_out, use_bias=bias, init_scale=scale, key=next(keys), dtype=dtype
        )
        z_proj, x_proj = linear(width, inner, self.in_bias), linear(width, inner, self.in_bias)
        b_proj, c_proj = linear(width, groups, self.in_bias), linear(width, groups, self.in_bias)
        dt_proj = linear(width, self.num_heads, self.in_bias)
        conv = lambda channels: Conv1D(channels, self.conv_width, key=next(keys), dtype=dtype)  # noqa: E731
        # HF's initialisation: A = -(1 .. H), D = 1, dt = softplus(dt_bias) log-uniform in [1e-3, 0.1].
        dt = jnp.exp(jax.random.uniform(next(keys), (self.num_heads,)) * (jnp.log(0.1) - jnp.log(1e-3)) + jnp.log(1e-3))
        return Mamba2(
            z_proj=z_proj,
            x_proj=x_proj,
            b_proj=b_proj,
            c_proj=c_proj,
            dt_proj=dt_proj,
            conv_x=conv(inner),
            conv_b=conv(groups),
            conv_c=conv(groups),
            dt_bias=(dt + jnp.log(-jnp.expm1(-dt))).astype(dtype),
            A_log=jnp.log(jnp.arange(1, self.num_heads + 1, dtype=jnp.float32)).astype(dtype),
            D=jnp.ones((self.num_heads,), dtype),
            norm=None if self.norm == "none" else GroupedRMSNorm(jnp.ones((inner,), dtype), self.n_groups, self.norm_eps),
            out_proj=linear(inner, width, self.out_bias, 2.0 / num_layers),
            num_heads=self.num_heads,
            n_groups=self.n_groups,
            norm_position=self.norm,
            time_step_limit=(float(self.time_step_limit[0]), None if self.time_step_limit[1] is None else float(self.time_step_limit[1])),
            projection_multipliers=None if self.projection_multipliers is None else tuple(map(float, self.projection_multipliers)),
            scan_backend="auto",
        )
