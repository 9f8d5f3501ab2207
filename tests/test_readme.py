"""The documentation's snippets work when pasted, and name only what exists.

Every ```python block of README.md and docs/*.md must compile, use no name it does
not define or import (a test function's parameters must be fixtures pytest or the
plugin provides, or that the block defines), import only what exists, and run: a
block that defines tests only defines them; a block of pure code (``compare()`` on
response dicts) runs to the end. The prose must not send users to a private module
(``pytest_rolecheck._x``) or a name that does not exist, nor to a file that is not in
the repository.

The README shows terminal output in three places only, each marked ``<!-- output: ... -->``:
the summary of the shipped examples, the message of a failing assertion, and the section of
a drift check (two tests recorded on the test suite's fake API, run again while it serves
another model); the ``rolecheck`` command's output is in ``docs/*-output.txt``. All are
compared with what the code prints now (replayed from the committed cassettes, or run on
the fake API); after an intended change of the output, refresh them with
``ROLECHECK_UPDATE_DOCS=1 python -m pytest tests/test_readme.py``.
"""

from __future__ import annotations

import ast
import builtins
import contextlib
import importlib
import inspect
import io
import os
import re
import subprocess
import symtable
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[1]
DOCS = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md")), ROOT / "bench" / "README.md"]

_FENCE = re.compile(r"^```python[^\n]*\n(.*?)^```", re.MULTILINE | re.DOTALL)
_MODULE_PATH = re.compile(r"\bpytest_rolecheck(?:\.[A-Za-z_]\w*)+")
_FILE_PATH = re.compile(
    r"(?<![\w/.-])(?:bench|docs|examples|tests|cassettes|pytest_rolecheck|\.ci)/[\w./-]*[\w]"
)
_LINK = re.compile(r"\]\(([^)#\s]+)(?:#[^)]*)?\)")


@dataclass(frozen=True)
class Block:
    path: Path
    line: int
    code: str

    def __str__(self) -> str:
        return f"{self.path.relative_to(ROOT)}:{self.line}"


def _blocks() -> list[Block]:
    found = []
    for path in DOCS:
        text = path.read_text(encoding="utf-8")
        for match in _FENCE.finditer(text):
            line = text.count("\n", 0, match.start(1)) + 1
            found.append(Block(path, line, match.group(1)))
    return found


BLOCKS = _blocks()


def _tables(table: symtable.SymbolTable) -> Iterator[symtable.SymbolTable]:
    yield table
    for child in table.get_children():
        yield from _tables(child)


def free_names(code: str) -> set[str]:
    """Global names the code reads but neither assigns nor imports (builtins excluded)."""
    top = symtable.symtable(code, "<snippet>", "exec")
    defined = {s.get_name() for s in top.get_symbols() if s.is_assigned() or s.is_imported()}
    used = {
        symbol.get_name()
        for table in _tables(top)
        for symbol in table.get_symbols()
        if symbol.is_referenced() and symbol.is_global()
    }
    return used - defined - set(dir(builtins))


def test_free_names_finds_what_a_snippet_forgot() -> None:
    code = "import datetime\nA = 1\ndef test_x(rolecheck):\n    return A, B, len, plain\n"
    assert free_names(code) == {"B", "plain"}


def _test_parameters(code: str) -> dict[str, list[str]]:
    tree = ast.parse(code)
    return {
        node.name: [arg.arg for arg in node.args.args]
        for node in tree.body
        if isinstance(node, ast.FunctionDef) and node.name.startswith("test")
    }


def _fixtures_defined(code: str) -> set[str]:
    tree = ast.parse(code)
    return {
        node.name
        for node in tree.body
        if isinstance(node, ast.FunctionDef)
        and any("fixture" in ast.unparse(d) for d in node.decorator_list)
    }


@pytest.fixture(scope="module")
def available_fixtures(tmp_path_factory: pytest.TempPathFactory) -> set[str]:
    """Fixtures of pytest itself and of the plugin (no other plugin is loaded)."""
    env = dict(os.environ, PYTEST_DISABLE_PLUGIN_AUTOLOAD="1")
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), env.get("PYTHONPATH")]))
    result = subprocess.run(
        [sys.executable, "-m", "pytest", "--fixtures", "-p", "pytest_rolecheck.plugin"],
        cwd=tmp_path_factory.mktemp("fixtures"),
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )
    names = set(re.findall(r"^(\w+)(?: \[\w+ scope\])? -- ", result.stdout, re.MULTILINE))
    assert {"rolecheck", "tmp_path", "monkeypatch"} <= names, result.stdout[-2000:]
    return names


