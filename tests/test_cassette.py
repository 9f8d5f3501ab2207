"""Record/replay through the real openai SDK and vcrpy, over httpx2 mock transports."""

from __future__ import annotations

import asyncio
import gzip
import json
import math
import random
import re
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx2
import openai
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pytest_rolecheck.errors import (
    CassetteCorruptError,
    CassetteError,
    CassetteExhaustedError,
    CassetteMismatchError,
    CassetteNotFoundError,
    RolecheckUsageError,
)
from pytest_rolecheck.recording.cassette import CassetteSession
from pytest_rolecheck.recording.diff import body_diff
from pytest_rolecheck.recording.fix_command import fix_command
from pytest_rolecheck.recording.format import CALL_INDEX_HEADER, _load_document, render_json
from pytest_rolecheck.recording.mode import RecordMode
from pytest_rolecheck.recording.paths import cassette_conflicts, cassette_path
from pytest_rolecheck.recording.redaction import is_credential_name, looks_like_secret
from pytest_rolecheck.running.client import client_secrets

PLANTED = "sk-test-PLANTED0123456789abcdef"
BASE_URL = "http://mock.test:8080/v1"
NODEID = "tests/test_roles.py::test_developer_matches_system[gpt-x]"

# floats whose repr round trip is easy to get wrong
LOGPROBS = (-0.12345678901234568, -2.718281828459045, -1e-300, -5e-324, -0.0, -33.000000000000014)


def completion(body: dict[str, Any], tag: str) -> dict[str, Any]:
    """A chat completion whose text says which role and call it answers."""
    role = body["messages"][0]["role"]
    tops = [
        {"token": f"t{i}", "logprob": lp, "bytes": [116, 48 + i]} for i, lp in enumerate(LOGPROBS)
    ]
    return {
        "id": f"chatcmpl-{tag}",
        "object": "chat.completion",
        "created": 1_700_000_000,
        "model": body["model"],
        "system_fingerprint": "fp_test",
        "choices": [
            {
                "index": 0,
                "message": {"role": "assistant", "content": f"{role}:{tag}", "refusal": None},
                "finish_reason": "stop",
                "logprobs": {
                    "content": [
                        {
                            "token": "Hi",
                            "logprob": LOGPROBS[0],
                            "bytes": [72, 105],
                            "top_logprobs": tops,
                        }
                    ],
                    "refusal": None,
                },
            }
        ],
        "usage": {"prompt_tokens": 11, "completion_tokens": 1, "total_tokens": 12},
    }


class Server:
    """Mock OpenAI endpoint; counts what actually reached it."""

    def __init__(self, *, tag: str = "v1") -> None:
        self.tag = tag
        self.seen: list[int] = []
        self.completed: list[int] = []
        self.fail_once: set[int] = set()
        self.gates: dict[int, asyncio.Event] = {}  # call i waits until call i+1 has finished
        self.echo_secret = False
        self.gzip = False
        self.extra_headers: dict[str, str] = {}

    def respond(self, request: httpx2.Request) -> httpx2.Response:
        index = int(request.headers.get(CALL_INDEX_HEADER, "-1"))
        self.seen.append(index)
        if index in self.fail_once:
            self.fail_once.discard(index)
            return httpx2.Response(
                503, json={"error": {"message": "overloaded"}}, headers={"retry-after-ms": "1"}
            )
        body = json.loads(request.content)
        payload = completion(body, f"{self.tag}-{index}")
        headers = {"content-type": "application/json", **self.extra_headers}
        if self.echo_secret:
            payload["choices"][0]["message"]["content"] += f" key={PLANTED}"
            headers["x-echo-key"] = PLANTED
            headers["openai-organization"] = f"org-{PLANTED}"
        content = json.dumps(payload).encode()
        if self.gzip:
            content = gzip.compress(content)
            headers["content-encoding"] = "gzip"
        self.completed.append(index)
        return httpx2.Response(200, content=content, headers=headers)

    async def respond_async(self, request: httpx2.Request) -> httpx2.Response:
        index = int(request.headers.get(CALL_INDEX_HEADER, "-1"))
        later = self.gates.get(index + 1)
        if later is not None:
            await asyncio.wait_for(later.wait(), 5)
        response = self.respond(request)
        if index in self.gates:
            self.gates[index].set()
        return response

    def client(self, **kw: Any) -> openai.OpenAI:
        transport = httpx2.MockTransport(self.respond)
        return openai.OpenAI(
            api_key=PLANTED, base_url=BASE_URL, http_client=httpx2.Client(transport=transport), **kw
        )

    def async_client(self) -> openai.AsyncOpenAI:
        transport = httpx2.MockTransport(self.respond_async)
        return openai.AsyncOpenAI(
            api_key=PLANTED, base_url=BASE_URL, http_client=httpx2.AsyncClient(transport=transport)
        )


def request_body(index: int, role: str = "system", **params: Any) -> dict[str, Any]:
    return {
        "model": "gpt-x",
        "messages": [
            {"role": role, "content": "You are a helpful AI assistant"},
            {"role": "user", "content": f"Write two stanzas, take {index}"},
        ],
        "max_tokens": 5,
        "logprobs": True,
        "top_logprobs": 5,
        **params,
    }


def call(session: CassetteSession, client: openai.OpenAI, index: int, **body_kw: Any) -> Any:
    body = request_body(index, **body_kw)
    session.check_request(index, body)
    return client.chat.completions.create(**body, extra_headers={CALL_INDEX_HEADER: str(index)})


