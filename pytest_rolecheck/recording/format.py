"""The cassette file: written as readable JSON, read fast and validated line by line.

Read by the vcrpy session (:mod:`.cassette`) and usable by any reader of
cassettes (``rolecheck plan``, the live-call announcement); imports no vcrpy.
"""

from __future__ import annotations

import base64
import contextlib
import functools
import json
import json.scanner
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final

from ..errors import (
    RolecheckUsageError,
)
from .encoding import Malformed, Row, inline, pack_body, unpack_body
from .paths import _display

if TYPE_CHECKING:
    from .redaction import _Redactor

CALL_INDEX_HEADER: Final = "x-rolecheck-call"
FORMAT_KEY: Final = "rolecheck_cassette"
FORMAT_VERSION: Final = 2  # 2: token lists packed one line per position (see .encoding)
READABLE_VERSIONS: Final = (1, 2)
# Where a cassette was recorded ({"local": bool, "endpoint": url, "model": name}); optional,
# so cassettes written before it existed still replay.
SETUP_KEY: Final = "recorded_with"
_JSON_WIDTH: Final = 100


# --------------------------------------------------------------------------- JSON text


def _compact_bytes(value: Any) -> bytes:
    try:
        return json.dumps(value, ensure_ascii=False, separators=(",", ":")).encode("utf-8")
    except UnicodeEncodeError:
        return json.dumps(value, ensure_ascii=True, separators=(",", ":")).encode("ascii")


def _canonical_json(value: Any) -> str:
    return json.dumps(value, ensure_ascii=True, sort_keys=True, separators=(",", ":"))


def _is_scalar(value: Any) -> bool:
    return value is None or (
        isinstance(value, str | int | float | bool) and not isinstance(value, Row)
    )


def _is_leaf_container(value: dict[str, Any] | list[Any]) -> bool:
    items = value.values() if isinstance(value, dict) else value
    return all(
        _is_scalar(v) or (isinstance(v, list) and all(_is_scalar(x) for x in v)) for v in items
    )


def render_json(value: Any) -> str:
    """Pretty JSON with two-space indents where leaf objects and arrays stay on one line.

    A ``top_logprobs`` entry such as ``{"token": "Hi", "logprob": -0.25, "bytes": [72, 105]}``
    is one line, so a changed logprob is a one-line diff and the file stays a tenth of
    the size of ``json.dumps(indent=2)``. Key order is kept. Floats are written with
    ``repr`` (shortest round-trip form), so ``json.loads`` gives back the same values.
    """
    out: list[str] = []
    _emit(value, 0, 0, out)
    return "".join(out)


def _emit(value: Any, level: int, column: int, out: list[str]) -> None:
    if isinstance(value, Row):  # a packed token position: one line, whatever its width
        out.append(value)
        return
    if not isinstance(value, dict | list) or not value:
        out.append(inline(value))
        return
    if _is_leaf_container(value):
        text = inline(value)
        if column + len(text) <= _JSON_WIDTH:
            out.append(text)
            return
    pad = "  " * (level + 1)
    if isinstance(value, dict):
        out.append("{\n")
        for i, (key, item) in enumerate(value.items()):
            prefix = f"{pad}{inline(key)}: "
            out.append(prefix)
            _emit(item, level + 1, len(prefix), out)
            out.append(",\n" if i < len(value) - 1 else "\n")
        out.append("  " * level + "}")
    else:
        out.append("[\n")
        for i, item in enumerate(value):
            out.append(pad)
            _emit(item, level + 1, len(pad), out)
            out.append(",\n" if i < len(value) - 1 else "\n")
        out.append("  " * level + "]")


# --------------------------------------------------------------------------- bodies


def _parse_json_bytes(data: bytes) -> tuple[bool, Any]:
    try:
        return True, json.loads(data.decode("utf-8"))
    except (UnicodeDecodeError, ValueError):
        return False, None


