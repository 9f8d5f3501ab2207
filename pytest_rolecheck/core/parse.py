"""Turn chat-completion responses into :class:`ParsedCall` values (pure).

Responses-API responses are read by :mod:`.parse_responses`, with these same rules.

A response is an ``openai`` ``ChatCompletion`` or a plain dict of the same
JSON. Only the first choice is read unless ``choice=`` says otherwise. Real
servers are messy; every rule below is tested in ``tests/test_parse.py``.

Rules for messy input
---------------------
Token identity (``key``)
    Tokens are matched across calls by ``key``. When ``bytes`` is present and is
    valid UTF-8, the key is the decoded text; when it is not valid UTF-8 (a
    token holding part of a multi-byte character) the key is
    ``"bytes:" + "\\xNN"...`` — the spelling OpenAI itself uses for such tokens
    — so two different partial characters never collide even if both print as
    ``"\\ufffd"``. When ``bytes`` is null the key is the token string. Hence a
    token with bytes on one side and null bytes on the other matches whenever
    its text is the decoding of its bytes, which is the normal case.
Logprobs
    ``-inf``, NaN and anything below :data:`LOGPROB_FLOOR` (``-9999.0``, the
    value OpenAI uses for "very unlikely") are clamped to ``LOGPROB_FLOOR`` and
    mean "probability 0". Values above 0 (rounding noise) are clamped to 0.
    Parsed logprobs are therefore always finite and in ``[-9999, 0]``.
Alternatives
    ``top_logprobs`` may hold fewer than the requested k entries, may be
    unsorted and may list the same token twice. Entries with the same key are
    merged by log-sum-exp (probability-0 entries add nothing), then sorted by
    descending logprob (ties by key, so the order never depends on the server's
    order). If the generated token is missing from its own alternatives (a
    server omitted it, or it was sampled outside the top k) it is added, so
    every position lists at least the generated token. ``top_logprobs`` null
    or absent counts as an empty list.
Empty output, lengths, finish_reason
    Empty or null content with no logprob tokens gives zero positions (not an
    error). Calls of different lengths parse independently; the distances
    decide how to compare them. ``finish_reason`` ("stop", "length",
    "tool_calls", ...) is stored as given and does not affect parsing;
    :attr:`ParsedCall.truncated` says whether ``max_tokens`` cut the call.
Missing logprobs
    ``logprobs: null`` — or text without any logprob tokens — raises
    :class:`~pytest_rolecheck.errors.NoLogprobsError` unless
    ``require_logprobs=False`` (tool-call responses usually carry no logprobs).
Refusals
    If ``logprobs.content`` is empty but ``logprobs.refusal`` has tokens, the
    refusal tokens become the positions (they are what the model generated);
    ``text`` stays the message content and ``refusal`` holds the refusal text.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from ..errors import NoLogprobsError, ResponseFormatError
from .jsonish import as_dict

__all__ = [
    "LOGPROB_FLOOR",
    "ParsedCall",
    "Position",
    "ToolCallRecord",
    "clamp_logprob",
    "parse_response",
    "token_key",
]

#: Finite stand-in for "probability 0" (the value OpenAI itself returns for
#: tokens outside the top 20). Every parsed logprob is ``>= LOGPROB_FLOOR``.
LOGPROB_FLOOR: float = -9999.0

_LOGPROBS_HINT = (
    "request them with `logprobs=True, top_logprobs=k` (k >= 1; some servers, e.g. "
    "llama.cpp, return logprobs only when top_logprobs is set), or use a model/server "
    "that supports logprobs. If this call legitimately produced no text (e.g. only a "
    "tool call), parse it with require_logprobs=False."
)


@dataclass(frozen=True, slots=True)
class Position:
    """One generated token and the alternatives the server reported for it.

    Attributes
    ----------
    token : str
        Generated token text.
    key : str
        Identity used to match tokens across calls (see :func:`token_key`).
    logprob : float
        Logprob of the generated token, finite, in ``[LOGPROB_FLOOR, 0]``.
    alternatives : tuple of (key, token_text, logprob)
        Merged (log-sum-exp on equal keys) and sorted by descending logprob.
        Always contains the generated token's key.
    listed_logprobs : tuple of float or None
        The ``top_logprobs`` logprob values in the order the server listed them
        (clamped, not merged, without the added generated token). The ``seed``
        metric compares candidates by this rank, exactly like the forum code.
        ``None`` when the Position was built by hand: the ``seed`` metric then
        uses the logprobs of ``alternatives``.
    """

    token: str
    key: str
    logprob: float
    alternatives: tuple[tuple[str, str, float], ...]
    listed_logprobs: tuple[float, ...] | None = None


@dataclass(frozen=True, slots=True)
class ToolCallRecord:
    """A tool call the model made: function name and the raw arguments string.

    ``arguments`` is kept verbatim (models do not always produce valid JSON);
    ``id`` is informational and excluded from equality, since servers assign a
    fresh id to every call.
    """

    name: str
    arguments: str
    id: str | None = field(default=None, compare=False)
    type: str = "function"


@dataclass(frozen=True, slots=True)
class ParsedCall:
    """Everything the engine uses from one chat completion.

    Attributes
    ----------
    text : str
        Message content (``''`` if null).
    positions : tuple of Position
        One entry per generated token that carried logprobs.
    finish_reason : str or None
        As returned ("stop", "length", "tool_calls", ...).
    model, system_fingerprint : str or None
        As returned.
    prompt_tokens, completion_tokens : int or None
        From ``usage`` (None when the server sent no usage).
    tool_calls : tuple of ToolCallRecord
        From ``message.tool_calls`` (and the deprecated ``function_call``).
    has_logprobs : bool
        Whether the response carried a logprobs object with token entries (or
        a logprobs object and no text to have tokens for).
    refusal : str or None
        ``message.refusal`` when the model refused.
    """

    text: str
    positions: tuple[Position, ...]
    finish_reason: str | None = None
    model: str | None = None
    system_fingerprint: str | None = None
    prompt_tokens: int | None = None
    completion_tokens: int | None = None
    tool_calls: tuple[ToolCallRecord, ...] = ()
    has_logprobs: bool = True
    refusal: str | None = None

    @property
    def truncated(self) -> bool:
        """True when generation stopped at ``max_tokens`` (``finish_reason == "length"``)."""
        return self.finish_reason == "length"

    @property
    def keys(self) -> tuple[str, ...]:
        """Keys of the generated tokens, in order."""
        return tuple(p.key for p in self.positions)


# ---------------------------------------------------------------------------
# small pure helpers
# ---------------------------------------------------------------------------


def clamp_logprob(value: float) -> float:
    """Return ``value`` clamped to ``[LOGPROB_FLOOR, 0]``; NaN and -inf become the floor."""
    if math.isnan(value) or value < LOGPROB_FLOOR:
        return LOGPROB_FLOOR
    if value > 0.0:
        return 0.0
    return value


def token_key(token: str, raw_bytes: Sequence[int] | bytes | None) -> str:
    """Return the identity used to match a token across calls.

    Parameters
    ----------
    token : str
        The token text.
    raw_bytes : sequence of int, bytes or None
        The token's UTF-8 bytes as the server reported them.

    Returns
    -------
    str
        The UTF-8 decoding of ``raw_bytes`` when valid; ``"bytes:\\xNN..."`` when
        the bytes are not valid UTF-8; ``token`` when ``raw_bytes`` is None.
    """
    if raw_bytes is None:
        return token
    data = bytes(raw_bytes)
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        return "bytes:" + "".join(f"\\x{b:02x}" for b in data)


def _merge_logprobs(values: Sequence[float]) -> float:
    """Log-sum-exp of clamped logprobs; probability-0 entries add nothing."""
    live = [v for v in values if v > LOGPROB_FLOOR]
    if not live:
        return LOGPROB_FLOOR
    top = max(live)
    total = top + math.log(math.fsum(math.exp(v - top) for v in live))
    return clamp_logprob(total)


# ---------------------------------------------------------------------------
# validation (shape and types), kept apart from the computation
# ---------------------------------------------------------------------------


def _mapping(obj: Any, where: str) -> Mapping[str, Any]:
    # JSON is plain dicts: an exact type test is much cheaper than the ABC isinstance check.
    if type(obj) is dict:
        return obj
    try:
        # Shallow: read an SDK object's fields in place; nested objects come back here.
        return as_dict(obj, shallow=True)
    except TypeError:
        raise ResponseFormatError(
            f"{where} should be an object, got {type(obj).__name__}; pass the response "
            "exactly as the chat-completions API returned it (an openai ChatCompletion or "
            "its JSON as a dict)."
        ) from None


def _logprob(value: Any, where: str) -> float:
    if type(value) is float and LOGPROB_FLOOR <= value <= 0.0:
        return value  # the JSON case, already in range (NaN fails the comparison)
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ResponseFormatError(
            f"{where}: logprob should be a number, got {value!r}; the server sent a malformed "
            "logprobs entry — check that it implements the OpenAI chat-completions format."
        )
    return clamp_logprob(float(value))


_PLAIN_INT = frozenset({int})


def _bytes(value: Any, where: str) -> bytes | None:
    if value is None:
        return None
    if isinstance(value, bytes | bytearray):
        return bytes(value)
    # JSON gives a list of plain ints: check the item types and the 0..255 range in C
    # (map/set, bytes()) rather than per item in Python; bools and other int-likes go
    # the long way below, so exactly the same values are accepted.
    if type(value) is list and _PLAIN_INT.issuperset(map(type, value)):
        try:
            return bytes(value)
        except ValueError:
            pass  # out of range: reported below
    elif (
        isinstance(value, Sequence)
        and not isinstance(value, str)
        and all(isinstance(b, int) and not isinstance(b, bool) and 0 <= b <= 255 for b in value)
    ):
        return bytes(value)
    raise ResponseFormatError(
        f"{where}: bytes should be null or a list of integers 0..255, got {value!r}; the "
        "server sent a malformed logprobs entry."
    )


def _token_entry(data: Mapping[str, Any], where: str) -> tuple[str, str, float]:
    """Validate one token entry; return (key, token, clamped logprob)."""
    token = data.get("token")
    if not isinstance(token, str):
        raise ResponseFormatError(
            f"{where}: 'token' should be a string, got {token!r}; the server sent a malformed "
            "logprobs entry."
        )
    if "logprob" not in data:
        raise ResponseFormatError(
            f"{where}: the entry has no 'logprob'; the server sent a malformed logprobs entry."
        )
    logprob = _logprob(data["logprob"], where)
    return token_key(token, _bytes(data.get("bytes"), where)), token, logprob


def _optional_str(value: Any) -> str | None:
    return value if isinstance(value, str) else None


def _optional_int(value: Any) -> int | None:
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    return None


def _choice(data: Mapping[str, Any], index: int) -> Mapping[str, Any]:
    choices = data.get("choices")
    if choices is None or isinstance(choices, str | bytes) or not isinstance(choices, Sequence):
        raise ResponseFormatError(
            "the response has no 'choices' list; pass a chat-completions response (an openai "
            "ChatCompletion or its JSON as a dict), not a request, a stream chunk or an error body."
        )
    if not choices:
        raise ResponseFormatError(
            "the response has an empty 'choices' list, so there is no completion to compare; "
            "check the request (n >= 1) and the server's error message, then re-record the call."
        )
    if not 0 <= index < len(choices):
        raise ResponseFormatError(
            f"choice={index} is out of range: the response has {len(choices)} choice(s); "
            f"pass choice= between 0 and {len(choices) - 1}."
        )
    return _mapping(choices[index], f"choices[{index}]")


def _list(value: Any, where: str, what: str = "token entries") -> list[Any] | None:
    if value is None:
        return None
    if type(value) is list:  # JSON arrays; skips the slower ABC isinstance check
        return value
    if isinstance(value, str | bytes) or not isinstance(value, Sequence):
        raise ResponseFormatError(
            f"{where} should be a list of {what}, got {type(value).__name__}; the server sent a "
            "malformed response — check that it implements the OpenAI chat-completions format."
        )
    return list(value)


# ---------------------------------------------------------------------------
# computation
# ---------------------------------------------------------------------------


def _merged(
    listed: list[tuple[str, str, float]], key: str, token: str, logprob: float
) -> tuple[tuple[str, str, float], ...]:
    """Merge equal keys (log-sum-exp), add the generated token if missing, sort."""
    keys = {alt_key for alt_key, _, _ in listed}
    if len(keys) == len(listed):
        merged = list(listed)  # no duplicate keys, the usual case: nothing to merge
    else:
        groups: dict[str, list[float]] = {}
        texts: dict[str, tuple[float, str]] = {}
        for alt_key, alt_token, alt_lp in listed:
            groups.setdefault(alt_key, []).append(alt_lp)
            # Keep the text of the most likely spelling (first one on ties).
            if alt_key not in texts or alt_lp > texts[alt_key][0]:
                texts[alt_key] = (alt_lp, alt_token)
        merged = [(k, texts[k][1], _merge_logprobs(v)) for k, v in groups.items()]
    if key not in keys:
        merged.append((key, token, logprob))
    merged.sort(key=lambda item: (-item[2], item[0]))
    return tuple(merged)


def _alternative(entry: Any, where: str) -> tuple[str, str, float]:
    return _token_entry(_mapping(entry, where), where)


def _plain_entries(entries: list[Any]) -> list[tuple[str, str, float]] | None:
    """``_token_entry`` of each entry when all are plain and in range, else ``None``.

    The usual case, at a third of the cost: a top-20 call has 420 entries, and
    the checked path below (which says what is wrong, and where) builds a
    location string and makes three calls for each.
    """
    out: list[tuple[str, str, float]] = []
    for entry in entries:
        data = entry
        if type(entry) is not dict:
            kind = type(entry)
            # An SDK object: read its declared fields in place (as_dict copies them all).
            # Extras (llama.cpp's "id") live apart and are not read here; a token or
            # logprob that is not a declared field is missing and goes the checked way.
            plain = hasattr(kind, "__pydantic_fields__")
            data = vars(entry) if plain else _mapping(entry, "")
        token, logprob, raw = data.get("token"), data.get("logprob"), data.get("bytes")
        if type(token) is not str or type(logprob) is not float:
            return None
        if not LOGPROB_FLOOR <= logprob <= 0.0:
            return None
        if raw is None:
            key = token
        elif type(raw) is list and _PLAIN_INT.issuperset(map(type, raw)):
            try:
                key = bytes(raw).decode("utf-8")
            except ValueError:  # out of range, or not UTF-8 (UnicodeDecodeError)
                return None
        else:
            return None
        out.append((key, token, logprob))
    return out


def _position(entry: Any, where: str) -> Position:
    data = _mapping(entry, where)
    key, token, logprob = _token_entry(data, where)
    raw_top = _list(data.get("top_logprobs"), f"{where}.top_logprobs") or []
    try:
        listed = _plain_entries(raw_top)
    except ResponseFormatError:
        listed = None
    if listed is None:
        listed = [_alternative(alt, f"{where}.top_logprobs[{j}]") for j, alt in enumerate(raw_top)]
    return Position(
        token=token,
        key=key,
        logprob=logprob,
        alternatives=_merged(listed, key, token, logprob),
        listed_logprobs=tuple(lp for _, _, lp in listed),
    )


def _tool_calls(message: Mapping[str, Any]) -> tuple[ToolCallRecord, ...]:
    records: list[ToolCallRecord] = []
    raw = message.get("tool_calls")
    for j, item in enumerate(_list(raw, "message.tool_calls", "tool calls") or []):
        call = _mapping(item, f"message.tool_calls[{j}]")
        kind = _optional_str(call.get("type")) or "function"
        if "custom" in call and call.get("custom") is not None:
            body = _mapping(call["custom"], f"message.tool_calls[{j}].custom")
            args = body.get("input")
        else:
            body = _mapping(call.get("function") or {}, f"message.tool_calls[{j}].function")
            args = body.get("arguments")
        name = body.get("name")
        if not isinstance(name, str):
            raise ResponseFormatError(
                f"message.tool_calls[{j}] has no function name; the server sent a malformed "
                "tool call — check that it implements the OpenAI tool-calling format."
            )
        records.append(
            ToolCallRecord(
                name=name,
                arguments=args if isinstance(args, str) else "",
                id=_optional_str(call.get("id")),
                type=kind,
            )
        )
    legacy = message.get("function_call")
    if not records and legacy is not None:
        body = _mapping(legacy, "message.function_call")
        name = body.get("name")
        if isinstance(name, str):
            args = body.get("arguments")
            records.append(
                ToolCallRecord(
                    name=name, arguments=args if isinstance(args, str) else "", type="function"
                )
            )
    return tuple(records)


# Long by its docstring (the accepted shapes and every error); the body is under 60 lines.
def parse_response(
    response: Any, *, require_logprobs: bool = True, choice: int = 0, tokens: bool = True
) -> ParsedCall:
    """Parse one chat-completion response into a :class:`ParsedCall`.

    Parameters
    ----------
    response : ChatCompletion, Response, Mapping or ParsedCall
        An ``openai`` ``ChatCompletion`` or a dict of the same JSON; a
        Responses-API ``Response`` (or its dict), read by
        :mod:`~pytest_rolecheck.core.parse_responses`. A ``ParsedCall`` is returned
        unchanged, so callers may pass either.
    require_logprobs : bool, default True
        Raise :class:`NoLogprobsError` when the call carries no token logprobs.
        Pass False for tool-call responses, which usually have none.
    choice : int, default 0
        Which entry of ``choices`` to read (for requests with ``n > 1``).
    tokens : bool, default True
        False skips reading the token entries (``positions`` stays empty, and a
        malformed entry goes unnoticed): for a caller that only asks whether the
        call has logprobs, which costs a tenth of reading them all.

    Returns
    -------
    ParsedCall

    Raises
    ------
    ResponseFormatError
        The response is not a chat completion, ``choices`` is empty, ``choice``
        is out of range, or a token entry is malformed.
    NoLogprobsError
        ``require_logprobs`` is True and ``logprobs`` is null, or the message
        has text but no logprob tokens.

    Notes
    -----
    The rules for messy server output (token identity, -inf/-9999 logprobs,
    unsorted and duplicate alternatives, ...) are listed in the module
    docstring.
    """
    if isinstance(response, ParsedCall):
        return response
    data = _mapping(response, "the response")
    if "choices" not in data:
        from .parse_responses import is_responses_output, parse_responses_output

        if is_responses_output(data) and choice == 0:  # a Response has no choices
            return parse_responses_output(data, require_logprobs=require_logprobs)
    chosen = _choice(data, choice)
    message = _mapping(chosen.get("message") or {}, f"choices[{choice}].message")
    content = message.get("content")
    if content is not None and not isinstance(content, str):
        raise ResponseFormatError(
            f"choices[{choice}].message.content should be a string or null, got "
            f"{type(content).__name__}; pass a chat-completions response."
        )
    text = content or ""
    refusal = _optional_str(message.get("refusal"))

    raw_logprobs = chosen.get("logprobs")
    entries: list[Any] | None = None
    if raw_logprobs is not None:
        lp = _mapping(raw_logprobs, f"choices[{choice}].logprobs")
        entries = _list(lp.get("content"), f"choices[{choice}].logprobs.content")
        if not entries:
            refusal_entries = _list(lp.get("refusal"), f"choices[{choice}].logprobs.refusal")
            if refusal_entries:
                entries = refusal_entries
    # A logprobs object with no token entries is only believable when there was no text.
    has_logprobs = raw_logprobs is not None and (bool(entries) or not text)
    if require_logprobs and not has_logprobs:
        what = (
            "logprobs is null"
            if raw_logprobs is None
            else "logprobs has no token entries although the message has text"
        )
        model = _optional_str(data.get("model")) or "the model"
        raise NoLogprobsError(
            f"{model} returned no token logprobs for this call ({what}); {_LOGPROBS_HINT}"
        )

    positions = tuple(
        _position(entry, f"choices[{choice}].logprobs.content[{i}]")
        for i, entry in enumerate((entries or []) if tokens else [])
    )
    usage_raw = data.get("usage")
    usage = _mapping(usage_raw, "usage") if usage_raw is not None else {}
    return ParsedCall(
        text=text,
        positions=positions,
        finish_reason=_optional_str(chosen.get("finish_reason")),
        model=_optional_str(data.get("model")),
        system_fingerprint=_optional_str(data.get("system_fingerprint")),
        prompt_tokens=_optional_int(usage.get("prompt_tokens")),
        completion_tokens=_optional_int(usage.get("completion_tokens")),
        tool_calls=_tool_calls(message),
        has_logprobs=has_logprobs,
        refusal=refusal,
    )
