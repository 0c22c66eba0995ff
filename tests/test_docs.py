"""The documentation site's API reference is made from the docstrings (mkdocs.yml,
``make docs``): every public name of the modules it renders must have one, and so must
every public method those classes define, or the reference would show a bare signature."""

from __future__ import annotations

import importlib
import inspect
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
#: the modules the pages of docs/reference/ render (``::: module``)
RENDERED = sorted({name for page in (ROOT / "docs" / "reference").glob("*.md")
                   for name in re.findall(r"^::: ([\w.]+)$", page.read_text(), re.MULTILINE)})


def _undocumented(module_name: str) -> list[str]:
    try:
        module = importlib.import_module(module_name)
    except ModuleNotFoundError:  # a page renders one class or function: check its module
        module = importlib.import_module(module_name.rpartition(".")[0])
    missing = []
    for name in getattr(module, "__all__", ()):
        value = getattr(module, name)
        if not (inspect.isclass(value) or inspect.isfunction(value)):
            continue
        if not (value.__doc__ or "").strip():
            missing.append(name)
        if inspect.isclass(value):
            missing += [f"{name}.{member}" for member, attribute in vars(value).items()
                        if not member.startswith("_") and inspect.isfunction(attribute)
                        and not (attribute.__doc__ or "").strip()
                        and not _documented_in_a_base(value, member)]
    return missing


def _documented_in_a_base(cls: type, member: str) -> bool:
    """An override of a documented method of a base class (the reference shows the base's)."""
    return any((getattr(getattr(base, member, None), "__doc__", None) or "").strip()
               for base in cls.__mro__[1:])


def test_the_reference_pages_render_modules() -> None:
    assert "axiomcam.methods" in RENDERED and "axiomcam.metrics" in RENDERED


@pytest.mark.parametrize("module_name", [name for name in RENDERED if "." in name
                                         or name == "axiomcam"])
def test_every_public_name_of_a_rendered_module_has_a_docstring(module_name: str) -> None:
    assert _undocumented(module_name) == []