def _encode_body(
    data: bytes | None, content_type: str | None, redactor: _Redactor, *, binary: bool = False
) -> dict[str, Any] | None:
    """Stored form of a body: ``{"json": tree}``, ``{"text": str}`` or ``{"base64": str}``."""
    if not data:
        return None
    if not binary:
        try:
            text = data.decode("utf-8")
        except UnicodeDecodeError:
            pass
        else:
            if content_type is None or "json" in content_type.lower():
                with contextlib.suppress(ValueError):
                    return {"json": redactor.tree(json.loads(text))}
            return {"text": redactor.text(text)}
    return {"base64": base64.b64encode(redactor.raw(data)).decode("ascii")}


def _decode_body(stored: dict[str, Any] | None) -> bytes:
    if stored is None:
        return b""
    if isinstance(stored, _JSONText) and stored.raw is not None and "json" in stored:
        return stored.raw
    if "json" in stored:
        return _compact_bytes(stored["json"])
    if "text" in stored:
        text: str = stored["text"]
        return text.encode("utf-8", "surrogatepass")
    return base64.b64decode(stored["base64"], validate=True)


def _body_view(stored: dict[str, Any] | None) -> tuple[str | bytes, Any]:
    """(canonical form used for matching, value shown in diffs) of a stored request body."""
    if stored is None:
        return b"", ""
    if "json" in stored:
        return _canonical_json(stored["json"]), stored["json"]
    raw = _decode_body(stored)
    return _canonical_bytes(raw), stored.get("text", f"<{len(raw)} bytes of binary data>")


def _canonical_bytes(body: Any) -> str | bytes:
    """Matching key of a request body as sent: canonical JSON text, or the raw bytes."""
    if body is None:
        return b""
    if isinstance(body, str):
        body = body.encode("utf-8")
    if isinstance(body, bytearray):
        body = bytes(body)
    if not isinstance(body, bytes):  # httpx bodies are bytes; be safe anyway
        return repr(body).encode("utf-8")
    return _canonical_of(body)


# vcrpy runs every matcher against every stored request, several times per call;
# parsing each body once keeps replay as fast as a plain vcrpy configuration
@functools.lru_cache(maxsize=1024)
def _canonical_of(body: bytes) -> str | bytes:
    ok, tree = _parse_json_bytes(body)
    return _canonical_json(tree) if ok else body


def _to_json_tree(body: Mapping[str, Any]) -> Any:
    def default(obj: Any) -> Any:
        dump = getattr(obj, "model_dump", None)
        if callable(dump):
            return dump(mode="json")
        if isinstance(obj, Mapping):
            return dict(obj)
        raise TypeError(f"{type(obj).__name__} is not JSON serialisable")

    try:
        return json.loads(json.dumps(body, default=default))
    except (TypeError, ValueError) as err:
        raise RolecheckUsageError(
            f"the request body of a rolecheck call must be plain JSON (the kwargs passed to "
            f"chat.completions.create); {err}"
        ) from err


# --------------------------------------------------------------------------- fast load


class _JSONText(dict[str, Any]):
    """A stored ``{"json": tree}`` response body that also keeps its own text from the file.

    Replaying hands that text to the SDK as the response bytes (same JSON value,
    indentation aside) instead of serialising the tree again, which is the single
    most expensive step of a replay (every float goes through ``repr``).
    """

    raw: bytes | None = None


class _Fallback(Exception):
    """The fast scan met something unusual; json.loads decides (and reports errors)."""


_WS = re.compile(r"[ \t\n\r]*")
_SCAN: Final[Callable[[str, int], tuple[Any, int]]] = json.scanner.make_scanner(
    json.JSONDecoder()  # type: ignore[arg-type]  # typeshed types the class, not the instance
)


def _skip(text: str, i: int) -> int:
    match = _WS.match(text, i)
    assert match is not None  # the pattern matches the empty string
    return match.end()


def _structural(path: tuple[str | int, ...]) -> bool:
    """Levels the fast scan walks itself; everything below goes to the C scanner."""
    depth = len(path)
    if depth == 0:
        return True
    if path[0] != "interactions":
        return False
    return (
        depth <= 2
        or (depth == 3 and path[2] in ("request", "response"))
        or (depth == 4 and path[3] == "body")
    )