def record(path: Path, server: Server, n: int = 3, mode: str = "once", **body_kw: Any) -> list[Any]:
    client = server.client()
    with CassetteSession(path, mode, nodeid=NODEID, secrets=[PLANTED]) as session:
        assert session.live
        results = [call(session, client, i, **body_kw) for i in range(n)]
    assert session.written
    return results


@pytest.fixture
def path(tmp_path: Path) -> Path:
    return cassette_path(tmp_path / "cassettes", NODEID)


def originals() -> tuple[Any, ...]:
    return (
        httpx2.HTTPTransport.handle_request,
        httpx2.AsyncHTTPTransport.handle_async_request,
        httpx2.MockTransport.handle_request,
        httpx2.MockTransport.handle_async_request,
    )


@pytest.fixture(autouse=True)
def _patching_is_undone() -> Iterator[None]:
    before = originals()
    yield
    assert originals() == before, "vcrpy patching leaked out of a CassetteSession"


# --------------------------------------------------------------------------- paths


def test_cassette_path_layout(tmp_path: Path) -> None:
    root = tmp_path / "c"
    assert cassette_path(root, "tests/sub/test_roles.py::test_dev") == (
        root / "tests" / "sub" / "test_roles" / "test_dev.json"
    )
    assert cassette_path(root, "test_a.py::TestX::test_y[gpt-4o-10]") == (
        root / "test_a" / "TestX.test_y[gpt-4o-10].json"
    )


def test_cassette_path_sanitises_ids_without_collisions(tmp_path: Path) -> None:
    a = cassette_path(tmp_path, "t.py::test_x[a b/c]")
    b = cassette_path(tmp_path, "t.py::test_x[a_b_c]")
    c = cassette_path(tmp_path, "t.py::test_x[a?b*c]")
    assert a.parent == tmp_path / "t"
    assert re.fullmatch(r"test_x\[a_b_c\]-[0-9a-f]{8}\.json", a.name)
    assert b.name == "test_x[a_b_c].json"
    assert len({a, b, c}) == 3
    assert a == cassette_path(tmp_path, "t.py::test_x[a b/c]")  # deterministic
    long = cassette_path(tmp_path, "t.py::test_x[" + "y" * 300 + "]")
    assert len(long.name) < 140
    assert cassette_path(tmp_path, "t.py::test_x[a::b]") != cassette_path(
        tmp_path, "t.py::test_x[a.b]"
    )
    outside = cassette_path(tmp_path, "../other/test_z.py::test_q")
    assert outside.is_relative_to(tmp_path)


def test_cassette_path_of_a_test_file_outside_the_rootdir(tmp_path: Path) -> None:
    root, cassettes = tmp_path / "root", tmp_path / "root" / "cassettes"
    # pytest names both tests "test_same.py::test_x" (relative to ../a and ../b)
    a = cassette_path(
        cassettes, "test_same.py::test_x", test_file=tmp_path / "a" / "test_same.py", rootdir=root
    )
    b = cassette_path(
        cassettes, "test_same.py::test_x", test_file=tmp_path / "b" / "test_same.py", rootdir=root
    )
    assert a == cassettes / "__" / "a" / "test_same" / "test_x.json"
    assert b == cassettes / "__" / "b" / "test_same" / "test_x.json"
    # inside the rootdir: the same path as from the node id alone
    inside = root / "tests" / "sub" / "test_roles.py"
    nodeid = "tests/sub/test_roles.py::TestA::test_b[x]"
    assert cassette_path(cassettes, nodeid, test_file=inside, rootdir=root) == cassette_path(
        cassettes, nodeid
    )


def test_cassette_conflicts_name_every_test_and_ignore_letter_case(tmp_path: Path) -> None:
    assert (
        cassette_conflicts([("a.py::t", tmp_path / "a.json"), ("b.py::t", tmp_path / "b.json")])
        == {}
    )
    found = cassette_conflicts(
        [
            ("x/Test_A.py::t", tmp_path / "x" / "Test_A" / "t.json"),
            ("x/test_a.py::t", tmp_path / "x" / "test_a" / "t.json"),
            ("y.py::t", tmp_path / "y" / "t.json"),
        ]
    )
    assert set(found) == {"x/Test_A.py::t", "x/test_a.py::t"}
    for message in found.values():
        assert "x/Test_A.py::t, x/test_a.py::t would share the cassette" in message
        assert message.endswith("so that their cassette paths differ.")


# --------------------------------------------------------------------------- round trip


def test_record_then_replay_gives_identical_completions(path: Path) -> None:
    server = Server()
    recorded = record(path, server, n=3)
    assert server.seen == [0, 1, 2]

    session = CassetteSession(path, RecordMode.NONE, nodeid=NODEID, secrets=[PLANTED])
    assert not session.live
    assert session.interaction_count == 3
    assert session.will_replay(2)
    assert not session.will_replay(3)
    client = server.client()
    with session:
        replayed = [call(session, client, i) for i in range(3)]
    assert server.seen == [0, 1, 2]  # nothing went to the server
    assert [r.model_dump() for r in replayed] == [
        steady(r.model_dump(), i) for i, r in enumerate(recorded)
    ]
    top = replayed[0].choices[0].logprobs.content[0].top_logprobs
    assert [t.logprob for t in top] == list(LOGPROBS)
    assert math.copysign(1.0, top[4].logprob) == -1.0  # -0.0 survives
    assert (session.recorded, session.replayed) == (0, 3)


def steady(dump: dict[str, Any], index: int) -> dict[str, Any]:
    """A live answer as its recording stores it: the volatile id and time made steady."""
    return {**dump, "id": f"chatcmpl-{index}", "created": 0}


