"""Checkpoints written by earlier versions of our format keep loading, with the same logits.

`fixtures/griffin_v0` was written by `hybrid_seq.io.save` at commit 766eeb4 (before the
format had a version): a random RAR model with every leaf perturbed. The expected logits
come from that same code, on a row past the attention window and a left-padded row of
two packed documents.
"""

from __future__ import annotations

from pathlib import Path

import jax.numpy as jnp
import numpy as np

from hybrid_seq import io as hio

FIXTURES = Path(__file__).parent / "fixtures"


def test_format_v0_checkpoint_loads_with_its_logits() -> None:
    expected = np.load(FIXTURES / "griffin_v0_expected.npz")
    model = hio.load(FIXTURES / "griffin_v0")
    logits, _ = model(jnp.asarray(expected["tokens"]), jnp.asarray(expected["positions"]))
    np.testing.assert_allclose(np.asarray(logits), expected["logits"], rtol=0, atol=1e-5)
