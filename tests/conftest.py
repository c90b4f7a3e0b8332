"""Test configuration: fake CPU devices, hypothesis profiles, runtime shape/dtype checks.

Must run before JAX is imported anywhere: it sets 8 fake host devices so sharding
tests run on one CPU, adds the XLA:CPU flags the CLI also adds (`hybrid_seq.xla_cpu`),
and installs jaxtyping + beartype on the `hybrid_seq` package so every annotated shape
and dtype is checked at call (trace) time. It also marks the tests
that need optional peers (`parity`, `hf`; see the end of this file).
"""

import ast
import functools
import inspect
import os
import pathlib
import textwrap

import pytest

os.environ.setdefault("XLA_FLAGS", "--xla_force_host_platform_device_count=8")
os.environ.setdefault("JAX_PLATFORMS", "cpu")

from hypothesis import HealthCheck, settings  # noqa: E402
from jaxtyping import install_import_hook  # noqa: E402

install_import_hook("hybrid_seq", "beartype.beartype")

from hybrid_seq.xla_cpu import apply_recommended_flags  # noqa: E402  (after the hook; creates no backend)

apply_recommended_flags()

settings.register_profile(
    "ci",
    max_examples=12,
    deadline=None,
    derandomize=True,
    print_blob=True,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
settings.register_profile(
    "thorough",
    max_examples=300,
    deadline=None,
    print_blob=True,
    suppress_health_check=[HealthCheck.too_slow],
)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci"))


@pytest.fixture(autouse=True, scope="module")
def _release_compiled_executables():
    """Drop JAX's compiled executables after each test module.

    XLA:CPU maps a few memory regions per executable and JAX keeps every executable it
    compiled; over the whole suite (tens of thousands of compilations) one process passes
    Linux's default limit of 65,530 maps and the next compilation crashes (SIGSEGV/SIGABRT).
    """
    yield
    import jax

    jax.clear_caches()


# --- Markers: `parity` on every test that needs DeepMind's `recurrentgemma`, `hf` on every
# test that needs torch or transformers, read from the test's source (never by running it),
# so `-m "not hf"` and `-m "not parity"` select what they say. A test needs a package when
# its module's top level, the test function, its fixtures or the same-module helpers they
# call import it or `pytest.importorskip` it; local `tests.*` modules imported at the top
# level count with their own top level. An `if name == "value":` around the import, or an
# `importorskip(TABLE[name][0])`, is resolved against the test's parameters.

_MARKER_OF_PACKAGE = {"recurrentgemma": "parity", "torch": "hf", "transformers": "hf"}
_UNKNOWN = object()


@functools.cache
def _module_ast(path: str) -> ast.Module:
    return ast.parse(pathlib.Path(path).read_text(), filename=path)


@functools.cache
def _module_names(path: str) -> tuple[dict[str, ast.FunctionDef], dict[str, object]]:
    """A module's top-level functions, and its top-level `NAME = <literal>` tables."""
    body = _module_ast(path).body
    functions = {n.name: n for n in body if isinstance(n, ast.FunctionDef)}
    tables = {}
    for n in body:
        if isinstance(n, ast.Assign) and len(n.targets) == 1 and isinstance(n.targets[0], ast.Name):
            try:
                tables[n.targets[0].id] = ast.literal_eval(n.value)
            except (ValueError, TypeError, SyntaxError):
                pass
    return functions, tables


def _local_module_path(name: str) -> str | None:
    """The file of a `tests.*` module, or None for anything else."""
    if not name.startswith("tests."):
        return None
    base = pathlib.Path(__file__).parent.parent.joinpath(*name.split("."))
    for candidate in (base.with_suffix(".py"), base / "__init__.py"):
        if candidate.exists():
            return str(candidate)
    return None


class _Needs(ast.NodeVisitor):
    """The packages of `_MARKER_OF_PACKAGE` that code in `path` needs, with `env` binding parameter names to values."""

    def __init__(self, path: str, env: dict[str, object], seen: set[tuple[str, str]]) -> None:
        self.path, self.env, self.seen, self.found = path, env, seen, set()
        self.functions, self.tables = _module_names(path)

    def need(self, module: str) -> None:
        root = module.split(".")[0]
        if root in _MARKER_OF_PACKAGE:
            self.found.add(root)
        local = _local_module_path(module)
        if local is not None and (local, "") not in self.seen:
            self.seen.add((local, ""))
            self.found |= _toplevel_needs(local, self.seen)
            self.seen.discard((local, ""))

    def visit_FunctionDef(self, node: ast.FunctionDef) -> None:  # a nested def counts only when called
        pass

    def visit_Import(self, node: ast.Import) -> None:
        for alias in node.names:
            self.need(alias.name)

    def visit_ImportFrom(self, node: ast.ImportFrom) -> None:
        if node.module and not node.level:
            self.need(node.module)

    def visit_If(self, node: ast.If) -> None:
        test = node.test
        if (isinstance(test, ast.Compare) and isinstance(test.left, ast.Name) and test.left.id in self.env
                and len(test.ops) == 1 and isinstance(test.ops[0], ast.Eq) and isinstance(test.comparators[0], ast.Constant)):
            branch = node.body if self.env[test.left.id] == test.comparators[0].value else node.orelse
            for statement in branch:
                self.visit(statement)
        else:
            self.generic_visit(node)

    def visit_Call(self, node: ast.Call) -> None:
        name = node.func.attr if isinstance(node.func, ast.Attribute) else getattr(node.func, "id", None)
        if name == "importorskip" and node.args:
            module = self.constant(node.args[0])
            if isinstance(module, str):
                self.need(module)
        elif name in self.functions and (self.path, name) not in self.seen:
            self.seen.add((self.path, name))
            helper = self.functions[name]
            arguments = [*zip((a.arg for a in helper.args.args), node.args), *((k.arg, k.value) for k in node.keywords)]
            bound = {name: self.constant(value) for name, value in arguments if name}
            bound = {name: value for name, value in bound.items() if value is not _UNKNOWN}
            self.found |= _function_needs(self.path, helper, bound, self.seen)
            self.seen.discard((self.path, name))
        self.generic_visit(node)

    def constant(self, node: ast.expr) -> object:
        """The value of a constant, a parameter, or `TABLE[...][...]` over a module-level literal; else `_UNKNOWN`."""
        if isinstance(node, ast.Constant):
            return node.value
        if isinstance(node, ast.Name):
            return self.env.get(node.id, self.tables.get(node.id, _UNKNOWN))
        if isinstance(node, ast.Subscript):
            container, key = self.constant(node.value), self.constant(node.slice)
            try:
                return container[key]
            except (KeyError, IndexError, TypeError):
                return _UNKNOWN
        return _UNKNOWN


def _toplevel_needs(path: str, seen: set[tuple[str, str]]) -> set[str]:
    visitor = _Needs(path, {}, seen)
    for statement in _module_ast(path).body:
        visitor.visit(statement)
    return visitor.found


@functools.cache
def _module_needs(path: str) -> frozenset[str]:
    return frozenset(_toplevel_needs(path, {(path, "")}))


def _function_needs(path: str, function: ast.FunctionDef, env: dict[str, object], seen: set[tuple[str, str]]) -> set[str]:
    visitor = _Needs(path, env, seen)
    for statement in function.body:
        visitor.visit(statement)
    return visitor.found


def _definition(function: object) -> tuple[str, ast.FunctionDef] | None:
    """The file and AST of a Python function defined under tests/, or None."""
    try:
        path = inspect.getsourcefile(function)
        lines, start = inspect.getsourcelines(function)
    except (OSError, TypeError):
        return None
    if path is None or pathlib.Path(__file__).parent not in pathlib.Path(path).resolve().parents:
        return None
    node = ast.parse(textwrap.dedent("".join(lines))).body[0]
    return (path, node) if isinstance(node, ast.FunctionDef) else None


def _item_needs(item: pytest.Item) -> set[str]:
    found = set(_module_needs(str(item.path))) if item.path.suffix == ".py" else set()
    params = dict(getattr(getattr(item, "callspec", None), "params", {}))
    functions = [getattr(item, "function", None)]
    for name in getattr(item, "fixturenames", ()):
        definitions = item._fixtureinfo.name2fixturedefs.get(name, ())
        functions += [definitions[-1].func] if definitions else []
    for function in functions:
        definition = _definition(function) if function is not None else None
        if definition is not None:
            found |= _function_needs(definition[0], definition[1], params, set())
    return found


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        for marker in sorted({_MARKER_OF_PACKAGE[package] for package in _item_needs(item)}):
            if item.get_closest_marker(marker) is None:
                item.add_marker(marker)
