"""The test cases that the strategies draw: plain NumPy records, importable without hypothesis."""

from __future__ import annotations

import dataclasses

import jax.numpy as jnp
import numpy as np

#: The input dtypes of the scan contract, by the names the strategies draw.
DTYPES = {"float32": jnp.float32, "bfloat16": jnp.bfloat16, "float16": jnp.float16}
#: The short dtype names used in case ids (``fp32``, ``bf16``, ``fp16``).
SHORT_DTYPE_NAMES = {"float32": "fp32", "bfloat16": "bf16", "float16": "fp16"}


def as_dtype(x: np.ndarray, dtype_name: str) -> np.ndarray:
    """``x`` rounded to ``dtype_name``, kept as a NumPy array (ml_dtypes for bfloat16)."""
    return np.asarray(jnp.asarray(x, DTYPES[dtype_name]))


@dataclasses.dataclass(frozen=True)
class ScanCase:
    """One scan input: ``x``, ``a`` in ``dtype`` and ``h0`` (float32 or None)."""

    x: np.ndarray
    a: np.ndarray
    h0: np.ndarray | None
    dtype_name: str

    @property
    def shape(self) -> tuple[int, int, int]:
        """``(B, T, D)``."""
        return tuple(self.x.shape)

    @property
    def id(self) -> str:
        """A readable test id, e.g. ``B2-T7-D3-bfloat16-h0``."""
        b, t, d = self.shape
        return f"B{b}-T{t}-D{d}-{self.dtype_name}{'-h0' if self.h0 is not None else ''}"


def decay_with_resets(a: np.ndarray, pos: np.ndarray) -> np.ndarray:
    """Zero the decay at document starts (``pos == 0``) so the state resets there."""
    return np.where(pos[..., None] == 0, 0.0, a).astype(a.dtype)


@dataclasses.dataclass(frozen=True)
class MatrixScanCase:
    """One matrix-scan input: ``q``, ``k``, ``v`` in ``dtype``; float32 ``log_decay`` and ``h0``.

    ``log_decay`` is ``[B, T, H]`` (scalar decay) or ``[B, T, H, K]`` (per-key decay);
    ``h0`` and the boolean ``reset`` ``[B, T]`` may be None.
    """

    q: np.ndarray
    k: np.ndarray
    v: np.ndarray
    log_decay: np.ndarray
    h0: np.ndarray | None
    reset: np.ndarray | None
    dtype_name: str

    @property
    def shape(self) -> tuple[int, int, int, int, int, int]:
        """``(B, T, G, H, K, V)``."""
        b, t, g, k = self.q.shape
        return b, t, g, self.v.shape[2], k, self.v.shape[3]

    @property
    def per_key(self) -> bool:
        """Whether the decay is per key row (``[B, T, H, K]``, GLA) rather than per head (Mamba-2)."""
        return self.log_decay.ndim == 4

    @property
    def inputs(self) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray | None]:
        """``(q, k, v, log_decay, h0)``, the positional arguments of a matrix scan."""
        return self.q, self.k, self.v, self.log_decay, self.h0

    @property
    def id(self) -> str:
        """A readable test id, e.g. ``B2-T37-G1-H4-K8-V16-scalar-fp32-h0-reset``."""
        b, t, g, h, k, v = self.shape
        parts = [f"B{b}-T{t}-G{g}-H{h}-K{k}-V{v}", "per_key" if self.per_key else "scalar"]
        parts.append(SHORT_DTYPE_NAMES[self.dtype_name])
        parts += ["h0"] * (self.h0 is not None) + ["reset"] * (self.reset is not None)
        return "-".join(parts)
