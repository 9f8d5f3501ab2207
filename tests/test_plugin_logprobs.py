"""A server without logprobs, through the plugin: recorded, replayed offline, said why.

The fake API of ``_fake_api.py`` on ``httpx2.MockTransport``; two ways of giving no
logprobs: refusing the field with OpenAI's 400, and answering ``logprobs: null``.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

pytest_plugins = ["pytester"]

FAKE_API = (Path(__file__).parent / "_fake_api.py").read_text(encoding="utf-8")

CONFTEST = """
import json
import httpx2
import pytest
import _fake_api

_serve = _fake_api.handler

def _refuses_logprobs(request):
    body = json.loads(request.content)
    if "logprobs" in body:
        return httpx2.Response(400, json={"error": {
            "message": "logprobs are not supported with reasoning models.",
            "type": "invalid_request_error", "param": "logprobs",
            "code": "unsupported_parameter"}})
    return _serve(request)

@pytest.fixture(scope="session")
def rolecheck_client():
    # the handler is chosen here, not patched into _fake_api: another test's run may
    # have imported that module already (pytester runs in this process)
    import openai
    handler = _refuses_logprobs if REFUSES else _serve
    return openai.AsyncOpenAI(
        api_key=_fake_api.PLANTED_KEY, base_url="http://fake-api.test/v1", max_retries=0,
        http_client=httpx2.AsyncClient(transport=httpx2.MockTransport(handler)),
    )
"""

TESTS = """
from pytest_rolecheck import assert_roles_differ

MESSAGES = [
    {"role": "system", "content": "You are a helpful AI assistant"},
    {"role": "user", "content": "Produce two stanza rock lyrics for 'Rockin with my Kitty Cat'"},
]

def test_roles_differ():
    assert_roles_differ(MESSAGES, roles=("developer", "system"), model="o4-mini", trials=10)

def test_second(rolecheck):
    v = rolecheck.variant(MESSAGES)
    rolecheck.assert_variants_equivalent(v, v, model="o4-mini", trials=4, max_tokens=6)
"""


@pytest.fixture
def project(pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch) -> pytest.Pytester:
    for var in ("FAKE_API_DOWN", "FAKE_API_STATUS", "FAKE_API_NO_LOGPROBS", "OPENAI_BASE_URL"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    pytester.makepyfile(_fake_api=FAKE_API, test_roles=TESTS)
    pytester.makeini("[pytest]\nrolecheck_report = report.json\n")
    return pytester


def _rows(pytester: pytest.Pytester) -> list[dict[str, object]]:
    rows: list[dict[str, object]] = json.loads((pytester.path / "report.json").read_text())[
        "comparisons"
    ]
    return rows


def _numbers(row: dict[str, object]) -> tuple[object, ...]:
    details = row["details"]
    assert isinstance(details, dict)
    keys = ("verdict", "p_value", "change", "change_upper")
    return (*(row[k] for k in keys), details["metric"], json.dumps(details["matrix"]))


@pytest.mark.parametrize("refuses", [True, False], ids=["refused", "null"])
def test_no_logprobs_recorded_then_replayed_offline_by_text(
    project: pytest.Pytester, monkeypatch: pytest.MonkeyPatch, refuses: bool
) -> None:
    project.makeconftest(f"REFUSES = {refuses}\n" + CONFTEST)
    if not refuses:
        monkeypatch.setenv("FAKE_API_NO_LOGPROBS", "1")
    why = "it rejected them (HTTP 400: 'logprobs are not supported" if refuses else "it ignored"
    recorded = project.runpytest("--rolecheck-record-mode=once")
    recorded.assert_outcomes(passed=2)
    recorded.stdout.fnmatch_lines(
        [
            "*rolecheck*",
            f"by text: *test_roles_differ: the server gave no logprobs for o4-mini: {why}*"
            "compared by text (edit distance)",
            "by text: *test_second: *compared by text (edit distance)",
        ]
    )
    live = _rows(project)
    assert [row["details"]["metric"] for row in live] == ["edit", "edit"]  # type: ignore[index]
    cassette = json.loads(
        (project.path / "cassettes/test_roles/test_roles_differ.json").read_text()
    )
    finding = cassette["recorded_with"]["no_logprobs"]["o4-mini"]
    assert finding["why"] == ("rejected" if refuses else "ignored")
    asked = ["logprobs" in i["request"]["body"]["json"] for i in cassette["interactions"]]
    # refused: the first call went again without; null: the first call asked and was kept
    assert asked == ([False] * 20 if refuses else [True] + [False] * 19)
    assert finding["from_call"] == (0 if refuses else 1)
    # the second test knew it from the first: no call of its asked
    second = json.loads((project.path / "cassettes/test_roles/test_second.json").read_text())
    assert not any("logprobs" in i["request"]["body"]["json"] for i in second["interactions"])
    assert second["recorded_with"]["no_logprobs"]["o4-mini"]["from_call"] == 0

    monkeypatch.setenv("FAKE_API_DOWN", "1")  # a replay that called the API would fail
    replayed = project.runpytest()
    replayed.assert_outcomes(passed=2)
    replayed.stdout.fnmatch_lines(["by text: *test_roles_differ: *" + why + "*"])
    again = _rows(project)
    assert [_numbers(r) for r in again] == [_numbers(r) for r in live]
    assert [r["details"]["notes"] for r in again] == [r["details"]["notes"] for r in live]  # type: ignore[index]


def test_a_test_run_alone_on_replay_builds_its_requests_from_its_cassette(
    project: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    # test_second was recorded knowing what test_roles_differ found out; alone, it finds
    # nothing out on replay (no live call), and its cassette says how its calls were sent.
    project.makeconftest("REFUSES = True\n" + CONFTEST)
    project.runpytest("--rolecheck-record-mode=once").assert_outcomes(passed=2)
    monkeypatch.setenv("FAKE_API_DOWN", "1")
    alone = project.runpytest("-k", "test_second")
    alone.assert_outcomes(passed=1)
    alone.stdout.fnmatch_lines(["by text: *test_second: *it rejected them*"])


def test_a_drift_check_sends_the_recorded_requests_and_compares_by_text(
    project: pytest.Pytester,
) -> None:
    project.makeconftest("REFUSES = True\n" + CONFTEST)
    project.runpytest("--rolecheck-record-mode=once").assert_outcomes(passed=2)
    result = project.runpytest("--rolecheck-drift")
    result.assert_outcomes(passed=2)
    result.stdout.fnmatch_lines(["drift check: 4 arms of 2 tests run live*: no drift"])
    # the requests went as recorded: none asked, so the server refused none
    result.stdout.no_fnmatch_line("*HTTP 400*failed*")
