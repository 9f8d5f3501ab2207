"""Chat-message helpers behind :class:`~pytest_rolecheck.variants.Variant` (pure).

Deep-freezing and thawing, the instruction message (first ``system``/``developer``
message), its text, and the edits the derivations make to it. Every check raises
:class:`~pytest_rolecheck.errors.RolecheckUsageError` with the fix.
"""

from __future__ import annotations

import datetime as _dt
import json
import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from types import MappingProxyType
from typing import Any, Final, Literal

from ..core.jsonish import as_dict
from ..errors import RolecheckUsageError

INSTRUCTION_ROLES: Final[tuple[str, ...]] = ("system", "developer")
"""Roles whose message carries the instruction (the first such message is used)."""

ROLE_CHOICES: Final[tuple[str, ...]] = ("system", "developer", "user-prefixed", "instructions")
"""Roles :meth:`Variant.with_role` accepts; ``user-prefixed`` merges the instruction
into the first user message after it, ``instructions`` moves it into the Responses
API's ``instructions`` parameter."""

INSTRUCTIONS: Final = "instructions"
"""The Responses API's request parameter that carries the instruction outside ``input``."""

MESSAGE_ROLES: Final[tuple[str, ...]] = (
    "system",
    "developer",
    "user",
    "assistant",
    "tool",
    "function",
)
"""Roles a chat message may have (checked for Python variants and variant files alike)."""

PreamblePosition = Literal["start", "after-first-line"]

_LABEL_UNSAFE = re.compile(r"[^A-Za-z0-9._=-]+")


def freeze(value: Any) -> Any:
    """Mappings -> read-only proxies, lists -> tuples, recursively."""
    if isinstance(value, Mapping):
        return MappingProxyType({key: freeze(item) for key, item in value.items()})
    if isinstance(value, list | tuple):
        return tuple(freeze(item) for item in value)
    return value


def thaw(value: Any) -> Any:
    """The inverse of :func:`freeze`: fresh plain dicts and lists."""
    if isinstance(value, Mapping):
        return {key: thaw(item) for key, item in value.items()}
    if isinstance(value, tuple | list):
        return [thaw(item) for item in value]
    return value


def slug(text: str, limit: int = 24) -> str:
    """A label-safe tag made of ``text``."""
    return _LABEL_UNSAFE.sub("-", text.strip().lower()).strip("-")[:limit] or "x"


def text_of(content: Any) -> str:
    """Text of a message's content: a string, None, or a list of content parts."""
    if content is None:
        return ""
    if isinstance(content, str):
        return content
    if isinstance(content, Sequence):
        return "".join(
            str(part.get("text", ""))
            for part in content
            if isinstance(part, Mapping) and part.get("type") == "text"
        )
    return str(content)


def join(first: str, second: str, separator: str) -> str:
    """``first + separator + second``, without the separator when either is empty."""
    if not first:
        return second
    if not second:
        return first
    return f"{first}{separator}{second}"


def prefix_content(content: Any, prefix: str, separator: str) -> Any:
    """Put ``prefix`` in front of a message content (string or list of parts)."""
    if content is None or isinstance(content, str):
        return join(prefix, content or "", separator)
    parts = [thaw(part) for part in content]
    if parts and isinstance(parts[0], dict) and parts[0].get("type") == "text":
        parts[0] = {**parts[0], "text": join(prefix, str(parts[0].get("text", "")), separator)}
    else:
        parts.insert(0, {"type": "text", "text": prefix + separator})
    return parts


def plain_message(message: Any, position: int) -> dict[str, Any]:
    """A message as a plain dict (SDK message objects accepted), its role checked."""
    if isinstance(message, Mapping):
        plain = dict(message)
    else:
        try:
            dumped = as_dict(message)
        except TypeError:
            raise RolecheckUsageError(
                f"message {position} is a {type(message).__name__}; messages must be dicts "
                "like {'role': 'user', 'content': '...'} (or openai message objects)"
            ) from None
        # SDK objects dump every optional field as None; the API wants them absent.
        plain = {k: v for k, v in dumped.items() if v is not None or k == "content"}
    role = plain.get("role")
    if role not in MESSAGE_ROLES:
        raise RolecheckUsageError(
            f"message {position} has role {role!r}; use one of {sorted(MESSAGE_ROLES)}"
        )
    return plain


