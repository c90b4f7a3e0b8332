"""Fixtures: the small model, float and int8, and their checkpoints in our format."""

from __future__ import annotations

from pathlib import Path

import jax
import pytest

from hybrid_seq import Model
from hybrid_seq import io as hio
from hybrid_seq.quantize import quantize
from tests.quantize.helpers import CONFIG


@pytest.fixture(scope="package")
def model() -> Model:
    return Model(CONFIG, key=jax.random.key(0))


@pytest.fixture(scope="package")
def quantized(model: Model) -> Model:
    return quantize(model, "int8")


@pytest.fixture(scope="package")
def saved(tmp_path_factory: pytest.TempPathFactory, model: Model, quantized: Model) -> tuple[Path, Path]:
    """The fp32 and the int8 checkpoints of the same model, in our format."""
    root = tmp_path_factory.mktemp("quantize")
    return hio.save(model, root / "fp32"), hio.save(quantized, root / "int8")