def test_bodies_are_json_trees_and_token_positions_one_line(path: Path) -> None:
    record(path, Server(), n=2)
    text = path.read_text(encoding="utf-8")
    doc = json.loads(text)
    assert doc["rolecheck_cassette"] == 2
    assert doc["test"] == NODEID
    first = doc["interactions"][0]
    assert first["index"] == 0
    assert first["request"]["body"]["json"]["messages"][0]["role"] == "system"
    body = first["response"]["body"]
    assert body["packed"] == [["choices", 0, "logprobs", "content"]]
    table = body["json"]["choices"][0]["logprobs"]["content"]
    assert table["keys"] == ["token", "logprob", "bytes", "top_logprobs"]
    assert table["bytes"] == "utf-8"
    assert "float32" not in table  # the fake server's logprobs are doubles: written in full
    assert first["response"]["status"] == {"code": 200, "message": "OK"}
    # a token position with its top logprobs is one line: a changed logprob is a one-line diff
    line = next(ln for ln in text.splitlines() if "-2.718281828459045" in ln)
    assert line.strip().startswith('["Hi", -0.12345678901234568, [["t0",')
    assert '["t1",-2.718281828459045]' in line
    assert '"bytes"' not in line  # the UTF-8 of the token: left out, put back on reading
    assert "\\n" not in text  # bodies are not escaped strings


def test_concurrent_recording_is_sorted_and_replays_by_index(path: Path) -> None:
    server = Server()
    n = 6

    async def run(session: CassetteSession, order: list[int], *, reverse: bool) -> list[Any]:
        server.gates = {i: asyncio.Event() for i in range(n)} if reverse else {}
        client = server.async_client()

        async def one(i: int) -> Any:
            body = request_body(i)
            session.check_request(i, body)
            return await client.chat.completions.create(
                **body, extra_headers={CALL_INDEX_HEADER: str(i)}
            )

        results = await asyncio.gather(*(one(i) for i in order))
        return [results[order.index(i)] for i in range(n)]

    with CassetteSession(path, "once", nodeid=NODEID) as session:
        asyncio.run(run(session, list(range(n)), reverse=True))
        # premise: vcrpy holds them in completion order, i.e. reversed
        in_memory = [int(req.headers[CALL_INDEX_HEADER]) for req, _ in session._cassette.data]
        assert in_memory == list(reversed(range(n)))
    assert server.completed == list(reversed(range(n)))
    doc = json.loads(path.read_text())
    assert [it["index"] for it in doc["interactions"]] == list(range(n))
    assert [it["request"]["headers"][CALL_INDEX_HEADER] for it in doc["interactions"]] == [
        str(i) for i in range(n)
    ]
    assert [
        it["request"]["body"]["json"]["messages"][1]["content"][-1] for it in doc["interactions"]
    ] == [str(i) for i in range(n)]

    order = list(range(n))
    random.Random(1).shuffle(order)
    with CassetteSession(path, "none", nodeid=NODEID) as session:
        replayed = asyncio.run(run(session, order, reverse=False))
    assert [r.choices[0].message.content for r in replayed] == [f"system:v1-{i}" for i in range(n)]
    assert session.replayed == n
    assert len(server.seen) == n  # replay sent nothing


def test_threaded_replay_matches_by_index(path: Path) -> None:
    server = Server()
    record(path, server, n=8)
    client = server.client()
    with (
        CassetteSession(path, "none", nodeid=NODEID) as session,
        ThreadPoolExecutor(4) as pool,
    ):
        results = list(pool.map(lambda i: call(session, client, i), reversed(range(8))))
    contents = [r.choices[0].message.content for r in reversed(results)]
    assert contents == [f"system:v1-{i}" for i in range(8)]
    assert len(server.seen) == 8


# --------------------------------------------------------------------------- matching


def test_developer_request_never_replays_system_response(path: Path) -> None:
    server = Server()
    record(path, server, n=1, role="system")
    client = server.client()
    with CassetteSession(path, "none", nodeid=NODEID) as session:
        with pytest.raises(CassetteMismatchError) as info:
            call(session, client, 0, role="developer")
        # and even without check_request, vcrpy refuses instead of replaying "system"
        body = request_body(0, role="developer")
        with pytest.raises(Exception, match="Can't play back") as raw:
            client.chat.completions.create(**body, extra_headers={CALL_INDEX_HEADER: "0"})
        explained = session.explain(raw.value)
    message = str(info.value)
    assert '-      "role": "system"' in message
    assert '+      "role": "developer"' in message
    assert "changed: messages" in message
    assert f"pytest --rolecheck-record-mode=rewrite '{NODEID}'" in message
    assert isinstance(explained, CassetteMismatchError)
    assert '+      "role": "developer"' in str(explained)
    # older SDKs retry and wrap it: APIConnectionError from <vcrpy refusal>
    wrapped = openai.APIConnectionError(request=httpx2.Request("POST", BASE_URL))
    wrapped.__cause__ = raw.value
    assert isinstance(session.explain(wrapped), CassetteMismatchError)
    assert server.seen == [0]


def test_stale_params_show_a_short_diff(path: Path) -> None:
    record(path, Server(), n=2)
    session = CassetteSession(path, "none", nodeid=NODEID)
    with pytest.raises(CassetteMismatchError) as info:
        session.check_request(1, request_body(1, temperature=0.7))
    message = str(info.value)
    assert "call #2" in message
    assert "changed: temperature" in message
    assert '+  "temperature": 0.7' in message
    assert "--- recorded" in message
    assert "+++ this request" in message
    assert len(message.splitlines()) < 40
    assert message.rstrip().endswith(f"`pytest --rolecheck-record-mode=rewrite '{NODEID}'`")


