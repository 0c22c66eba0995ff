"""The package keeps the shape docs/architecture.md describes.

Layers and cycles are checked by import-linter (``make lint``, contracts in pyproject.toml)
and complexity by ruff; what neither tool measures is checked here, from the source:
module and function length, and private names taken from another module.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "src" / "axiomcam"
MODULES = sorted(PACKAGE.rglob("*.py"))
#: limits of issue 19 ("one clear shape for the codebase")
MAX_MODULE_LINES = 600
MAX_FUNCTION_LINES = 80


def _name(path: Path) -> str:
    return path.relative_to(PACKAGE.parent).as_posix()


def _function_lines(function: ast.FunctionDef | ast.AsyncFunctionDef) -> int:
    """Lines of a function's body, its docstring left out."""
    body = function.body
    has_docstring = (isinstance(body[0], ast.Expr) and isinstance(body[0].value, ast.Constant)
                     and isinstance(body[0].value.value, str))
    if has_docstring and len(body) == 1:
        return 0
    first = body[1] if has_docstring else body[0]
    start = min([first.lineno, *(d.lineno for d in getattr(first, "decorator_list", []))])
    return function.end_lineno - start + 1


def _private_imports(tree: ast.Module) -> list[str]:
    """``from axiomcam... import _name`` (relative or absolute) of another module's private
    name; ``__version__``-style dunder names are public."""
    found = []
    for node in ast.walk(tree):
        if not isinstance(node, ast.ImportFrom):
            continue
        internal = node.level > 0 or (node.module or "").split(".")[0] == "axiomcam"
        for alias in node.names:
            if internal and alias.name.startswith("_") and not alias.name.startswith("__"):
                found.append(f"{'.' * node.level}{node.module or ''} import {alias.name}")
    return found


def test_the_package_is_found() -> None:
    assert len(MODULES) > 20 and (PACKAGE / "__init__.py") in MODULES


@pytest.mark.parametrize("path", MODULES, ids=_name)
def test_module_stays_short(path: Path) -> None:
    lines = len(path.read_text().splitlines())
    assert lines <= MAX_MODULE_LINES, f"{_name(path)} has {lines} lines"


@pytest.mark.parametrize("path", MODULES, ids=_name)
def test_functions_stay_short(path: Path) -> None:
    tree = ast.parse(path.read_text())
    long = {node.name: _function_lines(node) for node in ast.walk(tree)
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef)
            and _function_lines(node) > MAX_FUNCTION_LINES}
    assert long == {}, f"{_name(path)}: functions over {MAX_FUNCTION_LINES} lines: {long}"


@pytest.mark.parametrize("path", MODULES, ids=_name)
def test_no_private_name_is_taken_from_another_module(path: Path) -> None:
    assert _private_imports(ast.parse(path.read_text())) == []


def test_the_checks_see_what_they_look_for() -> None:
    """The checks find a long function and a private import when there is one."""
    source = "def f():\n    '''doc'''\n" + "    x = 1\n" * 81
    (function,) = ast.parse(source).body
    assert _function_lines(function) == 81
    assert _private_imports(ast.parse("from .runs import _top, ok\nfrom os import _exit\n"
                                      "from axiomcam.x import _y\n")) == [
        ".runs import _top", "axiomcam.x import _y"]
