"""The site's runnable pages run: every ```python block of each page, in order, in one fresh namespace.

Each page runs in-process in its own temporary directory (so files it writes land there).
A failing block reports the page and its line in the Markdown file. A page that imports
torch or transformers is marked `hf`, one that imports recurrentgemma `parity`, like the
tests that import them (see tests/conftest.py), and is skipped where they are missing.
"""

from __future__ import annotations

import importlib
import importlib.util
import pathlib
import re
import sys
import types

import pytest

DOCS = pathlib.Path(__file__).parent.parent.parent / "docs"

#: Pages whose python blocks are meant to run top to bottom (other pages hold fragments).
RUNNABLE_PAGES = [
    "index.md",
    "overview.md",
    "kinds.md",
    "concepts/state.md",
    "concepts/numerics.md",
    "tutorials/custom_hybrid.md",
    "tutorials/load_and_sample.md",
    "tutorials/scan_backends.md",
    "tutorials/property_testing.md",
    "tutorials/finetune.md",
]

_FENCE = re.compile(r"^```python[^\n]*\n(.*?)^```[ \t]*$", re.MULTILINE | re.DOTALL)
_MARKER_OF_PACKAGE = {"torch": "hf", "transformers": "hf", "recurrentgemma": "parity"}
_NEEDS = re.compile(r"^\s*(?:import|from)\s+(torch|transformers|recurrentgemma|orbax)\b", re.MULTILINE)


#: Registries a page may add to (its own kind, its own scan backend): restored after each page.
_REGISTRIES = [
    ("hybrid_seq.kinds", "_KINDS"),
    ("hybrid_seq.pattern", "_KINDS"),
    ("hybrid_seq.scan.registry", "_REGISTRY"),
    ("hybrid_seq.matrix_scan.registry", "_REGISTRY"),
]


@pytest.fixture
def restored_registries():
    registries = [getattr(importlib.import_module(module), name) for module, name in _REGISTRIES]
    saved = [dict(registry) for registry in registries]
    yield
    for registry, contents in zip(registries, saved):
        registry.clear()
        registry.update(contents)


def python_blocks(text: str) -> list[tuple[int, str]]:
    """The ```python blocks of a Markdown text, each with the 1-based line its code starts on."""
    return [(text.count("\n", 0, match.start(1)) + 1, match.group(1)) for match in _FENCE.finditer(text)]


def _needs(page: str) -> set[str]:
    return set(_NEEDS.findall("\n".join(code for _, code in python_blocks((DOCS / page).read_text()))))


def _param(page: str) -> pytest.param:
    marks = [getattr(pytest.mark, _MARKER_OF_PACKAGE[p]) for p in sorted(_needs(page)) if p in _MARKER_OF_PACKAGE]
    return pytest.param(page, id=page.removesuffix(".md"), marks=marks)


def test_fence_parser_finds_blocks_and_lines() -> None:
    text = "# t\n\n```python\na = 1\n```\n\n```bash\nls\n```\n\n```python\nb = a + 1\n```\n"
    assert python_blocks(text) == [(4, "a = 1\n"), (12, "b = a + 1\n")]


@pytest.mark.parametrize("page", [_param(page) for page in RUNNABLE_PAGES])
@pytest.mark.usefixtures("restored_registries")
def test_page_runs(page: str, tmp_path: pathlib.Path, monkeypatch: pytest.MonkeyPatch) -> None:
    missing = [p for p in sorted(_needs(page)) if importlib.util.find_spec(p) is None]
    if missing:
        pytest.skip(f"{page} needs {', '.join(missing)}")
    path = DOCS / page
    blocks = python_blocks(path.read_text())
    assert blocks, f"{page} has no python block"
    monkeypatch.chdir(tmp_path)
    # A real module, so that classes defined on the page (dataclasses, kinds) know where they live.
    module = types.ModuleType("docs_" + re.sub(r"\W", "_", page.removesuffix(".md")))
    monkeypatch.setitem(sys.modules, module.__name__, module)
    for line, code in blocks:
        # Leading newlines keep the Markdown file's line numbers in tracebacks.
        exec(compile("\n" * (line - 1) + code, str(path), "exec"), module.__dict__)