def _load_document(text: str) -> Any:
    """``json.loads(text)``, keeping the text of each response's ``{"json": ...}`` body."""
    try:
        value, end = _scan_value(text, 0, ())
        if _skip(text, end) != len(text):
            raise _Fallback
    except (_Fallback, StopIteration, ValueError, IndexError, RecursionError):
        return json.loads(text)  # slow path: plain trees, exact error positions
    return value


def _scan_value(text: str, i: int, path: tuple[str | int, ...]) -> tuple[Any, int]:
    i = _skip(text, i)
    if _structural(path):
        if text.startswith("{", i):
            return _scan_object(text, i + 1, path)
        if text.startswith("[", i):
            return _scan_array(text, i + 1, path)
    value, end = _SCAN(text, i)
    return value, end


def _scan_object(text: str, i: int, path: tuple[str | int, ...]) -> tuple[Any, int]:
    is_response_body = len(path) == 4 and path[2] == "response"
    result: dict[str, Any] = _JSONText() if is_response_body else {}
    i = _skip(text, i)
    if text.startswith("}", i):
        return result, i + 1
    while True:
        if not text.startswith('"', i):
            raise _Fallback
        key, i = _SCAN(text, i)
        i = _skip(text, i)
        if not text.startswith(":", i):
            raise _Fallback
        start = _skip(text, i + 1)
        result[key], i = _scan_value(text, start, (*path, key))
        if isinstance(result, _JSONText) and key == "json":
            result.raw = text[start:i].encode("utf-8")
        i = _skip(text, i)
        if text.startswith(",", i):
            i = _skip(text, i + 1)
        elif text.startswith("}", i):
            return result, i + 1
        else:
            raise _Fallback


def _scan_array(text: str, i: int, path: tuple[str | int, ...]) -> tuple[Any, int]:
    result: list[Any] = []
    i = _skip(text, i)
    if text.startswith("]", i):
        return result, i + 1
    while True:
        value, i = _scan_value(text, i, (*path, len(result)))
        result.append(value)
        i = _skip(text, i)
        if text.startswith(",", i):
            i += 1
        elif text.startswith("]", i):
            return result, i + 1
        else:
            raise _Fallback


# --------------------------------------------------------------------------- loading


@dataclass(frozen=True, slots=True)
class _Recorded:
    index: int
    method: str
    uri: str
    headers: dict[str, str]
    body: bytes
    canonical: str | bytes
    shown: Any
    response: dict[str, Any]


class _Structure(ValueError):
    def __init__(self, message: str, anchor: str | None = None) -> None:
        super().__init__(message)
        self.anchor = anchor  # regex locating the offending part in the text, for a line number


def _expect(condition: bool, message: str, anchor: str | None = None) -> None:
    if not condition:
        raise _Structure(message, anchor)


def _check_headers(value: Any, where: str, anchor: str | None) -> dict[str, str | list[str]]:
    _expect(isinstance(value, dict), f"{where} must be an object", anchor)
    for name, item in value.items():
        ok = isinstance(item, str) or (
            isinstance(item, list) and all(isinstance(v, str) for v in item)
        )
        _expect(ok, f"{where}[{name!r}] must be a string or a list of strings", anchor)
    checked: dict[str, str | list[str]] = value
    return checked


def _check_body(value: Any, where: str, anchor: str | None) -> dict[str, Any] | None:
    if value is None:
        return None
    kinds = ("json", "text", "base64")
    _expect(
        isinstance(value, dict) and len(value) == 1 and next(iter(value)) in kinds,
        f"{where} must be null or an object with exactly one of the keys {', '.join(kinds)}",
        anchor,
    )
    if "text" in value:
        _expect(isinstance(value["text"], str), f"{where}.text must be a string", anchor)
    if "base64" in value:
        try:
            base64.b64decode(value["base64"], validate=True)
        except (TypeError, ValueError):
            raise _Structure(f"{where}.base64 is not valid base64", anchor) from None
    checked: dict[str, Any] = value
    return checked


