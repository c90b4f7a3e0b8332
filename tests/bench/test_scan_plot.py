"""`hybrid-seq bench scan --out`: linear GB/s bars, with and without the reference, copy line in range or not."""

from __future__ import annotations

from pathlib import Path

import pytest

from hybrid_seq.bench.scan import REFERENCE_BASELINE, Row, plot

pytest.importorskip("matplotlib")


def _rows(copy_pct: float, with_reference: bool) -> list[Row]:
    rows = [Row("sequential", (1, 64, 32), "float32", mode, 0.001, 3.0, copy_pct, 2.0 if with_reference else None)
            for mode in ("fwd", "fwd+bwd")]
    if with_reference:
        rows += [Row(REFERENCE_BASELINE, (1, 64, 32), "float32", mode, 0.002, 1.5, copy_pct / 2, 1.0)
                 for mode in ("fwd", "fwd+bwd")]
    return rows


@pytest.mark.parametrize("copy_pct", [80.0, 10.0], ids=["copy-in-range", "copy-off-scale"])
@pytest.mark.parametrize("with_reference", [True, False], ids=["ref", "no-ref"])
def test_plot_writes_a_png(tmp_path: Path, copy_pct: float, with_reference: bool) -> None:
    path = tmp_path / "scan.png"
    plot(_rows(copy_pct, with_reference), str(path))
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
