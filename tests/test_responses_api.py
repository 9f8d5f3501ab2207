"""The Responses API: request building, parsing, and a recorded-then-replayed plugin run.

Unit level: :func:`responses_request` and the ``instructions`` placement of a
:class:`Variant`, :func:`parse_response` on Responses-API dicts and SDK ``Response``
objects. Plugin level: a test with ``api="responses"`` against the fake API of
``_fake_api.py`` (its ``/responses`` route), recorded, then replayed with the fake
API down. The bundled server's ``/v1/responses`` is exercised in ``test_e2e_responses.py``.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import pytest
from openai._models import construct_type
from openai.types.responses import Response

from pytest_rolecheck import Variant
from pytest_rolecheck.core.parse import parse_response
from pytest_rolecheck.errors import NoLogprobsError, ResponseFormatError, RolecheckUsageError
from pytest_rolecheck.running.calls import for_api
from pytest_rolecheck.variants.responses import LOGPROBS_INCLUDE, responses_request
from pytest_rolecheck.verdicts.toolcalls import compare_tool_calls

pytest_plugins = ["pytester"]

MESSAGES = [
    {"role": "system", "content": "Answer like a pirate."},
    {"role": "user", "content": "Say hello."},
]
TOOL = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "Weather of a city",
        "parameters": {"type": "object", "properties": {"city": {"type": "string"}}},
    },
}


# ------------------------------------------------------------------ the placement


def test_with_role_instructions_moves_the_instruction_into_the_parameter() -> None:
    base = Variant.from_messages(MESSAGES, temperature=0.5)
    placed = base.with_role("instructions")
    assert placed.label == "instructions"
    assert placed.instruction == "Answer like a pirate."
    assert placed.request() == {
        "messages": [{"role": "user", "content": "Say hello."}],
        "temperature": 0.5,
        "instructions": "Answer like a pirate.",
    }
    back = placed.with_role("developer")
    assert (back.label, back.request()["messages"][0]) == (
        "developer",
        {"role": "developer", "content": "Answer like a pirate."},
    )
    assert "instructions" not in back.params


def test_instruction_edits_follow_the_instruction_into_the_parameter() -> None:
    placed = Variant.from_messages(MESSAGES).with_role("instructions")
    edited = placed.append_instruction("Be brief.").with_preamble(current_date="2024-07-10")
    assert edited.params["instructions"] == (
        "Current date: 2024-07-10\nAnswer like a pirate.\n\nBe brief."
    )
    assert [m["role"] for m in edited.messages] == ["user"]
    developer, instructions = Variant.for_roles(MESSAGES, roles=("developer", "instructions"))
    assert (developer.label, instructions.label) == ("developer", "instructions")


def test_the_chat_api_refuses_the_instructions_placement() -> None:
    request = Variant.from_messages(MESSAGES).with_role("instructions").request(model="m")
    with pytest.raises(RolecheckUsageError, match="api='responses'"):
        for_api(request, "chat")
    with pytest.raises(RolecheckUsageError, match="expected one of chat, responses"):
        for_api(request, "completions")


# ------------------------------------------------------------------ request


def test_responses_request_rewrites_a_chat_request() -> None:
    chat = {
        "model": "m",
        "messages": [
            {"role": "developer", "content": [{"type": "text", "text": "Be brief."}]},
            {"role": "user", "content": "Weather?"},
            {
                "role": "assistant",
                "content": None,
                "tool_calls": [
                    {
                        "id": "c1",
                        "type": "function",
                        "function": {"name": "get_weather", "arguments": '{"city":"Oslo"}'},
                    }
                ],
            },
            {"role": "tool", "tool_call_id": "c1", "content": "rain"},
            {"role": "assistant", "content": [{"type": "text", "text": "It rains."}]},
        ],
        "max_tokens": 16,
        "temperature": 0.0,
        "logprobs": True,
        "top_logprobs": 5,
        "tools": [TOOL],
        "tool_choice": {"type": "function", "function": {"name": "get_weather"}},
        "parallel_tool_calls": False,
        "response_format": {"type": "json_schema", "json_schema": {"name": "x", "schema": {}}},
        "n": 1,
        "extra_headers": {"x-a": "1"},
    }
    assert responses_request(chat) == {
        "model": "m",
        "input": [
            {"role": "developer", "content": [{"type": "input_text", "text": "Be brief."}]},
            {"role": "user", "content": "Weather?"},
            {
                "type": "function_call",
                "call_id": "c1",
                "name": "get_weather",
                "arguments": '{"city":"Oslo"}',
            },
            {"type": "function_call_output", "call_id": "c1", "output": "rain"},
            {"role": "assistant", "content": [{"type": "output_text", "text": "It rains."}]},
        ],
        "max_output_tokens": 16,
        "temperature": 0.0,
        "include": [LOGPROBS_INCLUDE],
        "top_logprobs": 5,
        "tools": [
            {
                "type": "function",
                "name": "get_weather",
                "description": "Weather of a city",
                "parameters": TOOL["function"]["parameters"],  # type: ignore[index]
                "strict": False,
            }
        ],
        "tool_choice": {"type": "function", "name": "get_weather"},
        "parallel_tool_calls": False,
        "text": {"format": {"type": "json_schema", "name": "x", "schema": {}}},
        "extra_headers": {"x-a": "1"},
    }


def test_without_logprobs_neither_include_nor_top_logprobs_is_sent() -> None:
    request = responses_request(
        {"model": "m", "messages": MESSAGES, "logprobs": False, "top_logprobs": 3}
    )
    assert "include" not in request
    assert "top_logprobs" not in request
    assert request["input"] == MESSAGES


@pytest.mark.parametrize(
    ("field", "value", "why"),
    [("n", 3, "trials="), ("seed", 1, "no sampling seed"), ("stop", ["\n"], "no stop")],
)
def test_fields_the_responses_api_lacks_are_refused(field: str, value: Any, why: str) -> None:
    with pytest.raises(RolecheckUsageError, match=why):
        responses_request({"model": "m", "messages": MESSAGES, field: value})


def test_a_message_field_without_a_counterpart_is_refused() -> None:
    with pytest.raises(RolecheckUsageError, match="'name'"):
        responses_request({"messages": [{"role": "user", "content": "x", "name": "bob"}]})


# ------------------------------------------------------------------ parsing


def _lp(token: str, logprob: float, *alts: tuple[str, float]) -> dict[str, Any]:
    top = [{"token": t, "logprob": lp, "bytes": list(t.encode())} for t, lp in alts]
    return {"token": token, "logprob": logprob, "bytes": list(token.encode()), "top_logprobs": top}


def _response(**changes: Any) -> dict[str, Any]:
    data: dict[str, Any] = {
        "id": "resp_1",
        "object": "response",
        "created_at": 1,
        "model": "m-1",
        "status": "completed",
        "parallel_tool_calls": True,
        "tool_choice": "auto",
        "tools": [],
        "output": [
            {"type": "reasoning", "id": "rs_1", "summary": []},
            {
                "type": "message",
                "id": "msg_1",
                "role": "assistant",
                "status": "completed",
                "content": [
                    {
                        "type": "output_text",
                        "text": "Ahoy",
                        "annotations": [],
                        "logprobs": [_lp("Ahoy", -0.1, ("Ahoy", -0.1), ("Hi", -2.5))],
                    },
                    {
                        "type": "output_text",
                        "text": " matey!",
                        "annotations": [],
                        "logprobs": [_lp(" matey", -0.2, (" mate", -1.9)), _lp("!", 0.0)],
                    },
                ],
            },
        ],
        "usage": {
            "input_tokens": 12,
            "output_tokens": 3,
            "total_tokens": 15,
        },
    }
    data.update(changes)
    return data


def _sdk(data: dict[str, Any]) -> Response:
    # As the client builds it from the server's JSON (lenient, nested models).
    response = construct_type(type_=Response, value=data)
    assert isinstance(response, Response)
    assert all(type(item).__name__.startswith("Response") for item in response.output)
    return response


@pytest.mark.parametrize("kind", ["dict", "sdk"])
def test_text_and_logprobs_are_joined_across_output_text_parts(kind: str) -> None:
    data = _response()
    call = parse_response(data if kind == "dict" else _sdk(data))
    assert call.text == "Ahoy matey!"
    assert call.keys == ("Ahoy", " matey", "!")
    assert call.positions[1].alternatives[0][:2] == (" matey", " matey")
    assert [key for key, _, _ in call.positions[1].alternatives] == [" matey", " mate"]
    assert (call.finish_reason, call.model, call.prompt_tokens, call.completion_tokens) == (
        "stop",
        "m-1",
        12,
        3,
    )
    assert call.has_logprobs
    assert call.tool_calls == ()
    assert not call.truncated


def test_function_call_items_are_tool_calls_like_the_chat_path() -> None:
    call_item = {
        "type": "function_call",
        "id": "fc_1",
        "call_id": "call_9",
        "name": "get_weather",
        "arguments": '{"city": "Oslo"}',
        "status": "completed",
    }
    data = _response(output=[call_item])
    for response in (data, _sdk(data)):
        call = parse_response(response, require_logprobs=False)
        assert (call.text, call.finish_reason, call.has_logprobs) == ("", "tool_calls", False)
        [record] = call.tool_calls
        assert (record.name, record.arguments, record.id) == (
            "get_weather",
            '{"city": "Oslo"}',
            "call_9",
        )
    chat = {
        "choices": [
            {
                "message": {
                    "role": "assistant",
                    "content": None,
                    "tool_calls": [
                        {
                            "id": "x",
                            "type": "function",
                            "function": {"name": "get_weather", "arguments": '{"city":"Oslo"}'},
                        }
                    ],
                }
            }
        ]
    }
    # The same call through either API is the same outcome of the tool-call comparison.
    result = compare_tool_calls([data] * 20, [chat] * 20, labels=("responses", "chat"))
    assert result.verdict == "equivalent"


def test_a_response_without_logprobs() -> None:
    # What the bundled llama.cpp server returns: an empty logprobs list on every part.
    data = _response()
    for part in data["output"][1]["content"]:
        part["logprobs"] = []
    with pytest.raises(NoLogprobsError, match="metric='edit'"):
        parse_response(data)
    call = parse_response(data, require_logprobs=False)
    assert (call.text, call.positions, call.has_logprobs) == ("Ahoy matey!", (), False)


def test_truncation_refusal_and_malformed_output() -> None:
    data = _response(status="incomplete", incomplete_details={"reason": "max_output_tokens"})
    assert parse_response(data).truncated
    refused = _response()
    refused["output"][1]["content"] = [{"type": "refusal", "refusal": "No."}]
    call = parse_response(refused, require_logprobs=False)
    assert (call.text, call.refusal) == ("", "No.")
    with pytest.raises(ResponseFormatError, match="output should be a list of output items"):
        parse_response({"object": "response", "output": "text"})
    with pytest.raises(ResponseFormatError, match="function_call without a name"):
        parse_response(_response(output=[{"type": "function_call", "arguments": "{}"}]))


# ------------------------------------------------------------------ plugin, recorded then replayed

FAKE_API = (Path(__file__).parent / "_fake_api.py").read_text(encoding="utf-8")
CONFTEST = """
import pytest
import _fake_api

