"""The pure core imports no pytest, openai, vcrpy, yaml or matplotlib: it only computes.

Checked twice: statically (every import statement of every module under
``pytest_rolecheck/core/``, lazy ones inside functions included) and at run time
(importing every core module in a fresh interpreter and reading ``sys.modules``).
"""

from __future__ import annotations

import ast
import json
import subprocess
import sys
from pathlib import Path

import pytest

import pytest_rolecheck

FORBIDDEN = ("pytest", "_pytest", "openai", "vcr", "yaml", "matplotlib")
CORE = Path(pytest_rolecheck.__file__).parent / "core"
MODULES = sorted(CORE.glob("*.py"))


def _top_level(name: str) -> str:
    return name.split(".")[0]


def _imported_names(path: Path) -> list[tuple[int, str]]:
    """(line, top-level package) of every import in ``path``; relative imports resolved."""
    found: list[tuple[int, str]] = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            found += [(node.lineno, _top_level(alias.name)) for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            found.append((node.lineno, _top_level(node.module)))
        elif isinstance(node, ast.Call) and getattr(node.func, "id", None) == "__import__":
            arg = node.args[0] if node.args else None
            if isinstance(arg, ast.Constant) and isinstance(arg.value, str):
                found.append((node.lineno, _top_level(arg.value)))
    return found


def test_core_has_modules() -> None:
    # Guards the glob: an empty list would make the other tests pass vacuously.
    assert {p.stem for p in MODULES} >= {"stats", "distances", "parse", "verdict"}


@pytest.mark.parametrize("path", MODULES, ids=lambda p: p.name)
def test_core_sources_import_nothing_forbidden(path: Path) -> None:
    bad = [f"{path.name}:{line} imports {name}" for line, name in _imported_names(path)]
    assert [b for b in bad if b.rsplit(" ", 1)[1] in FORBIDDEN] == []


def test_the_source_check_sees_lazy_imports(tmp_path: Path) -> None:
    sample = tmp_path / "sample.py"
    sample.write_text("def f():\n    import yaml.loader\n    from openai import OpenAI\n")
    assert [name for _, name in _imported_names(sample)] == ["yaml", "openai"]


def test_importing_core_loads_nothing_forbidden() -> None:
    names = [f"pytest_rolecheck.core.{p.stem}" for p in MODULES if p.stem != "__init__"]
    code = (
        "import importlib, json, sys\n"
        f"for name in {names!r}:\n"
        "    importlib.import_module(name)\n"
        "print(json.dumps(sorted(sys.modules)))\n"
    )
    root = str(Path(pytest_rolecheck.__file__).parents[1])
    proc = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        check=True,
        cwd=root,
        env={"PYTHONPATH": root, "PATH": ""},
    )
    loaded = json.loads(proc.stdout)
    assert "pytest_rolecheck.core.stats" in loaded
    assert sorted({m for m in loaded if _top_level(m) in FORBIDDEN}) == []