def _parse_interaction(position: int, item: Any, version: int) -> _Recorded:
    where = f"interactions[{position}]"
    _expect(isinstance(item, dict), f"{where} must be an object", r'"interactions"')
    index = item.get("index")
    _expect(
        isinstance(index, int) and not isinstance(index, bool) and index >= 0,
        f"{where}.index must be a non-negative integer",
        r'"interactions"',
    )
    anchor = rf'"index"\s*:\s*{index}\b'
    request, response = item.get("request"), item.get("response")
    _expect(isinstance(request, dict), f"{where}.request must be an object", anchor)
    _expect(isinstance(response, dict), f"{where}.response must be an object", anchor)
    method, uri = request.get("method"), request.get("uri")
    _expect(
        isinstance(method, str) and method != "",
        f"{where}.request.method must be a non-empty string",
        anchor,
    )
    _expect(isinstance(uri, str) and uri != "", f"{where}.request.uri must be a string", anchor)
    raw_headers = _check_headers(request.get("headers", {}), f"{where}.request.headers", anchor)
    headers = {
        k.lower(): (v if isinstance(v, str) else ", ".join(v)) for k, v in raw_headers.items()
    }
    header_index = headers.setdefault(CALL_INDEX_HEADER, str(index))
    _expect(
        header_index == str(index),
        f"{where}: header {CALL_INDEX_HEADER}={header_index!r} disagrees with index {index}",
        anchor,
    )
    body = _check_body(request.get("body"), f"{where}.request.body", anchor)
    status = response.get("status")
    _expect(
        isinstance(status, dict)
        and isinstance(status.get("code"), int)
        and not isinstance(status.get("code"), bool)
        and isinstance(status.get("message", ""), str),
        f'{where}.response.status must be {{"code": <int>, "message": <str>}}',
        anchor,
    )
    stored_body = response.get("body")
    if version >= 2:
        try:
            stored_body = unpack_body(stored_body)
        except Malformed as err:
            raise _Structure(f"{where}.response.body: {err}", anchor) from None
    stored_response = {
        "status": {"code": status["code"], "message": status.get("message", "")},
        "headers": _check_headers(response.get("headers", {}), f"{where}.response.headers", anchor),
        "body": _check_body(stored_body, f"{where}.response.body", anchor),
    }
    canonical, shown = _body_view(body)
    return _Recorded(
        index=index,
        method=method.upper(),
        uri=uri,
        headers=headers,
        body=_decode_body(body),
        canonical=canonical,
        shown=shown,
        response=_vcr_response(stored_response),
    )


def _parse_document(doc: Any) -> dict[int, _Recorded]:
    _expect(isinstance(doc, dict), "the top level must be a JSON object")
    _expect(
        FORMAT_KEY in doc,
        f"not a pytest-rolecheck cassette (no {FORMAT_KEY!r} key; a vcrpy or "
        "pytest-recording cassette cannot be replayed by pytest-rolecheck)",
    )
    version = doc[FORMAT_KEY]
    _expect(
        version in READABLE_VERSIONS and not isinstance(version, bool),
        f"unsupported cassette format version {version!r} (this pytest-rolecheck reads "
        f"versions {', '.join(map(str, READABLE_VERSIONS))})",
        rf'"{FORMAT_KEY}"',
    )
    items = doc.get("interactions")
    _expect(isinstance(items, list), '"interactions" must be a list', r'"interactions"')
    found: dict[int, _Recorded] = {}
    for position, item in enumerate(items):
        recorded = _parse_interaction(position, item, version)
        _expect(
            recorded.index not in found,
            f"call index {recorded.index} appears twice",
            rf'"index"\s*:\s*{recorded.index}\b',
        )
        found[recorded.index] = recorded
    return found


_BRACKETS: Final = re.compile(r'"(?:[^"\\]|\\.)*"|[\[\]{}]')


def _deepest(text: str) -> tuple[int, int, int]:
    """(depth, line, column) of the first bracket at the file's deepest nesting."""
    depth = deepest = where = 0
    for match in _BRACKETS.finditer(text):
        token = match.group()
        if token in "[{":
            depth += 1
            if depth > deepest:
                deepest, where = depth, match.start()
        elif token in "]}":
            depth -= 1
    line = text.count("\n", 0, where) + 1
    return deepest, line, where - (text.rfind("\n", 0, where) + 1) + 1


