"""Hypothesis strategies for scan inputs (needs the ``test`` extra).

Arrays are built from a drawn seed with NumPy (fast, and shrinking still acts on
shapes, dtype and options). Decays lie in [0, 1]; optional document resets put
``a = 0`` where a new document starts (position 0), which is how packed sequences
reset the recurrence.
"""

from __future__ import annotations

import numpy as np

from hybrid_seq.testing._hypothesis import st
from hybrid_seq.testing.cases import DTYPES, ScanCase, as_dtype, decay_with_resets


def shapes(max_batch: int = 3, max_time: int = 24, max_width: int = 12) -> st.SearchStrategy:
    """``(B, T, D)`` with every dimension at least 1."""
    return st.tuples(
        st.integers(1, max_batch), st.integers(1, max_time), st.integers(1, max_width)
    )


def dtypes(names: tuple[str, ...] = tuple(DTYPES)) -> st.SearchStrategy:
    """Names of accepted input dtypes: 'float32', 'bfloat16', 'float16'."""
    return st.sampled_from(names)


@st.composite
def positions(draw, batch: int, length: int, max_documents: int = 3):
    """Int ``[B, T]`` token positions of packed documents, restarting at 0 per document."""
    rows = []
    for _ in range(batch):
        starts = sorted(draw(st.sets(st.integers(1, max(length - 1, 1)), max_size=max_documents - 1)))
        row = np.zeros(length, np.int32)
        for begin, end in zip([0, *starts], [*starts, length]):
            row[begin:end] = np.arange(end - begin)
        rows.append(row)
    return np.stack(rows)


@st.composite
def padded_positions(draw, batch: int, length: int, max_documents: int = 3):
    """Like `positions`, but each row may be left-padded: `-1` before its first document."""
    rows = draw(positions(batch, length, max_documents))
    for row in rows:
        pad = draw(st.integers(0, length - 1))
        if pad:
            tail = row[pad:]
            starts = np.flatnonzero(tail == 0)
            first = starts[0] if starts.size else len(tail)
            tail[:first] = np.arange(first)
            row[:pad] = -1
    return rows


@st.composite
def scan_cases(
    draw,
    shape: st.SearchStrategy = shapes(),
    dtype: st.SearchStrategy = dtypes(),
    h0: st.SearchStrategy = st.booleans(),
    resets: st.SearchStrategy = st.booleans(),
):
    """A `ScanCase`: ``x ~ N(0, 1)``, ``a`` in [0, 1] (edges included), optional h0/resets."""
    b, t, d = draw(shape)
    dtype_name = draw(dtype)
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    x = rng.standard_normal((b, t, d))
    a = rng.uniform(0.0, 1.0, (b, t, d))
    edges = rng.uniform(size=a.shape)
    a = np.where(edges < 0.05, 0.0, np.where(edges > 0.95, 1.0, a))
    if draw(resets):
        a = decay_with_resets(a, draw(positions(b, t)))
    state = rng.standard_normal((b, d)).astype(np.float32) if draw(h0) else None
    return ScanCase(as_dtype(x, dtype_name), as_dtype(a, dtype_name), state, dtype_name)