def test_key_order_does_not_matter(path: Path) -> None:
    record(path, Server(), n=1)
    body = request_body(0)
    reordered = {k: body[k] for k in reversed(list(body))}
    CassetteSession(path, "none", nodeid=NODEID).check_request(0, reordered)


def test_explain_ignores_unrelated_errors(path: Path) -> None:
    record(path, Server(), n=1)
    with CassetteSession(path, "none", nodeid=NODEID) as session:
        assert session.explain(ValueError("boom")) is None


# --------------------------------------------------------------------------- errors


def test_none_mode_without_cassette_fails_and_never_goes_live(path: Path) -> None:
    server = Server()
    client = server.client()
    with CassetteSession(path, "none", nodeid=NODEID) as session:
        assert not session.live
        assert not session.will_replay(0)
        with pytest.raises(CassetteNotFoundError) as info:
            call(session, client, 0)
        body = request_body(0)
        # without check_request vcrpy still refuses; explain() gives the same error
        with pytest.raises(Exception, match="Can't play back") as raw:
            client.chat.completions.create(**body, extra_headers={CALL_INDEX_HEADER: "0"})
        assert isinstance(session.explain(raw.value), CassetteNotFoundError)
    assert server.seen == []
    assert not path.exists()
    message = str(info.value)
    assert message.startswith(f"no cassette at {path} — record it with ")
    assert f"`pytest --rolecheck-record-mode=once '{NODEID}'`" in message


def test_more_calls_than_recorded(path: Path) -> None:
    record(path, Server(), n=2)
    session = CassetteSession(path, "none", nodeid=NODEID)
    with pytest.raises(CassetteExhaustedError) as info:
        session.check_request(2, request_body(2))
    message = str(info.value)
    assert "recorded 2 calls, the test requested call #3" in message
    assert f"pytest --rolecheck-record-mode=rewrite '{NODEID}'" in message


CORRUPTIONS = {
    "bad json": ('{\n  "rolecheck_cassette": 1,\n  "interactions": [,]\n}\n', ":3:20:"),
    "wrong version": ('{\n  "interactions": [],\n  "rolecheck_cassette": 7\n}\n', ":3:3:"),
    "not ours": ('{"version": 1, "interactions": []}', ":1:1:"),
    "empty": ("  \n", ":1:"),
    "bad structure": (
        '{"rolecheck_cassette": 1, "interactions": [\n'
        '  {"index": 0, "request": {"method": "POST", "uri": "http://h/p"},\n'
        '   "response": {"status": {"code": 200}}},\n'
        '  {"index": 1, "request": 5, "response": {}}\n]}\n',
        ":4:4:",
    ),
    "duplicate index": (
        '{"rolecheck_cassette": 1, "interactions": [\n'
        '  {"index": 0, "request": {"method": "POST", "uri": "http://h/p"},\n'
        '   "response": {"status": {"code": 200}}},\n'
        '  {"index": 0, "request": {"method": "POST", "uri": "http://h/p"},\n'
        '   "response": {"status": {"code": 200}}}\n]}\n',
        ":2:4:",
    ),
    "nested too deep": (
        '{"rolecheck_cassette": 1, "interactions": [\n'
        '  {"index": 0, "request": {"method": "POST", "uri": "http://h/p",\n'
        '   "body": {"json": {"a": "[[[", "b": ' + "[" * 100_000 + "]" * 100_000 + "}}},\n"
        '   "response": {"status": {"code": 200}}}\n]}\n',
        ":3:100038:",
    ),
}


@pytest.mark.parametrize("kind", list(CORRUPTIONS))
def test_corrupt_cassette_names_file_and_line(path: Path, kind: str) -> None:
    text, location = CORRUPTIONS[kind]
    path.parent.mkdir(parents=True)
    path.write_text(text)
    server = Server()
    client = server.client()
    with CassetteSession(path, "once", nodeid=NODEID) as session:  # exists: replay, not live
        assert not session.live
        with pytest.raises(CassetteCorruptError) as info:
            call(session, client, 0)
        with pytest.raises(CassetteCorruptError):  # loaded once, same answer again
            _ = session.interaction_count
    message = str(info.value)
    assert f"{path}{location}" in message
    assert f"`pytest --rolecheck-record-mode=rewrite '{NODEID}'`" in message
    assert server.seen == []
    assert path.read_text() == text


def test_not_utf8_is_corrupt(path: Path) -> None:
    path.parent.mkdir(parents=True)
    path.write_bytes(b'{"rolecheck_cassette": 1,\n"interactions": ["\xff"]}')
    with pytest.raises(CassetteCorruptError, match=r":2: not UTF-8"):
        CassetteSession(path, "none", nodeid=NODEID).check_request(0, {})


def test_bad_arguments() -> None:
    with pytest.raises(RolecheckUsageError, match=r"new_episodes.*none, once, all, rewrite"):
        CassetteSession(Path("x.json"), "new_episodes", nodeid=NODEID)
    session = CassetteSession(Path("missing.json"), "none", nodeid=NODEID)
    with pytest.raises(RolecheckUsageError, match="call index"):
        session.check_request(-1, {})
    with pytest.raises(RolecheckUsageError, match="plain JSON"):
        session.check_request(0, {"x": object()})


# --------------------------------------------------------------------------- record modes


