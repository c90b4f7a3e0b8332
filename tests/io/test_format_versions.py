"""Every version of our format keeps loading: version 1 (float weights, no `quantization` key) with its logits.

`fixtures/hybrid_v1` was written by `hybrid_seq.io.save` at commit 3129d07 (format
version 1): a random HybridConfig model (recurrent, local attention, a lone MLP layer)
with every leaf perturbed. The expected logits come from that same code, on a full row
and a left-padded row of two packed documents. Version 0 is `test_fixtures.py`'s.
"""

from __future__ import annotations

import json
from pathlib import Path

import equinox as eqx
import jax.numpy as jnp
import numpy as np

from hybrid_seq import HybridConfig
from hybrid_seq import io as hio
from hybrid_seq.quantize import quantization_of

FIXTURES = Path(__file__).parent / "fixtures"


def test_format_v1_checkpoint_loads_with_its_logits() -> None:
    assert json.loads((FIXTURES / "hybrid_v1" / "config.json").read_text())["format_version"] == 1
    expected = np.load(FIXTURES / "hybrid_v1_expected.npz")
    model = hio.load(FIXTURES / "hybrid_v1")
    assert isinstance(model.config, HybridConfig) and quantization_of(model) is None
    logits, _ = eqx.filter_jit(model)(jnp.asarray(expected["tokens"]), jnp.asarray(expected["positions"]))
    np.testing.assert_allclose(np.asarray(logits), expected["logits"], rtol=0, atol=1e-5)


def test_float_checkpoints_are_written_as_version_2_with_no_quantization(tmp_path: Path) -> None:
    path = hio.save(hio.load(FIXTURES / "hybrid_v1"), tmp_path / "v2")
    document = json.loads((path / "config.json").read_text())
    assert document["format_version"] == 2 and document["quantization"] is None
    assert hio.load(path).config == hio.load(FIXTURES / "hybrid_v1").config
