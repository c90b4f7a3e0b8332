"""RMSNorm in the two flavours hybrid families use, and the config that picks one."""

from __future__ import annotations

import dataclasses
from typing import ClassVar

import equinox as eqx
import jax
import jax.numpy as jnp
from jax.typing import DTypeLike
from jaxtyping import Array, Float

from hybrid_seq.blocks.axes import EMBED, Axes
from hybrid_seq.blocks.numerics import promote
from hybrid_seq.kinds import check_number


class RMSNorm(eqx.Module):
    """`y = x * rsqrt(mean(x^2) + eps) * w` over the last axis, `w = 1 + scale` or `w = scale`.

    With `offset=True` (Gemma/Griffin) `scale` starts at zeros and the weight is `1 + scale`;
    with `offset=False` (Llama, Mamba-2 and the HF hybrids) `scale` starts at ones. By
    default computed in the promoted dtype of `x` and `scale` with no float32 upcast, as the
    reference does; `upcast=True` normalises in float32, casts back to `x`'s dtype, then
    applies the weight (the Llama/Mamba-2 convention of HuggingFace; only bf16/fp16 differ).
    """

    scale: Float[Array, " D"]
    eps: float = eqx.field(static=True)
    offset: bool = eqx.field(static=True)
    upcast: bool = eqx.field(static=True)

    param_axes: ClassVar[dict[tuple[str, ...], Axes]] = {("scale",): (EMBED,)}

    def __init__(
        self,
        width: int,
        *,
        eps: float = 1e-6,
        offset: bool = True,
        upcast: bool = False,
        dtype: DTypeLike = jnp.float32,
    ):
        self.scale = (jnp.zeros if offset else jnp.ones)((width,), dtype)
        self.eps = eps
        self.offset = offset
        self.upcast = upcast

    def __call__(self, x: Float[Array, "*batch D"]) -> Float[Array, "*batch D"]:
        """The normalised `x`, in the promoted dtype of `x` and `scale`."""
        if self.upcast:
            x32 = x.astype(jnp.float32)
            normed = (x32 * jax.lax.rsqrt(jnp.mean(jnp.square(x32), axis=-1, keepdims=True) + self.eps)).astype(x.dtype)
            normed, scale = promote(normed, self.scale)
            return normed * ((scale + 1) if self.offset else scale)
        x, scale = promote(x, self.scale)
        var = jnp.mean(jnp.square(x), axis=-1, keepdims=True)
        return x * jax.lax.rsqrt(var + self.eps) * ((scale + 1) if self.offset else scale)


@dataclasses.dataclass(frozen=True)
class NormConfig:
    """Which RMSNorm a model uses for every pre-norm and the final norm."""

    eps: float = 1e-6
    offset: bool = True
    upcast: bool = False

    def __post_init__(self) -> None:
        check_number("NormConfig", "eps", self.eps, minimum=0.0)
        for name in ("offset", "upcast"):
            if not isinstance(getattr(self, name), bool):
                raise TypeError(f"NormConfig.{name} must be a bool, got {getattr(self, name)!r}")

    def build(self, width: int, *, dtype: DTypeLike) -> RMSNorm:
        """An `RMSNorm` of `width` features with these settings."""
        return RMSNorm(width, eps=self.eps, offset=self.offset, upcast=self.upcast, dtype=dtype)
