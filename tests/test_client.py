"""Network failures of live calls: one clear message naming the call, the endpoint and the fix.

A tiny real HTTP server on 127.0.0.1 misbehaves on purpose (resets the
connection, answers broken JSON, never answers); the SDK's own transport talks
to it, so the errors are the ones users meet.
"""

from __future__ import annotations

import json
import socket
import struct
import threading
from collections.abc import Iterator
from pathlib import Path

import httpx2
import openai
import pytest

from pytest_rolecheck.errors import BackendError
from pytest_rolecheck.recording.cassette import CassetteSession
from pytest_rolecheck.running.client import CallSpec, CompletionRunner, client_secrets
from pytest_rolecheck.running.default_client import close_default_clients, make_client

pytest_plugins = ["pytester"]

KEY = "sk-test-CLIENTKEY0123456789"
REQUEST = {"model": "m", "messages": [{"role": "user", "content": "hi"}], "max_tokens": 1}
BROKEN_JSON = b'{"id": "chatcmpl-1", "choices": [ oops'


class MisbehavingServer:
    """Accepts connections on 127.0.0.1 and answers each request according to ``mode``."""

    def __init__(self, mode: str) -> None:
        self.mode = mode
        self.requests = 0
        self._sock = socket.socket()
        self._sock.bind(("127.0.0.1", 0))
        self._sock.listen(16)
        self._open: list[socket.socket] = []
        self._stop = threading.Event()
        threading.Thread(target=self._accept, daemon=True).start()

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self._sock.getsockname()[1]}/v1"

    def _accept(self) -> None:
        while not self._stop.is_set():
            try:
                conn, _ = self._sock.accept()
            except OSError:
                return
            self._open.append(conn)
            threading.Thread(target=self._answer, args=(conn,), daemon=True).start()

    def _answer(self, conn: socket.socket) -> None:
        try:
            conn.recv(65536)
            self.requests += 1
            if self.mode == "reset":  # RST instead of an answer
                conn.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
                conn.close()
            elif self.mode == "broken-json":
                conn.sendall(
                    b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\n"
                    b"content-length: %d\r\n\r\n%s" % (len(BROKEN_JSON), BROKEN_JSON)
                )
            elif self.mode == "hang":
                self._stop.wait(30)
        except OSError:
            pass

    def close(self) -> None:
        self._stop.set()
        self._sock.close()
        for conn in self._open:
            conn.close()


@pytest.fixture
def server(request: pytest.FixtureRequest) -> Iterator[MisbehavingServer]:
    running = MisbehavingServer(request.param)
    yield running
    running.close()


def _run(client: openai.OpenAI | openai.AsyncOpenAI, **kwargs: object) -> str:
    runner = CompletionRunner(client, **kwargs)  # type: ignore[arg-type]
    with pytest.raises(BackendError) as info:
        runner.run([CallSpec(index=0, arm="system", request=REQUEST)])
    runner.close()
    return str(info.value)


@pytest.mark.parametrize("server", ["reset"], indirect=True)
@pytest.mark.parametrize("kind", ["async", "sync"])
def test_connection_reset_says_the_server_dropped_the_call(
    server: MisbehavingServer, kind: str
) -> None:
    factory = openai.AsyncOpenAI if kind == "async" else openai.OpenAI
    message = _run(factory(api_key=KEY, base_url=server.base_url, max_retries=0))
    assert f"call #1 (system) to {server.base_url}/chat/completions" in message
    assert "accepted the connection but dropped it" in message
    assert "Is the server running" not in message
    assert "()" not in message  # the cause is never empty
    assert "read its log" in message


def test_refused_connection_says_could_not_connect_with_a_cause() -> None:
    with socket.socket() as probe:  # a port nobody listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    base_url = f"http://127.0.0.1:{port}/v1"
    message = _run(openai.AsyncOpenAI(api_key=KEY, base_url=base_url, max_retries=0))
    assert f"could not connect for call #1 (system) to {base_url}/chat/completions: " in message
    assert "ConnectError: " in message
    assert "--rolecheck-base-url" in message


@pytest.mark.parametrize("server", ["broken-json"], indirect=True)
def test_broken_json_answer_is_one_message(server: MisbehavingServer) -> None:
    message = _run(openai.OpenAI(api_key=KEY, base_url=server.base_url, max_retries=0))
    assert f"call #1 (system) to {server.base_url}/chat/completions" in message
    assert "not valid JSON" in message
    assert repr(BROKEN_JSON.decode()) in message
    assert "--rolecheck-base-url" in message


@pytest.mark.parametrize("server", ["hang"], indirect=True)
def test_hang_times_out_per_try_and_lists_the_calls_in_flight(server: MisbehavingServer) -> None:
    told: list[str] = []
    client = openai.AsyncOpenAI(api_key=KEY, base_url=server.base_url, max_retries=1)
    message = _run(client, timeout=0.3, notify=told.append)
    assert server.requests == 2  # one retry, each try cut at 0.3 s (not the client's 600 s)
    assert f"call #1 (system) to {server.base_url}/chat/completions timed out" in message
    assert "no answer within 0.3 s (2 tries)" in message
    assert "--rolecheck-timeout=0.6" in message
    assert len(told) == 1
    assert "call #1 (system)" in told[0]
    assert "1 call in flight: #1 (system)" in told[0]


