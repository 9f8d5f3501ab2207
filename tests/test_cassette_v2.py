"""Cassette format v2: lossless token tables, v1 still read, steady fields, the upgrade."""

from __future__ import annotations

import json
import struct
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st
from openai._models import construct_type
from openai.types.chat import ChatCompletion
from openai.types.responses import Response

from pytest_rolecheck import cli
from pytest_rolecheck.recording.encoding import float32_text, pack_body, unpack_body
from pytest_rolecheck.recording.format import (
    FORMAT_KEY,
    Unreadable,
    read_cassette,
    render_json,
)
from pytest_rolecheck.recording.redaction import steady_body, steady_uri

ROOT = Path(__file__).resolve().parents[1]
SHIPPED = sorted((ROOT / "cassettes").rglob("*.json"))


def f32(value: float) -> float:
    return float(struct.unpack("<f", struct.pack("<f", value))[0])


def entry(token: str, logprob: float, **extra: Any) -> dict[str, Any]:
    return {"id": len(token), "token": token, "bytes": list(token.encode()), "logprob": logprob}


def llama_body() -> dict[str, Any]:
    """A llama.cpp-shaped answer: ids, bytes, float32 logprobs, one partial UTF-8 token."""
    partial = {"id": 241, "token": "\ufffd", "bytes": [151], "logprob": f32(-6.9465)}
    content = [
        {**entry("Hi", f32(-0.25)), "top_logprobs": [entry("Hi", f32(-0.25)), partial]},
        {**entry(" there", -0.0), "top_logprobs": [entry(" there", -0.0), entry("!", -20.0)]},
        {**partial, "top_logprobs": []},
    ]
    return {
        "choices": [
            {
                "finish_reason": "length",
                "index": 0,
                "message": {"role": "assistant", "content": "Hi there\ufffd"},
                "logprobs": {"content": content},
            }
        ],
        "created": 0,
        "model": "m",
        "object": "chat.completion",
        "id": "chatcmpl-0",
    }


def document(version: int, bodies: list[dict[str, Any] | None]) -> dict[str, Any]:
    return {
        FORMAT_KEY: version,
        "test": "test_x.py::test_y",
        "recorded_with": {"local": True, "endpoint": "http://127.0.0.1/v1", "model": "m"},
        "interactions": [
            {
                "index": index,
                "request": {
                    "method": "POST",
                    "uri": "http://127.0.0.1/v1/chat/completions",
                    "headers": {"content-type": "application/json"},
                    "body": {"json": {"model": "m", "messages": [], "seed": index}},
                },
                "response": {
                    "status": {"code": 200, "message": "OK"},
                    "headers": {"content-type": "application/json"},
                    "body": body,
                },
            }
            for index, body in enumerate(bodies)
        ],
    }


def write(path: Path, doc: dict[str, Any]) -> Path:
    path.write_text(render_json(doc) + "\n", encoding="utf-8")
    return path


def responses(path: Path) -> list[Any]:
    found, _ = read_cassette(path)
    return [json.loads(found[i].response["body"]["string"]) for i in sorted(found)]


def as_v1(doc: dict[str, Any]) -> dict[str, Any]:
    items = [
        {**item, "response": {**item["response"], "body": unpack_body(item["response"]["body"])}}
        for item in doc["interactions"]
    ]
    return {**doc, FORMAT_KEY: 1, "interactions": items}


# --------------------------------------------------------------------------- floats


@given(st.floats(width=32, allow_nan=False, allow_infinity=False))
def test_float32_text_is_short_and_rounds_back_exactly(value: float) -> None:
    text = float32_text(value)
    assert text is not None
    assert isinstance(json.loads(text), float)
    assert f32(json.loads(text)) == value
    assert len(text) <= len(repr(value))


@pytest.mark.parametrize("value", [0.1, -1e-300, 1e300, float("inf"), float("nan")])
def test_float32_text_refuses_what_is_no_finite_float32(value: float) -> None:
    assert float32_text(value) is None


# --------------------------------------------------------------------------- packing


def test_llama_answer_packs_one_line_per_position_and_unpacks_equal() -> None:
    body = llama_body()
    packed = pack_body({"json": body})
    assert packed is not None
    assert packed["packed"] == [["choices", 0, "logprobs", "content"]]
    text = render_json(packed)
    rows = [line.strip() for line in text.splitlines() if line.strip().startswith("[2,")]
    assert rows == ['[2, "Hi", -0.25, [[2,"Hi",-0.25], [241,"\ufffd",-6.9465,[151]]]],']
    assert "-6.9465" in text  # the float32 -6.946499824523926, shortest
    unpacked = unpack_body(json.loads(text))
    assert unpacked == {"json": body}
    # key order too: the SDK gets the same JSON text the server sent, spacing aside
    first = unpacked["json"]["choices"][0]["logprobs"]["content"][0]
    assert list(first) == ["id", "token", "bytes", "logprob", "top_logprobs"]


