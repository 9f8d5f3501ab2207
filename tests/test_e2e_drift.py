"""``--rolecheck-drift`` end to end: real serving changes of the bundled model, no mocks.

A baseline is recorded once from the shipped GGUF behind the real llama.cpp
server; every test then runs the drift check against another real server (made
by ``serving_changes.py``, nothing downloaded) and looks at the exit code, the
"rolecheck drift" section, the JSON report and the cassettes. The recorded
test compares the instruction as a system message with the instruction in the
user turn, and asserts nothing: the exit code is the drift check's alone.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any, NamedTuple

import pytest
from serving_changes import (
    free_port,
    other_template,
    requantize,
    shipped_model,
    start_requantized,
    start_shipped,
    start_with_template,
    template_with_default_system,
)

from pytest_rolecheck.running.local import DEFAULT_MODEL_ALIAS, backend_status

pytestmark = pytest.mark.e2e
pytest_plugins = ["pytester"]

TEST = """
MESSAGES = [
    {"role": "system", "content": "You are a helpful AI assistant"},
    {"role": "user", "content": "Name a colour."},
]

def test_roles(rolecheck):
    # the user-prefixed arm has no system message: a default system line reaches it alone
    system = rolecheck.variant(MESSAGES, label="system")
    rolecheck.compare(system, system.with_role("user-prefixed"))
"""

INI = """[pytest]
rolecheck_trials = 4
rolecheck_max_tokens = 8
rolecheck_top_logprobs = 5
rolecheck_report = report.json
"""

SYSTEM_ARM = "test_roles.py::test_roles [system]"
USER_ARM = "test_roles.py::test_roles [user-prefixed]"


class Baseline(NamedTuple):
    """A project recorded against the shipped server, and that server's (closed) port."""

    path: Path
    port: int


def require_backend() -> None:
    installed, reason = backend_status()
    if installed:
        return
    if os.environ.get("CI") == "true":
        pytest.fail(f"CI=true and the local backend is missing: {reason}")
    pytest.skip(f"local backend not installed: {reason}")


@pytest.fixture(scope="module")
def baseline(tmp_path_factory: pytest.TempPathFactory) -> Baseline:
    """One recording from the shipped model, shared by every test (copied into each)."""
    require_backend()
    path = tmp_path_factory.mktemp("baseline")
    (path / "test_roles.py").write_text(TEST)
    (path / "pytest.ini").write_text(INI)
    with start_shipped() as url:
        recorded = subprocess.run(
            [
                sys.executable,
                "-m",
                "pytest",
                "-p",
                "no:cacheprovider",
                "--rolecheck-record-mode=once",
                f"--rolecheck-base-url={url}",
                f"--rolecheck-model={DEFAULT_MODEL_ALIAS}",
            ],
            cwd=path,
            env={**os.environ, "OPENAI_API_KEY": "unused"},
            capture_output=True,
            text=True,
            check=False,
        )
    assert recorded.returncode == 0, recorded.stdout + recorded.stderr
    (path / "report.json").unlink()
    return Baseline(path, int(url.rsplit(":", 1)[1].split("/")[0]))


@pytest.fixture
def project(
    pytester: pytest.Pytester, baseline: Baseline, monkeypatch: pytest.MonkeyPatch
) -> pytest.Pytester:
    shutil.copytree(baseline.path, pytester.path, dirs_exist_ok=True)
    monkeypatch.setenv("OPENAI_API_KEY", "unused")  # the local server checks none
    monkeypatch.delenv("OPENAI_BASE_URL", raising=False)
    return pytester


def _cassettes(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*.json"))}


def _drift(project: pytest.Pytester, url: str, *args: str) -> tuple[pytest.RunResult, Any]:
    """Run the drift check against ``url``; the cassettes must come out untouched."""
    before = _cassettes(project.path / "cassettes")
    assert len(before) == 1
    result = project.runpytest("--rolecheck-drift", f"--rolecheck-base-url={url}", *args)
    assert _cassettes(project.path / "cassettes") == before
    report = json.loads((project.path / "report.json").read_text())["drift"]
    return result, {arm["arm"]: arm for arm in report["arms"]}


def _assert_drifted(result: pytest.RunResult, arms: Any, drifted: set[str]) -> None:
    out = result.stdout.str()
    assert result.ret == pytest.ExitCode.TESTS_FAILED, out
    result.assert_outcomes(passed=1)  # the test passes; the drift check fails the run
    n = len(drifted)
    result.stdout.fnmatch_lines(
        ["*rolecheck drift*", f"drift check: 2 arms of 1 test*: {n} drifted", f"DRIFTED ({n})*"]
    )
    assert arms.keys() == {SYSTEM_ARM, USER_ARM}
    for name, arm in arms.items():
        assert arm["status"] == ("drifted" if name in drifted else "no drift"), arm
        assert arm["n_recorded"] == arm["n_live"] == 4
    # the section names exactly the drifted arms
    named = out.split("DRIFTED (", 1)[1].split("\nno drift:", 1)[0]
    assert {name for name in arms if f"\n  {name}\n" in named} == drifted, out


def _assert_no_drift(result: pytest.RunResult, arms: Any) -> None:
    assert result.ret == pytest.ExitCode.OK, result.stdout.str()
    result.stdout.fnmatch_lines(["*rolecheck drift*", "drift check: 2 arms of 1 test*: no drift"])
    assert "DRIFTED" not in result.stdout.str()
    assert {arm["status"] for arm in arms.values()} == {"no drift"}
    assert {arm["change"] for arm in arms.values()} == {0.0}  # byte-identical answers


def test_requantised_model_drifts_in_both_arms(project: pytest.Pytester, tmp_path: Path) -> None:
    model = requantize(shipped_model(), tmp_path / "q4_0.gguf")
    with start_requantized(model) as url:
        result, arms = _drift(project, url, "--rolecheck-drift-save=live")
    _assert_drifted(result, arms, {SYSTEM_ARM, USER_ARM})
    # the live calls were saved beside, laid out like the cassettes
    live = _cassettes(project.path / "live")
    assert live.keys() == _cassettes(project.path / "cassettes").keys()


def test_default_system_line_drifts_only_the_arm_without_a_system_message(
    project: pytest.Pytester, tmp_path: Path
) -> None:
    template = template_with_default_system(shipped_model(), tmp_path / "pirate.jinja")
    with start_with_template(template) as url:
        result, arms = _drift(project, url)
    _assert_drifted(result, arms, {USER_ARM})


def test_another_chat_template_drifts_in_both_arms(
    project: pytest.Pytester, tmp_path: Path
) -> None:
    with start_with_template(other_template(tmp_path / "zephyr.jinja")) as url:
        result, arms = _drift(project, url)
    _assert_drifted(result, arms, {SYSTEM_ARM, USER_ARM})


def test_a_restarted_server_on_another_port_is_no_drift(
    project: pytest.Pytester, baseline: Baseline
) -> None:
    with start_shipped(port=free_port(avoid=baseline.port)) as url:
        result, arms = _drift(project, url)
    _assert_no_drift(result, arms)


def test_one_slot_instead_of_four_is_no_drift(project: pytest.Pytester) -> None:
    with start_shipped(parallel=1) as url:
        result, arms = _drift(project, url)
    _assert_no_drift(result, arms)