def test_error_text_echoing_the_key_is_scrubbed(tmp_path: Path) -> None:
    def refuse(request: httpx2.Request) -> httpx2.Response:
        return httpx2.Response(400, json={"error": {"message": f"bad key {KEY}"}})

    client = openai.OpenAI(
        api_key=KEY,
        base_url="http://api.test/v1",
        max_retries=0,
        http_client=httpx2.Client(transport=httpx2.MockTransport(refuse)),
    )
    path = tmp_path / "cassette.json"
    with CassetteSession(path, "all", nodeid="t.py::t", secrets=client_secrets(client)) as cas:
        message = _run(client, stored_json=cas.stored_json, redact=cas.redact)
    assert KEY not in message
    assert "bad key <redacted>" in message


# --------------------------------------------------------------------------- plugin

TEST_FILE = """
from pytest_rolecheck import assert_roles_equivalent

def test_roles():
    assert_roles_equivalent(
        [{"role": "system", "content": "Be brief"}, {"role": "user", "content": "Hi"}],
        model="m", trials=4,
    )
"""


@pytest.fixture
def live_project(pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch) -> pytest.Pytester:
    monkeypatch.setenv("OPENAI_API_KEY", KEY)
    monkeypatch.delenv("OPENAI_BASE_URL", raising=False)
    pytester.makepyfile(test_roles=TEST_FILE)
    return pytester


@pytest.mark.parametrize("server", ["broken-json"], indirect=True)
def test_plugin_reports_broken_json_without_a_traceback(
    live_project: pytest.Pytester, server: MisbehavingServer
) -> None:
    result = live_project.runpytest(
        "--rolecheck-record-mode=once", f"--rolecheck-base-url={server.base_url}"
    )
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(["*BackendError: call #* to http://127.0.0.1:*not valid JSON*"])
    text = result.stdout.str()
    assert "JSONDecodeError" not in text
    assert "Traceback" not in text
    assert not (live_project.path / "cassettes").exists()


@pytest.mark.parametrize("server", ["hang"], indirect=True)
def test_plugin_timeout_option_cuts_a_hang_and_says_what_is_in_flight(
    live_project: pytest.Pytester, server: MisbehavingServer
) -> None:
    result = live_project.runpytest(
        "--rolecheck-record-mode=once",
        f"--rolecheck-base-url={server.base_url}",
        "--rolecheck-timeout=0.4",
        "--rolecheck-concurrency=2",
        "--rolecheck-logprobs=true",  # no first call alone to find out about logprobs
    )
    result.assert_outcomes(failed=1)
    # printed while the calls hang (its place among pytest's own lines may vary)
    result.stdout.fnmatch_lines(
        [
            "rolecheck: call #* to http://127.0.0.1:*/v1/chat/completions has had no answer "
            "for 0.4 s (--rolecheck-timeout); 2 calls in flight: #1 (*), #2 (*)*"
        ]
    )
    result.stdout.fnmatch_lines(
        [
            "*BackendError: call #* timed out: no answer within 0.4 s (3 tries)*"
            "--rolecheck-timeout=0.8*"
        ]
    )
    assert not (live_project.path / "cassettes").exists()


def test_timeout_of_a_test_request_beats_the_option() -> None:
    client = openai.OpenAI(api_key=KEY, base_url="http://api.test/v1")
    runner = CompletionRunner(client, timeout=5.0)
    own = CallSpec(index=0, arm="a", request={**REQUEST, "timeout": 60})
    assert runner._kwargs(own)["timeout"] == 60
    assert runner._kwargs(CallSpec(index=1, arm="a", request=REQUEST))["timeout"] == 5.0
    assert json.loads(json.dumps(own.body())) == REQUEST  # never part of the body


def test_default_client_is_shared_per_settings_and_closed_at_the_end(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("OPENAI_API_KEY", KEY)
    monkeypatch.delenv("OPENAI_BASE_URL", raising=False)
    replay = make_client(base_url="http://a.test/v1", live=False)
    assert make_client(base_url="http://a.test/v1", live=False) is replay
    live = make_client(base_url="http://a.test/v1", live=True)
    # A live test keeps its retries, a replay never retries: never the same client.
    assert (live.max_retries, replay.max_retries) == (2, 0)
    assert make_client(base_url="http://b.test/v1", live=False) is not replay
    close_default_clients()
    assert make_client(base_url="http://a.test/v1", live=False) is not replay
    close_default_clients()


def test_a_replay_never_gets_a_live_client_without_retries(monkeypatch: pytest.MonkeyPatch) -> None:
    # Same key, URL and retries (0): only a replay client answers from cassettes, so a
    # replay handed the live one would send its calls to the network.
    monkeypatch.setenv("OPENAI_API_KEY", KEY)
    live = make_client(base_url="http://a.test/v1", live=True, max_retries=0)
    replay = make_client(base_url="http://a.test/v1", live=False)
    assert replay is not live
    assert make_client(base_url="http://a.test/v1", live=True, max_retries=0) is live
    close_default_clients()
