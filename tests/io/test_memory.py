"""Loading holds about one copy of the weights: `benchmarks/load_2b.py` at a reduced size."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import pytest

_SCRIPT = Path(__file__).parents[2] / "benchmarks" / "load_2b.py"


@pytest.mark.parametrize("format", ["huggingface", "hybrid_seq"])
def test_bf16_load_peak_rss_is_about_one_copy(tmp_path: Path, format: str) -> None:
    spec = importlib.util.spec_from_file_location("load_2b", _SCRIPT)
    script = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(script)
    sizes = {"vocab_size": 16000, "width": 1024, "mlp_expanded_width": 3072, "lru_width": 1024}
    result = script.main(["--preset", "griffin-small", "--set", json.dumps(sizes), "--format", format,
                          "--dir", str(tmp_path)])
    assert result["embedder_ok"]
    assert result["checkpoint_bytes"] > 150 * 2**20
    assert result["rss_rise_over_checkpoint"] < 1.5, result
