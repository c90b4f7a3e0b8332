"""Linear recurrence scans ``h_t = a_t * h_{t-1} + x_t`` with interchangeable backends.

    scan = hybrid_seq.scan.get("auto")
    y, h_last = scan(x, a, h0)   # x, a: [B, T, D]; h0: [B, D] float32 or None

See docs/scan.md for the backends, their numerics and the measurements behind `auto`.
"""

from hybrid_seq.backends import current_platform
from hybrid_seq.scan.associative import associative_scan
from hybrid_seq.scan.chunked import chunked_scan
from hybrid_seq.scan.contract import Kernel, Scan, check_inputs
from hybrid_seq.scan.pallas_gpu import pallas_gpu_scan
from hybrid_seq.scan.pallas_tpu import pallas_tpu_scan
from hybrid_seq.scan.registry import (
    Backend,
    BoundScan,
    available,
    contextual_names,
    get,
    get_backend,
    names,
    register,
    register_contextual,
    resolve,
    unregister,
    validate,
)
from hybrid_seq.scan.sequential import sequential_scan
from hybrid_seq.scan.sharded import ShardedScan, from_context, sharded

register(
    "sequential",
    sequential_scan,
    description="loop over time slicing [B, T, D] in place; float32 buffer (XLA:CPU-friendly)",
)
register(
    "associative",
    associative_scan,
    description="jax.lax.associative_scan in float32 (log depth, fast compile)",
)
register(
    "chunked",
    chunked_scan,
    description="two-pass chunk-parallel scan: in-chunk loop over all chunks, then a chunk fold",
)
register(
    "pallas_tpu",
    pallas_tpu_scan,
    platforms=["tpu"],
    interpreted_on=["cpu"],
    description="Pallas Mosaic kernel (grid B x lane-tile groups x time tiles, VMEM carry); interpreted off TPU",
)
register(
    "pallas_gpu",
    pallas_gpu_scan,
    platforms=["gpu"],
    interpreted_on=["cpu"],
    description="Pallas Triton kernels (chunk summaries, fold, rescan: B x D/128 x T/64 programs); interpreted off GPU",
)

# Time split over the 'seq' axis of the mesh in context (`jax.set_mesh`), local backend 'auto'.
register_contextual("sharded", from_context)

__all__ = [
    "Backend",
    "BoundScan",
    "Kernel",
    "Scan",
    "ShardedScan",
    "available",
    "check_inputs",
    "contextual_names",
    "current_platform",
    "get",
    "get_backend",
    "names",
    "register",
    "register_contextual",
    "resolve",
    "sharded",
    "unregister",
    "validate",
]
