"""Per-test cassettes: record the chat completions of a test once, replay them offline.

One JSON file per test holds every call the test made, in call order. Request and
response bodies are stored as JSON trees (a changed logprob is a one-line diff),
secrets and volatile headers are left out, and a file is only ever written whole:
on success, atomically, after vcrpy's patching has been undone.

vcrpy does the transport patching and the replay; this module owns the file format,
the matching rules and the error messages. It imports vcrpy only when a session is
entered, so importing this module (for ``RecordMode`` or ``cassette_path``) is cheap.

Matching: method, path, the canonical JSON body and the call index header
``x-rolecheck-call`` that the runner adds. The host and port are ignored: the cassette
says where it was recorded (its ``recorded_with`` block), and a replay in CI must not
depend on ``OPENAI_BASE_URL``. No header takes part either: the SDK's ``x-stainless-*``
and ``user-agent`` headers differ between machines.
"""

from __future__ import annotations

import base64
import contextlib
import difflib
import enum
import functools
import gzip
import hashlib
import importlib
import json
import json.scanner
import os
import re
import shlex
import threading
import zlib
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import Any, Final
from urllib.parse import quote, quote_plus, urlsplit, urlunsplit

from ..errors import (
    CassetteCorruptError,
    CassetteError,
    CassetteExhaustedError,
    CassetteMismatchError,
    CassetteNotFoundError,
    RolecheckUsageError,
)
from .files import atomic_write

__all__ = [
    "CALL_INDEX_HEADER",
    "FORMAT_VERSION",
    "REDACTED",
    "CassetteSession",
    "RecordMode",
    "cassette_conflicts",
    "cassette_path",
    "fix_command",
]

CALL_INDEX_HEADER: Final = "x-rolecheck-call"
FORMAT_KEY: Final = "rolecheck_cassette"
FORMAT_VERSION: Final = 1
# Where a cassette was recorded ({"local": bool, "endpoint": url, "model": name}); optional,
# so cassettes written before it existed still replay.
SETUP_KEY: Final = "recorded_with"
REDACTED: Final = "<redacted>"

# Shorter values are placeholders ("none", "EMPTY", "not-needed"), not credentials;
# scrubbing them would mangle ordinary text such as tool_choice="none". A value with a
# known key prefix is a credential whatever its length.
MIN_SECRET_LENGTH: Final = 12
SECRET_PREFIXES: Final = ("sk-", "sk_", "rk_", "hf_", "gsk_", "xai-", "ghp_", "github_pat_", "AIza")
# Header and query names whose values are credentials (x-api-key, api_key, access_token,
# authorization, proxy-authorization, client_secret, password, sig, ...).
_CREDENTIAL_NAME: Final = re.compile(
    r"key|token|secret|passw|auth|credential|signature|(?:^|[-_])sig(?:$|[-_])", re.IGNORECASE
)

_REQUEST_HEADERS: Final = ("content-type", CALL_INDEX_HEADER)
# Everything else (openai-organization, openai-project, set-cookie, x-request-id,
# rate limits, processing times, dates) is either identifying or changes on every
# recording, which would turn a re-record into a noisy diff.
_RESPONSE_HEADERS: Final = frozenset({"content-type", "openai-model", "openai-version"})

_MAX_DIFF_LINES: Final = 30
_MAX_DIFF_LINE: Final = 160
_JSON_WIDTH: Final = 100
_MAX_NAME: Final = 120
_UNSAFE_NAME: Final = re.compile(r"[^A-Za-z0-9_.,=+@\[\]-]")
_UNSAFE_DIR: Final = re.compile(r'[\x00-\x1f<>:"|?*\\]')


class RecordMode(enum.StrEnum):
    """When the calls of a test go to the network.

    ``none``
        Replay only; a missing cassette fails, nothing ever goes live (the CI default).
    ``once``
        Replay if the test's cassette exists, otherwise call live and record it.
    ``all``, ``rewrite``
        Every call goes live; on success the cassette is replaced as a whole (the old
        file is never read, so nothing stale survives). If the test fails, the old
        cassette stays.
    """

    NONE = "none"
    ONCE = "once"
    ALL = "all"
    REWRITE = "rewrite"


# --------------------------------------------------------------------------- paths


def cassette_path(
    cassette_dir: Path, nodeid: str, *, test_file: Path | None = None, rootdir: Path | None = None
) -> Path:
    """Return the cassette file of one test.

    Parameters
    ----------
    cassette_dir : Path
        Root directory of the cassettes (``--rolecheck-cassette-dir``).
    nodeid : str
        The pytest node id, e.g. ``tests/sub/test_roles.py::TestA::test_b[gpt-4o-1]``.
    test_file, rootdir : Path, optional
        The test's file and pytest's rootdir. Given both, the directories come from
        the file's path relative to the rootdir rather than from the node id, which
        pytest makes relative to the command-line argument for a file outside the
        rootdir (so ``../a/test_x.py`` and ``../b/test_x.py`` would get one name).
        Each ``..`` becomes ``__``: ``cassettes/__/a/test_x/...``.

    Returns
    -------
    Path
        ``<cassette_dir>/<module path without .py>/<test name>.json``, e.g.
        ``cassettes/tests/sub/test_roles/TestA.test_b[gpt-4o-1].json``. Class and
        function are joined with ``.``. A name with characters outside
        ``A-Za-z0-9_.,=+@[]-`` (or longer than 120 characters) has them replaced by
        ``_`` and gets a short hash of the original appended, so distinct
        parametrize ids never share a file and the result is the same on every run.
    """
    module, sep, rest = nodeid.partition("::")
    if test_file is not None and rootdir is not None:
        module = _relative_module(test_file, rootdir)
    parts = [p for p in module.replace("\\", "/").split("/") if p not in ("", ".")]
    if parts and parts[-1].endswith(".py"):
        parts[-1] = parts[-1][: -len(".py")]
    dirs = [_safe_dir(p) for p in parts]
    # class and function joined with "."; a "::" inside a parametrize id is left to _safe_name
    base, bracket, params = rest.partition("[")
    name = base.replace("::", ".") + bracket + params if sep and rest else "_module"
    return Path(cassette_dir, *dirs, _safe_name(name) + ".json")