def test_bytes_null_is_left_out_and_put_back() -> None:
    tops = [{"token": "a", "logprob": -1.0, "bytes": None}]
    content = [{"token": "a", "logprob": -1.0, "bytes": None, "top_logprobs": tops}] * 3
    body = {"choices": [{"logprobs": {"content": content, "refusal": None}}]}
    text = render_json(pack_body({"json": body}))
    assert text.count('"bytes": null') == 1  # the table's default, once
    assert "null" not in "".join(ln for ln in text.splitlines() if '"a"' in ln)
    assert unpack_body(json.loads(text)) == {"json": body}


def test_doubles_are_written_in_full_and_read_as_they_were() -> None:
    content = [{"token": "a", "logprob": 0.1, "top_logprobs": None}, {"token": "b", "logprob": 1}]
    body = {"choices": [{"logprobs": {"content": content[:1]}}]}
    packed = pack_body({"json": body})
    assert packed is not None
    table = packed["json"]["choices"][0]["logprobs"]["content"]
    assert "float32" not in table
    assert unpack_body(json.loads(render_json(packed))) == {"json": body}
    mixed = {"choices": [{"logprobs": {"content": content}}]}  # keys differ: left as it is
    assert pack_body({"json": mixed}) == {"json": mixed}


def test_responses_api_logprobs_are_packed() -> None:
    logprobs = [{"token": "Hi", "logprob": -0.5, "bytes": [72, 105], "top_logprobs": []}]
    body = {"id": "resp_0", "output": [{"content": [{"text": "Hi", "logprobs": logprobs}]}]}
    packed = pack_body({"json": body})
    assert packed is not None
    assert packed["packed"] == [["output", 0, "content", 0, "logprobs"]]
    assert unpack_body(json.loads(render_json(packed))) == {"json": body}


def test_a_broken_row_is_reported_at_its_line(tmp_path: Path) -> None:
    path = write(tmp_path / "c.json", document(2, [pack_body({"json": llama_body()})]))
    lines = path.read_text(encoding="utf-8").splitlines()
    at = next(i for i, ln in enumerate(lines) if ln.strip().startswith('[6, " there"'))
    lines[at] = '                      [6, " there"],'
    path.write_text("\n".join(lines), encoding="utf-8")
    with pytest.raises(Unreadable) as caught:
        read_cassette(path)
    message = str(caught.value)
    assert "choices.0.logprobs.content.rows[1] must be an array of 4 values" in message
    assert f"{path}:" in message


# --------------------------------------------------------------------------- reading


def test_a_v1_cassette_still_reads_and_gives_the_same_calls(tmp_path: Path) -> None:
    plain = {"json": {"id": "x"}}  # nothing to pack: stored as in v1
    v1 = write(tmp_path / "v1.json", document(1, [{"json": llama_body()}, plain]))
    v2 = write(tmp_path / "v2.json", document(2, [pack_body({"json": llama_body()}), plain]))
    assert json.loads(v1.read_text())[FORMAT_KEY] == 1
    assert responses(v1) == responses(v2) == [llama_body(), {"id": "x"}]
    assert len(read_cassette(v1)[0]) == len(read_cassette(v2)[0]) == 2
    assert v2.stat().st_size < v1.stat().st_size


def _sdk(uri: str, body: Any) -> Any:
    if uri.endswith("/responses"):  # the SDK builds it leniently: llama.cpp leaves fields out
        return construct_type(type_=Response, value=body).model_dump(warnings=False)  # type: ignore[union-attr]
    return ChatCompletion.model_validate(body).model_dump()


@pytest.mark.parametrize("path", SHIPPED, ids=lambda p: str(p.relative_to(ROOT / "cassettes")))
def test_shipped_cassette_is_v2_and_equals_its_v1_form(path: Path, tmp_path: Path) -> None:
    text = path.read_text(encoding="utf-8")
    doc = json.loads(text)
    assert doc[FORMAT_KEY] == 2
    v1 = write(tmp_path / "v1.json", as_v1(doc))
    new, _ = read_cassette(path)
    old, setup = read_cassette(v1)
    assert setup == doc["recorded_with"]
    assert sorted(new) == sorted(old)
    for index, call in new.items():
        before = json.loads(old[index].response["body"]["string"])
        after = json.loads(call.response["body"]["string"])
        assert after == before
        assert _sdk(call.uri, after) == _sdk(call.uri, before)
        assert (call.canonical, call.uri) == (old[index].canonical, old[index].uri)
    # the encoding is stable: packing the v1 form again gives the file, byte for byte
    repacked = json.loads(v1.read_text(encoding="utf-8"))
    for item in repacked["interactions"]:
        item["response"]["body"] = pack_body(item["response"]["body"])
    assert render_json({**repacked, FORMAT_KEY: 2}) + "\n" == text


