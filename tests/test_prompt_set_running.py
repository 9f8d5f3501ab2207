"""Prompt sets through the plugin: every case's calls in the test's one cassette, replayed.

The pure comparison over ``{case id: responses}`` is the verdicts' (tested there); here a
spy records what the running test hands to ``compare()`` / ``compare_tool_calls()``.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

# Imported here so that they outlive each in-process pytester run: pytester drops the
# modules a run imported, while the package keeps the classes it handed out.
import pytest_rolecheck.variants.prompt_sets
import pytest_rolecheck.verdicts.compare
import pytest_rolecheck.verdicts.toolcalls  # noqa: F401

pytest_plugins = ["pytester"]

FAKE_API = (Path(__file__).parent / "_fake_api.py").read_text(encoding="utf-8")

CONFTEST = """
import json
import pytest
import _fake_api
import pytest_rolecheck.verdicts.compare as compare_module
import pytest_rolecheck.verdicts.toolcalls as toolcalls_module

# What each comparison received: {"kind": ..., "a": {case: n}, "b": {case: n}, "labels": ...}
SEEN = "seen.jsonl"


def _spy(real, kind):
    def compare(a, b, **options):
        if isinstance(a, dict):
            with open(SEEN, "a") as out:
                record = {"kind": kind, "labels": list(options["labels"])}
                for arm, data in (("a", a), ("b", b)):
                    record[arm] = {case: len(calls) for case, calls in data.items()}
                out.write(json.dumps(record) + "\\n")
        return real(a, b, **options)
    return compare


@pytest.fixture(autouse=True)
def _set_compare(monkeypatch):
    monkeypatch.setattr(
        compare_module, "compare", _spy(compare_module.compare, "logprobs")
    )
    monkeypatch.setattr(
        toolcalls_module,
        "compare_tool_calls",
        _spy(toolcalls_module.compare_tool_calls, "tool-calls"),
    )


@pytest.fixture(scope="session")
def rolecheck_client():
    return _fake_api.async_client()
"""

SET_TESTS = """
import pytest
from pytest_rolecheck import (
    NothingToCompareError, PromptSet, RolecheckAssertionError, assert_roles_equivalent,
    assert_tool_calls_equivalent,
)

PROMPTS = PromptSet.from_prompts(
    {"rock": "Rock lyrics", "moon": "A moon poem", "cat": "A cat joke", "sun": "Sunny?",
     "rain": "Rain, why?", "star": "Name a star"},
    instruction="You are a helpful AI assistant",
)

def test_roles_over_a_set():
    # the fake API's answers depend on the role: far from equivalent
    with pytest.raises(RolecheckAssertionError, match="developer with system over 6 cases"):
        assert_roles_equivalent(prompts=PROMPTS, roles=("developer", "system"), model="fake-model")

def test_wording_over_a_set(rolecheck):
    other = PROMPTS.with_instruction("You are a creative English language output AI")
    result = rolecheck.compare(PROMPTS, other, model="fake-model", trials=4)
    assert (result.n_cases, result.trials_a, result.n_a) == (6, 4, 24)
    assert [case.id for case in result.cases] == list(PROMPTS)

def test_tool_calls_over_a_set(rolecheck):
    # the fake API answers in text: the calls are made and recorded, then nothing to compare
    with pytest.raises(NothingToCompareError):
        assert_tool_calls_equivalent(PROMPTS, PROMPTS.with_label("again"), model="fake-model",
                                     trials=4, max_tokens=4)