def test_the_docs_have_python_snippets() -> None:
    # The README's own examples must be among the checked blocks.
    assert sum(block.path.name == "README.md" for block in BLOCKS) >= 2


@pytest.mark.parametrize("block", BLOCKS, ids=str)
def test_snippet_names_are_defined(block: Block, available_fixtures: set[str]) -> None:
    compile(block.code, str(block), "exec")
    assert free_names(block.code) == set(), f"{block}: used but never defined or imported"
    known = available_fixtures | _fixtures_defined(block.code)
    for test, parameters in _test_parameters(block.code).items():
        unknown = sorted(set(parameters) - known)
        assert unknown == [], f"{block}: {test}() asks for fixtures that do not exist"


def run_block(block: Block) -> str:
    """Run the block's module-level code; return what it prints."""
    namespace: dict[str, Any] = {"__name__": "snippet"}
    printed = io.StringIO()
    with contextlib.redirect_stdout(printed):
        exec(compile(block.code, str(block), "exec"), namespace)
    return printed.getvalue()


@pytest.mark.parametrize("block", BLOCKS, ids=str)
def test_snippet_runs(block: Block, monkeypatch: pytest.MonkeyPatch) -> None:
    # Tests the block defines are only defined; pure module-level code runs here,
    # from the repository's root, as a user in a clone would run it.
    monkeypatch.chdir(ROOT)
    run_block(block)


def _imported_from_package(tree: ast.Module) -> dict[str, object]:
    import pytest_rolecheck

    names: dict[str, object] = {}
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.module == "pytest_rolecheck":
            for alias in node.names:
                names[alias.asname or alias.name] = getattr(pytest_rolecheck, alias.name)
    return names


def _api_calls(code: str) -> Iterator[tuple[ast.Call, Any, bool]]:
    """Calls of the package's API in ``code``: (call, callable, needs a self argument)."""
    from pytest_rolecheck import Rolecheck, Variant

    tree = ast.parse(code)
    imported = _imported_from_package(tree)
    variant_methods = {n for n in vars(Variant) if not n.startswith("_")}
    for call in ast.walk(tree):
        if not isinstance(call, ast.Call):
            continue
        func = call.func
        if isinstance(func, ast.Name) and func.id in imported:
            yield call, imported[func.id], False
        elif isinstance(func, ast.Attribute) and isinstance(func.value, ast.Name):
            owner = func.value.id
            if owner == "rolecheck":  # the fixture
                yield call, getattr(Rolecheck, func.attr), True
            elif isinstance(imported.get(owner), type):
                target = getattr(imported[owner], func.attr)
                yield call, target, inspect.isfunction(target)
            elif func.attr in variant_methods and owner not in imported:
                yield call, getattr(Variant, func.attr), True


def bad_calls(code: str) -> list[str]:
    """The package API calls in ``code`` whose arguments do not fit the signature."""
    bad = []
    for call, target, needs_self in _api_calls(code):
        if any(isinstance(a, ast.Starred) for a in call.args) or any(
            k.arg is None for k in call.keywords
        ):
            continue
        args = [None] * (len(call.args) + needs_self)
        kwargs = {k.arg: None for k in call.keywords if k.arg is not None}
        try:
            inspect.signature(target).bind(*args, **kwargs)
        except TypeError as exc:
            bad.append(f"line {call.lineno}: {ast.unparse(call)[:80]}: {exc}")
    return bad


def test_bad_calls_finds_a_wrong_keyword() -> None:
    code = (
        "from pytest_rolecheck import Variant\n"
        "def test_x(rolecheck):\n"
        "    v = Variant.from_messages([], label='a')\n"
        "    rolecheck.run(v, n=3, trails=4)\n"
        "    v.with_role('system', 'developer')\n"
    )
    assert [line.split(":")[0] for line in bad_calls(code)] == ["line 4", "line 5"]


@pytest.mark.parametrize("block", BLOCKS, ids=str)
def test_snippet_calls_match_the_signatures(block: Block) -> None:
    # A test function's body only runs against a cassette: check its calls' arguments.
    assert bad_calls(block.code) == [], str(block)


def _resolve(dotted: str) -> object:
    parts = dotted.split(".")
    for cut in range(len(parts), 0, -1):
        try:
            value: object = importlib.import_module(".".join(parts[:cut]))
        except ModuleNotFoundError:
            continue
        for name in parts[cut:]:
            value = getattr(value, name)
        return value
    raise ModuleNotFoundError(dotted)