# --------------------------------------------------------------------------- steady fields


def test_volatile_fields_are_made_steady() -> None:
    body = {"id": "chatcmpl-duXj", "created": 1796396538, "timings": {"prompt_ms": 228.5}}
    assert steady_body({**body, "model": "m"}, 3) == {
        "id": "chatcmpl-3",
        "created": 0,
        "model": "m",
    }
    answer = {
        "id": "resp_WqnfT",
        "created_at": 1796458829,
        "completed_at": 1796458830,
        "output": [{"id": "msg_CP85", "type": "message"}, {"call_id": "call_1", "id": "fc_9"}],
    }
    assert steady_body(answer, 2) == {
        "id": "resp_2",
        "created_at": 0,
        "completed_at": 0,
        "output": [{"id": "msg_2-0", "type": "message"}, {"call_id": "call_1", "id": "fc_2-1"}],
    }
    assert steady_uri("http://127.0.0.1:43589/v1/chat/completions") == (
        "http://127.0.0.1/v1/chat/completions"
    )
    assert steady_uri("http://127.0.0.1/v1") == "http://127.0.0.1/v1"


# --------------------------------------------------------------------------- upgrade


def test_upgrade_converts_in_place_losslessly_and_twice_changes_nothing(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    shipped = (
        ROOT / "cassettes/examples/test_seed_experiment/test_developer_vs_system_all_pairs.json"
    )
    folder = tmp_path / "cassettes" / "examples"
    folder.mkdir(parents=True)
    old = write(folder / "pairs.json", as_v1(json.loads(shipped.read_text(encoding="utf-8"))))
    before = responses(old)
    assert cli.main(["cassettes", "upgrade", str(tmp_path / "cassettes")]) == 0
    out = capsys.readouterr().out
    assert f"upgraded {old} to format 2" in out
    assert "1 upgraded, 0 already in format 2, 0 not upgraded" in out
    assert old.read_bytes() == shipped.read_bytes()  # the shipped files came out of it
    assert responses(old) == before
    assert cli.main(["cassettes", "upgrade", str(old)]) == 0
    assert "0 upgraded, 1 already in format 2" in capsys.readouterr().out
    assert old.read_bytes() == shipped.read_bytes()


def test_upgrade_exit_codes(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main(["cassettes", "upgrade", str(tmp_path / "nowhere")]) == 2
    assert "no such file or directory" in capsys.readouterr().err
    broken = tmp_path / "broken.json"
    broken.write_text('{"rolecheck_cassette": 1, "interactions": [', encoding="utf-8")
    good = write(tmp_path / "good.json", document(1, [{"json": llama_body()}]))
    assert cli.main(["cassettes", "upgrade", str(tmp_path)]) == 1
    captured = capsys.readouterr()
    assert "1 upgraded, 0 already in format 2, 1 not upgraded" in captured.out
    assert f"{broken}:1:" in captured.err
    assert broken.read_text(encoding="utf-8").endswith("[")  # left as it was
    assert json.loads(good.read_text(encoding="utf-8"))[FORMAT_KEY] == 2
    assert cli.main(["cassettes"]) == 2


@pytest.mark.parametrize(
    ("table", "says"),
    [
        ({"keys": ["token", "bytes", "bytes"], "rows": []}, "names a key twice"),
        ({"keys": ["token", "top_logprobs"], "rows": []}, "has top_logprobs but no top_keys"),
        ({"keys": ["token", "logprob"], "float32": True, "rows": [["a", 1e39]]}, "float32"),
        ({"keys": "token", "rows": []}, "keys must be a list of strings"),
        ([["a", -1.0]], "must be an object with keys and rows"),
    ],
)
def test_a_hand_edited_table_is_refused_with_a_reason(
    tmp_path: Path, table: Any, says: str
) -> None:
    body = {"packed": [["choices", 0, "logprobs", "content"]]}
    body["json"] = {"choices": [{"logprobs": {"content": table}}]}  # type: ignore[dict-item]
    path = write(tmp_path / "c.json", document(2, [body]))
    with pytest.raises(Unreadable, match=says):
        read_cassette(path)
