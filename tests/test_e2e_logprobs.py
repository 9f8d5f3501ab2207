"""End to end: calls without logprobs to the bundled llama.cpp server give a verdict by text.

No mocks: SmolLM2-135M-Instruct behind the real server, asked for no logprobs
(``logprobs=False``: the request carries neither ``logprobs`` nor ``top_logprobs``, and
the server answers ``logprobs: null``). Recorded live, then replayed offline with sockets
blocked: same numbers, same report line.
"""

from __future__ import annotations

import json

import pytest
from test_e2e_local import require_backend

pytestmark = pytest.mark.e2e
pytest_plugins = ["pytester"]

TESTS = """
import pytest

MESSAGES = [
    {"role": "system", "content": "You are a helpful AI assistant"},
    {"role": "user", "content": "Name a colour."},
]

def test_keyword(rolecheck):
    result = rolecheck.compare(
        rolecheck.variant(MESSAGES).with_role("user-prefixed"),
        rolecheck.variant(MESSAGES).with_role("system"),
        logprobs=False,
    )
    assert result.metric == "edit"
    assert result.notes[0].startswith("no logprobs were asked for (logprobs=false)")

@pytest.mark.rolecheck(logprobs=False)
def test_marker(rolecheck):
    # llama-server renders developer as system: one prompt, the same text every call
    rolecheck.assert_roles_equivalent(MESSAGES, roles=("developer", "system"))
"""

INI = """[pytest]
rolecheck_trials = 4
rolecheck_max_tokens = 6
rolecheck_report = report.json
"""


def _numbers(pytester: pytest.Pytester) -> list[tuple[object, ...]]:
    rows = json.loads((pytester.path / "report.json").read_text())["comparisons"]
    return [
        (r["verdict"], r["p_value"], r["change"], r["details"]["metric"], r["details"]["matrix"])
        for r in rows
    ]


def test_no_logprobs_from_the_bundled_server_give_a_verdict_by_text(
    pytester: pytest.Pytester,
) -> None:
    require_backend()
    pytester.makeini(INI)
    pytester.makepyfile(test_text=TESTS)
    line = "by text: test_text.py::test_*: no logprobs were asked for (logprobs=false): "
    recorded = pytester.runpytest_subprocess("--rolecheck-local", "--rolecheck-record-mode=once")
    recorded.assert_outcomes(passed=2)
    recorded.stdout.fnmatch_lines([line + "compared by text (edit distance)"] * 2)
    live = _numbers(pytester)
    assert [n[0] for n in live][1] == "equivalent"
    cassette = json.loads((pytester.path / "cassettes/test_text/test_keyword.json").read_text())
    for interaction in cassette["interactions"]:
        assert not {"logprobs", "top_logprobs"} & set(interaction["request"]["body"]["json"])
        assert interaction["response"]["body"]["json"]["choices"][0].get("logprobs") is None

    replayed = pytester.runpytest_subprocess("--disable-socket", "--allow-unix-socket")
    replayed.assert_outcomes(passed=2)
    replayed.stdout.fnmatch_lines([line + "compared by text (edit distance)"] * 2)
    assert _numbers(pytester) == live