def test_once_replays_an_existing_cassette_and_records_a_missing_one(path: Path) -> None:
    server = Server()
    record(path, server, n=2, mode="once")
    before = path.read_bytes()
    client = server.client()
    with CassetteSession(path, "once", nodeid=NODEID) as session:
        assert not session.live
        call(session, client, 0)
        call(session, client, 1)
        with pytest.raises(CassetteExhaustedError):  # once never appends
            call(session, client, 2)
    assert server.seen == [0, 1]
    assert path.read_bytes() == before


@pytest.mark.parametrize("mode", ["all", "rewrite"])
def test_rewrite_replaces_the_whole_cassette_on_success(path: Path, mode: str) -> None:
    record(path, Server(tag="old"), n=3)
    server = Server(tag="new")
    record(path, server, n=1, mode=mode)
    assert server.seen == [0]  # always live, even with a cassette present
    doc = json.loads(path.read_text())
    assert [it["index"] for it in doc["interactions"]] == [0]  # old calls 1 and 2 are gone
    content = doc["interactions"][0]["response"]["body"]["json"]["choices"][0]["message"]
    assert content["content"] == "system:new-0"


@pytest.mark.parametrize("exc", [RuntimeError("test failed"), KeyboardInterrupt()])
@pytest.mark.parametrize("mode", ["all", "rewrite", "once"])
def test_exception_leaves_old_cassette_untouched(path: Path, mode: str, exc: BaseException) -> None:
    if mode != "once":
        record(path, Server(tag="old"), n=2)
    before = path.read_bytes() if path.exists() else None
    listing = sorted(p.name for p in path.parent.iterdir()) if path.parent.exists() else []
    client = Server(tag="new").client()
    session = CassetteSession(path, mode, nodeid=NODEID, secrets=[PLANTED])

    def failing_test() -> None:
        with session:
            call(session, client, 0)
            assert session.recorded == 1
            raise exc

    with pytest.raises(type(exc)):
        failing_test()
    assert session.recorded == 1  # recorded in memory, deliberately not written
    assert (path.read_bytes() if path.exists() else None) == before
    after = sorted(p.name for p in path.parent.iterdir()) if path.parent.exists() else []
    assert after == listing  # no temp files, no partial cassette


