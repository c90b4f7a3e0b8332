"""The Real-Gated Linear Recurrent Unit (RG-LRU) of Griffin."""

from __future__ import annotations

import functools

import equinox as eqx
import jax
import jax.numpy as jnp
from jax.typing import DTypeLike
from jaxtyping import Array, Float, Float32, Int, PRNGKeyArray

from hybrid_seq import scan as scan_lib
from hybrid_seq.blocks.linear import BlockDiagonalLinear
from hybrid_seq.blocks.mixer import AbstractScanning
from hybrid_seq.blocks.numerics import promote
from hybrid_seq.distributed import sequence
from hybrid_seq.distributed.mesh import SEQ

#: `a = exp(-C * sigmoid(gate_a) * softplus(a_param))`: the gate raises the base decay to a power in [0, C].
DECAY_EXPONENT = 8.0
#: The derivative of `sqrt` in the input normaliser is capped at this value (needed for bf16 training).
SQRT_MAX_DERIVATIVE = 1000.0
MIN_RADIUS, MAX_RADIUS = 0.9, 0.999
#: Accepted `gate_dtype` settings: None follows the weights (the reference), "float32" upcasts.
GATE_DTYPES = (None, "float32")


@functools.partial(jax.custom_vjp, nondiff_argnums=(1,))
def sqrt_bound_derivative(x: Array, max_derivative: float) -> Array:
    """`sqrt(x)` whose derivative is `1 / (2 sqrt(max(x, 1 / (4 max_derivative^2))))`, at most `max_derivative`."""
    return jnp.sqrt(x)


def _sqrt_fwd(x: Array, max_derivative: float) -> tuple[Array, Array]:
    return jnp.sqrt(x), x


def _sqrt_bwd(max_derivative: float, x: Array, grad: Array) -> tuple[Array]:
    floor = 1.0 / (4.0 * max_derivative**2)
    return (grad / (2.0 * jnp.sqrt(jnp.maximum(x, floor))),)


sqrt_bound_derivative.defvjp(_sqrt_fwd, _sqrt_bwd)


def init_a_param(
    key: PRNGKeyArray, width: int, dtype: DTypeLike, min_radius: float = MIN_RADIUS, max_radius: float = MAX_RADIUS
) -> Float[Array, " L"]:
    """`a_param` such that `exp(-softplus(a_param))` is uniform in area on the ring [min_radius, max_radius]."""
    u = jax.random.uniform(key, (width,), jnp.float32)
    log_radius = 0.5 * jnp.log(u * (max_radius**2 - min_radius**2) + min_radius**2 + 1e-8)
    return jnp.log(jnp.exp(-log_radius) - 1.0).astype(dtype)


class RGLRU(AbstractScanning):
    """`h_t = a_t * h_{t-1} + sqrt(1 - a_t^2) * (sigmoid(input_gate(x_t)) * x_t)`.

    with `a_t = exp(-8 * sigmoid(a_gate(x_t)) * softplus(a_param))`. Where a document
    starts (position 0) the state is forgotten (`a = 0`) and the normaliser is 1.
    Gates and decays are computed in the promoted dtype of `x` and the parameters (the
    reference's choice: in bf16 a decay of 0.999 rounds to 1.0, so horizons between ~256
    tokens and forever collapse), or in float32 with `gate_dtype="float32"`, in which case
    the scan also runs on float32 inputs and `y` is cast back to `x.dtype`. The recurrence
    runs in the scan backend `scan_backend` and always accumulates in fp32; the state
    `[B, L]` is fp32.
    """

    a_param: Float[Array, " L"]
    input_gate: BlockDiagonalLinear
    a_gate: BlockDiagonalLinear
    scan_backend: str = eqx.field(static=True)
    gate_dtype: str | None = eqx.field(static=True)

    def __init__(
        self,
        width: int,
        num_heads: int,
        *,
        key: PRNGKeyArray,
        dtype: DTypeLike = jnp.float32,
        scan_backend: str = "auto",
        gate_dtype: str | None = None,
    ):
        if gate_dtype not in GATE_DTYPES:
            raise ValueError(f"RGLRU: gate_dtype must be one of {list(GATE_DTYPES)}, got {gate_dtype!r}")
        k_a, k_input, k_gate = jax.random.split(key, 3)
        self.a_param = init_a_param(k_a, width, dtype)
        self.input_gate = BlockDiagonalLinear(width, num_heads, key=k_input, dtype=dtype)
        self.a_gate = BlockDiagonalLinear(width, num_heads, key=k_gate, dtype=dtype)
        scan_lib.validate(scan_backend)
        self.scan_backend = scan_backend
        self.gate_dtype = gate_dtype

    def init_state(self, batch_size: int) -> Float32[Array, "B L"]:
        """The recurrence state before any token: float32 zeros."""
        return jnp.zeros((batch_size, self.a_param.shape[0]), jnp.float32)

    def __call__(
        self,
        x: Float[Array, "B T L"],
        positions: Int[Array, "B T"],
        state: Float32[Array, "B L"] | None = None,
    ) -> tuple[Float[Array, "B T L"], Float32[Array, "B L"]]:
        """The recurrence's outputs (in the activation dtype) and its float32 last state."""
        out_dtype = jnp.result_type(x, self.a_param)
        layer = self if self.gate_dtype is None else jax.tree_util.tree_map(lambda p: p.astype(jnp.float32), self)
        x, a_param = promote(x if self.gate_dtype is None else x.astype(jnp.float32), layer.a_param)
        gate_x = jax.nn.sigmoid(layer.input_gate(x))
        gate_a = jax.nn.sigmoid(layer.a_gate(x))
        log_a = -DECAY_EXPONENT * gate_a * jax.nn.softplus(a_param)
        a = jnp.exp(log_a)
        a_squared = jnp.exp(2 * log_a)
        reset = (positions == 0).astype(a.dtype)[..., None]
        multiplier = sqrt_bound_derivative(1 - a_squared, SQRT_MAX_DERIVATIVE)
        multiplier = reset + (1 - reset) * multiplier
        normalized_x = x * gate_x * multiplier.astype(x.dtype)
        y, h_last = self._scan(normalized_x, state)(normalized_x, a * (1 - reset), state)
        return y.astype(out_dtype), h_last

    def _scan(self, x: Array, state: Array | None) -> scan_lib.Scan:
        """The backend's scan; under a mesh with a ``seq`` axis, a full-sequence call (no `state`)
        runs it on every shard of time through `scan.sharded` (rows and channels split too)."""
        split = sequence.current(x) if state is None else None
        if split is None:
            return scan_lib.get(self.scan_backend)
        batch, length, width = x.shape
        split.check_length(length, "RGLRU")
        local = "auto" if self.scan_backend in scan_lib.contextual_names() else self.scan_backend
        return scan_lib.sharded(
            split.mesh, SEQ, local=local, batch_axis=split.rows(batch), channel_axis=split.channels(width)
        )