def _line_of(text: str, anchor: str | None) -> tuple[int, int]:
    if anchor is not None:
        match = re.search(anchor, text)
        if match is not None:
            line = text.count("\n", 0, match.start()) + 1
            return line, match.start() - (text.rfind("\n", 0, match.start()) + 1) + 1
    return 1, 1


def _vcr_response(stored: dict[str, Any]) -> dict[str, Any]:
    """The in-memory response vcrpy's httpx stub replays (its ``_deserialize_response`` shape)."""
    message = stored["status"]["message"]
    if not message.isascii():  # vcrpy sends it as an ASCII reason phrase
        message = ""
    headers = {
        name: list(value) if isinstance(value, list) else [value]
        for name, value in stored["headers"].items()
    }
    return {
        "status": {"code": stored["status"]["code"], "message": message},
        "headers": headers,
        "body": {"string": _decode_body(stored["body"])},
    }


class Unreadable(ValueError):
    """The cassette cannot be read; the message says where (``path:line:column: what``)."""


def read_cassette(path: Path) -> tuple[dict[int, _Recorded], dict[str, Any]]:
    """Read and validate a cassette: its calls by index, and its ``recorded_with`` block.

    Raises
    ------
    FileNotFoundError
        No file at ``path``.
    Unreadable
        Not readable, not UTF-8, not JSON, or not a cassette; located to the line.
    """
    shown = _display(path)
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        raise
    except OSError as err:
        raise Unreadable(f"{shown}: cannot be read ({err.strerror or err})") from None
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as err:
        line = raw.count(b"\n", 0, err.start) + 1
        raise Unreadable(f"{shown}:{line}: not UTF-8 text ({err.reason})") from None
    if not text or text.isspace():
        raise Unreadable(f"{shown}:1: the file is empty")
    try:
        doc = _load_document(text)
        found = _parse_document(doc)
    except json.JSONDecodeError as err:
        raise Unreadable(f"{shown}:{err.lineno}:{err.colno}: {err.msg}") from None
    except _Structure as err:
        line, column = _line_of(text, err.anchor)
        raise Unreadable(f"{shown}:{line}:{column}: {err}") from None
    except RecursionError:  # a hostile or damaged file; a real one nests ~15 levels
        depth, line, column = _deepest(text)
        raise Unreadable(
            f"{shown}:{line}:{column}: nested {depth} levels deep, too deep to read "
            "(a recorded chat completion never is)"
        ) from None
    setup = doc.get(SETUP_KEY)
    return found, dict(setup) if isinstance(setup, dict) else {}


def upgraded(path: Path) -> str | None:
    """The text of the cassette at ``path`` in the current format; ``None``: already in it.

    Lossless: the calls read back from the new text equal those of the old one
    (checked here, so a wrong conversion is never written).

    Raises
    ------
    FileNotFoundError, Unreadable
        As :func:`read_cassette`.
    """
    before, _ = read_cassette(path)
    doc = json.loads(path.read_text(encoding="utf-8"))
    if doc[FORMAT_KEY] == FORMAT_VERSION:
        return None
    doc[FORMAT_KEY] = FORMAT_VERSION
    for item in doc["interactions"]:
        item["response"]["body"] = pack_body(item["response"].get("body"))
    text = render_json(doc) + "\n"
    after = _parse_document(json.loads(text))
    # a bug of the packing, never a user's file: refuse rather than write it
    if list(map(_meaning, after.values())) != list(map(_meaning, before.values())):
        raise Unreadable(f"{_display(path)}: the converted calls differ; left as it was")
    return text


def _meaning(call: _Recorded) -> tuple[Any, ...]:
    """What a replay of ``call`` gives: the response body's JSON value, not its spacing."""
    response = call.response
    ok, body = _parse_json_bytes(response["body"]["string"])
    shown = (ok, body) if ok else response["body"]["string"]
    return (call.index, call.method, call.uri, call.canonical, response["status"], shown)