def test_interrupted_write_leaves_no_partial_file(
    path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    record(path, Server(tag="old"), n=1)
    before = path.read_bytes()

    def interrupted(src: object, dst: object) -> None:
        raise KeyboardInterrupt

    monkeypatch.setattr("pytest_rolecheck.recording.files.os.replace", interrupted)
    with pytest.raises(KeyboardInterrupt):
        record(path, Server(tag="new"), n=1, mode="rewrite")
    assert path.read_bytes() == before
    assert [p.name for p in path.parent.iterdir()] == [path.name]


def test_live_session_without_calls_writes_nothing(path: Path) -> None:
    with CassetteSession(path, "rewrite", nodeid=NODEID) as session:
        session.check_request(0, request_body(0))  # no-op when live
        assert session.interaction_count == 0
    assert not session.written
    assert not path.exists()


def test_unwritable_cassette_dir_is_a_clear_error(tmp_path: Path) -> None:
    blocker = tmp_path / "cassettes"
    blocker.write_text("a file where the directory should be")
    path = cassette_path(blocker, NODEID)
    client = Server().client()
    with (
        pytest.raises(CassetteError, match=r"could not write the cassette.*cassette-dir"),
        CassetteSession(path, "once", nodeid=NODEID) as session,
    ):
        call(session, client, 0)
    assert not session.written


def test_session_is_single_use(path: Path) -> None:
    session = CassetteSession(path, "none", nodeid=NODEID)
    with session:
        pass
    with pytest.raises(RolecheckUsageError, match="once"), session:
        pass


def test_requests_without_call_index_pass_through(path: Path) -> None:
    seen: list[str] = []

    def handler(request: httpx2.Request) -> httpx2.Response:
        seen.append(str(request.url))
        return httpx2.Response(200, json={"ok": True})

    with (
        CassetteSession(path, "rewrite", nodeid=NODEID),
        httpx2.Client(transport=httpx2.MockTransport(handler)) as http,
    ):
        assert http.get("http://other.test/health").json() == {"ok": True}
    assert seen == ["http://other.test/health"]
    assert not path.exists()  # not recorded


# --------------------------------------------------------------------------- hygiene


def test_planted_api_key_never_reaches_the_file(path: Path) -> None:
    server = Server()
    server.echo_secret = True
    client = openai.OpenAI(
        api_key=PLANTED,
        base_url=BASE_URL,
        default_query={"key": PLANTED},
        http_client=httpx2.Client(transport=httpx2.MockTransport(server.respond)),
    )
    leaky = {"user": f"user-{PLANTED}", "stop": ["none"]}
    with CassetteSession(path, "once", nodeid=NODEID, secrets=[PLANTED, "none"]) as session:
        live = call(session, client, 0, **leaky)
    assert PLANTED in live.choices[0].message.content  # the live answer is untouched
    text = path.read_text()
    assert "PLANTED" not in text
    assert "<redacted>" in text
    doc = json.loads(text)
    assert doc["interactions"][0]["request"]["body"]["json"]["user"] == "user-<redacted>"
    assert doc["interactions"][0]["request"]["uri"].endswith("?key=<redacted>")
    assert '"stop": ["none"]' in text  # values that do not look like a secret are not scrubbed
    # the same (secret-bearing) request still replays
    with CassetteSession(path, "none", nodeid=NODEID, secrets=[PLANTED]) as session:
        replayed = call(session, client, 0, **leaky)
    assert replayed.choices[0].message.content.endswith("key=<redacted>")
    assert len(server.seen) == 1


GATEWAY_KEY = "gw-0123456789abcdefGATEWAY"
HEADER_TOKEN = "tok-HEADER0123456789"


def test_configured_secrets_of_the_client_never_reach_the_file(path: Path) -> None:
    # A gateway key in the query and a token header, both different from the API key.
    def respond(request: httpx2.Request) -> httpx2.Response:
        body = json.loads(request.content)
        payload = completion(body, "gw")
        payload["system_fingerprint"] = f"{request.url.query.decode()} {HEADER_TOKEN}"
        return httpx2.Response(200, json=payload)

    client = openai.OpenAI(
        api_key=PLANTED,
        base_url=BASE_URL,
        default_query={"key": GATEWAY_KEY, "api-version": "2024-06-01"},
        default_headers={"x-api-key": HEADER_TOKEN, "x-team": "research-team-blue"},
        http_client=httpx2.Client(transport=httpx2.MockTransport(respond)),
    )
    secrets = client_secrets(client)
    assert GATEWAY_KEY in secrets
    assert HEADER_TOKEN in secrets
    assert "research-team-blue" not in secrets  # not a credential's name
    with CassetteSession(path, "once", nodeid=NODEID, secrets=secrets) as session:
        call(session, client, 0, user=f"on behalf of {GATEWAY_KEY}")
    text = path.read_text()
    for secret in ("GATEWAY", "HEADER0123"):
        assert secret not in text
    doc = json.loads(text)
    uri = doc["interactions"][0]["request"]["uri"]
    # every query value goes, names stay: matching never looks at the query
    assert uri == f"{BASE_URL}/chat/completions?key=<redacted>&api-version=<redacted>"
    with CassetteSession(path, "none", nodeid=NODEID, secrets=secrets) as session:
        replayed = call(session, client, 0, user=f"on behalf of {GATEWAY_KEY}")
    assert replayed.system_fingerprint == "key=<redacted>&api-version=2024-06-01 <redacted>"


def test_unconfigured_query_values_are_dropped_from_the_uri(path: Path) -> None:
    server = Server()
    client = server.client(default_query={"sig": "x1"})
    with CassetteSession(path, "once", nodeid=NODEID, secrets=[]) as session:
        call(session, client, 0)
    assert json.loads(path.read_text())["interactions"][0]["request"]["uri"].endswith(
        "?sig=<redacted>"
    )


@pytest.mark.parametrize(
    ("value", "secret"),
    [
        ("not-needed", False),  # a placeholder key, also ordinary prompt text
        ("EMPTY", False),
        ("none", False),
        ("sk-1", True),  # a known key prefix counts whatever the length
        ("abcdefghijkl", True),  # 12 characters
        ("abcdefghijk", False),
        (None, False),
    ],
)
def test_what_looks_like_a_secret(value: object, secret: bool) -> None:
    assert looks_like_secret(value) is secret


@pytest.mark.parametrize(
    ("name", "credential"),
    [
        ("key", True),
        ("api-key", True),
        ("x-api-key", True),
        ("Authorization", True),
        ("access_token", True),
        ("client_secret", True),
        ("password", True),
        ("sig", True),
        ("api-version", False),
        ("x-team", False),
        ("OpenAI-Organization", False),
    ],
)
def test_what_names_a_credential(name: str, credential: bool) -> None:
    assert is_credential_name(name) is credential


def test_placeholder_key_does_not_rewrite_prompt_text(path: Path) -> None:
    server = Server()
    client = server.client()
    client.api_key = "not-needed"
    prompt = {"user": "not-needed"}
    with CassetteSession(path, "once", nodeid=NODEID, secrets=client_secrets(client)) as session:
        call(session, client, 0, **prompt)
    doc = json.loads(path.read_text())
    assert doc["interactions"][0]["request"]["body"]["json"]["user"] == "not-needed"


def test_only_whitelisted_headers_are_stored(path: Path) -> None:
    server = Server()
    server.extra_headers = {
        "set-cookie": "session=abc",
        "x-request-id": "req_123",
        "openai-organization": "org-xyz",
        "openai-project": "proj_abc",
        "openai-processing-ms": "123",
        "openai-version": "2020-10-01",
        "x-ratelimit-remaining-tokens": "100",
    }
    record(path, server, n=1)
    interaction = json.loads(path.read_text())["interactions"][0]
    assert interaction["request"]["headers"] == {
        "content-type": "application/json",
        CALL_INDEX_HEADER: "0",
    }
    assert interaction["response"]["headers"] == {
        "content-type": "application/json",
        "openai-version": "2020-10-01",
    }


def test_server_errors_are_not_recorded(path: Path) -> None:
    server = Server()
    server.fail_once = {1}
    client = server.client(max_retries=2)
    with CassetteSession(path, "once", nodeid=NODEID) as session:
        results = [call(session, client, i) for i in range(3)]
        assert session.recorded == 3
    assert server.seen == [0, 1, 1, 2]  # the SDK retried the 503
    assert [r.choices[0].message.content for r in results][1] == "system:v1-1"
    doc = json.loads(path.read_text())
    assert [it["index"] for it in doc["interactions"]] == [0, 1, 2]
    assert {it["response"]["status"]["code"] for it in doc["interactions"]} == {200}
    assert "overloaded" not in path.read_text()


def test_failed_call_without_retry_writes_nothing(path: Path) -> None:
    server = Server()
    server.fail_once = {0}
    client = server.client(max_retries=0)
    with (
        pytest.raises(openai.APIStatusError),
        CassetteSession(path, "once", nodeid=NODEID) as session,
    ):
        call(session, client, 0)
    assert session.recorded == 0
    assert not path.exists()


def test_compressed_response_is_stored_decoded(path: Path) -> None:
    server = Server()
    server.gzip = True
    recorded = record(path, server, n=1)
    interaction = json.loads(path.read_text())["interactions"][0]
    assert "content-encoding" not in interaction["response"]["headers"]
    assert interaction["response"]["body"]["json"]["id"] == "chatcmpl-0"  # was chatcmpl-v1-0
    with CassetteSession(path, "none", nodeid=NODEID) as session:
        replayed = call(session, server.client(), 0)
    assert replayed.model_dump() == steady(recorded[0].model_dump(), 0)


@pytest.mark.parametrize(
    ("content", "content_type", "kind"),
    [
        (b'data: {"a": 1}\n\ndata: [DONE]\n\n', "text/event-stream", "text"),
        (b"not json {", "application/json", "text"),
        (b"\x89PNG\r\n\x1a\n\xff\x00", "image/png", "base64"),
    ],
)
def test_non_json_bodies_round_trip(
    path: Path, content: bytes, content_type: str, kind: str
) -> None:
    def handler(request: httpx2.Request) -> httpx2.Response:
        return httpx2.Response(200, content=content, headers={"content-type": content_type})

    headers = {CALL_INDEX_HEADER: "0", "content-type": "text/plain"}
    for mode in ("once", "none"):
        with (
            CassetteSession(path, mode, nodeid=NODEID) as session,
            httpx2.Client(transport=httpx2.MockTransport(handler)) as http,
        ):
            response = http.post("http://h.test/raw", content=b"plain text", headers=headers)
            assert response.content == content
            assert response.headers["content-type"] == content_type
        assert session.live is (mode == "once")
    stored = json.loads(path.read_text())["interactions"][0]
    assert list(stored["response"]["body"]) == [kind]
    assert stored["request"]["body"] == {"text": "plain text"}


# --------------------------------------------------------------------------- pure helpers

json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**70), max_value=2**70)
    | st.floats(allow_nan=False)
    | st.text(),
    lambda inner: (
        st.lists(inner, max_size=5) | st.dictionaries(st.text(max_size=8), inner, max_size=5)
    ),
    max_leaves=30,
)


