"""Conv1D: the masked-convolution formula, and chunked calls equal one call."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
from hypothesis import given
from hypothesis import strategies as st

from hybrid_seq.blocks import Conv1D
from hybrid_seq.testing import padded_positions


def oracle(weight, bias, x, positions):
    """out[t] = b + sum_s w[K-1-s] x[t-s], dropping taps that cross a position-0 token (float64)."""
    w, b, x = (np.asarray(a, np.float64) for a in (weight, bias, x))
    k = w.shape[0]
    out = np.broadcast_to(b, x.shape).copy()
    for row in range(x.shape[0]):
        for t in range(x.shape[1]):
            for s in range(min(k, t + 1)):
                if s and (np.asarray(positions)[row, t - s + 1 : t + 1] == 0).any():
                    break
                out[row, t] += w[k - 1 - s] * x[row, t - s]
    return out


@st.composite
def conv_cases(draw):
    batch, length, width = draw(st.integers(1, 3)), draw(st.integers(1, 12)), draw(st.integers(1, 5))
    positions = draw(padded_positions(batch, length))
    cuts = sorted(draw(st.lists(st.integers(1, max(1, length - 1)), max_size=3, unique=True)))
    return batch, length, width, positions, [c for c in cuts if c < length], draw(st.integers(0, 1000))


@given(conv_cases())
def test_matches_oracle_and_chunking_is_exact(case) -> None:
    batch, length, width, positions, cuts, seed = case
    k_layer, k_x, k_b = jax.random.split(jax.random.key(seed), 3)
    conv = Conv1D.__new__(Conv1D)
    object.__setattr__(conv, "weight", jax.random.normal(k_layer, (4, width)))
    object.__setattr__(conv, "bias", jax.random.normal(k_b, (width,)))
    x = jax.random.normal(k_x, (batch, length, width))
    positions = jnp.asarray(positions, jnp.int32)
    whole, state = conv(x, positions)
    np.testing.assert_allclose(whole, oracle(conv.weight, conv.bias, x, positions), rtol=1e-5, atol=1e-5)
    pieces, chunk_state = [], None
    for start, stop in zip([0, *cuts], [*cuts, length]):
        out, chunk_state = conv(x[:, start:stop], positions[:, start:stop], chunk_state)
        pieces.append(out)
    np.testing.assert_allclose(jnp.concatenate(pieces, axis=1), whole, rtol=1e-6, atol=1e-6)
    np.testing.assert_array_equal(chunk_state, state)


def test_state_forgets_inputs_before_a_document_start() -> None:
    conv = Conv1D(1, key=jax.random.key(0))
    x = jnp.ones((1, 5, 1))
    _, state = conv(x, jnp.array([[-1, -1, -1, 0, 1]], jnp.int32))
    np.testing.assert_array_equal(state[0, :, 0], [0.0, 1.0, 1.0])
