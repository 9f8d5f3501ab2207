"""The file tree is the architecture: each package says what its modules are for."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "pytest_rolecheck"
SUBPACKAGES = sorted(p.parent for p in PACKAGE.glob("**/__init__.py") if p.parent != PACKAGE)
# A module past this size does several jobs; split it before it grows further.
MAX_MODULE_LINES = 650


@pytest.mark.parametrize("package", SUBPACKAGES, ids=lambda p: str(p.relative_to(PACKAGE)))
def test_each_package_lists_its_modules(package: Path) -> None:
    doc = ast.get_docstring(ast.parse((package / "__init__.py").read_text())) or ""
    doc = doc.partition("Modules::")[2]
    # "    name  what it does" (continuation lines are indented further)
    listed = {
        line.split()[0]
        for line in doc.splitlines()
        if line[:5].startswith("    ") and line[4:5].strip()
    }
    modules = {p.stem for p in package.glob("*.py") if p.name != "__init__.py"}
    modules |= {p.parent.name for p in package.glob("*/__init__.py")}
    assert listed == modules, f"update the module list in {package.name}/__init__.py"


def test_no_module_does_several_jobs() -> None:
    sizes = {
        str(p.relative_to(PACKAGE)): len(p.read_text().splitlines()) for p in PACKAGE.rglob("*.py")
    }
    assert {k: v for k, v in sizes.items() if v > MAX_MODULE_LINES} == {}
