"""``--rolecheck-drift``: recorded tests run live again and are compared with their recordings.

Over the fake HTTP API (``FAKE_API_SHIFT`` swaps its model: a drift of the whole
behaviour); the real serving changes of the bundled model are in
``test_e2e_drift.py``.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

pytest_plugins = ["pytester"]

FAKE_API = (Path(__file__).parent / "_fake_api.py").read_text(encoding="utf-8")

CONFTEST = """
import pytest
import _fake_api

@pytest.fixture(scope="session")
def rolecheck_client():
    return _fake_api.async_client()
"""

TESTS = """
from pytest_rolecheck import PromptSet, assert_roles_differ

MESSAGES = [
    {"role": "system", "content": "You are a helpful AI assistant"},
    {"role": "user", "content": "Produce two stanza rock lyrics for 'Rockin with my Kitty Cat'"},
]

def test_roles_differ():
    assert_roles_differ(MESSAGES, roles=("developer", "system"), model="fake-model", trials=6)

def test_same_variant(rolecheck):
    v = rolecheck.variant(MESSAGES, label="helpful")
    rolecheck.compare(v, v, model="fake-model", trials=8, max_tokens=6)
"""

SET_TEST = """
from pytest_rolecheck import PromptSet

PROMPTS = PromptSet.from_prompts(
    {"rock": "Rock lyrics", "moon": "A moon poem", "cat": "A cat joke", "sun": "Sunny?",
     "rain": "Rain, why?", "star": "Name a star", "sea": "The sea", "owl": "An owl"},
    instruction="You are a helpful AI assistant",
)

def test_set(rolecheck):
    rolecheck.compare(PROMPTS, PROMPTS.with_role("developer"), model="fake-model", trials=3)
"""


@pytest.fixture
def project(pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch) -> pytest.Pytester:
    for var in ("FAKE_API_DOWN", "FAKE_API_SHIFT", "FAKE_API_NOISE", "OPENAI_BASE_URL"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    pytester.makepyfile(_fake_api=FAKE_API)
    pytester.makeconftest(CONFTEST)
    pytester.makeini("[pytest]\nrolecheck_report = report.json\n")
    pytester.makepyfile(test_roles=TESTS)
    pytester.runpytest("--rolecheck-record-mode=once").assert_outcomes(passed=2)
    return pytester


def _cassettes(pytester: pytest.Pytester) -> dict[str, bytes]:
    root = pytester.path / "cassettes"
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*.json"))}


def _drift(pytester: pytest.Pytester) -> dict[str, object]:
    block: dict[str, object] = json.loads((pytester.path / "report.json").read_text())["drift"]
    return block


def test_no_change_exits_0_and_says_no_drift(project: pytest.Pytester) -> None:
    before = _cassettes(project)
    result = project.runpytest("--rolecheck-drift")
    assert result.ret == 0
    result.assert_outcomes(passed=2)
    result.stdout.fnmatch_lines(
        [
            "*rolecheck drift*",
            "drift check: 4 arms of 2 tests run live*: no drift",
            "no drift: 4 arms",
        ]
    )
    assert "DRIFTED" not in result.stdout.str()
    drift = _drift(project)
    assert (drift["n_arms"], drift["n_drifted"], drift["drifted"]) == (4, 0, False)
    assert _cassettes(project) == before  # never modified


def test_a_swapped_model_fails_the_run_names_the_arm_and_leaves_cassettes_alone(
    project: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    before = _cassettes(project)
    monkeypatch.setenv("FAKE_API_SHIFT", "another model")
    result = project.runpytest("--rolecheck-drift", "--rolecheck-drift-save=live")
    assert result.ret == pytest.ExitCode.TESTS_FAILED
    result.stdout.fnmatch_lines(
        [
            "*rolecheck drift*",
            "drift check: 4 arms of 2 tests run live against their recordings: * drifted*",
            "DRIFTED (*",
            "  test_roles.py::test_same_variant ?helpful (A)?",
            "    change * (lower bound * > tolerance 0.2, js), p * (Holm-adjusted *)*",
            "    recorded: *",
            "    live: *",
            "what to do:",
            f"*`cp -R {project.path / 'live'}/. {project.path / 'cassettes'}/`*"
            "--rolecheck-record-mode=rewrite*test_roles.py::test_same_variant*",
        ]
    )
    assert _cassettes(project) == before
    drift = _drift(project)
    arms = {a["arm"]: a for a in drift["arms"]}  # type: ignore[attr-defined]
    arm = arms["test_roles.py::test_same_variant [helpful (A)]"]
    assert arm["status"] == "drifted"
    assert arm["adjusted_p"] <= 0.05
    assert arm["change_lower"] > arm["tolerance"]
    assert arm["typical_recorded"] != arm["typical_live"]
    # the live calls were saved as cassettes, laid out like the originals
    saved = project.path / "live" / "test_roles" / "test_same_variant.json"
    assert saved.is_file()
    assert saved.read_bytes() != before["test_roles/test_same_variant.json"]


def test_only_drift_fails_the_run_when_every_test_passes(
    project: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    # test_same_variant asserts nothing: it passes on any live calls
    monkeypatch.setenv("FAKE_API_SHIFT", "another model")
    result = project.runpytest("--rolecheck-drift", "-k", "same_variant")
    result.assert_outcomes(passed=1, deselected=1)
    assert result.ret == pytest.ExitCode.TESTS_FAILED


def test_promoting_the_saved_live_calls_makes_them_the_baseline(
    project: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("FAKE_API_SHIFT", "another model")
    project.runpytest("--rolecheck-drift", "--rolecheck-drift-save=live")
    for path in (project.path / "live").rglob("*.json"):
        target = project.path / "cassettes" / path.relative_to(project.path / "live")
        target.write_bytes(path.read_bytes())
    assert project.runpytest("--rolecheck-drift").ret == 0  # the new model is the baseline now
    monkeypatch.setenv("FAKE_API_DOWN", "1")
    project.runpytest("-k", "same_variant").assert_outcomes(passed=1, deselected=1)  # replays


def test_ini_option_turns_it_on(project: pytest.Pytester, monkeypatch: pytest.MonkeyPatch) -> None:
    project.makeini("[pytest]\nrolecheck_report = report.json\nrolecheck_drift = true\n")
    monkeypatch.setenv("FAKE_API_SHIFT", "another model")
    result = project.runpytest()
    assert result.ret == pytest.ExitCode.TESTS_FAILED
    result.stdout.fnmatch_lines(["*rolecheck drift*", "DRIFTED (*"])


def test_xdist_workers_results_make_one_decision(
    project: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    env_path = os.pathsep.join([str(project.path), os.environ.get("PYTHONPATH", "")])
    monkeypatch.setenv("PYTHONPATH", env_path)
    monkeypatch.setenv("FAKE_API_SHIFT", "another model")
    result = project.runpytest_subprocess("-n", "2", "--rolecheck-drift")
    assert result.ret == pytest.ExitCode.TESTS_FAILED
    result.stdout.fnmatch_lines(["drift check: 4 arms of 2 tests run live*"])
    drift = _drift(project)
    assert drift["n_arms"] == 4
    tests = {a["test"] for a in drift["arms"]}  # type: ignore[attr-defined]
    assert tests == {"test_roles.py::test_roles_differ", "test_roles.py::test_same_variant"}


def test_a_prompt_set_is_checked_per_arm_over_its_cases(
    project: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    project.makepyfile(test_set=SET_TEST)
    project.runpytest("test_set.py", "--rolecheck-record-mode=once").assert_outcomes(passed=1)
    assert project.runpytest("test_set.py", "--rolecheck-drift").ret == 0
    monkeypatch.setenv("FAKE_API_SHIFT", "another model")
    result = project.runpytest("test_set.py", "--rolecheck-drift")
    assert result.ret == pytest.ExitCode.TESTS_FAILED
    arms = _drift(project)["arms"]
    assert len(arms) == 2  # type: ignore[arg-type]
    for arm in arms:  # type: ignore[attr-defined]
        assert arm["n_recorded"] == arm["n_live"] == 24  # 8 cases x 3 trials
        assert arm["status"] in ("drifted", "detectable, below margin")
    # the bound is over cases (the population they stand for): 8 cases and 3 trials
    # are enough to page for one arm of this whole-model swap
    assert "drifted" in {arm["status"] for arm in arms}  # type: ignore[attr-defined]
    result.stdout.fnmatch_lines(["DRIFTED (1)*", "  test_set.py::test_set ?developer?"])


def test_without_a_recording_it_says_how_to_record_one(project: pytest.Pytester) -> None:
    project.makepyfile(
        test_new="""
