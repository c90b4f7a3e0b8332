"""`import hybrid_seq as hs; hs.io.load(...)` works: submodules load on first access, not at import (PEP 562)."""

from __future__ import annotations

import subprocess
import sys

import pytest

import hybrid_seq

LAZY = ("bench", "cli", "io", "sampling", "testing", "training")

_CHECK = """
import sys
import hybrid_seq as hs
eager = sorted(name for name in ("io", "training", "testing", "bench", "cli") if f"hybrid_seq.{name}" in sys.modules)
assert not eager, f"imported by `import hybrid_seq`: {eager}"
assert callable(hs.io.load) and hs.io is sys.modules["hybrid_seq.io"]
assert hs.training.Trainer and hs.testing and hs.bench.__name__ == "hybrid_seq.bench" and callable(hs.cli.main)
assert hs.sampling.Sampler
assert {LAZY} <= set(dir(hs)), dir(hs)
try:
    hs.no_such_thing
except AttributeError as error:
    assert "no_such_thing" in str(error)
else:
    raise AssertionError("hs.no_such_thing did not raise AttributeError")
"""


def test_submodules_load_on_first_access_in_a_fresh_interpreter() -> None:
    code = _CHECK.replace("{LAZY}", repr(set(LAZY)))
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=False)
    assert done.returncode == 0, done.stderr[-2000:]


def test_a_listed_submodule_that_is_absent_is_an_attribute_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(hybrid_seq, "_LAZY_SUBMODULES", (*hybrid_seq._LAZY_SUBMODULES, "not_shipped"))
    assert not hasattr(hybrid_seq, "not_shipped")
    assert "not_shipped" not in dir(hybrid_seq)