def _relative_module(test_file: Path, rootdir: Path) -> str:
    try:
        return Path(os.path.relpath(test_file, rootdir)).as_posix()
    except ValueError:  # another drive (Windows): no relative path; name it by its location
        digest = hashlib.sha256(str(test_file.parent).encode("utf-8", "surrogatepass"))
        return f"__outside__/{test_file.parent.name}-{digest.hexdigest()[:8]}/{test_file.name}"


def cassette_conflicts(tests: Iterable[tuple[str, Path]]) -> dict[str, str]:
    """Tests that would share a cassette: ``{test: message}`` for each of them.

    ``tests`` holds ``(test as the user names it, its cassette path)`` pairs.
    Paths differing only in letter case count as one: they are one file on the
    file systems of macOS and Windows.
    """
    by_path: dict[str, list[tuple[str, Path]]] = {}
    for test, path in tests:
        by_path.setdefault(str(path).casefold(), []).append((test, path))
    found: dict[str, str] = {}
    for group in by_path.values():
        if len(group) < 2:
            continue
        names = ", ".join(test for test, _ in group)
        for test, path in group:
            found[test] = (
                f"{names} would share the cassette {_display(path)}: recording one would "
                "overwrite the other. Rename one of the test functions or test files (or a "
                "directory above it) so that their cassette paths differ."
            )
    return found


def _safe_dir(part: str) -> str:
    if part == "..":  # a test file outside rootdir must not escape cassette_dir
        return "__"
    return _UNSAFE_DIR.sub("_", part)


def _safe_name(name: str) -> str:
    cleaned = _UNSAFE_NAME.sub("_", name)
    if cleaned.startswith("."):
        cleaned = "_" + cleaned[1:]
    if cleaned != name or len(cleaned) > _MAX_NAME:
        digest = hashlib.sha256(name.encode("utf-8", "surrogatepass")).hexdigest()[:8]
        cleaned = f"{cleaned[:_MAX_NAME]}-{digest}"
    return cleaned


# --------------------------------------------------------------------------- JSON text


def _inline(value: Any) -> str:
    """JSON of ``value`` on one line; non-ASCII kept readable unless it cannot be UTF-8."""
    try:
        text = json.dumps(value, ensure_ascii=False, separators=(", ", ": "))
        text.encode("utf-8")
    except UnicodeEncodeError:  # lone surrogates: escape them so the file stays UTF-8
        text = json.dumps(value, ensure_ascii=True, separators=(", ", ": "))
    return text


def _compact_bytes(value: Any) -> bytes:
    try:
        return json.dumps(value, ensure_ascii=False, separators=(",", ":")).encode("utf-8")
    except UnicodeEncodeError:
        return json.dumps(value, ensure_ascii=True, separators=(",", ":")).encode("ascii")


def _canonical_json(value: Any) -> str:
    return json.dumps(value, ensure_ascii=True, sort_keys=True, separators=(",", ":"))


def _is_scalar(value: Any) -> bool:
    return value is None or isinstance(value, str | int | float | bool)


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
    if not isinstance(value, dict | list) or not value:
        out.append(_inline(value))
        return
    if _is_leaf_container(value):
        text = _inline(value)
        if column + len(text) <= _JSON_WIDTH:
            out.append(text)
            return
    pad = "  " * (level + 1)
    if isinstance(value, dict):
        out.append("{\n")
        for i, (key, item) in enumerate(value.items()):
            prefix = f"{pad}{_inline(key)}: "
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


# --------------------------------------------------------------------------- secrets


def looks_like_secret(value: object) -> bool:
    """Whether ``value`` is scrubbed when configured as a secret (the one rule)."""
    if not isinstance(value, str):
        return False
    value = value.strip()
    return len(value) >= MIN_SECRET_LENGTH or any(
        value.startswith(prefix) and len(value) > len(prefix) for prefix in SECRET_PREFIXES
    )


def is_credential_name(name: object) -> bool:
    """Whether a header or query parameter called ``name`` carries a credential."""
    return isinstance(name, str) and _CREDENTIAL_NAME.search(name) is not None


