"""The chunked backend across many chunk boundaries, and at its default chunk sizes."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from hybrid_seq.testing import MatrixScanCase, matrix_scan_cases, matrix_shapes
from tests.matrix_scan.conftest import SMALL_CHUNKS, check_matches_oracle, fewer_examples


@fewer_examples(3)
@given(
    case=matrix_scan_cases(shape=matrix_shapes(min_time=20, max_time=150), h0=st.just(True), max_documents=6),
    seed=st.integers(0, 2**16),
)
def test_many_small_chunks_match_float64_oracle(case, seed):
    """Chunks of 8 (scalar) and 5 (per-key) steps: up to 30 chunks, resets anywhere, padded tails."""
    check_matches_oracle(SMALL_CHUNKS.name, case, seed)


def _long_case(decay: str) -> MatrixScanCase:
    """T = 300 at the default chunk sizes: 5 chunks of 64 / 10 of 32, a padded tail, two resets."""
    rng = np.random.default_rng(7)
    b, t, g, h, k, v = 1, 300, 1, 2, 16, 8
    q, keys = (rng.standard_normal((b, t, g, k)).astype(np.float32) * k**-0.25 for _ in range(2))
    values = rng.standard_normal((b, t, h, v)).astype(np.float32)
    shape = (b, t, h, k) if decay == "per_key" else (b, t, h)
    log_decay = np.log(rng.uniform(0.8, 1.0, shape)).astype(np.float32)
    h0 = rng.standard_normal((b, h, k, v)).astype(np.float32)
    reset = np.zeros((b, t), bool)
    reset[:, [70, 200]] = True
    return MatrixScanCase(q, keys, values, log_decay, h0, reset, "float32")


LONG_CASES = [_long_case(decay) for decay in ("scalar", "per_key")]


@pytest.mark.parametrize("case", LONG_CASES, ids=[case.id for case in LONG_CASES])
def test_default_chunks_at_T300_match_float64_oracle(case):
    check_matches_oracle("chunked", case, seed=1)