def check_json(value: Any, what: str) -> None:
    """Refuse values that cannot be sent and recorded as JSON."""
    try:
        json.dumps(thaw(value))
    except (TypeError, ValueError) as exc:
        raise RolecheckUsageError(
            f"{what} must be JSON values (str, number, bool, None, lists, dicts), so the "
            f"request can be sent and recorded; {exc}"
        ) from None


def check_variant_args(messages: Any, params: Any, label: Any) -> None:
    """The shape checks of a Variant's messages, parameters and label."""
    if isinstance(messages, str | bytes | Mapping) or not isinstance(messages, Iterable):
        raise RolecheckUsageError(
            "messages must be a list of message dicts like "
            f"[{{'role': 'user', 'content': '...'}}], got {type(messages).__name__}"
        )
    if not isinstance(params, Mapping):
        raise RolecheckUsageError(f"params must be a mapping, got {type(params).__name__}")
    if "messages" in params:
        raise RolecheckUsageError(
            "'messages' cannot be a request parameter of a Variant; pass the messages as the "
            "first argument: Variant.from_messages(messages, **params)"
        )
    check_label(label)


def check_label(label: Any) -> None:
    """``None`` (use the default) or a non-empty string."""
    if label is not None and (not isinstance(label, str) or not label.strip()):
        raise RolecheckUsageError(f"label must be a non-empty string, got {label!r}")


def check_text(text: Any, name: str) -> None:
    if not isinstance(text, str):
        raise RolecheckUsageError(f"{name} must be a string, got {type(text).__name__}")


# --------------------------------------------------------------------------- instruction


def instruction_index(messages: Sequence[Mapping[str, Any]]) -> int | None:
    """Index of the first system/developer message, or None."""
    return next((i for i, m in enumerate(messages) if m.get("role") in INSTRUCTION_ROLES), None)


def default_label(messages: Sequence[Mapping[str, Any]], params: Mapping[str, Any]) -> str:
    """The instruction message's role, ``instructions``, or ``no-instruction``."""
    index = instruction_index(messages)
    if index is None:
        return INSTRUCTIONS if INSTRUCTIONS in params else "no-instruction"
    return str(messages[index]["role"])


def placed_instruction(
    messages: Sequence[Mapping[str, Any]], params: Mapping[str, Any]
) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    """Messages and params with an ``instructions`` parameter put back as a first message.

    The message's role is ``system``; the caller gives it the role it wants. Without
    such a parameter (or with an instruction message as well) nothing moves.
    """
    plain, rest = [thaw(m) for m in messages], thaw(params)
    if instruction_index(plain) is None and isinstance(rest.get(INSTRUCTIONS), str):
        plain.insert(0, {"role": "system", "content": rest.pop(INSTRUCTIONS)})
    return plain, rest


def edit_placed_instruction(
    messages: Sequence[Mapping[str, Any]], params: Mapping[str, Any], edit: Callable[[str], str]
) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    """:func:`edit_instruction`, or the edit of an ``instructions`` parameter if that is where
    the instruction is."""
    if instruction_index(messages) is None and isinstance(params.get(INSTRUCTIONS), str):
        return [thaw(m) for m in messages], {
            **thaw(params),
            INSTRUCTIONS: edit(params[INSTRUCTIONS]),
        }
    return edit_instruction(messages, edit), thaw(params)


def checked_instruction_index(
    messages: Sequence[Mapping[str, Any]], index: int | None, label: str
) -> int:
    """``index`` (default: the first instruction message), checked to point at one."""
    if index is None:
        found = instruction_index(messages)
        if found is None:
            roles = [m.get("role") for m in messages]
            raise RolecheckUsageError(
                f"variant {label!r} has no instruction message to swap (roles: "
                f"{roles}); start the messages with {{'role': 'system', 'content': ...}} "
                "or add one with with_instruction(text)"
            )
        return found
    if not isinstance(index, int) or not -len(messages) <= index < len(messages):
        raise RolecheckUsageError(f"index {index!r} is out of range for {len(messages)} messages")
    index %= len(messages)
    role = messages[index].get("role")
    if role not in INSTRUCTION_ROLES:
        raise RolecheckUsageError(
            f"message {index} has role {role!r}; with_role() changes a system or "
            "developer message, pass the index of one"
        )
    return index