"""


CASES = ("rock", "moon", "cat", "sun", "rain", "star")


@pytest.fixture
def project(pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch) -> pytest.Pytester:
    for var in ("FAKE_API_DOWN", "FAKE_API_STATUS", "FAKE_API_NOISE", "OPENAI_BASE_URL"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    pytester.makepyfile(_fake_api=FAKE_API)
    pytester.makeconftest(CONFTEST)
    pytester.makepyfile(test_sets=SET_TESTS)
    return pytester


def _seen(pytester: pytest.Pytester) -> list[dict[str, object]]:
    lines = (pytester.path / "seen.jsonl").read_text().splitlines()
    (pytester.path / "seen.jsonl").unlink()
    return [json.loads(line) for line in lines]


def _interactions(pytester: pytest.Pytester, test: str) -> list[dict[str, object]]:
    data = json.loads((pytester.path / "cassettes" / "test_sets" / f"{test}.json").read_text())
    rows: list[dict[str, object]] = data["interactions"]
    return rows


def _content(interaction: dict[str, object]) -> tuple[str, str]:
    body = interaction["request"]["body"]["json"]  # type: ignore[index]
    first, user = body["messages"][0], body["messages"][-1]
    return first["role"], user["content"]


def test_a_set_records_one_cassette_case_by_case_and_replays(
    project: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    project.runpytest("--rolecheck-record-mode=once").assert_outcomes(passed=3)
    recorded = _seen(project)
    assert recorded == [
        {
            "kind": "logprobs",
            "labels": ["developer", "system"],
            "a": dict.fromkeys(CASES, 5),  # the default trials per case
            "b": dict.fromkeys(CASES, 5),
        },
        {
            "kind": "logprobs",
            "labels": ["system", "system+instruction"],
            "a": dict.fromkeys(CASES, 4),
            "b": dict.fromkeys(CASES, 4),
        },
        {
            "kind": "tool-calls",
            "labels": ["system", "again"],
            "a": dict.fromkeys(CASES, 4),
            "b": dict.fromkeys(CASES, 4),
        },
    ]
    calls = _interactions(project, "test_roles_over_a_set")
    assert [c["index"] for c in calls] == list(range(60))
    # case by case, arms interleaved within each case
    expected = [
        (role, prompt)
        for prompt in (
            "Rock lyrics",
            "A moon poem",
            "A cat joke",
            "Sunny?",
            "Rain, why?",
            "Name a star",
        )
        for _ in range(5)
        for role in ("developer", "system")
    ]
    assert [_content(c) for c in calls] == expected

    monkeypatch.setenv("FAKE_API_DOWN", "1")  # any live call would now fail
    project.runpytest().assert_outcomes(passed=3)
    assert _seen(project) == recorded


@pytest.mark.parametrize(
    ("call", "words"),
    [
        (
            "rolecheck.assert_variants_differ(PROMPTS, PROMPTS.cases[0][1], model='m')",
            "arm A is a PromptSet but the other arm is one prompt",
        ),
        (
            "rolecheck.assert_variants_differ(PROMPTS, PromptSet.from_prompts(['x']), model='m')",
            "only in A: ?'rock', 'moon', 'cat', 'sun', 'rain', 'star'?, only in B: ?'case-1'?",
        ),
        ("rolecheck.compare(PROMPTS, PROMPTS, trials=1, model='m')", "trials=1 is not allowed"),
        (
            "rolecheck.compare(PROMPTS, PROMPTS, design='seed', model='m')",
            "pass design='all-pairs'",
        ),
        ("rolecheck.assert_roles_differ(model='m')", "pass either messages="),
        ("rolecheck.run(PROMPTS, model='m')", "is many requests, not one"),
        (
            "rolecheck.assert_roles_differ(prompts=['Hi', 'Bye'], model='m')",
            "PromptSet.from_prompts",
        ),
    ],
)
def test_bad_set_arguments_fail_before_any_call(
    project: pytest.Pytester, monkeypatch: pytest.MonkeyPatch, call: str, words: str
) -> None:
    monkeypatch.setenv("FAKE_API_DOWN", "1")
    project.makepyfile(
        test_bad=SET_TESTS.split("def test_")[0] + f"\ndef test_bad(rolecheck):\n    {call}\n"
    )
    result = project.runpytest("test_bad.py", "--rolecheck-record-mode=once")
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines([f"*RolecheckUsageError*{words}*"])
    assert not (project.path / "cassettes").exists()
