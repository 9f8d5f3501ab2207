"""Servers without logprobs: found out once, asked no more, compared by text, said why.

Unit level, over the openai SDK's mock transport (``httpx2.MockTransport``): a server that
refuses ``logprobs`` with a 400 (OpenAI's reasoning models), one that answers without them,
and the ``logprobs`` setting's three values. The plugin run (record, then replay offline)
is in ``test_plugin_logprobs.py``; the bundled server in ``test_e2e_logprobs.py``.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import httpx2
import openai
import pytest
from _fake_api import completion, response

from pytest_rolecheck import Rolecheck
from pytest_rolecheck.errors import BackendError, NoLogprobsError, RolecheckUsageError
from pytest_rolecheck.reporting.summary import SummaryReport
from pytest_rolecheck.running.logprobs import LogprobsMemory, logprobs_mode, rejection
from pytest_rolecheck.settings import Settings

MESSAGES = [
    {"role": "system", "content": "You are a helpful AI assistant"},
    {"role": "user", "content": "Produce two stanza rock lyrics for 'Rockin with my Kitty Cat'"},
]
# OpenAI's answer to logprobs on a reasoning model, as its error body.
REFUSAL = {
    "error": {
        "message": "logprobs are not supported with reasoning models.",
        "type": "invalid_request_error",
        "param": "logprobs",
        "code": "unsupported_parameter",
    }
}
Handler = Callable[[httpx2.Request], httpx2.Response]


class Server:
    """A fake chat-completions server that records every body it was sent."""

    def __init__(self, kind: str) -> None:
        self.kind = kind
        self.bodies: list[dict[str, Any]] = []

    def __call__(self, request: httpx2.Request) -> httpx2.Response:
        body = json.loads(request.content)
        self.bodies.append(body)
        if self.kind == "refuses" and "logprobs" in body:
            return httpx2.Response(400, json=REFUSAL)
        if self.kind in ("refuses", "ignores"):
            body = {k: v for k, v in body.items() if k != "top_logprobs"}  # null logprobs
        return httpx2.Response(200, json=completion(body, int(request.headers["x-rolecheck-call"])))

    @property
    def asked(self) -> int:
        return sum(1 for body in self.bodies if "logprobs" in body or "top_logprobs" in body)


def _rolecheck(
    server: Handler, *, sync: bool = False, memory: LogprobsMemory | None = None, **settings: Any
) -> Rolecheck:
    kind = openai.OpenAI if sync else openai.AsyncOpenAI
    transport = httpx2.MockTransport(server)
    http = httpx2.Client(transport=transport) if sync else httpx2.AsyncClient(transport=transport)
    client = kind(
        api_key="sk-test", base_url="http://fake.test/v1", max_retries=0, http_client=http
    )
    return Rolecheck(
        Settings(model="o4-mini", trials=4, max_tokens=6, **settings),
        client_provider=lambda: client,
        logprobs_memory=memory or LogprobsMemory(),
    )


def _roles(rolecheck: Rolecheck, **options: Any) -> Any:
    base = rolecheck.variant(MESSAGES)
    return rolecheck.compare(
        base.with_role("developer"), base.with_role("user-prefixed"), **options
    )


@pytest.mark.parametrize("sync", [False, True], ids=["AsyncOpenAI", "OpenAI"])
def test_a_refusal_is_met_once_then_no_call_asks(sync: bool) -> None:
    server = Server("refuses")
    rolecheck = _rolecheck(server, sync=sync, concurrency=8)
    first = _roles(rolecheck)
    second = _roles(rolecheck)
    # 17 calls: the first asked, was refused, and went again without; no other call asked
    assert len(server.bodies) == 17
    assert server.asked == 1
    assert first.metric == second.metric == "edit"
    assert first.verdict == "different"
    note = first.notes[0]
    assert note == second.notes[0]
    assert note.startswith("the server gave no logprobs for o4-mini: it rejected them (HTTP 400: ")
    assert "'logprobs are not supported with reasoning models.'" in note
    assert note.endswith("so the calls were made without them: compared by text (edit distance)")
    assert f"Note: {note}" in str(first)
    assert rolecheck.calls == 16  # the refused call is not counted
    assert rolecheck.progress.total == 16
    rolecheck.finish(save=False)


def test_a_refusal_is_remembered_by_the_next_test_of_the_run() -> None:
    server, memory = Server("refuses"), LogprobsMemory()
    one = _rolecheck(server, memory=memory)
    _roles(one)
    one.finish(save=False)
    two = _rolecheck(server, memory=memory)
    result = _roles(two)
    two.finish(save=False)
    assert server.asked == 1
    assert "it rejected them" in result.notes[0]


def test_null_logprobs_are_kept_and_no_later_call_asks() -> None:
    server = Server("ignores")
    rolecheck = _rolecheck(server)
    result = _roles(rolecheck)
    _roles(rolecheck)
    assert len(server.bodies) == 16
    assert server.asked == 1  # the first call asked and was answered without
    assert result.metric == "edit"
    assert result.notes[0] == (
        "the server gave no logprobs for o4-mini: it ignored the request for them (logprobs: "
        "null in its answer): compared by text (edit distance)"
    )
    # the terminal summary says it under the table
    lines = list(SummaryReport(rolecheck.report_rows).lines(full=True))
    assert lines[-1].startswith("by text: ")
    assert lines[-1].endswith(result.notes[0])


def test_a_server_with_logprobs_is_asked_every_time() -> None:
    server = Server("gives")
    result = _roles(_rolecheck(server))
    assert server.asked == 8
    assert result.metric == "js"
    assert not any("logprobs" in note for note in result.notes if "server" in note)


def test_true_requires_logprobs_and_says_what_to_do() -> None:
    with pytest.raises(NoLogprobsError) as info:
        _roles(_rolecheck(Server("ignores"), logprobs="true"))
    message = str(info.value)
    assert "o4-mini returned no token logprobs (logprobs: null in its answer)" in message
    assert "logprobs=true requires them: drop logprobs=true / --rolecheck-logprobs=true" in message
    refused = _rolecheck(Server("refuses"))
    with pytest.raises(BackendError) as info2:
        _roles(refused, logprobs=True)
    assert "HTTP 400: logprobs are not supported with reasoning models." in str(info2.value)
    assert "logprobs=true requires them" in str(info2.value)


def test_false_never_asks() -> None:
    server = Server("gives")
    result = _roles(_rolecheck(server), logprobs=False)
    assert server.asked == 0
    assert result.metric == "edit"
    assert result.notes[0] == (
        "no logprobs were asked for (logprobs=false): compared by text (edit distance)"
    )
    # the setting does the same as the keyword
    server = Server("gives")
    _roles(_rolecheck(server, logprobs="false"))
    assert server.asked == 0


def test_a_logprob_metric_without_logprobs_is_an_error_that_says_why() -> None:
    with pytest.raises(
        NoLogprobsError, match="metric='js' compares token logprobs, but the server"
    ):
        _roles(_rolecheck(Server("refuses")), metric="js")
    server = Server("gives")
    with pytest.raises(RolecheckUsageError, match="no logprobs were asked for"):
        _roles(_rolecheck(server), metric="tv", logprobs=False)
    assert server.bodies == []  # refused before any call


def test_mode_values() -> None:
    assert [logprobs_mode(v) for v in (True, False, "auto", "TRUE", "false")] == [
        "true",
        "false",
        "auto",
        "true",
        "false",
    ]
    for bad in ("maybe", 1, None):
        with pytest.raises(RolecheckUsageError, match="expected True, False or one of auto"):
            logprobs_mode(bad)  # type: ignore[arg-type]


def test_only_a_refusal_of_logprobs_is_one() -> None:
    request = httpx2.Request("POST", "http://fake.test/v1/chat/completions")

    def error(status: int, body: Any) -> openai.APIStatusError:
        response = httpx2.Response(status, json=body, request=request)
        return openai.APIStatusError("x", response=response, body=body.get("error"))

    assert rejection(error(400, REFUSAL)) is not None
    # named only by the field (no "logprob" in the words)
    assert rejection(error(422, {"error": {"message": "extra fields", "param": "top_logprobs"}}))
    assert rejection(error(400, {"error": {"message": "max_tokens too large"}})) is None
    assert rejection(error(500, REFUSAL)) is None
    assert rejection(ValueError("logprobs")) is None


def test_a_prompt_set_without_logprobs_says_why_in_its_warnings() -> None:
    from pytest_rolecheck import PromptSet

    prompts = PromptSet.from_prompts(["Name a colour.", "Name a cat."], instruction="Be brief.")
    server = Server("refuses")
    result = _rolecheck(server).compare(
        prompts.with_role("developer"), prompts.with_role("system"), trials=2
    )
    assert server.asked == 1
    assert result.metric == "edit"
    assert "it rejected them" in result.warnings[-1]


def test_a_responses_api_request_asks_by_its_include_entry() -> None:
    from pytest_rolecheck.running.logprobs import asks, unasked

    request = {"model": "m", "include": ["message.output_text.logprobs"], "top_logprobs": 5}
    assert asks(request)
    assert unasked(request) == {"model": "m"}
    other = {"model": "m", "include": ["reasoning.encrypted_content", *request["include"]]}
    assert unasked(other) == {"model": "m", "include": ["reasoning.encrypted_content"]}
    assert not asks(unasked(other))


def test_what_chat_completions_found_is_not_taken_for_the_responses_api() -> None:
    # One server, logprobs on /chat/completions but refused on /responses (as the bundled
    # llama.cpp server): a finding is per API, or the Responses calls would all ask and fail.
    bodies: list[tuple[str, dict[str, Any]]] = []

    def serve(request: httpx2.Request) -> httpx2.Response:
        body = json.loads(request.content)
        kind = "responses" if request.url.path.endswith("/responses") else "chat"
        bodies.append((kind, body))
        index = int(request.headers["x-rolecheck-call"])
        if kind == "chat":
            return httpx2.Response(200, json=completion(body, index))
        if "top_logprobs" in body:
            return httpx2.Response(400, json={"error": {"message": "logprobs not supported"}})
        return httpx2.Response(200, json=response(body, index))

    chat = _rolecheck(serve)
    first = _roles(chat)
    assert first.metric == "js"
    later = _roles(chat, api="responses")
    chat.finish(save=False)
    assert later.metric == "edit"
    assert "it rejected them" in later.notes[0]
    refused = [b for kind, b in bodies if kind == "responses" and "top_logprobs" in b]
    assert len(refused) == 1  # found out once, by the first Responses call alone
