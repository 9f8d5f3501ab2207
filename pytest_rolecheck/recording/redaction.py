"""What of a call may reach a cassette: secrets replaced, volatile headers dropped."""

from __future__ import annotations

import contextlib
import gzip
import importlib
import re
import zlib
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any, Final
from urllib.parse import quote, quote_plus, urlsplit, urlunsplit

from .format import CALL_INDEX_HEADER, _encode_body

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
# Body fields that differ between two recordings of the same temperature-0 call: the
# times become 0, the response's ids count the calls, llama.cpp's speed figures go.
# The originals are not kept, so re-recording an unchanged test changes no byte.
_VOLATILE_TIMES: Final = ("created", "created_at", "completed_at")
_VOLATILE_DROPPED: Final = ("timings",)
_ID_PREFIX: Final = re.compile(r"[A-Za-z]+[-_]")


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


def _steady_id(value: Any, number: str) -> Any:
    """``chatcmpl-duXjh...`` -> ``chatcmpl-<number>`` (the SDKs need an id, not its value)."""
    if not isinstance(value, str):
        return value
    prefix = _ID_PREFIX.match(value)
    return (prefix.group() if prefix else "") + number


def steady_body(tree: Any, index: int) -> Any:
    """A recorded response body without what changes from one recording to the next.

    Tool-call ids stay: a later request of the conversation may quote them.
    """
    if not isinstance(tree, dict):
        return tree
    out: dict[str, Any] = {}
    for key, value in tree.items():
        if key in _VOLATILE_DROPPED:
            continue
        if (
            key in _VOLATILE_TIMES
            and isinstance(value, int | float)
            and not isinstance(value, bool)
        ):
            value = 0
        elif key == "id":
            value = _steady_id(value, str(index))
        out[key] = value
    output = out.get("output")  # a Responses API answer: its items have ids of their own
    if isinstance(output, list):
        out["output"] = [
            {**item, "id": _steady_id(item["id"], f"{index}-{number}")}
            if isinstance(item, dict) and "id" in item
            else item
            for number, item in enumerate(output)
        ]
    return out


def steady_uri(uri: str) -> str:
    """``uri`` without its port: the bundled server gets a free port on every start."""
    with contextlib.suppress(ValueError):
        parts = urlsplit(uri)
        if parts.port is not None:
            netloc = parts.netloc.rpartition(":")[0]
            return urlunsplit(parts._replace(netloc=netloc))
    return uri


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


def stored_call(
    index: int, request: Any, response: Any, redactor: _Redactor, *, local: bool
) -> dict[str, Any]:
    """Call ``index`` as a cassette stores it: scrubbed, its volatile fields made steady.

    ``local``: recorded from the bundled server, whose port changes on every start.
    """
    stored_request = _stored_request(request, redactor)
    stored_response = _stored_response(response, redactor)
    body = stored_response["body"]
    if body is not None and "json" in body:
        stored_response["body"] = {"json": steady_body(body["json"], index)}
    if local:
        stored_request["uri"] = steady_uri(stored_request["uri"])
    return {"index": index, "request": stored_request, "response": stored_response}