def test_new(rolecheck):
    rolecheck.run(rolecheck.variant([{"role": "user", "content": "hi"}]), n=4, model="fake-model")
"""
    )
    result = project.runpytest("test_new.py", "--rolecheck-drift")
    result.assert_outcomes(failed=1)
    out = result.stdout.str()
    assert "--rolecheck-record-mode=once" in out
    assert "pytest --rolecheck-drift" not in out  # a recording command is no drift check


def test_a_test_changed_since_recording_fails_before_any_call(
    project: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    project.makepyfile(test_roles=TESTS.replace("max_tokens=6", "max_tokens=7"))
    monkeypatch.setenv("FAKE_API_DOWN", "1")  # a live call would fail differently
    result = project.runpytest("--rolecheck-drift", "-k", "same_variant")
    result.assert_outcomes(failed=1, deselected=1)
    result.stdout.fnmatch_lines(["*max_tokens*", "*--rolecheck-record-mode=rewrite*"])
    assert "fake API is down" not in result.stdout.str()


def test_bad_drift_value_is_a_usage_error(pytester: pytest.Pytester) -> None:
    pytester.makeini("[pytest]\nrolecheck_drift = maybe\n")
    result = pytester.runpytest()
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(["*rolecheck_drift*maybe*"])


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (
            ["--rolecheck-drift-save=live"],
            "*drift-save*keeps the live calls*add --rolecheck-drift*",
        ),
        (
            ["--rolecheck-drift", "--rolecheck-record-mode=rewrite"],
            "*never writes them*--rolecheck-record-mode=rewrite would record*",
        ),
    ],
)
def test_options_that_contradict_a_drift_check_are_refused(
    pytester: pytest.Pytester, args: list[str], expected: str
) -> None:
    result = pytester.runpytest(*args)
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines([expected])


def test_an_ini_record_mode_does_not_stop_a_drift_check(
    project: pytest.Pytester,
) -> None:
    before = _cassettes(project)
    project.makeini("[pytest]\nrolecheck_report = report.json\nrolecheck_record_mode = once\n")
    assert project.runpytest("--rolecheck-drift").ret == 0
    assert _cassettes(project) == before