@dataclass(frozen=True, slots=True)
class _Redactor:
    """Replaces every secret (and its URL-encoded forms) with ``<redacted>``."""

    needles: tuple[str, ...]

    @classmethod
    def from_secrets(cls, secrets: Iterable[str]) -> _Redactor:
        found: set[str] = set()
        for secret in secrets:
            if not looks_like_secret(secret):
                continue
            found.update((secret, quote(secret, safe=""), quote_plus(secret)))
        # longest first, so an encoded form is not half-replaced by a shorter one
        return cls(tuple(sorted(found, key=lambda s: (-len(s), s))))

    def text(self, value: str) -> str:
        for needle in self.needles:
            if needle in value:
                value = value.replace(needle, REDACTED)
        return value

    def raw(self, value: bytes) -> bytes:
        for needle in self.needles:
            encoded = needle.encode("utf-8")
            if encoded in value:
                value = value.replace(encoded, REDACTED.encode("ascii"))
        return value

    def tree(self, value: Any) -> Any:
        if not self.needles:
            return value
        if isinstance(value, str):
            return self.text(value)
        if isinstance(value, dict):
            return {self.text(k): self.tree(v) for k, v in value.items()}
        if isinstance(value, list):
            return [self.tree(v) for v in value]
        return value

    def uri(self, uri: str) -> str:
        """Drop user:password@ and every query value from the URI, scrub secrets from the rest.

        Matching ignores the query, and a gateway key often travels in it
        (``?key=...``); the names are kept so the file still says what was sent.
        """
        with contextlib.suppress(ValueError):
            parts = urlsplit(uri)
            netloc = parts.netloc.rpartition("@")[2]
            query = "&".join(
                name + (f"={REDACTED}" if sep else "")
                for name, sep, _ in (item.partition("=") for item in parts.query.split("&") if item)
            )
            uri = urlunsplit(parts._replace(netloc=netloc, query=query, fragment=""))
        return self.text(uri)


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


def _diff_text(value: Any) -> str:
    if isinstance(value, str):
        return value
    return json.dumps(value, indent=2, sort_keys=True, ensure_ascii=False)


def _clip_pair(old: str, new: str) -> tuple[str, str]:
    """Shorten two long diff lines around the first character where they differ."""
    if len(old) <= _MAX_DIFF_LINE and len(new) <= _MAX_DIFF_LINE:
        return old, new
    common = 1  # skip the "-"/"+" marker
    limit = min(len(old), len(new))
    while common < limit and old[common] == new[common]:
        common += 1
    return _clip(old, common), _clip(new, common)


def _clip(line: str, focus: int = 1) -> str:
    if len(line) <= _MAX_DIFF_LINE:
        return line
    start = max(1, focus - 40)
    head = line[0] + ("…" if start > 1 else "")
    body = line[start : start + _MAX_DIFF_LINE - 2]
    tail = "…" if start + _MAX_DIFF_LINE - 2 < len(line) else ""
    return head + body + tail


def body_diff(recorded: Any, current: Any) -> str:
    """Short unified diff (sorted keys, at most 30 lines) between two request bodies."""
    lines = list(
        difflib.unified_diff(
            _diff_text(recorded).splitlines(),
            _diff_text(current).splitlines(),
            "recorded",
            "this request",
            n=1,
            lineterm="",
        )
    )
    # pair "-" runs with the "+" runs that follow them, to clip long lines in step
    out: list[str] = []
    i = 0
    while i < len(lines):
        line = lines[i]
        if line.startswith("-") and not line.startswith("---"):
            j = i
            while j < len(lines) and lines[j].startswith("-"):
                j += 1
            k = j
            while k < len(lines) and lines[k].startswith("+") and not lines[k].startswith("+++"):
                k += 1
            olds, news = lines[i:j], lines[j:k]
            for n in range(max(len(olds), len(news))):
                if n < len(olds) and n < len(news):
                    olds[n], news[n] = _clip_pair(olds[n], news[n])
                elif n < len(olds):
                    olds[n] = _clip(olds[n])
                else:
                    news[n] = _clip(news[n])
            out.extend(olds + news)
            i = k
        else:
            out.append(_clip(line))
            i += 1
    if len(out) > _MAX_DIFF_LINES:
        out = [*out[:_MAX_DIFF_LINES], f"… ({len(out) - _MAX_DIFF_LINES} more diff lines)"]
    return "\n".join(out)


def _changed_keys(recorded: Any, current: Any) -> list[str]:
    if not isinstance(recorded, dict) or not isinstance(current, dict):
        return []
    keys = list(current) + [k for k in recorded if k not in current]
    return [k for k in keys if _canonical_json(recorded.get(k)) != _canonical_json(current.get(k))]


# --------------------------------------------------------------------------- responses

_Decoder = Callable[[bytes], bytes]


def _inflate(data: bytes) -> bytes:
    try:
        return zlib.decompress(data)
    except zlib.error:  # some servers send raw deflate without the zlib header
        return zlib.decompress(data, -zlib.MAX_WBITS)


def _decoders() -> dict[str, _Decoder]:
    found: dict[str, _Decoder] = {
        "identity": lambda data: data,
        "gzip": gzip.decompress,
        "x-gzip": gzip.decompress,
        "deflate": _inflate,
    }
    for module_name in ("brotli", "brotlicffi"):
        with contextlib.suppress(ImportError):
            found["br"] = importlib.import_module(module_name).decompress
            break
    with contextlib.suppress(ImportError):
        zstandard = importlib.import_module("zstandard")
        found["zstd"] = lambda data: zstandard.ZstdDecompressor().decompressobj().decompress(data)
    return found


