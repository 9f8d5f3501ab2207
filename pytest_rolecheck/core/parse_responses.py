"""Turn Responses-API responses into :class:`~.parse.ParsedCall` values (pure).

A response of ``client.responses.create`` (an ``openai`` ``Response`` or its JSON as
a dict) holds a list of ``output`` items. Read the way the chat path reads a chat
completion, so every metric and the tool-call comparison work unchanged:

* ``text``: the ``output_text`` parts of every ``message`` item, joined in order
  (what the SDK's ``Response.output_text`` gives); ``refusal``: the ``refusal`` parts;
* ``positions``: the ``logprobs`` of those parts, joined in the same order (they come
  only with ``include=["message.output_text.logprobs"]``), read by the chat path's
  rules (:mod:`.parse`: token identity, clamping, merged alternatives);
* ``tool_calls``: one :class:`~.parse.ToolCallRecord` per ``function_call`` item
  (``name``, ``arguments``, ``call_id`` as the id), as for a chat ``tool_calls`` entry;
* ``finish_reason``: ``length`` when the response is ``incomplete`` for
  ``max_output_tokens`` (so ``truncated`` holds), ``tool_calls`` when there are
  function calls, the ``incomplete_details.reason`` otherwise, else ``stop``;
* ``prompt_tokens`` / ``completion_tokens``: ``usage.input_tokens`` / ``output_tokens``.

Other output items (reasoning, built-in tool calls) are skipped: they are neither
text nor a function call.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from ..errors import NoLogprobsError, ResponseFormatError
from .parse import (
    ParsedCall,
    Position,
    ToolCallRecord,
    _list,
    _mapping,
    _optional_int,
    _optional_str,
    _position,
)

__all__ = ["chat_tool_calls", "is_responses_output", "parse_responses_output"]

_HINT = (
    "ask for them with include=['message.output_text.logprobs'] and top_logprobs=k "
    "(api='responses' does this when logprobs are asked for), or compare the texts with "
    "metric='edit', which needs none. If this call legitimately produced no text (e.g. "
    "only a tool call), parse it with require_logprobs=False."
)


def is_responses_output(data: Mapping[str, Any]) -> bool:
    """Whether ``data`` is a Responses-API response (``output`` items, no ``choices``)."""
    return "choices" not in data and ("output" in data or data.get("object") == "response")


def parse_responses_output(data: Mapping[str, Any], *, require_logprobs: bool) -> ParsedCall:
    """Parse one Responses-API response (see the module docstring for the rules).

    Raises
    ------
    ResponseFormatError
        ``output`` is not a list of items, or an item is malformed.
    NoLogprobsError
        ``require_logprobs`` is True and the text carries no logprob tokens.
    """
    items = _list(data.get("output"), "output", "output items")
    if items is None:
        raise ResponseFormatError(
            "the response has no 'output' list; pass a Responses-API response (an openai "
            "Response or its JSON as a dict), not a request, a stream event or an error body."
        )
    texts: list[str] = []
    refusals: list[str] = []
    entries: list[tuple[Any, str]] = []
    listed = False  # some part carried a logprobs list (maybe empty)
    tools: list[ToolCallRecord] = []
    for i, raw in enumerate(items):
        item = _mapping(raw, f"output[{i}]")
        kind = item.get("type")
        if kind == "function_call":
            tools.append(_function_call(item, f"output[{i}]"))
        elif kind == "message":
            content = _list(item.get("content"), f"output[{i}].content", "content parts") or []
            for j, raw_part in enumerate(content):
                where = f"output[{i}].content[{j}]"
                part = _mapping(raw_part, where)
                if part.get("type") == "refusal":
                    refusals.append(_optional_str(part.get("refusal")) or "")
                elif part.get("type") == "output_text":
                    texts.append(_optional_str(part.get("text")) or "")
                    logprobs = _list(part.get("logprobs"), f"{where}.logprobs")
                    listed = listed or logprobs is not None
                    entries.extend(
                        (e, f"{where}.logprobs[{k}]") for k, e in enumerate(logprobs or [])
                    )
    text = "".join(texts)
    # As for chat: an empty logprobs list is only believable when there was no text.
    has_logprobs = bool(entries) or (listed and not text)
    if require_logprobs and not has_logprobs:
        model = _optional_str(data.get("model")) or "the model"
        raise NoLogprobsError(f"{model} returned no token logprobs for this response; {_HINT}")
    positions: tuple[Position, ...] = tuple(_position(e, where) for e, where in entries)
    usage_raw = data.get("usage")
    usage = _mapping(usage_raw, "usage") if usage_raw is not None else {}
    return ParsedCall(
        text=text,
        positions=positions,
        finish_reason=_finish_reason(data, bool(tools)),
        model=_optional_str(data.get("model")),
        prompt_tokens=_optional_int(usage.get("input_tokens")),
        completion_tokens=_optional_int(usage.get("output_tokens")),
        tool_calls=tuple(tools),
        has_logprobs=has_logprobs,
        refusal="".join(refusals) if refusals else None,
    )


def chat_tool_calls(data: Mapping[str, Any]) -> list[dict[str, Any]]:
    """The ``function_call`` output items as chat ``tool_calls`` entries, in order."""
    items = _list(data.get("output"), "output", "output items") or []
    calls = [_mapping(item, f"output[{i}]") for i, item in enumerate(items)]
    return [
        {
            "id": call.get("call_id"),
            "type": "function",
            "function": {"name": call.get("name"), "arguments": call.get("arguments")},
        }
        for call in calls
        if call.get("type") == "function_call"
    ]


def _function_call(item: Mapping[str, Any], where: str) -> ToolCallRecord:
    name = item.get("name")
    if not isinstance(name, str):
        raise ResponseFormatError(
            f"{where} is a function_call without a name; the server sent a malformed tool "
            "call — check that it implements the Responses API."
        )
    arguments = item.get("arguments")
    return ToolCallRecord(
        name=name,
        arguments=arguments if isinstance(arguments, str) else "",
        id=_optional_str(item.get("call_id")),
        type="function",
    )


def _finish_reason(data: Mapping[str, Any], called: bool) -> str:
    details = data.get("incomplete_details")
    reason = (
        _optional_str(_mapping(details, "incomplete_details").get("reason")) if details else None
    )
    if data.get("status") == "incomplete" and reason == "max_output_tokens":
        return "length"
    if called:
        return "tool_calls"
    return reason or "stop"