@pytest.mark.parametrize("path", DOCS, ids=lambda p: str(p.relative_to(ROOT)))
def test_docs_name_public_importable_paths_and_existing_files(path: Path) -> None:
    text = path.read_text(encoding="utf-8")
    for dotted in set(_MODULE_PATH.findall(text)):
        private = [part for part in dotted.split(".") if part.startswith("_")]
        assert private == [], f"{path.name} points users at a private name: {dotted}"
        try:
            _resolve(dotted)
        except (ImportError, AttributeError) as exc:
            pytest.fail(f"{path.name} names {dotted}, which does not exist: {exc}")
    for name in set(_FILE_PATH.findall(text)):
        assert (ROOT / name).exists(), f"{path.name} names {name}, not in the repository"
    for target in set(_LINK.findall(text)):
        if "://" not in target:
            linked = (path.parent / target).resolve()
            assert linked.exists(), f"{path.name} links to {target}, which does not exist"


# --------------------------------------------------------------------------- shown output

README = ROOT / "README.md"
_OUTPUT = re.compile(r"^<!-- output: (.*?) -->\n```text\n(.*?)^```", re.MULTILINE | re.DOTALL)
# pytest's last line: its duration, and so its padding, changes from run to run.
_LAST_LINE = re.compile(r"^=+ (.*) in [0-9.]+s(?: \([0-9:]+\))? =+$", re.MULTILINE)


def _shown(marker: str) -> str:
    for match in _OUTPUT.finditer(README.read_text(encoding="utf-8")):
        if match.group(1) == marker:
            return match.group(2)
    raise AssertionError(f"README.md has no <!-- output: {marker} --> block")


def _check_shown(marker: str, actual: str) -> None:
    """The README's block equals ``actual``, or is rewritten with ROLECHECK_UPDATE_DOCS=1."""
    shown = _shown(marker)
    if _LAST_LINE.sub(r"\1", shown) == _LAST_LINE.sub(r"\1", actual):
        return
    if os.environ.get("ROLECHECK_UPDATE_DOCS") == "1":
        text = README.read_text(encoding="utf-8")
        old = f"<!-- output: {marker} -->\n```text\n{shown}```"
        new = f"<!-- output: {marker} -->\n```text\n{actual}```"
        README.write_text(text.replace(old, new), encoding="utf-8")
        return
    assert shown == actual, (
        f"README.md's '{marker}' output is stale; refresh it with "
        "ROLECHECK_UPDATE_DOCS=1 python -m pytest tests/test_readme.py"
    )


def test_readme_shows_the_failure_message_its_snippet_prints() -> None:
    marker = "failure message of the snippet above"
    text = README.read_text(encoding="utf-8")
    before = text[: text.index(f"<!-- output: {marker} -->")]
    block = [b for b in BLOCKS if b.path == README and text.count("\n", 0, len(before)) > b.line]
    _check_shown(marker, run_block(block[-1]))


