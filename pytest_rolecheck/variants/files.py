"""Variant files: one chat request (messages + parameters) per YAML file.

Used by ``rolecheck compare --variant-a A.yaml --variant-b B.yaml`` and by tests
that keep their prompts next to the code (``load_variant(path)``).

Schema (format version 1)
-------------------------
A mapping with these keys; ``messages`` is required unless ``extends`` is given::

    label: developer                # optional; report/cassette label
    extends: base.yaml              # optional; start from another variant file
                                    #   (path relative to this file)
    messages:                       # list of chat messages
      - role: developer             # system | developer | user | assistant | tool
        content: You are a helpful AI assistant
      - role: user
        content: Produce two stanza rock song lyrics for 'Rockin with my Kitty Cat'
    params:                         # optional request parameters, sent as given
      temperature: 0                #   (temperature, top_p, max_tokens, top_logprobs,
      tools: [...]                  #    seed, tools, tool_choice, model, ...)
    derive:                         # optional derivations, applied in order
      - role: system                # Variant.with_role
      - instruction: New text       # Variant.with_instruction
      - append_instruction: More    # Variant.append_instruction
      - preamble:                   # Variant.with_preamble
          knowledge_cutoff: 2023-10
          current_date: 2024-07-10
          lines: {Personality: v2}
      - tools: [...]                # Variant.with_tools
      - without_tools: true         # Variant.without_tools (or a list of names)
      - parallel_tool_calls: false  # Variant.with_parallel_tool_calls
      - tools_in_system_prompt: true   # or {multi_tool_use: true, keep_api_tools: false}
      - params: {seed: 1}           # Variant.with_params

With ``extends``, the other file's variant is the starting point: ``messages``
(if given) replace its messages, ``params`` are merged over its parameters, then
``derive`` and ``label`` apply. Request parameters given on the command line
(``--max-tokens`` ...) are defaults: a variant file's ``params`` win.

Every problem is reported as a
:class:`~pytest_rolecheck.errors.RolecheckUsageError` naming the file, the key
(``messages[1].role``, ``derive[0].preamble``) and what was expected.
"""

from __future__ import annotations

import datetime as _dt
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any, Final

from ..errors import RolecheckUsageError
from .messages import MESSAGE_ROLES
from .variant import Variant

__all__ = ["DERIVATIONS", "TOP_LEVEL_KEYS", "load_variant", "variant_from_mapping"]

TOP_LEVEL_KEYS: Final = ("label", "extends", "messages", "params", "derive")
_MAX_EXTENDS: Final = 16


class _Where:
    """Names the place of a value in a file for error messages."""

    def __init__(self, source: str) -> None:
        self.source = source

    def error(
        self, key: str, expected: str, got: Any = None, *, show_got: bool = True
    ) -> Exception:
        got_text = f"; got {_describe(got)}" if show_got else ""
        where = f"key '{key}'" if key else "the top level"
        return RolecheckUsageError(
            f"{self.source}: {where}: expected {expected}{got_text}. Fix the variant file "
            f"(schema: see `rolecheck compare --help`, or docs/variant-files.md)."
        )


def _describe(value: Any) -> str:
    if value is None:
        return "nothing (null / missing)"
    if isinstance(value, Mapping):
        return "a mapping"
    if isinstance(value, list | tuple):
        return "a list"
    text = repr(value)
    return f"{type(value).__name__} {text if len(text) <= 60 else text[:57] + '...'}"


# --------------------------------------------------------------------------- validation


def _check_messages(value: Any, where: _Where) -> list[dict[str, Any]]:
    if not isinstance(value, list) or not value:
        raise where.error("messages", "a non-empty list of {role: ..., content: ...}", value)
    checked = []
    for i, message in enumerate(value):
        key = f"messages[{i}]"
        if not isinstance(message, Mapping):
            raise where.error(key, "a mapping with 'role' and 'content'", message)
        role = message.get("role")
        if role not in MESSAGE_ROLES:
            raise where.error(f"{key}.role", f"one of {', '.join(MESSAGE_ROLES)}", role)
        content = message.get("content")
        if "content" not in message and not message.get("tool_calls"):
            raise where.error(f"{key}.content", "the message text (a string)", None)
        if content is not None and not isinstance(content, str | list):
            raise where.error(f"{key}.content", "a string (or a list of content parts)", content)
        checked.append({str(k): _plain(v) for k, v in message.items()})
    return checked


def _check_params(value: Any, where: _Where, key: str = "params") -> dict[str, Any]:
    if not isinstance(value, Mapping):
        raise where.error(key, "a mapping of request parameters (e.g. temperature: 0)", value)
    if "messages" in value:
        raise where.error(
            f"{key}.messages",
            "messages at the top level of the file, not under params",
            None,
            show_got=False,
        )
    for name in value:
        if not isinstance(name, str):
            raise where.error(key, "parameter names that are strings", name)
    return {str(k): _plain(v) for k, v in value.items()}