@settings(max_examples=200, deadline=None)
@given(json_values)
def test_render_json_round_trips_exactly(value: Any) -> None:
    text = render_json(value)
    back = json.loads(text)
    assert json.dumps(back, sort_keys=False) == json.dumps(value, sort_keys=False)


def test_render_json_surrogates_stay_utf8() -> None:
    text = render_json({"t": "a\ud800b", "u": "café"})
    text.encode("utf-8")
    assert json.loads(text) == {"t": "a\ud800b", "u": "café"}


def test_body_diff_is_short_and_focused() -> None:
    long_prompt = "word " * 400
    old = {"messages": [{"role": "system", "content": long_prompt + "alpha"}]}
    new = {"messages": [{"role": "system", "content": long_prompt + "omega"}]}
    diff = body_diff(old, new)
    changed = [ln for ln in diff.splitlines() if ln[:1] in "+-" and ln[:3] not in ("---", "+++")]
    assert len(changed) == 2
    assert "alpha" in changed[0]
    assert "omega" in changed[1]
    assert all(len(ln) <= 170 for ln in diff.splitlines())
    many = body_diff({"k": list(range(100))}, {"k": list(range(100, 200))})
    assert len(many.splitlines()) == 31
    assert many.splitlines()[-1].startswith("… (")


def cassette_text(bodies: list[tuple[Any, Any]], style: int) -> str:
    doc = {
        "rolecheck_cassette": 1,
        "interactions": [
            {
                "index": i,
                "request": {"method": "POST", "uri": "http://h/p", "body": {"json": req}},
                "response": {"status": {"code": 200}, "headers": {}, "body": {"json": resp}},
            }
            for i, (req, resp) in enumerate(bodies)
        ],
    }
    if style == 0:
        return render_json(doc)
    if style == 1:
        return json.dumps(doc)
    return json.dumps(doc, indent="\t", separators=(" , ", " : ")) + " \r\n"


@settings(max_examples=60, deadline=None)
@given(st.lists(st.tuples(json_values, json_values), max_size=4), st.integers(0, 2))
def test_fast_load_equals_json_loads_and_keeps_body_text(
    bodies: list[tuple[Any, Any]], style: int
) -> None:
    text = cassette_text(bodies, style)
    loaded = _load_document(text)
    assert json.dumps(loaded) == json.dumps(json.loads(text))
    for item, (_, resp) in zip(loaded["interactions"], bodies, strict=True):
        raw = item["response"]["body"].raw
        assert raw is not None
        assert json.dumps(json.loads(raw)) == json.dumps(resp)


@pytest.mark.parametrize(
    "text",
    [
        '{"rolecheck_cassette": 1, "interactions": []} trailing',
        '{"rolecheck_cassette": 1 "interactions": []}',
        '{"rolecheck_cassette": 1, "interactions": [{"index": 0,}]}',
        '\ufeff{"rolecheck_cassette": 1}',
        '{"rolecheck_cassette": 1, "interactions": [}',
    ],
)
def test_fast_load_reports_errors_like_json_loads(text: str) -> None:
    with pytest.raises(json.JSONDecodeError) as expected:
        json.loads(text)
    with pytest.raises(json.JSONDecodeError) as got:
        _load_document(text)
    assert (got.value.lineno, got.value.colno, got.value.msg) == (
        expected.value.lineno,
        expected.value.colno,
        expected.value.msg,
    )


