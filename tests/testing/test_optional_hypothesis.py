"""`hybrid_seq.testing` imports without hypothesis; its strategies then name the extra to install."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

WITHOUT_HYPOTHESIS = textwrap.dedent(
    """
    import sys

    sys.modules["hypothesis"] = None  # `import hypothesis` now raises ImportError

    import numpy as np

    from hybrid_seq.testing import matrix_scan_oracle, scan_oracle

    y, h_last = matrix_scan_oracle(np.ones((1, 2, 1, 1)), np.ones((1, 2, 1, 1)), np.ones((1, 2, 1, 1)), np.zeros((1, 2, 1)))
    assert y.ravel().tolist() == [1.0, 2.0] and h_last.ravel().tolist() == [2.0]
    assert scan_oracle(np.ones((1, 2, 1)), np.ones((1, 2, 1)))[1].ravel().tolist() == [2.0]

    import hybrid_seq.testing as testing

    for name in ("matrix_scan_cases", "scan_cases", "positions"):
        try:
            getattr(testing, name)
        except ImportError as error:
            assert "pip install 'hybrid_seq[test]'" in str(error), error
        else:
            raise AssertionError(f"{name} imported without hypothesis")
    try:
        from hybrid_seq.testing.matrix_strategies import matrix_scan_cases  # noqa: F401
    except ImportError as error:
        assert "pip install 'hybrid_seq[test]'" in str(error), error
    else:
        raise AssertionError("matrix_strategies imported without hypothesis")
    print("ok")
    """
)


def test_oracles_import_without_hypothesis_and_strategies_name_the_extra():
    result = subprocess.run(
        [sys.executable, "-c", WITHOUT_HYPOTHESIS],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=Path(__file__).parents[2],
    )
    assert result.returncode == 0 and result.stdout.strip() == "ok", result.stderr