@pytest.fixture(scope="session")
def rolecheck_client():
    return _fake_api.async_client()
"""
TESTS = f"""
import pytest
from pytest_rolecheck import Variant, assert_variants_differ, assert_variants_equivalent

MESSAGES = {MESSAGES!r}

def test_instructions_vs_developer(rolecheck):
    base = Variant.from_messages(MESSAGES)
    rolecheck.compare(
        base.with_role("instructions"), base.with_role("developer"), model="fake", trials=5,
        max_tokens=6, api="responses",
    )

@pytest.mark.rolecheck(api="responses", logprobs=False)
def test_same_variant_by_text(rolecheck):
    v = Variant.from_messages(MESSAGES).with_role("instructions")
    assert_variants_equivalent(v, v, model="fake", trials=20, max_tokens=6, metric="edit")

def test_tool_calls(rolecheck):
    v = Variant.from_messages(MESSAGES, tools=[{TOOL!r}][0:1])
    rolecheck.assert_tool_calls_equivalent(v, v, model="fake", trials=20, api="responses")
"""


def test_recorded_then_replayed_offline(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    for var in ("FAKE_API_DOWN", "FAKE_API_STATUS", "FAKE_API_NO_LOGPROBS", "OPENAI_BASE_URL"):
        monkeypatch.delenv(var, raising=False)
    pytester.makepyfile(_fake_api=FAKE_API, test_responses=TESTS)
    pytester.makeconftest(CONFTEST)
    pytester.makeini("[pytest]\nrolecheck_report = report.json\n")
    recorded = pytester.runpytest_inprocess("--rolecheck-record-mode=once", "-p", "no:randomly")
    recorded.assert_outcomes(passed=3)
    cassette = (
        pytester.path / "cassettes" / "test_responses" / "test_instructions_vs_developer.json"
    )
    document = json.loads(cassette.read_text())
    first = document["interactions"][0]["request"]
    assert first["uri"].endswith("/v1/responses")
    body = first["body"]["json"]
    assert body["instructions"] == "Answer like a pirate."
    assert body["include"] == [LOGPROBS_INCLUDE]
    assert body["max_output_tokens"] == 6
    assert "seed" not in body
    assert "messages" not in body
    by_text = pytester.path / "cassettes" / "test_responses" / "test_same_variant_by_text.json"
    assert (
        "include"
        not in json.loads(by_text.read_text())["interactions"][0]["request"]["body"]["json"]
    )
    first_report = json.loads((pytester.path / "report.json").read_text())["comparisons"]

    monkeypatch.setenv("FAKE_API_DOWN", "1")
    replayed = pytester.runpytest_inprocess("-p", "no:randomly")
    replayed.assert_outcomes(passed=3)
    again = json.loads((pytester.path / "report.json").read_text())["comparisons"]
    assert [row["verdict"] for row in again] == [row["verdict"] for row in first_report]
    assert [row.get("metric") for row in again][:2] == [row.get("metric") for row in first_report][
        :2
    ]


# ------------------------------------------------------------------ rolecheck compare


def test_rolecheck_compare_with_the_responses_api(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    import argparse

    import _fake_api

    from pytest_rolecheck import cli
    from pytest_rolecheck.commands.compare import _variants
    from pytest_rolecheck.running.session import Rolecheck
    from pytest_rolecheck.settings import Settings

    for name in [n for n in os.environ if n.startswith(("OPENAI_", "FAKE_API_"))]:
        monkeypatch.delenv(name)
    roles = ("instructions", "developer")
    none = argparse.Namespace(
        variant_a=None, variant_b=None, roles=roles, instruction=None, prompt=None
    )
    cassette = tmp_path / "roles.json"
    settings = Settings(record_mode="all", model="gpt-x", trials=4, max_tokens=5, api="responses")
    checker = Rolecheck(settings, client_provider=_fake_api.async_client, cassette_file=cassette)
    checker.compare(*_variants(none), metric="edit")
    checker.finish(save=True)

    flags = ["compare", "--model", "gpt-x", "--trials", "4", "--max-tokens", "5"]
    flags += ["--roles", *roles, "--metric", "edit", "--cassette", str(cassette)]
    capsys.readouterr()
    assert cli.main([*flags, "--api", "responses", "--record-mode", "none"]) == 0
    out = capsys.readouterr().out
    assert out.startswith("rolecheck compare: instructions vs developer on gpt-x")
    assert "(replayed)" in out
    # The same arms on the chat API: refused before any call.
    assert cli.main([*flags, "--record-mode", "none"]) == 2
    assert "needs the Responses API: pass api='responses'" in capsys.readouterr().err
    assert cli.main([*flags, "--api", "completions"]) == 2
    assert "invalid value 'completions': expected one of chat, responses" in (
        capsys.readouterr().err
    )


@pytest.mark.parametrize("kind", ["sync", "async"])
def test_a_server_without_the_responses_api_is_named(kind: str) -> None:
    import httpx2
    import openai

    from pytest_rolecheck.errors import BackendError
    from pytest_rolecheck.running.client import CallSpec, CompletionRunner

    paths: list[str] = []

    def missing(request: httpx2.Request) -> httpx2.Response:
        paths.append(request.url.path)
        return httpx2.Response(404, json={"error": {"message": "File Not Found"}})

    base = {"api_key": "k", "base_url": "http://api.test/v1", "max_retries": 0}
    client: Any = (
        openai.OpenAI(**base, http_client=httpx2.Client(transport=httpx2.MockTransport(missing)))
        if kind == "sync"
        else openai.AsyncOpenAI(
            **base, http_client=httpx2.AsyncClient(transport=httpx2.MockTransport(missing))
        )
    )
    request = responses_request({"model": "m", "messages": MESSAGES})
    with pytest.raises(BackendError) as caught:
        CompletionRunner(client).run([CallSpec(index=0, arm="instructions", request=request)])
    assert paths == ["/v1/responses"]
    message = str(caught.value)
    assert "call #1 (instructions) to http://api.test/v1/responses failed with HTTP 404" in message
    assert "has the Responses API (else use api='chat')" in message