def test_host_and_port_are_ignored_when_replaying(path: Path) -> None:
    # The cassette records where it came from; CI replays without OPENAI_BASE_URL.
    server = Server()
    record(path, server, n=1)

    def client_for(url: str) -> openai.OpenAI:
        http = httpx2.Client(transport=httpx2.MockTransport(server.respond))
        return openai.OpenAI(api_key=PLANTED, base_url=url, http_client=http)

    for url in ("http://mock.test:9999/v1", "https://api.openai.com/v1"):
        with CassetteSession(path, "none", nodeid=NODEID) as session:
            assert call(session, client_for(url), 0).choices[0].message.content == "system:v1-0"
    assert server.seen == [0]


def test_another_path_names_the_recorded_base_url_to_replay_against(path: Path) -> None:
    server = Server()
    record(path, server, n=1)
    http = httpx2.Client(transport=httpx2.MockTransport(server.respond))
    elsewhere = openai.OpenAI(
        api_key=PLANTED, base_url="https://gw.test/openai/v2", http_client=http
    )
    with CassetteSession(path, "none", nodeid=NODEID, command_flags=["-p", "no:xdist"]) as session:
        with pytest.raises(Exception, match="Can't play back") as raw:
            call(session, elsewhere, 0)
        explained = session.explain(raw.value)
    assert isinstance(explained, CassetteMismatchError)
    message = str(explained)
    assert "the paths differ" in message
    assert "the host and port are ignored when replaying" in message
    recorded_base = BASE_URL.rstrip("/")
    assert f"`pytest -p no:xdist --rolecheck-base-url={recorded_base} '{NODEID}'`" in message
    assert server.seen == [0]


def test_recording_stores_where_it_was_recorded_and_replay_reads_it(path: Path) -> None:
    server = Server()
    client = server.client()
    setup = {"local": False, "endpoint": f"http://user:{PLANTED}@mock.test:8080/v1?key=x"}
    with CassetteSession(
        path, "once", nodeid=NODEID, secrets=[PLANTED], recorded_with={**setup, "model": "gpt-x"}
    ) as session:
        call(session, client, 0)
    stored = json.loads(path.read_text())["recorded_with"]
    # No credentials and no query: only where the calls went.
    assert stored == {"local": False, "endpoint": "http://mock.test:8080/v1", "model": "gpt-x"}
    assert CassetteSession(path, "none", nodeid=NODEID).stored_setup == stored


def test_cassettes_without_the_setup_block_still_replay(path: Path) -> None:
    record(path, Server(), n=1)
    document = json.loads(path.read_text())
    del document["recorded_with"]
    path.write_text(json.dumps(document))
    with CassetteSession(path, "none", nodeid=NODEID) as session:
        assert session.stored_setup == {}
        assert call(session, Server().client(), 0).choices[0].message.content == "system:v1-0"


def test_fix_commands_repeat_the_run_flags_and_the_recorded_backend(path: Path) -> None:
    server = Server()
    with CassetteSession(path, "once", nodeid=NODEID, recorded_with={"local": True}) as session:
        call(session, server.client(), 0)
    flags = ["--config-file=ci/pytest.ini", "--rolecheck-cassette-dir=my cassettes"]
    missing = CassetteSession(
        path.with_name("other.json"), "none", nodeid=NODEID, command_flags=flags
    )
    with pytest.raises(CassetteNotFoundError) as excinfo:
        missing.check_request(0, request_body(0))
    assert (
        "`pytest --config-file=ci/pytest.ini '--rolecheck-cassette-dir=my cassettes' "
        f"--rolecheck-record-mode=once '{NODEID}'`"
    ) in str(excinfo.value)
    # Replayed without --rolecheck-local: re-recording must go back to the local model.
    replay = CassetteSession(path, "none", nodeid=NODEID, command_flags=flags)
    with pytest.raises(CassetteMismatchError) as excinfo:
        replay.check_request(0, request_body(0, role="developer"))
    assert (
        "`pytest --config-file=ci/pytest.ini '--rolecheck-cassette-dir=my cassettes' "
        f"--rolecheck-local --rolecheck-record-mode=rewrite '{NODEID}'`"
    ) in str(excinfo.value)


def test_fix_command_is_one_pasteable_line() -> None:
    assert fix_command("once", "t.py::test_a[x y]", ["-p", "no:cacheprovider"]) == (
        "pytest -p no:cacheprovider --rolecheck-record-mode=once 't.py::test_a[x y]'"
    )
    assert fix_command(None, "t.py::t", ["--rolecheck-base-url=http://h/v1"]) == (
        "pytest --rolecheck-base-url=http://h/v1 't.py::t'"
    )


def test_a_missing_cassette_directory_is_named_not_the_test(tmp_path: Path) -> None:
    (tmp_path / "cassettes").mkdir()
    (tmp_path / "tests").mkdir()
    typo = tmp_path / "casettes"
    session = CassetteSession(cassette_path(typo, NODEID), "none", nodeid=NODEID, cassette_dir=typo)
    with pytest.raises(CassetteNotFoundError) as excinfo:
        session.check_request(0, request_body(0))
    message = str(excinfo.value)
    assert "the cassette directory" in message
    assert "casettes does not exist" in message
    assert "cassettes/, tests/" in message
    assert "did you mean 'cassettes'?" in message
    assert "--rolecheck-cassette-dir" in message
    assert "no cassette at" not in message