def _decode_content(data: bytes, codings: list[str]) -> tuple[bytes, list[str]]:
    """Undo Content-Encoding (last applied first); return the body and what is left."""
    remaining = [c.strip().lower() for value in codings for c in value.split(",") if c.strip()]
    if not remaining:
        return data, []
    decoders = _decoders()
    while remaining:
        decoder = decoders.get(remaining[-1])
        if decoder is None:
            break
        try:
            data = decoder(data)
        except Exception:  # undecodable: keep the bytes as they came, still encoded
            break
        remaining.pop()
    return data, remaining


def _header_values(headers: Mapping[str, Any], name: str) -> list[str]:
    values: list[str] = []
    for key, value in headers.items():
        if key.lower() == name:
            values.extend(value if isinstance(value, list | tuple) else [value])
    return [str(v) for v in values]


def _stored_response(response: Mapping[str, Any], redactor: _Redactor) -> dict[str, Any]:
    headers: Mapping[str, Any] = response.get("headers") or {}
    raw = response.get("body", {}).get("string") or b""
    if isinstance(raw, str):
        raw = raw.encode("utf-8")
    data, still_encoded = _decode_content(bytes(raw), _header_values(headers, "content-encoding"))
    kept: dict[str, Any] = {}
    for name in sorted({k.lower() for k in headers}):
        if name in _RESPONSE_HEADERS:
            values = [redactor.text(v) for v in _header_values(headers, name)]
            kept[name] = values[0] if len(values) == 1 else values
    if still_encoded:  # needed to read the body back; the body is then kept as base64
        kept["content-encoding"] = ", ".join(still_encoded)
    content_type = next(iter(_header_values(headers, "content-type")), None)
    status = response.get("status") or {}
    return {
        "status": {
            "code": int(status.get("code", 200)),
            "message": redactor.text(str(status.get("message") or "")),
        },
        "headers": kept,
        "body": _encode_body(data, content_type, redactor, binary=bool(still_encoded)),
    }


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


def _parse_interaction(position: int, item: Any) -> _Recorded:
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
    stored_response = {
        "status": {"code": status["code"], "message": status.get("message", "")},
        "headers": _check_headers(response.get("headers", {}), f"{where}.response.headers", anchor),
        "body": _check_body(response.get("body"), f"{where}.response.body", anchor),
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
        version == FORMAT_VERSION and not isinstance(version, bool),
        f"unsupported cassette format version {version!r} (this pytest-rolecheck reads "
        f"version {FORMAT_VERSION})",
        rf'"{FORMAT_KEY}"',
    )
    items = doc.get("interactions")
    _expect(isinstance(items, list), '"interactions" must be a list', r'"interactions"')
    found: dict[int, _Recorded] = {}
    for position, item in enumerate(items):
        recorded = _parse_interaction(position, item)
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


# --------------------------------------------------------------------------- writing


# --------------------------------------------------------------------------- session


def _shell_quote(text: str) -> str:
    return f"'{text}'" if "'" not in text else shlex.quote(text)


def fix_command(mode: str | None, target: str, flags: Sequence[str] = ()) -> str:
    """The one builder of the pytest commands that error messages tell users to run.

    ``flags`` are the run's own options (``--rolecheck-local``, ``-c``, ``-p`` ...), so
    the command works when pasted verbatim; ``mode`` adds ``--rolecheck-record-mode``.
    """
    parts = ["pytest", *(shlex.quote(flag) for flag in flags)]
    if mode is not None:
        parts.append(f"--rolecheck-record-mode={mode}")
    parts.append(_shell_quote(target))
    return " ".join(parts)


def endpoint_of(base_url: str) -> str | None:
    """``scheme://host[:port]/path`` of a base URL: no credentials, no query."""
    with contextlib.suppress(ValueError):
        parts = urlsplit(base_url)
        if parts.hostname:
            netloc = parts.netloc.rpartition("@")[2]
            return urlunsplit((parts.scheme, netloc, parts.path.rstrip("/"), "", ""))
    return None


def _display(path: Path) -> str:
    with contextlib.suppress(ValueError):
        return str(path.resolve().relative_to(Path.cwd().resolve()))
    return str(path)


def _header_index(headers: Mapping[str, Any]) -> str | None:
    value = headers.get(CALL_INDEX_HEADER)
    if isinstance(value, list | tuple):
        value = value[0] if value else None
    return None if value is None else str(value)


def _match_call(r1: Any, r2: Any) -> None:
    """vcrpy matcher: same ``x-rolecheck-call`` header."""
    a, b = _header_index(r1.headers), _header_index(r2.headers)
    if a != b:
        raise AssertionError(f"{CALL_INDEX_HEADER}: {a} != {b}")


def _match_body(r1: Any, r2: Any) -> None:
    """vcrpy matcher: same canonical JSON body (key order and whitespace do not count)."""
    if _canonical_bytes(r1.body) != _canonical_bytes(r2.body):
        raise AssertionError("the JSON bodies differ")


_match_call.__name__ = "rolecheck_call"
_match_body.__name__ = "rolecheck_body"

# vcrpy patches these HTTP clients too unless told not to; only httpx/httpx2 carry SDK calls
_FOREIGN_PATCHERS: Final = (
    "httplib",
    "requests",
    "boto3",
    "urllib3",
    "httplib2",
    "tornado",
    "aiohttp",
)