def _plain(value: Any) -> Any:
    """YAML values -> JSON values (dates become ISO strings)."""
    if isinstance(value, _dt.datetime | _dt.date):
        return value.isoformat()
    if isinstance(value, Mapping):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    return value


def _text(value: Any, where: _Where, key: str) -> str:
    if not isinstance(value, str) or not value.strip():
        raise where.error(key, "a non-empty string", value)
    return value


def _date_like(value: Any, where: _Where, key: str) -> str | _dt.date | None:
    if value is None:
        return None
    if isinstance(value, _dt.date | str):
        return value
    raise where.error(key, "a date (2024-07-10) or a string (2023-10)", value)


# --------------------------------------------------------------------------- derivations


def _derive_role(v: Variant, arg: Any, where: _Where, key: str) -> Variant:
    from . import ROLE_CHOICES

    if arg not in ROLE_CHOICES:
        raise where.error(key, f"one of {', '.join(ROLE_CHOICES)}", arg)
    return v.with_role(str(arg))


def _derive_instruction(v: Variant, arg: Any, where: _Where, key: str) -> Variant:
    return v.with_instruction(_text(arg, where, key))


def _derive_append(v: Variant, arg: Any, where: _Where, key: str) -> Variant:
    return v.append_instruction(_text(arg, where, key))


def _derive_preamble(v: Variant, arg: Any, where: _Where, key: str) -> Variant:
    allowed = ("knowledge_cutoff", "current_date", "lines")
    if not isinstance(arg, Mapping) or not arg or set(arg) - set(allowed):
        raise where.error(key, f"a mapping with some of {', '.join(allowed)}", arg)
    lines = arg.get("lines")
    if lines is not None and (
        not isinstance(lines, Mapping) or not all(isinstance(x, str) for x in lines)
    ):
        raise where.error(f"{key}.lines", "a mapping of line name to text", lines)
    return v.with_preamble(
        knowledge_cutoff=_date_like(arg.get("knowledge_cutoff"), where, f"{key}.knowledge_cutoff"),
        current_date=_date_like(arg.get("current_date"), where, f"{key}.current_date"),
        lines=None if lines is None else {str(k): str(_plain(x)) for k, x in lines.items()},
    )


def _derive_tools(v: Variant, arg: Any, where: _Where, key: str) -> Variant:
    if not isinstance(arg, list) or not arg:
        raise where.error(key, "a non-empty list of tool definitions", arg)
    return v.with_tools(_plain(arg))


def _derive_without_tools(v: Variant, arg: Any, where: _Where, key: str) -> Variant:
    if arg is True:
        return v.without_tools()
    if isinstance(arg, list) and arg and all(isinstance(x, str) for x in arg):
        return v.without_tools(arg)
    raise where.error(key, "true (remove every tool) or a list of tool names", arg)


def _derive_parallel(v: Variant, arg: Any, where: _Where, key: str) -> Variant:
    if not isinstance(arg, bool):
        raise where.error(key, "true or false", arg)
    return v.with_parallel_tool_calls(arg)


def _derive_tools_in_prompt(v: Variant, arg: Any, where: _Where, key: str) -> Variant:
    if arg is True:
        return v.tools_in_system_prompt()
    allowed = ("multi_tool_use", "keep_api_tools")
    if (
        isinstance(arg, Mapping)
        and not set(arg) - set(allowed)
        and all(isinstance(x, bool) for x in arg.values())
    ):
        return v.tools_in_system_prompt(
            multi_tool_use=bool(arg.get("multi_tool_use", False)),
            keep_api_tools=bool(arg.get("keep_api_tools", False)),
        )
    raise where.error(key, f"true, or a mapping of {' / '.join(allowed)} to true or false", arg)


def _derive_params(v: Variant, arg: Any, where: _Where, key: str) -> Variant:
    params = _check_params(arg, where, key)
    if not params:
        raise where.error(key, "at least one parameter", arg)
    return v.with_params(**params)


Derivation = Callable[[Variant, Any, _Where, str], Variant]

#: Derivation names accepted under ``derive:`` and the Variant method each one calls.
DERIVATIONS: Final[dict[str, Derivation]] = {
    "role": _derive_role,
    "instruction": _derive_instruction,
    "append_instruction": _derive_append,
    "preamble": _derive_preamble,
    "tools": _derive_tools,
    "without_tools": _derive_without_tools,
    "parallel_tool_calls": _derive_parallel,
    "tools_in_system_prompt": _derive_tools_in_prompt,
    "params": _derive_params,
}


