"""End to end: the Responses API against the bundled llama.cpp server's ``/v1/responses``.

No mocks: the calls are recorded live from SmolLM2-135M-Instruct, then replayed
offline with sockets blocked, and the numbers compared. The server answers
``/v1/responses`` without logprobs, so these comparisons read the texts
(``metric="edit"``, which asks for none); a logprob metric's request is refused by
the server, and the error says what to do.
"""

from __future__ import annotations

import json

import pytest

from tests.test_e2e_local import INI, _numbers, _rows, require_backend

pytestmark = pytest.mark.e2e
pytest_plugins = ["pytester"]

TESTS = """
import pytest
from pytest_rolecheck import Variant

MESSAGES = [
    {"role": "system", "content": "You are a helpful AI assistant"},
    {"role": "user", "content": "Name a colour."},
]
BASE = Variant.from_messages(MESSAGES)
pytestmark = pytest.mark.rolecheck(api="responses", metric="edit")

def test_instructions_vs_developer(rolecheck):
    # llama-server puts instructions where a developer (= system) message goes
    result = rolecheck.assert_variants_equivalent(
        BASE.with_role("instructions"), BASE.with_role("developer")
    )
    assert result.deterministic

def test_instructions_vs_user_prefixed(rolecheck):
    instructions, prefixed = BASE.with_role("instructions"), BASE.with_role("user-prefixed")
    rolecheck.assert_variants_differ(instructions, prefixed)

def test_sampled(rolecheck):
    v = BASE.with_role("instructions")
    result = rolecheck.compare(v, BASE.with_role("developer"), temperature=1.0)
    assert not result.deterministic
"""


def test_responses_api_recorded_then_replayed_offline(pytester: pytest.Pytester) -> None:
    require_backend()
    pytester.makeini(INI)
    pytester.makepyfile(test_responses=TESTS)
    recorded = pytester.runpytest_subprocess("--rolecheck-local", "--rolecheck-record-mode=once")
    recorded.assert_outcomes(passed=3)
    first = _rows(pytester.path)
    assert [r["verdict"] for r in first][:2] == ["equivalent", "different"]
    cassette = (
        pytester.path / "cassettes" / "test_responses" / "test_instructions_vs_developer.json"
    )
    interactions = json.loads(cassette.read_text())["interactions"]
    request = interactions[0]["request"]
    assert request["uri"].endswith("/v1/responses")
    assert request["body"]["json"]["instructions"] == "You are a helpful AI assistant"
    assert "include" not in request["body"]["json"]
    parts = interactions[0]["response"]["body"]["json"]["output"][0]["content"]
    assert [part["logprobs"] for part in parts] == [[]]  # the server sends none

    replayed = pytester.runpytest_subprocess("--disable-socket", "--allow-unix-socket")
    replayed.assert_outcomes(passed=3)
    second = _rows(pytester.path)
    assert {r["source"] for r in second} == {"replayed"}
    assert _numbers(first) == _numbers(second)


def test_a_logprob_metric_is_refused_by_the_server_with_the_way_out(
    pytester: pytest.Pytester,
) -> None:
    require_backend()
    pytester.makeini(INI)
    pytester.makepyfile(
        test_logprobs="""
from pytest_rolecheck import Variant

def test_js(rolecheck):
    v = Variant.from_messages([{"role": "user", "content": "Hi"}])
    rolecheck.compare(v, v, api="responses", metric="js")
"""
    )
    result = pytester.runpytest_subprocess("--rolecheck-local", "--rolecheck-record-mode=once")
    result.assert_outcomes(failed=1)
    # logprobs=auto found out on the first call (a 400 about top_logprobs) and asked no
    # more; a logprob metric named outright then has nothing to compare, and says why
    result.stdout.fnmatch_lines(
        [
            "*metric='js' compares token logprobs, but the server gave no logprobs*rejected "
            "them (HTTP 400: 'top_logprobs requires logprobs*Pass metric='auto'*"
        ]
    )