def edit_instruction(
    messages: Sequence[Mapping[str, Any]], edit: Callable[[str], str]
) -> list[dict[str, Any]]:
    """Messages with ``edit(old_text) -> new_text`` applied to the instruction.

    A system message is added in front when there is no instruction (``edit("")``).
    """
    plain = [thaw(m) for m in messages]
    index = instruction_index(plain)
    if index is None:
        plain.insert(0, {"role": "system", "content": edit("")})
    else:
        old = text_of(plain[index].get("content"))
        plain[index] = {**plain[index], "content": edit(old)}
    return plain


def merge_into_user(
    messages: Sequence[Mapping[str, Any]], index: int, separator: str, label: str
) -> list[dict[str, Any]]:
    """Remove instruction message ``index``; prefix its text to the next user message."""
    plain = [thaw(m) for m in messages]
    target = next((k for k in range(index + 1, len(plain)) if plain[k]["role"] == "user"), None)
    if target is None:
        raise RolecheckUsageError(
            f"variant {label!r} has no user message after the instruction "
            f"(message {index}) to merge it into; add a user message, or use "
            "with_role('system') / with_role('developer')"
        )
    text = text_of(plain[index].get("content"))
    plain[target] = {
        **plain[target],
        "content": prefix_content(plain[target].get("content"), text, separator),
    }
    del plain[index]
    return plain


# --------------------------------------------------------------------------- preamble


def preamble_lines(
    knowledge_cutoff: str | _dt.date | None,
    current_date: str | _dt.date | None,
    lines: Mapping[str, str] | None,
    position: PreamblePosition,
) -> tuple[str, str]:
    """The ``Key: value`` preamble text and its label tag (``cutoff+date+...``)."""
    if position not in ("start", "after-first-line"):
        raise RolecheckUsageError(
            f"position must be 'start' or 'after-first-line', got {position!r}"
        )
    entries: list[tuple[str, str, str]] = []  # (key, value, label tag)
    if knowledge_cutoff is not None:
        entries.append(("Knowledge cutoff", _cutoff_text(knowledge_cutoff), "cutoff"))
    if current_date is not None:
        entries.append(("Current date", _date_text(current_date), "date"))
    for key, value in (lines or {}).items():
        if not isinstance(key, str) or not key.strip() or ":" in key or "\n" in key:
            raise RolecheckUsageError(
                f"preamble keys must be single-line strings without ':', got {key!r}"
            )
        if not isinstance(value, str):
            raise RolecheckUsageError(
                f"preamble value for {key!r} must be a string, got {type(value).__name__}"
            )
        entries.append((key, value, slug(key)))
    if not entries:
        raise RolecheckUsageError(
            "with_preamble() needs at least one of knowledge_cutoff=, current_date=, lines="
        )
    for key, value, _ in entries:
        if "\n" in value or "\r" in value:
            raise RolecheckUsageError(f"preamble value for {key!r} must be a single line")
    text = "\n".join(f"{key}: {value}" for key, value, _ in entries)
    return text, "+".join(tag for _, _, tag in entries)


def insert_preamble(
    instruction: str, preamble: str, position: PreamblePosition, separator: str
) -> str:
    """The instruction with the preamble at its start or after its first line."""
    if position == "start":
        return join(preamble, instruction, separator)
    first, newline, rest = instruction.partition("\n")
    if not first:
        return join(preamble, rest, separator)
    return f"{first}\n{join(preamble, rest, separator) if newline else preamble}"


def _date_text(value: str | _dt.date) -> str:
    if isinstance(value, _dt.datetime):
        return value.date().isoformat()
    if isinstance(value, _dt.date):
        return value.isoformat()
    if isinstance(value, str) and value.strip():
        return value
    raise RolecheckUsageError(
        f"current_date must be a datetime.date or a non-empty string like '2024-07-10', "
        f"got {value!r}"
    )


def _cutoff_text(value: str | _dt.date) -> str:
    if isinstance(value, _dt.date):
        return f"{value.year:04d}-{value.month:02d}"
    if isinstance(value, str) and value.strip():
        return value
    raise RolecheckUsageError(
        f"knowledge_cutoff must be a datetime.date or a non-empty string like '2023-10', "
        f"got {value!r}"
    )
