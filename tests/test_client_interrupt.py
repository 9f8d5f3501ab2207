"""The sync client's worker threads: a batch given up sends nothing more.

The Ctrl-C behaviour end to end (a subprocess against a server that never
answers) is in ``test_plugin_cassettes.py``; these run in-process over the
SDK's mock transport.
"""

from __future__ import annotations

import threading
import time
from collections import Counter

import httpx2
import openai
import pytest

from pytest_rolecheck.errors import BackendError
from pytest_rolecheck.running.client import CallSpec, CompletionRunner

BODY = {"model": "m", "messages": [{"role": "user", "content": "hi"}]}
OK = {
    "id": "x",
    "object": "chat.completion",
    "created": 0,
    "model": "m",
    "choices": [
        {"index": 0, "message": {"role": "assistant", "content": "ok"}, "finish_reason": "stop"}
    ],
}


def _client(handler: httpx2.MockTransport) -> openai.OpenAI:
    # The SDK's default of 2 retries, so a 500 would be sent three times.
    return openai.OpenAI(
        api_key="sk-test-key-0123456789",
        base_url="http://fake-api.test/v1",
        http_client=httpx2.Client(transport=handler),
    )


def test_first_error_stops_the_retries_of_the_other_calls() -> None:
    attempts: Counter[str] = Counter()
    sent, failed = threading.Event(), threading.Event()

    def handler(request: httpx2.Request) -> httpx2.Response:
        index = request.headers["x-rolecheck-call"]
        attempts[index] += 1
        if index == "0":
            sent.set()
            failed.wait(5)  # answer after call 1 has been refused
            return httpx2.Response(500, json={"error": {"message": "overloaded"}})
        sent.wait(5)  # both calls in flight
        failed.set()
        return httpx2.Response(400, json={"error": {"message": "bad request"}})

    runner = CompletionRunner(_client(httpx2.MockTransport(handler)), concurrency=2)
    specs = [CallSpec(index=i, arm="a", request=BODY) for i in range(2)]
    with pytest.raises(BackendError, match="HTTP 400"):
        runner.run(specs)
    time.sleep(2.5)  # the SDK's backoff before its retries is 0.5 to 2 s
    assert attempts == {"0": 1, "1": 1}  # call 0's 500 was not retried


def test_calls_not_started_are_not_sent_after_an_error() -> None:
    sent: list[str] = []

    def handler(request: httpx2.Request) -> httpx2.Response:
        sent.append(request.headers["x-rolecheck-call"])
        return httpx2.Response(400, json={"error": {"message": "bad request"}})

    runner = CompletionRunner(_client(httpx2.MockTransport(handler)), concurrency=1)
    with pytest.raises(BackendError, match="call #1"):
        runner.run([CallSpec(index=i, arm="a", request=BODY) for i in range(5)])
    time.sleep(0.2)
    assert sent == ["0"]


def test_results_come_back_in_call_order_and_threads_end() -> None:
    def handler(request: httpx2.Request) -> httpx2.Response:
        index = int(request.headers["x-rolecheck-call"])
        time.sleep(0.01 * (5 - index))  # later calls answer first
        return httpx2.Response(200, json={**OK, "id": str(index)})

    runner = CompletionRunner(_client(httpx2.MockTransport(handler)), concurrency=3)
    before = threading.active_count()
    responses = runner.run([CallSpec(index=i, arm="a", request=BODY) for i in range(5)])
    assert [r.id for r in responses] == ["0", "1", "2", "3", "4"]
    assert runner.usage.calls == 5
    deadline = time.monotonic() + 2
    while threading.active_count() > before and time.monotonic() < deadline:
        time.sleep(0.01)
    assert threading.active_count() == before  # no worker left behind
