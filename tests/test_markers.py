"""tests/conftest.py marks every test that needs torch/transformers `hf` and every one that needs recurrentgemma `parity`.

One `pytest --collect-only -m "not hf"` in a subprocess over the files that hold each idiom
(module-level importorskip, importorskip in the test, in a helper, behind `if format ==`,
through a table, through a local helper module) shows what the selection keeps.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).parent.parent
FILES = [
    "tests/io/test_roundtrip.py",
    "tests/io/test_errors.py",
    "tests/io/test_huggingface.py",
    "tests/io/test_presets.py",
    "tests/sampling/test_reference.py",
    "tests/parity/test_reference_jax.py",
    "tests/bench/test_timing.py",
]
_COLLECT = """
import json, sys, pytest
class Record:
    def pytest_collection_finish(self, session):
        print(json.dumps({i.nodeid: sorted({m.name for m in i.iter_markers()} & {"hf", "parity"}) for i in session.items}))
sys.exit(pytest.main(["--collect-only", "-q", "-p", "no:cacheprovider", "-m", "not hf", *sys.argv[1:]], plugins=[Record()]))
"""


def test_not_hf_keeps_exactly_the_tests_without_torch_and_parity_marks_the_reference_tests() -> None:
    done = subprocess.run([sys.executable, "-c", _COLLECT, *FILES], cwd=ROOT, capture_output=True, text=True, check=True)
    kept = json.loads(next(line for line in done.stdout.splitlines() if line.startswith("{")))
    ids = set(kept)
    # hf: module-level importorskip, in the test, in a helper, behind `if format == "pytorch"`, via a table.
    for gone in ["tests/io/test_huggingface.py::test_our_save_loads_in_transformers",
                 "tests/io/test_errors.py::test_truncated_pt",
                 "tests/io/test_errors.py::test_config_contradicting_weights",
                 "tests/io/test_presets.py::test_matching_preset_loads_and_is_found[pytorch]",
                 "tests/io/test_roundtrip.py::test_save_then_load_is_identity[pytorch-fp32]"]:
        assert gone not in ids, gone
    for present in ["tests/io/test_errors.py::test_truncated_safetensors[hybrid_seq]",
                    "tests/io/test_presets.py::test_matching_preset_loads_and_is_found[huggingface]",
                    "tests/io/test_presets.py::test_same_pattern_spelled_differently_matches",
                    "tests/io/test_roundtrip.py::test_save_then_load_is_identity[flax-fp32]",
                    "tests/io/test_roundtrip.py::test_save_then_load_is_identity[hybrid_seq-bf16]",
                    "tests/bench/test_timing.py::test_quartiles"]:
        assert kept.get(present) == [], present
    # parity: every reference test (module-level importorskip, or through tests.parity.reference), nothing else.
    parity = {nodeid.split("[")[0].split("::")[0] for nodeid, marks in kept.items() if "parity" in marks}
    assert parity == {"tests/sampling/test_reference.py", "tests/parity/test_reference_jax.py"}
    assert all(kept[n] == ["parity"] for n in ids if n.startswith(("tests/parity/", "tests/sampling/test_reference.py")))
