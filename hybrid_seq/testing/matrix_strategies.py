"""Hypothesis strategies for matrix-scan inputs (needs the ``test`` extra).

Arrays are built from a drawn seed with NumPy, as in `hybrid_seq.testing.strategies`.
``q`` and ``k`` have standard deviation ``K ** -0.25`` (so ``q . k`` is about N(0, 1)),
``v ~ N(0, 1)``. Log decays are ``log(U(0.3, 1))`` with edges mixed in: exactly 0 (no
decay) and -12 (almost a reset). Document starts come from `positions` (``reset`` where a
position is 0); the start at ``t = 0`` is kept or dropped at random so that ``h0`` still
matters in some cases.
"""

from __future__ import annotations

import numpy as np

from hybrid_seq.testing._hypothesis import st
from hybrid_seq.testing.cases import MatrixScanCase, as_dtype
from hybrid_seq.testing.strategies import dtypes, positions

#: The decay layouts `matrix_scan_cases` draws: one decay per head, or one per key row.
DECAYS = ("scalar", "per_key")
#: The input dtypes of the matrix-scan contract.
MATRIX_DTYPES = ("float32", "bfloat16")


def matrix_shapes(
    max_batch: int = 2,
    max_time: int = 40,
    max_groups: int = 2,
    max_heads_per_group: int = 2,
    max_key: int = 8,
    max_value: int = 8,
    min_time: int = 1,
) -> st.SearchStrategy:
    """``(B, T, G, H, K, V)`` with ``H`` a multiple of ``G`` and every dimension at least 1."""
    return st.tuples(
        st.integers(1, max_batch),
        st.integers(min_time, max_time),
        st.integers(1, max_groups),
        st.integers(1, max_heads_per_group),
        st.integers(1, max_key),
        st.integers(1, max_value),
    ).map(lambda s: (s[0], s[1], s[2], s[2] * s[3], s[4], s[5]))


@st.composite
def matrix_scan_cases(
    draw,
    shape: st.SearchStrategy = matrix_shapes(),
    decay: st.SearchStrategy = st.sampled_from(DECAYS),
    dtype: st.SearchStrategy = dtypes(MATRIX_DTYPES),
    h0: st.SearchStrategy = st.booleans(),
    resets: st.SearchStrategy = st.booleans(),
    max_documents: int = 4,
):
    """A `MatrixScanCase` (see the module docstring for the distributions)."""
    b, t, g, h, k, v = draw(shape)
    decay_kind = draw(decay)
    dtype_name = draw(dtype)
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    scale = k**-0.25
    q = rng.standard_normal((b, t, g, k)) * scale
    keys = rng.standard_normal((b, t, g, k)) * scale
    values = rng.standard_normal((b, t, h, v))
    decay_shape = (b, t, h, k) if decay_kind == "per_key" else (b, t, h)
    log_decay = np.log(rng.uniform(0.3, 1.0, decay_shape))
    edges = rng.uniform(size=decay_shape)
    log_decay = np.where(edges < 0.05, 0.0, np.where(edges > 0.97, -12.0, log_decay)).astype(np.float32)
    state = rng.standard_normal((b, h, k, v)).astype(np.float32) if draw(h0) else None
    reset = None
    if draw(resets):
        reset = draw(positions(b, t, max_documents)) == 0
        reset[:, 0] = draw(st.booleans())
    return MatrixScanCase(
        as_dtype(q, dtype_name),
        as_dtype(keys, dtype_name),
        as_dtype(values, dtype_name),
        log_decay,
        state,
        reset,
        dtype_name,
    )
