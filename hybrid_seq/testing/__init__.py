"""Test helpers shipped with the library: float64 oracles and hypothesis strategies.

Use them to check a custom scan or matrix-scan backend against its contract::

    from hybrid_seq.testing import scan_cases, scan_oracle
    from hybrid_seq.testing import matrix_scan_cases, matrix_scan_oracle

The oracles and case records are plain NumPy. The strategies need hypothesis (the
``test`` extra, ``pip install 'hybrid_seq[test]'``) and are imported on first use, so
this package imports without it.
"""

import importlib

from hybrid_seq.testing.cases import DTYPES, MatrixScanCase, ScanCase, decay_with_resets
from hybrid_seq.testing.matrix_oracle import matrix_scan_oracle, matrix_scan_oracle_vjp
from hybrid_seq.testing.oracle import scan_oracle, scan_oracle_vjp

_STRATEGIES = {
    "dtypes": "hybrid_seq.testing.strategies",
    "padded_positions": "hybrid_seq.testing.strategies",
    "positions": "hybrid_seq.testing.strategies",
    "scan_cases": "hybrid_seq.testing.strategies",
    "shapes": "hybrid_seq.testing.strategies",
    "matrix_scan_cases": "hybrid_seq.testing.matrix_strategies",
    "matrix_shapes": "hybrid_seq.testing.matrix_strategies",
}


def __getattr__(name: str) -> object:
    """Import a strategy on first use (an ImportError naming the extra without hypothesis)."""
    if name in _STRATEGIES:
        return getattr(importlib.import_module(_STRATEGIES[name]), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(__all__)


__all__ = [
    "DTYPES",
    "MatrixScanCase",
    "ScanCase",
    "decay_with_resets",
    "dtypes",
    "matrix_scan_cases",
    "matrix_scan_oracle",
    "matrix_scan_oracle_vjp",
    "matrix_shapes",
    "padded_positions",
    "positions",
    "scan_cases",
    "scan_oracle",
    "scan_oracle_vjp",
    "shapes",
]