def _apply_derivations(variant: Variant, value: Any, where: _Where) -> Variant:
    if not isinstance(value, list):
        raise where.error("derive", "a list of one-key mappings, e.g. [{role: system}]", value)
    for i, item in enumerate(value):
        key = f"derive[{i}]"
        if not isinstance(item, Mapping) or len(item) != 1:
            raise where.error(key, f"a mapping with exactly one of {', '.join(DERIVATIONS)}", item)
        ((name, arg),) = item.items()
        fn = DERIVATIONS.get(name)
        if fn is None:
            raise where.error(key, f"one of {', '.join(DERIVATIONS)}", name)
        try:
            variant = fn(variant, arg, where, f"{key}.{name}")
        except RolecheckUsageError as exc:
            if str(exc).startswith(where.source):
                raise
            raise RolecheckUsageError(f"{where.source}: key '{key}.{name}': {exc}") from None
    return variant


# --------------------------------------------------------------------------- loading


def variant_from_mapping(
    data: Any,
    *,
    source: str = "<variant>",
    base_dir: Path | None = None,
    _seen: tuple[Path, ...] = (),
) -> Variant:
    """Build a :class:`~pytest_rolecheck.variants.Variant` from parsed YAML/JSON data.

    Parameters
    ----------
    data : mapping
        The document (see the module docstring for the schema).
    source : str, default "<variant>"
        Name used in error messages (the file path).
    base_dir : pathlib.Path, optional
        Directory that ``extends`` paths are relative to (default: the current
        directory).

    Returns
    -------
    Variant

    Raises
    ------
    RolecheckUsageError
        The data do not follow the schema; the message names ``source``, the
        key and what was expected.
    """
    where = _Where(source)
    if not isinstance(data, Mapping):
        raise where.error("", "a mapping with at least 'messages'", data)
    unknown = [k for k in data if k not in TOP_LEVEL_KEYS]
    if unknown:
        raise where.error(
            str(unknown[0]), f"only the keys {', '.join(TOP_LEVEL_KEYS)}", None, show_got=False
        )
    base: Variant | None = None
    if "extends" in data:
        target = _text(data["extends"], where, "extends")
        path = (base_dir or Path.cwd()) / target
        base = _load(path, _seen, where)
    if "messages" not in data and base is None:
        raise where.error("messages", "a non-empty list of {role: ..., content: ...}", None)
    params = _check_params(data["params"], where) if "params" in data else {}
    label = _text(data["label"], where, "label") if "label" in data else None
    try:
        if base is None:
            messages = _check_messages(data["messages"], where)
            variant = Variant.from_messages(messages, **params)
        else:
            messages = (
                _check_messages(data["messages"], where)
                if "messages" in data
                else [dict(m) for m in base.request()["messages"]]
            )
            merged = {**base.request(), **params}
            merged.pop("messages")
            variant = Variant.from_messages(messages, label=base.label, **merged)
    except RolecheckUsageError as exc:
        if str(exc).startswith(source):
            raise
        raise RolecheckUsageError(f"{source}: keys 'messages'/'params': {exc}") from None
    if "derive" in data:
        variant = _apply_derivations(variant, data["derive"], where)
    if label is not None:
        variant = variant.with_label(label)
    return variant


def _load(path: Path, seen: Sequence[Path], where: _Where | None) -> Variant:
    resolved = path.resolve()
    if resolved in seen or len(seen) >= _MAX_EXTENDS:
        chain = " -> ".join(str(p) for p in (*seen, resolved))
        raise RolecheckUsageError(
            f"{path}: 'extends' forms a cycle ({chain}); make one file the base of the other, "
            "not both."
        )
    if not path.is_file():
        if where is not None:
            raise where.error(
                "extends", f"an existing variant file (no file at {path})", None, show_got=False
            )
        raise RolecheckUsageError(
            f"no variant file at {path}; check the path (relative paths are relative to the "
            "current directory)."
        )
    import yaml

    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise RolecheckUsageError(f"{path}: cannot read the variant file ({exc}).") from None
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        at = f":{mark.line + 1}:{mark.column + 1}" if mark is not None else ""
        problem = getattr(exc, "problem", None) or str(exc)
        raise RolecheckUsageError(
            f"{path}{at}: not valid YAML ({problem}); fix the syntax (indentation, quotes, "
            "colons inside unquoted text)."
        ) from None
    return variant_from_mapping(
        data, source=str(path), base_dir=path.parent, _seen=(*seen, resolved)
    )


def load_variant(path: str | Path) -> Variant:
    """Load a variant file (YAML; JSON is valid YAML too).

    Parameters
    ----------
    path : str or pathlib.Path
        The file.

    Returns
    -------
    Variant
        Labelled by ``label``, else by the role of its instruction message.

    Raises
    ------
    RolecheckUsageError
        Missing or unreadable file, invalid YAML (with line and column), or a
        document that does not follow the schema (with the key and what was
        expected).
    """
    return _load(Path(path), (), None)
