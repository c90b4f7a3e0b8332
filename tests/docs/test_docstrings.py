"""Every public name has a docstring, and every public module has a page in the API reference.

Public names are the `__all__` of the public modules (or, for a module without one, the
names it defines without a leading underscore). The runtime check covers modules,
classes and functions; where the docs tools are installed (the `docs` extra), a second
check reads the package as mkdocstrings does (griffe, statically), which also sees the
docstrings of constants and type aliases, i.e. exactly what the site renders.
"""

from __future__ import annotations

import ast
import importlib
import importlib.util
import inspect
import pathlib
import re
import types

import pytest

ROOT = pathlib.Path(__file__).parent.parent.parent
API_PAGES = ROOT / "docs" / "api"

PUBLIC_MODULES = [
    "hybrid_seq",
    "hybrid_seq.blocks",
    "hybrid_seq.kinds",
    "hybrid_seq.presets",
    "hybrid_seq.scan",
    "hybrid_seq.matrix_scan",
    "hybrid_seq.io",
    "hybrid_seq.quantize",
    "hybrid_seq.sampling",
    "hybrid_seq.training",
    "hybrid_seq.distributed",
    "hybrid_seq.testing",
    "hybrid_seq.testing.strategies",
    "hybrid_seq.testing.matrix_strategies",
    "hybrid_seq.bench",
    "hybrid_seq.bench.timing",
    "hybrid_seq.bench.scan",
    "hybrid_seq.cli",
    "hybrid_seq.xla_cpu",
]

def public_names(module: types.ModuleType) -> list[str]:
    """`__all__`, or else the names the module's own top level defines without a leading underscore."""
    if hasattr(module, "__all__"):
        return list(module.__all__)
    defined = []
    for node in ast.parse(inspect.getsource(module)).body:
        if isinstance(node, (ast.FunctionDef, ast.ClassDef)):
            defined.append(node.name)
        elif isinstance(node, ast.Assign):
            defined += [t.id for t in node.targets if isinstance(t, ast.Name)]
        elif isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name):
            defined.append(node.target.id)
    return [name for name in dict.fromkeys(defined) if not name.startswith("_")]


def _public() -> list[tuple[str, str]]:
    return [(m, n) for m in PUBLIC_MODULES for n in public_names(importlib.import_module(m))]


def _own_docstring(value: object) -> str:
    """The object's own docstring: not inherited, and not the signature a dataclass writes in place of one."""
    doc = value.__dict__.get("__doc__") if isinstance(value, type) else getattr(value, "__doc__", None)
    if isinstance(value, type) and doc and re.fullmatch(rf"{re.escape(value.__name__)}\(.*\)", doc.strip(), re.DOTALL):
        return ""
    return (doc or "").strip()


@pytest.mark.parametrize("module_name", PUBLIC_MODULES)
def test_module_has_docstring_and_api_page(module_name: str) -> None:
    module = importlib.import_module(module_name)
    assert (module.__doc__ or "").strip(), f"{module_name} has no module docstring"
    directives = {m for page in API_PAGES.glob("*.md") for m in re.findall(r"^::: (\S+)", page.read_text(), re.M)}
    assert module_name in directives, f"no page under docs/api/ renders {module_name} (a '::: {module_name}' line)"


def test_public_classes_and_functions_have_docstrings() -> None:
    missing = []
    for module_name, name in _public():
        value = getattr(importlib.import_module(module_name), name)
        if not (inspect.isclass(value) or inspect.isroutine(value)):  # constants, aliases: see the griffe check
            continue
        if not _own_docstring(value):
            missing.append(f"{module_name}.{name}")
    assert not missing, f"public names without a docstring: {missing}"


def _griffe_docstrings() -> dict[str, str]:
    """Docstring of every public name as the site renders it, keyed `module.name`."""
    griffe = pytest.importorskip("griffe", reason="the docs extra (griffe, via mkdocstrings) is not installed")
    # As configured in mkdocs.yml: `#:` comments are the docstrings of constants and aliases.
    extensions = griffe.load_extensions("griffe_sphinx") if importlib.util.find_spec("griffe_sphinx") else None
    loader = griffe.GriffeLoader(search_paths=[str(ROOT)], extensions=extensions)
    package = loader.load("hybrid_seq")
    loader.resolve_aliases(implicit=True, external=False)
    found = {}
    for module_name, name in _public():
        value = getattr(importlib.import_module(module_name), name)
        if isinstance(value, types.ModuleType):
            continue
        # Lazily exported names (hybrid_seq.testing's strategies) are rendered from their own module.
        home = getattr(value, "__module__", None) if callable(value) else None
        # (`__name__`, not `__qualname__`: hypothesis's `st.composite` wraps the function in a local one.)
        paths = [f"{module_name}.{name}"] + ([f"{home}.{value.__name__}"] if home and home.startswith("hybrid_seq") else [])
        doc = None
        for path in paths:
            try:
                obj = package[path.removeprefix("hybrid_seq.")] if path != "hybrid_seq" else package
                doc = (obj.docstring.value if obj.docstring else "").strip()
                break
            except (KeyError, griffe.AliasResolutionError, griffe.CyclicAliasError):
                continue
        assert doc is not None, f"mkdocstrings cannot find {module_name}.{name} (tried {paths})"
        found[f"{module_name}.{name}"] = doc
    return found


def test_every_public_name_renders_a_docstring() -> None:
    missing = sorted(path for path, doc in _griffe_docstrings().items() if not doc)
    assert not missing, f"public names the API reference shows without a docstring: {missing}"
