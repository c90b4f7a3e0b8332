"""Matrix-state recurrences ``h_t = exp(log_decay_t) * h_{t-1} + k_t v_t^T``, ``y_t = q_t^T h_t``.

    matrix_scan = hybrid_seq.matrix_scan.get("auto")
    y, h_last = matrix_scan(q, k, v, log_decay, h0, reset=reset)
    # q, k: [B, T, G, K]; v: [B, T, H, V]; log_decay: [B, T, H] or [B, T, H, K] float32;
    # h0: [B, H, K, V] float32 or None; reset: bool [B, T] or None (True: a document starts)

The state of Mamba-2/SSD (scalar decay per head) and of GLA-style models (per-key decay).
See docs/matrix_scan.md for the backends, their numerics and memory, and the measurement
behind `auto`.
"""

from hybrid_seq.matrix_scan.chunked import Chunked
from hybrid_seq.matrix_scan.contract import Kernel, MatrixScan, check_inputs
from hybrid_seq.matrix_scan.registry import (
    Backend,
    BoundMatrixScan,
    available,
    bind,
    get,
    get_backend,
    names,
    register,
    resolve,
    unregister,
    validate,
)
from hybrid_seq.matrix_scan.sequential import sequential_matrix_scan

register(
    "sequential",
    sequential_matrix_scan,
    description="loop over time in float32; gradient rematerialised per 64-step chunk",
)
register(
    "chunked",
    Chunked(),
    description="chunkwise-parallel (SSD) form: [C, C] decay-masked matmuls, scan over chunks (C=64; 32 per-key)",
)

__all__ = [
    "Backend",
    "BoundMatrixScan",
    "Chunked",
    "Kernel",
    "MatrixScan",
    "available",
    "bind",
    "check_inputs",
    "get",
    "get_backend",
    "names",
    "register",
    "resolve",
    "unregister",
    "validate",
]