def test_readme_shows_the_summary_the_examples_print() -> None:
    # The README's main command, replayed from the committed cassettes.
    env = dict(os.environ, COLUMNS="80")
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), env.get("PYTHONPATH")]))
    env.pop("OPENAI_BASE_URL", None)
    env.pop("PYTEST_ADDOPTS", None)  # the README shows the command as a user types it
    result = subprocess.run(
        [sys.executable, "-m", "pytest", "examples", "-p", "no:cacheprovider"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stdout[-3000:]
    start = re.search(r"^=+ rolecheck =+$", result.stdout, re.MULTILINE)
    assert start is not None, result.stdout[-3000:]
    _check_shown("summary of `python -m pytest examples`", result.stdout[start.start() :])


# A drift check's section: two tests recorded on the fake API, run again while it serves
# another model. Shown with the run's temporary directory as /path/to/project.
_DRIFT_CONFTEST = """
import pytest
import _fake_api

@pytest.fixture(scope="session")
def rolecheck_client():
    return _fake_api.async_client()
"""
_DRIFT_TESTS = """
from pytest_rolecheck import assert_roles_differ

MESSAGES = [
    {"role": "system", "content": "You are a helpful AI assistant"},
    {"role": "user", "content": "Produce two stanza rock lyrics for 'Rockin with my Kitty Cat'"},
]

def test_roles_differ():
    assert_roles_differ(MESSAGES, roles=("developer", "system"), model="fake-model")

def test_same_variant(rolecheck):
    v = rolecheck.variant(MESSAGES, label="helpful")
    rolecheck.compare(v, v, model="fake-model")
"""


def test_readme_shows_the_drift_section_of_a_swapped_model(tmp_path: Path) -> None:
    (tmp_path / "_fake_api.py").write_text(
        (ROOT / "tests" / "_fake_api.py").read_text(encoding="utf-8"), encoding="utf-8"
    )
    (tmp_path / "conftest.py").write_text(_DRIFT_CONFTEST, encoding="utf-8")
    (tmp_path / "test_roles.py").write_text(_DRIFT_TESTS, encoding="utf-8")
    (tmp_path / "pytest.ini").write_text("[pytest]\n", encoding="utf-8")
    env = {k: v for k, v in os.environ.items() if not k.startswith(("FAKE_API_", "OPENAI_"))}
    env.pop("PYTEST_ADDOPTS", None)
    env["COLUMNS"] = "80"
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), env.get("PYTHONPATH")]))

    def pytest_run(*args: str, **extra: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "pytest", *args],
            cwd=tmp_path,
            env={**env, **extra},
            capture_output=True,
            text=True,
            check=False,
        )

    recorded = pytest_run("--rolecheck-record-mode=once")
    assert recorded.returncode == 0, recorded.stdout[-3000:]
    result = pytest_run(
        "--rolecheck-drift", "--rolecheck-drift-save=drift-live", FAKE_API_SHIFT="another model"
    )
    assert result.returncode == pytest.ExitCode.TESTS_FAILED, result.stdout[-3000:]
    start = re.search(r"^=+ rolecheck drift =+$", result.stdout, re.MULTILINE)
    assert start is not None, result.stdout[-3000:]
    shown = result.stdout[start.start() :].replace(str(tmp_path), "/path/to/project")
    _check_shown("drift section of `pytest --rolecheck-drift`", shown)


# The progress line's elapsed time changes from run to run.
_ELAPSED = re.compile(r"^(rolecheck: calls .*?)\s+[0-9.]+ s$", re.MULTILINE)
_COMMAND_OUTPUTS = sorted((ROOT / "docs").glob("*-output.txt"))


def _command_blocks(text: str) -> list[tuple[str, str]]:
    """(command, output) pairs of a ``$ rolecheck ...`` transcript; blank lines separate them."""
    blocks = []
    for chunk in re.split(r"\n\n(?=\$ )", text):
        command, _, output = chunk.partition("\n")
        blocks.append((command, output))
    return blocks


def test_command_blocks_split_a_transcript() -> None:
    text = "$ rolecheck a\nout\n\nmore\n\n$ rolecheck b --x\n... (abridged)\n"
    assert _command_blocks(text) == [
        ("$ rolecheck a", "out\n\nmore"),
        ("$ rolecheck b --x", "... (abridged)\n"),
    ]


@pytest.mark.parametrize("path", _COMMAND_OUTPUTS, ids=lambda p: p.name)
def test_shown_command_output_is_what_the_command_prints(path: Path) -> None:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), env.get("PYTHONPATH")]))
    env.pop("OPENAI_BASE_URL", None)
    text = path.read_text(encoding="utf-8")
    blocks = _command_blocks(text)
    fresh = []
    for command, shown in blocks:
        if shown.startswith("..."):  # an abridged live recording: nothing to replay
            fresh.append((command, shown))
            continue
        argv = command.removeprefix("$ rolecheck ").split()
        # plan reads a cassette; compare replays one: neither may go live here
        assert argv[0] == "plan" or "--cassette" in argv, f"{path.name}: {command} is live"
        result = subprocess.run(
            [sys.executable, "-m", "pytest_rolecheck.cli", *argv],
            cwd=ROOT,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            check=False,
        )
        output = result.stdout if shown.endswith("\n") else result.stdout.rstrip("\n")
        fresh.append((command, output))
    if [_ELAPSED.sub(r"\1", o) for _, o in fresh] == [_ELAPSED.sub(r"\1", o) for _, o in blocks]:
        return
    rendered = "\n\n".join(f"{c}\n{o}" for c, o in fresh)
    if os.environ.get("ROLECHECK_UPDATE_DOCS") == "1":
        path.write_text(rendered, encoding="utf-8")
        return
    assert text == rendered, (
        f"docs/{path.name} is stale; refresh it with "
        "ROLECHECK_UPDATE_DOCS=1 python -m pytest tests/test_readme.py"
    )
