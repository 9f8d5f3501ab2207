"""A chat-completions request rewritten for OpenAI's Responses API (pure).

Variants are written as chat requests (``messages``, ``max_tokens``, ``tools`` in the
chat format); :func:`responses_request` turns one into the keyword arguments of
``client.responses.create``:

* ``messages`` become ``input`` items: ``system``/``developer``/``user``/``assistant``
  messages keep their role and text (``text`` parts become ``input_text``, or
  ``output_text`` for the assistant), an assistant's ``tool_calls`` become
  ``function_call`` items and ``tool`` messages ``function_call_output`` items;
* ``instructions`` (the placement :meth:`Variant.with_role` ``("instructions")`` makes)
  is passed as is;
* ``max_tokens`` / ``max_completion_tokens`` become ``max_output_tokens``;
* ``logprobs=True, top_logprobs=k`` become ``include=["message.output_text.logprobs"],
  top_logprobs=k`` (without logprobs, neither is sent);
* tools become the flat ``{"type": "function", "name", "parameters", ...}``, with
  ``strict`` False unless the chat tool said otherwise (chat's default; the Responses
  API's is True), and ``tool_choice`` naming a function likewise;
* ``response_format`` becomes ``text={"format": ...}``.

The API has no ``n``, ``seed``, ``stop``, ``logit_bias`` or penalties: those are
refused with the reason rather than sent to fail (or be dropped) at the server.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Final

from ..errors import RolecheckUsageError
from .messages import text_of

__all__ = ["LOGPROBS_INCLUDE", "is_responses_request", "responses_request"]

#: The ``include`` entry that asks the Responses API for token logprobs.
LOGPROBS_INCLUDE: Final = "message.output_text.logprobs"

# Chat-completions fields the Responses API does not have, with what to do instead.
_REFUSED: Final = {
    "n": "one response per call: ask for more calls with trials=",
    "seed": "no sampling seed: drop seed (calls at temperature > 0 are then not reproducible)",
    "stop": "no stop sequences: drop stop",
    "logit_bias": "no logit_bias: drop it",
    "presence_penalty": "no presence_penalty: drop it",
    "frequency_penalty": "no frequency_penalty: drop it",
    "functions": "no legacy functions: pass tools=[...]",
    "function_call": "no legacy function_call: pass tool_choice=...",
}
_MESSAGE_KEYS: Final = frozenset({"role", "content", "tool_calls", "tool_call_id"})


def responses_request(request: Mapping[str, Any]) -> dict[str, Any]:
    """Keyword arguments for ``client.responses.create`` made of a chat request.

    Parameters
    ----------
    request : mapping
        Keyword arguments for ``chat.completions.create`` (as
        :meth:`Variant.request` builds them), possibly with ``instructions``.

    Returns
    -------
    dict
        A new request; ``extra_headers``/``extra_body``/... are passed on unchanged.

    Raises
    ------
    RolecheckUsageError
        For a field the Responses API does not have (``n`` > 1, ``seed``, ``stop``,
        ...), or a message this translation cannot express.
    """
    out: dict[str, Any] = {}
    for key, value in request.items():
        if key in _REFUSED and not (key == "n" and value == 1):
            raise RolecheckUsageError(
                f"{key}={value!r} cannot be sent with api='responses': the Responses API has "
                f"{_REFUSED[key]}. Checked before any call."
            )
        if key not in ("messages", "logprobs", "top_logprobs", "n", "max_completion_tokens"):
            out[key] = value
    if "messages" in request:
        out["input"] = [item for m in request["messages"] for item in _input_items(m)]
    limit = request.get("max_completion_tokens", request.get("max_tokens"))
    out.pop("max_tokens", None)
    if limit is not None:
        out["max_output_tokens"] = limit
    if request.get("logprobs") is True:
        include = [i for i in out.get("include") or () if i != LOGPROBS_INCLUDE]
        out["include"] = [*include, LOGPROBS_INCLUDE]
        if request.get("top_logprobs") is not None:
            out["top_logprobs"] = request["top_logprobs"]
    if "tools" in out:
        out["tools"] = [_flat_tool(tool) for tool in out["tools"]]
    choice = out.get("tool_choice")
    if isinstance(choice, Mapping) and isinstance(choice.get("function"), Mapping):
        out["tool_choice"] = {"type": "function", "name": choice["function"].get("name")}
    if "response_format" in out:
        out["text"] = {**(out.get("text") or {}), "format": _text_format(out["response_format"])}
        del out["response_format"]
    return out


def _input_items(message: Mapping[str, Any]) -> list[dict[str, Any]]:
    role = message.get("role")
    unknown = sorted(set(message) - _MESSAGE_KEYS)
    if role == "function" or unknown:
        what = f"fields {unknown}" if unknown else "the legacy role 'function'"
        raise RolecheckUsageError(
            f"a {role!r} message with {what} has no counterpart in the Responses API's input "
            "items; drop them (or use api='chat'). Checked before any call."
        )
    if role == "tool":
        return [
            {
                "type": "function_call_output",
                "call_id": message.get("tool_call_id"),
                "output": text_of(message.get("content")),
            }
        ]
    items: list[dict[str, Any]] = []
    content = message.get("content")
    if content is not None and (content != "" or not message.get("tool_calls")):
        items.append({"role": role, "content": _content(content, role)})
    for call in message.get("tool_calls") or ():
        function = call.get("function") or {}
        items.append(
            {
                "type": "function_call",
                "call_id": call.get("id"),
                "name": function.get("name"),
                "arguments": function.get("arguments", ""),
            }
        )
    return items


def _content(content: Any, role: Any) -> Any:
    if isinstance(content, str):
        return content
    kind = "output_text" if role == "assistant" else "input_text"
    parts: list[Any] = []
    for part in content:
        if isinstance(part, Mapping) and part.get("type") == "text":
            parts.append({"type": kind, "text": part.get("text", "")})
        elif isinstance(part, Mapping) and part.get("type") == "image_url":
            image = part.get("image_url") or {}
            url = image.get("url") if isinstance(image, Mapping) else image
            detail = image.get("detail", "auto") if isinstance(image, Mapping) else "auto"
            parts.append({"type": "input_image", "image_url": url, "detail": detail})
        else:
            parts.append(part)  # already a Responses content part
    return parts


def _flat_tool(tool: Any) -> Any:
    if not isinstance(tool, Mapping) or not isinstance(tool.get("function"), Mapping):
        return tool  # already flat, or a built-in tool of the Responses API
    function = tool["function"]
    flat = {"type": "function", **function}
    flat.setdefault("strict", False)
    return flat


def _text_format(response_format: Any) -> Any:
    if isinstance(response_format, Mapping) and isinstance(
        response_format.get("json_schema"), Mapping
    ):
        return {"type": "json_schema", **response_format["json_schema"]}
    return response_format


def is_responses_request(request: Mapping[str, Any]) -> bool:
    """Whether ``request`` is for ``responses.create``: it has ``input``, not ``messages``."""
    return "input" in request and "messages" not in request