class _Persister:
    """vcrpy persister: feeds the session's parsed cassette, writes nothing.

    The session writes the file itself after vcrpy has unpatched, so a failing write
    can never leave the transports patched.
    """

    def __init__(self, session: CassetteSession) -> None:
        self._session = session

    def load_cassette(self, cassette_path: Any, serializer: Any) -> tuple[list[Any], list[Any]]:
        from vcr.persisters.filesystem import CassetteNotFoundError as VcrNotFound
        from vcr.request import Request

        if self._session.live:  # re-recording starts empty: nothing old can be appended
            raise VcrNotFound()
        try:
            recorded = self._session._interactions()
        except CassetteError:
            # check_request reports it with a proper message; vcrpy just sees no cassette
            raise VcrNotFound() from None
        ordered = sorted(recorded.values(), key=lambda r: r.index)
        requests = [Request(r.method, r.uri, r.body, dict(r.headers)) for r in ordered]
        return requests, [r.response for r in ordered]

    @staticmethod
    def save_cassette(cassette_path: Any, cassette_dict: Any, serializer: Any) -> None:
        return None


class CassetteSession:
    """Record or replay the chat-completion calls of one test.

    Parameters
    ----------
    path : Path
        The test's cassette file (see :func:`cassette_path`).
    mode : RecordMode or str
        ``none``, ``once``, ``all`` or ``rewrite`` (see :class:`RecordMode`).
    nodeid : str
        The pytest node id, used in the commands the error messages suggest.
    secrets : sequence of str
        Values (API keys) that must never reach the file; each occurrence in bodies,
        URIs and headers is replaced with ``<redacted>``, in recordings and in the
        requests compared against them. Values that do not look like a secret (see
        :func:`looks_like_secret`) are ignored.

    Notes
    -----
    Use it as a context manager around the calls. While entered, vcrpy patches the
    ``httpx2`` and ``httpx`` transports; requests carrying the ``x-rolecheck-call``
    header are recorded or replayed, all other requests pass through untouched. On a
    normal exit of a live session the cassette is written atomically (when at least
    one call was recorded); on an exception (``KeyboardInterrupt`` included) nothing
    is written and an existing cassette is left as it was. The patching is undone on
    every path. A session can be entered once.

    Call :meth:`check_request` before each replayed call: it raises the explanatory
    errors before the request reaches vcrpy.
    """

    def __init__(
        self,
        path: Path,
        mode: RecordMode | str,
        *,
        nodeid: str,
        secrets: Sequence[str] = (),
        command_flags: Sequence[str] = (),
        cassette_dir: Path | None = None,
        recorded_with: Mapping[str, Any] | None = None,
        command: Callable[[str | None, Sequence[str]], str] | None = None,
    ) -> None:
        try:
            self.mode = RecordMode(mode)
        except ValueError:
            allowed = ", ".join(m.value for m in RecordMode)
            raise RolecheckUsageError(
                f"--rolecheck-record-mode={mode!r} is not a record mode; use one of {allowed}"
            ) from None
        self.path = Path(path)
        self.nodeid = nodeid
        self._redactor = _Redactor.from_secrets(secrets)
        self.command_flags = tuple(command_flags)
        # Builds the fix commands from (record mode, flags); `rolecheck compare`
        # passes its own, since a pytest command cannot re-run it.
        self._command = command or (lambda mode, flags: fix_command(mode, self.nodeid, flags))
        self.cassette_dir = cassette_dir
        # This run's setup: written into a recording, compared with a replayed one's.
        self.recorded_with: dict[str, Any] = dict(recorded_with or {})
        self._stored_setup: dict[str, Any] = {}
        # decided once: a cassette written by this very session must not flip it
        self._live = self.mode in (RecordMode.ALL, RecordMode.REWRITE) or (
            self.mode is RecordMode.ONCE and not self.path.exists()
        )
        self._lock = threading.Lock()
        self._loaded: dict[int, _Recorded] | None = None
        self._load_error: tuple[type[CassetteError], str] | None = None
        self._context: Any = None
        self._cassette: Any = None
        self._used = False
        self._written = False

    # ----------------------------------------------------------------- state

    @property
    def live(self) -> bool:
        """True if the calls of this test go to the network (all/rewrite, or once without file)."""
        return self._live

    @property
    def recorded(self) -> int:
        """Calls recorded live in this session (successful, deduplicated by call index)."""
        return len(self._recordings()) if self._live else 0

    @property
    def replayed(self) -> int:
        """Responses replayed from the cassette so far."""
        return int(self._cassette.play_count) if self._cassette is not None else 0

    @property
    def written(self) -> bool:
        """True once a live session has saved its cassette (on a successful exit)."""
        return self._written

    @property
    def interaction_count(self) -> int:
        """Calls stored in the cassette file (0 when live).

        Raises
        ------
        CassetteNotFoundError, CassetteCorruptError
            When replaying and the file is missing or unreadable.
        """
        return 0 if self._live else len(self._interactions())

    def will_replay(self, index: int) -> bool:
        """Whether call ``index`` will be answered from the cassette (never raises)."""
        if self._live:
            return False
        try:
            return index in self._interactions()
        except CassetteError:
            return False

    def redact(self, text: str) -> str:
        """``text`` with every secret of this session replaced (for error messages)."""
        return self._redactor.text(text)

    def stored_json(self, index: int) -> Any:
        """The response body of live call ``index`` exactly as the cassette stores it.

        Scrubbed, so the caller can hand on what a replay will give instead of the
        raw live answer (reports then hold no secret and equal the replayed ones).
        ``None`` when replaying, or when the call was not recorded as JSON.
        """
        if not self._live or self._cassette is None:
            return None
        wanted = str(index)
        for request, response in reversed(list(self._cassette.data)):
            if _header_index(request.headers) == wanted:
                body = _stored_response(response, self._redactor)["body"]
                return body.get("json") if body is not None else None
        return None

    def unused_recordings(self, calls_made: int) -> str | None:
        """Why a replay that made ``calls_made`` calls left recordings unused, or ``None``.

        Fewer calls than recorded (fewer trials, a comparison removed) still replay,
        from a subset of the recording: the verdicts then rest on other data than
        the test asks for, and the cassette no longer says what the test does.
        """
        if self._live:
            return None
        try:
            recorded = self._interactions()
        except CassetteError:
            return None  # already reported by the call that could not replay
        unused = sorted(index for index in recorded if index >= calls_made)
        if not unused:
            return None
        count = len(recorded)
        return (
            f"{self.nodeid} made {calls_made} call{'s' if calls_made != 1 else ''} but its "
            f"cassette {_display(self.path)} recorded {count}: {len(unused)} recorded "
            f"call{'s' if len(unused) != 1 else ''} (#{unused[0] + 1} on) went unused, so the "
            "result came from a subset of the recording (fewer trials or comparisons than "
            f"recorded?). Re-record it to match the test: `{self.rewrite_command}`"
        )

    @property
    def stored_setup(self) -> dict[str, Any]:
        """Where the replayed cassette was recorded (empty for older cassettes; never raises)."""
        if self._live:
            return {}
        with contextlib.suppress(CassetteError):
            self._interactions()
        return dict(self._stored_setup)

    @property
    def rewrite_command(self) -> str:
        """The shell command that re-records this test, against what it was recorded with."""
        flags = list(self.command_flags)
        stored, now = self._stored_setup, self.recorded_with
        if stored.get("local") and not now.get("local"):
            flags.append("--rolecheck-local")
        elif stored.get("model") and not now.get("model") and not now.get("local"):
            flags.append(f"--rolecheck-model={stored['model']}")
        return self._command("rewrite", flags)

    # ----------------------------------------------------------------- checks

    def check_request(self, index: int, body: Mapping[str, Any]) -> None:
        """Raise if call ``index`` with JSON ``body`` cannot be replayed; no-op when live.

        Parameters
        ----------
        index : int
            The call index the runner sends in the ``x-rolecheck-call`` header.
        body : Mapping
            The JSON body of the request, i.e. the keyword arguments given to
            ``chat.completions.create`` without ``extra_headers``/``timeout`` (and with
            ``extra_body`` merged in). Compared canonically: key order does not count.

        Raises
        ------
        CassetteNotFoundError
            The test has no cassette; the message gives the ``once`` command.
        CassetteCorruptError
            The cassette cannot be read; the message gives file:line and the rewrite command.
        CassetteExhaustedError
            The cassette holds no call ``index`` (the test now makes more calls).
        CassetteMismatchError
            The request differs from the recorded one; the message shows a short diff.
        """
        __tracebackhide__ = True
        if self._live:
            return
        if isinstance(index, bool) or not isinstance(index, int) or index < 0:
            raise RolecheckUsageError(f"a call index is an integer >= 0, got {index!r}")
        tree = self._redactor.tree(_to_json_tree(body))
        self._check(index, _canonical_json(tree), tree)

    def _check(self, index: int, canonical: str | bytes, shown: Any) -> _Recorded:
        recorded = self._interactions()
        entry = recorded.get(index)
        if entry is None:
            raise CassetteExhaustedError(self._exhausted_message(index, len(recorded)))
        if entry.canonical != canonical:
            raise CassetteMismatchError(self._mismatch_message(entry, shown))
        return entry

    def explain(self, error: BaseException) -> CassetteError | None:
        """Turn a vcrpy refusal found in ``error``'s chain into a pytest-rolecheck error.

        The SDK may raise vcrpy's ``CannotOverwriteExistingCassetteException`` as is
        (openai 3.x) or wrapped in ``APIConnectionError`` after retries (openai 1.x);
        both are recognised through ``__cause__``/``__context__``. Returns None if the
        chain holds no such exception.
        """
        refusal = _find_vcr_refusal(error)
        if refusal is None:
            return None
        request = getattr(refusal, "failed_request", None)
        if request is None or getattr(refusal, "cassette", None) is not self._cassette:
            return None  # another cassette's refusal (pytest-recording, a user's own vcr)
        raw_index = _header_index(request.headers)
        if raw_index is None or not raw_index.isdigit():
            return None
        index = int(raw_index)
        body = request.body if isinstance(request.body, bytes) else b""
        ok, tree = _parse_json_bytes(body)
        shown = tree if ok else body.decode("utf-8", "replace")
        try:
            entry = self._check(index, _canonical_bytes(request.body), shown)
        except CassetteError as err:
            return err
        now = f"{request.method} {request.uri}"
        then = f"{entry.method} {entry.uri}"
        if _url_key(request.method, request.uri) != _url_key(entry.method, entry.uri):
            recorded_base = _base_of(entry.uri)
            point = self._command(
                None, [*self.command_flags, f"--rolecheck-base-url={recorded_base}"]
            )
            return CassetteMismatchError(
                f"call #{index + 1} of {self.nodeid} was recorded as {then} but this request "
                f"is {now}: the paths differ (method and path must match; the host and port "
                f"are ignored when replaying). Replay with a client whose base URL has the "
                f"recorded path (the rolecheck_client fixture, or `{point}`); if the endpoint "
                f"change is intended, re-record: `{self.rewrite_command}`"
            )
        return CassetteError(
            f"call #{index + 1} of {self.nodeid} ({CALL_INDEX_HEADER}: {index}) was sent twice; "
            f"each call must carry its own index. vcrpy said:\n{refusal}"
        )

    # ----------------------------------------------------------------- loading

    def _interactions(self) -> dict[int, _Recorded]:
        with self._lock:
            if self._loaded is None and self._load_error is None:
                try:
                    self._loaded = self._read()
                except CassetteError as err:
                    self._load_error = (type(err), str(err))
            if self._load_error is not None:
                kind, message = self._load_error
                raise kind(message)
            assert self._loaded is not None
            return self._loaded

    def _read(self) -> dict[int, _Recorded]:
        shown = _display(self.path)
        try:
            raw = self.path.read_bytes()
        except FileNotFoundError:
            raise CassetteNotFoundError(self._not_found_message(shown)) from None
        except OSError as err:
            raise self._corrupt(f"{shown}: cannot be read ({err.strerror or err})") from None
        try:
            text = raw.decode("utf-8")
        except UnicodeDecodeError as err:
            line = raw.count(b"\n", 0, err.start) + 1
            raise self._corrupt(f"{shown}:{line}: not UTF-8 text ({err.reason})") from None
        if not text or text.isspace():
            raise self._corrupt(f"{shown}:1: the file is empty")
        try:
            doc = _load_document(text)
            found = _parse_document(doc)
        except json.JSONDecodeError as err:
            raise self._corrupt(f"{shown}:{err.lineno}:{err.colno}: {err.msg}") from None
        except _Structure as err:
            line, column = _line_of(text, err.anchor)
            raise self._corrupt(f"{shown}:{line}:{column}: {err}") from None
        except RecursionError:  # a hostile or damaged file; a real one nests ~15 levels
            depth, line, column = _deepest(text)
            raise self._corrupt(
                f"{shown}:{line}:{column}: nested {depth} levels deep, too deep to read "
                "(a recorded chat completion never is)"
            ) from None
        setup = doc.get(SETUP_KEY)
        self._stored_setup = dict(setup) if isinstance(setup, dict) else {}
        return found

    def _not_found_message(self, shown: str) -> str:
        record = self._command("once", self.command_flags)
        directory = self.cassette_dir
        if directory is not None and not directory.is_dir():
            # A typo in the directory must not read as "this one test has no cassette".
            parent = directory.parent
            existing = sorted(
                p.name
                for p in (parent.iterdir() if parent.is_dir() else ())
                if p.is_dir() and not p.name.startswith(".")
            )
            close = difflib.get_close_matches(directory.name, existing, n=1)
            listing = ", ".join(f"{name}/" for name in existing[:12]) or "none"
            hint = f"did you mean {close[0]!r}? " if close else ""
            return (
                f"the cassette directory {_display(directory)} does not exist: nothing was "
                f"recorded there yet, or its name is misspelt (directories in "
                f"{_display(parent)}: {listing}). {hint}Fix --rolecheck-cassette-dir / "
                f"rolecheck_cassette_dir (relative to the rootdir), or record into the new "
                f"directory with `{record}`"
            )
        return (
            f"no cassette at {shown} — record it with `{record}` "
            f"(record mode {self.mode.value!r} only replays and never calls the API)"
        )

    def _corrupt(self, where: str) -> CassetteCorruptError:
        return CassetteCorruptError(
            f"corrupt cassette {where}. Re-record it with `{self.rewrite_command}` "
            "(or restore the file from version control)"
        )

    def _exhausted_message(self, index: int, count: int) -> str:
        where = _display(self.path)
        if index >= count:
            problem = (
                f"the cassette {where} recorded {count} call{'s' if count != 1 else ''}, "
                f"the test requested call #{index + 1} ({CALL_INDEX_HEADER}: {index})"
            )
        else:
            problem = (
                f"the cassette {where} has no recording of call #{index + 1} "
                f"({CALL_INDEX_HEADER}: {index}); it holds {count} calls"
            )
        return (
            f"{problem} — the test now makes more or different calls (more trials, "
            f"variants or comparisons?). Re-record it: `{self.rewrite_command}`"
        )

    def _mismatch_message(self, entry: _Recorded, shown: Any) -> str:
        changed = _changed_keys(entry.shown, shown)
        what = f" (changed: {', '.join(changed)})" if changed else ""
        return (
            f"call #{entry.index + 1} of {self.nodeid} no longer matches its recording in "
            f"{_display(self.path)}{what}: the prompt or the parameters changed.\n"
            f"{body_diff(entry.shown, shown)}\n"
            f"If the change is intended, re-record: `{self.rewrite_command}`"
        )

    # ----------------------------------------------------------------- vcrpy

    def _filter_request(self, request: Any) -> Any:
        """vcrpy before_record_request hook: runs on every request it sees (on a copy)."""
        index = _header_index(request.headers)
        if index is None:
            return None  # not a rolecheck call: vcrpy lets it through, unrecorded
        kept: dict[str, str] = {}
        for name in _REQUEST_HEADERS:
            value = request.headers.get(name)
            if value is not None:
                kept[name] = value[0] if isinstance(value, list | tuple) else str(value)
        request.headers = kept
        request.uri = self._redactor.uri(request.uri)
        body = request.body
        if self._redactor.needles and isinstance(body, bytes) and self._redactor.raw(body) != body:
            ok, tree = _parse_json_bytes(body)
            request.body = (
                _compact_bytes(self._redactor.tree(tree)) if ok else self._redactor.raw(body)
            )
        return request

    def __enter__(self) -> CassetteSession:
        if self._used:
            raise RolecheckUsageError(
                "a CassetteSession can be entered only once; create one per test"
            )
        self._used = True
        import inspect

        import vcr

        config: dict[str, Any] = {
            "record_mode": "all" if self._live else "none",
            # No host: the cassette records where it came from; replay works from anywhere.
            "match_on": ("method", "path", "rolecheck_call", "rolecheck_body"),
            "before_record_request": self._filter_request,
            "record_on_exception": False,
            "decode_compressed_response": False,
        }
        parameters = inspect.signature(vcr.VCR).parameters
        if "skip_patchers" in parameters:
            config["skip_patchers"] = _FOREIGN_PATCHERS
        # our own instance: pytest-recording's vcr_config and default VCR are never used
        recorder = vcr.VCR(**config)
        recorder.register_matcher("rolecheck_call", _match_call)
        recorder.register_matcher("rolecheck_body", _match_body)
        context = recorder.use_cassette(str(self.path), persister=_Persister(self))
        self._cassette = context.__enter__()
        self._context = context
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        context, self._context = self._context, None
        if context is None:
            return
        context.__exit__(exc_type, exc, tb)  # unpatches; our persister never raises
        if exc_type is not None or not self._live:
            return
        recordings = self._recordings()
        if recordings:
            setup = dict(self.recorded_with)
            if isinstance(setup.get("endpoint"), str):
                setup["endpoint"] = endpoint_of(self._redactor.uri(setup["endpoint"]))
            document = {
                FORMAT_KEY: FORMAT_VERSION,
                "test": self.nodeid,
                SETUP_KEY: self._redactor.tree(setup),
                "interactions": [
                    {
                        "index": index,
                        "request": _stored_request(request, self._redactor),
                        "response": _stored_response(response, self._redactor),
                    }
                    for index, (request, response) in recordings.items()
                ],
            }
            try:
                atomic_write(self.path, (render_json(document) + "\n").encode("utf-8"))
            except OSError as err:
                raise CassetteError(
                    f"could not write the cassette {_display(self.path)}: {err}. Make the "
                    "directory writable or point --rolecheck-cassette-dir somewhere else; "
                    "the calls were made but nothing was saved"
                ) from err
            self._written = True

    def _recordings(self) -> dict[int, tuple[Any, dict[str, Any]]]:
        """Successful live recordings, one per call index (the last wins), sorted by index."""
        if self._cassette is None:
            return {}
        by_index: dict[int, tuple[Any, dict[str, Any]]] = {}
        for request, response in list(self._cassette.data):
            raw_index = _header_index(request.headers)
            if raw_index is None or not raw_index.isdigit():
                continue
            code = int((response.get("status") or {}).get("code", 0))
            if code >= 400:  # the SDK retried it, or the test fails anyway
                continue
            by_index[int(raw_index)] = (request, response)
        return dict(sorted(by_index.items()))


