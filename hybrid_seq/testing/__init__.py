"""Test helpers shipped with the library: hypothesis strategies and float64 oracles.

Use them to check a custom scan backend against the contract::

    from hybrid_seq.testing import scan_cases, scan_oracle
"""

from hybrid_seq.testing.oracle import scan_oracle, scan_oracle_vjp
from hybrid_seq.testing.strategies import (
    DTYPES,
    ScanCase,
    decay_with_resets,
    dtypes,
    padded_positions,
    positions,
    scan_cases,
    shapes,
)

__all__ = [
    "DTYPES",
    "ScanCase",
    "decay_with_resets",
    "dtypes",
    "padded_positions",
    "positions",
    "scan_cases",
    "scan_oracle",
    "scan_oracle_vjp",
    "shapes",
]
