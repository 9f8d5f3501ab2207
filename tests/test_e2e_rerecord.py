"""End to end: re-recording an unchanged deterministic test changes no byte of its cassette.

No mocks: each run starts the bundled llama.cpp server (on a new free port), records
SmolLM2-135M-Instruct at temperature 0 with top-20 logprobs, chat completions and
the Responses API, and the second run re-records (record mode ``rewrite``).
"""

from __future__ import annotations

import json

import pytest

from tests.test_e2e_local import require_backend

pytestmark = pytest.mark.e2e
pytest_plugins = ["pytester"]

MESSAGES = """
MESSAGES = [
    {"role": "system", "content": "You are a helpful AI assistant"},
    {"role": "user", "content": "Name a colour."},
]
"""
CHAT = (
    MESSAGES
    + """
def test_roles(rolecheck):
    rolecheck.assert_roles_equivalent(MESSAGES, roles=("developer", "system"))
"""
)
# A run of its own: whether a server gives logprobs is remembered per endpoint and
# model, not per API, and /v1/responses gives none.
RESPONSES = (
    MESSAGES
    + """
import pytest
from pytest_rolecheck import Variant

BASE = Variant.from_messages(MESSAGES)

@pytest.mark.rolecheck(api="responses", metric="edit")
def test_responses(rolecheck):
    instructions, developer = BASE.with_role("instructions"), BASE.with_role("developer")
    rolecheck.assert_variants_equivalent(instructions, developer)
"""
)

INI = """[pytest]
rolecheck_trials = 4
rolecheck_max_tokens = 8
rolecheck_top_logprobs = 20
"""


def test_rerecording_an_unchanged_deterministic_test_is_byte_identical(
    pytester: pytest.Pytester,
) -> None:
    require_backend()
    pytester.makeini(INI)
    pytester.makepyfile(test_chat=CHAT, test_responses=RESPONSES)
    cassettes = pytester.path / "cassettes"

    def record(mode: str) -> dict[str, bytes]:
        for name in ("test_chat.py", "test_responses.py"):
            result = pytester.runpytest_subprocess(
                name, "--rolecheck-local", f"--rolecheck-record-mode={mode}"
            )
            result.assert_outcomes(passed=1)
            result.stdout.fnmatch_lines(["* calls (* live, 0 replayed)*"])  # really recorded
        return {str(p.relative_to(cassettes)): p.read_bytes() for p in cassettes.rglob("*.json")}

    first = record("once")
    assert sorted(first) == ["test_chat/test_roles.json", "test_responses/test_responses.json"]
    assert record("rewrite") == first  # a new server, on another port: the same bytes

    doc = json.loads(first["test_chat/test_roles.json"])
    assert doc["rolecheck_cassette"] == 2
    assert doc["recorded_with"]["endpoint"] == "http://127.0.0.1/v1"  # no port
    body = doc["interactions"][0]["response"]["body"]
    assert body["packed"] == [["choices", 0, "logprobs", "content"]]
    assert body["json"]["choices"][0]["logprobs"]["content"]["float32"] is True
    assert (body["json"]["id"], body["json"]["created"]) == ("chatcmpl-0", 0)
    assert "timings" not in body["json"]