def _stored_request(request: Any, redactor: _Redactor) -> dict[str, Any]:
    headers = {
        name: str(request.headers[name]) for name in _REQUEST_HEADERS if name in request.headers
    }
    body = request.body
    if isinstance(body, str):
        body = body.encode("utf-8")
    return {
        "method": str(request.method).upper(),
        "uri": redactor.uri(str(request.uri)),
        "headers": headers,
        "body": _encode_body(
            body if isinstance(body, bytes) else None, headers.get("content-type"), redactor
        ),
    }


def _url_key(method: str, uri: str) -> tuple[str, str]:
    return method.upper(), urlsplit(uri).path or "/"


def _base_of(uri: str) -> str:
    """The base URL a recorded request went to (its URI without ``/chat/completions``)."""
    base = endpoint_of(uri) or uri
    suffix = "/chat/completions"
    return base[: -len(suffix)] if base.endswith(suffix) else base


def _find_vcr_refusal(error: BaseException) -> BaseException | None:
    from vcr.errors import CannotOverwriteExistingCassetteException

    seen: set[int] = set()
    stack: list[BaseException] = [error]
    while stack:
        current = stack.pop()
        if id(current) in seen:
            continue
        seen.add(id(current))
        if isinstance(current, CannotOverwriteExistingCassetteException):
            found: BaseException = current
            return found
        for linked in (current.__cause__, current.__context__):
            if linked is not None:
                stack.append(linked)
    return None
