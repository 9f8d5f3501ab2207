"""Prompt variants: immutable messages + request parameters with one-line derivations (pure).

A :class:`Variant` is what one arm of a comparison sends: the chat messages and the
request parameters (``temperature``, ``tools``, ...), plus a short label used in
reports and cassette names. Derivation helpers return new variants that change
exactly one thing, the way teams edit production prompts::

    base = Variant.from_messages(messages, tools=TOOLS, temperature=0.7)
    base, base.tools_in_system_prompt()          # tools via the API vs in the prompt
    base, base.with_preamble(current_date="2024-07-10")     # with vs without a date line
    developer, system = Variant.for_roles(messages)          # same prompt, two roles

Variants are deep-frozen (mappings become read-only proxies, lists become tuples),
so a variant shared between tests cannot be changed by one of them;
:meth:`Variant.request` returns fresh plain dicts and lists for the SDK.
"""

from __future__ import annotations

import datetime as _dt
import json
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any, Final, Literal

from ..core.jsonish import as_dict
from ..errors import RolecheckUsageError
from .tools import PropertyOrder, normalize_tool, render_tools_namespace

__all__ = ["INSTRUCTION_ROLES", "ROLE_CHOICES", "Variant"]

INSTRUCTION_ROLES: Final[tuple[str, ...]] = ("system", "developer")
"""Roles whose message carries the instruction (the first such message is used)."""

ROLE_CHOICES: Final[tuple[str, ...]] = ("system", "developer", "user-prefixed")
"""Roles :meth:`Variant.with_role` accepts; ``user-prefixed`` merges the instruction
into the first user message after it."""

_MESSAGE_ROLES: Final = frozenset({"system", "developer", "user", "assistant", "tool", "function"})
# Request parameters that only make sense while ``tools`` is set; the API rejects them
# without tools, so removing the tools removes them too.
_TOOL_PARAMS: Final = ("tools", "tool_choice", "parallel_tool_calls")
_LABEL_UNSAFE = re.compile(r"[^A-Za-z0-9._=-]+")


def _freeze(value: Any) -> Any:
    if isinstance(value, Mapping):
        return MappingProxyType({key: _freeze(item) for key, item in value.items()})
    if isinstance(value, list | tuple):
        return tuple(_freeze(item) for item in value)
    return value


def _thaw(value: Any) -> Any:
    if isinstance(value, Mapping):
        return {key: _thaw(item) for key, item in value.items()}
    if isinstance(value, tuple | list):
        return [_thaw(item) for item in value]
    return value


def _slug(text: str, limit: int = 24) -> str:
    return _LABEL_UNSAFE.sub("-", text.strip().lower()).strip("-")[:limit] or "x"


def _text_of(content: Any) -> str:
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


def _join(first: str, second: str, separator: str) -> str:
    if not first:
        return second
    if not second:
        return first
    return f"{first}{separator}{second}"


def _prefix_content(content: Any, prefix: str, separator: str) -> Any:
    """Put ``prefix`` in front of a message content (string or list of parts)."""
    if content is None or isinstance(content, str):
        return _join(prefix, content or "", separator)
    parts = [_thaw(part) for part in content]
    if parts and isinstance(parts[0], dict) and parts[0].get("type") == "text":
        parts[0] = {**parts[0], "text": _join(prefix, str(parts[0].get("text", "")), separator)}
    else:
        parts.insert(0, {"type": "text", "text": prefix + separator})
    return parts


def _plain_message(message: Any, position: int) -> dict[str, Any]:
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
    if role not in _MESSAGE_ROLES:
        raise RolecheckUsageError(
            f"message {position} has role {role!r}; use one of {sorted(_MESSAGE_ROLES)}"
        )
    return plain


def _check_json(value: Any, what: str) -> None:
    try:
        json.dumps(_thaw(value))
    except (TypeError, ValueError) as exc:
        raise RolecheckUsageError(
            f"{what} must be JSON values (str, number, bool, None, lists, dicts), so the "
            f"request can be sent and recorded; {exc}"
        ) from None


def _validate_variant(messages: Any, params: Any, label: Any) -> None:
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
    if label is not None and (not isinstance(label, str) or not label.strip()):
        raise RolecheckUsageError(f"label must be a non-empty string, got {label!r}")


@dataclass(frozen=True, repr=False)
class Variant:
    """Immutable chat request: messages, request parameters and a short label.

    Parameters
    ----------
    messages : sequence of mapping
        Chat messages (``{"role": ..., "content": ...}``). Deep-frozen on creation.
    params : mapping, optional
        Request parameters for ``client.chat.completions.create`` other than
        ``messages`` (``temperature``, ``max_tokens``, ``tools``, ...). Deep-frozen.
    label : str, optional
        Short name used in reports and cassette names. Default: the role of the
        instruction message (``"system"``/``"developer"``), else ``"no-instruction"``.

    Notes
    -----
    Derivation helpers append a tag to the label (``"system+date"``,
    ``"developer+tools-in-prompt"``); every helper takes ``label=`` to override it.
    """

    messages: tuple[Mapping[str, Any], ...]
    params: Mapping[str, Any] = field(default_factory=dict)
    label: str = ""

    def __post_init__(self) -> None:
        _validate_variant(self.messages, self.params, self.label or None)
        plain = [_plain_message(m, i) for i, m in enumerate(self.messages)]
        if not plain:
            raise RolecheckUsageError(
                "a Variant needs at least one message; pass e.g. "
                "[{'role': 'user', 'content': '...'}]"
            )
        _check_json(plain, "messages")
        _check_json(self.params, "request parameters")
        object.__setattr__(self, "messages", _freeze(plain))
        object.__setattr__(self, "params", _freeze(self.params))
        if not self.label:
            object.__setattr__(self, "label", _default_label(self.messages))

    # -- construction -------------------------------------------------------------------

    @classmethod
    def from_messages(
        cls, messages: Sequence[Mapping[str, Any]], /, *, label: str | None = None, **params: Any
    ) -> Variant:
        """Build a variant from chat messages and request parameters.

        Parameters
        ----------
        messages : sequence of mapping
            Chat messages; openai message objects are accepted too.
        label : str, optional
            Report/cassette label; default from the instruction message's role.
        **params
            Request parameters (``temperature=0.7``, ``tools=[...]``, ...).

        Returns
        -------
        Variant

        Raises
        ------
        RolecheckUsageError
            If there are no messages, a role is unknown, ``messages`` appears in
            ``params``, or a value is not JSON.
        """
        _validate_variant(messages, params, label)
        return cls(tuple(messages), params, label or "")

    @classmethod
    def for_roles(
        cls,
        messages: Sequence[Mapping[str, Any]],
        /,
        roles: Sequence[str] = ("developer", "system"),
        *,
        index: int | None = None,
        **params: Any,
    ) -> tuple[Variant, ...]:
        """One variant per instruction role, otherwise identical.

        Parameters
        ----------
        messages : sequence of mapping
            Messages with an instruction (system or developer) message.
        roles : sequence of str, default ("developer", "system")
            Roles to give the instruction, from :data:`ROLE_CHOICES`; distinct.
        index : int, optional
            Index of the instruction message (default: first system/developer one).
        **params
            Request parameters shared by every variant.

        Returns
        -------
        tuple of Variant
            In the order of ``roles``, labelled by role.

        Raises
        ------
        RolecheckUsageError
            If ``roles`` is empty or has duplicates, a role is unknown, or there is no
            instruction message.

        Examples
        --------
        >>> developer, system = Variant.for_roles(
        ...     [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Hi"}]
        ... )
        >>> developer.label, system.messages[0]["role"]
        ('developer', 'system')
        """
        if isinstance(roles, str) or len(roles) == 0 or len(set(roles)) != len(roles):
            raise RolecheckUsageError(
                f"roles must be a non-empty sequence of distinct roles from {ROLE_CHOICES}, "
                f"got {roles!r}"
            )
        base = cls.from_messages(messages, **params)
        return tuple(base.with_role(role, index=index) for role in roles)

    # -- output ------------------------------------------------------------------------

    def request(self, **defaults: Any) -> dict[str, Any]:
        """Keyword arguments for ``client.chat.completions.create(**...)``.

        Parameters
        ----------
        **defaults
            Parameters used unless the variant sets them (``model=...``, ``seed=...``).

        Returns
        -------
        dict
            ``{"messages": [...], **defaults, **params}`` as fresh plain dicts and lists
            (no read-only types), safe to mutate and to serialise as JSON.

        Raises
        ------
        RolecheckUsageError
            If ``defaults`` contains ``messages``.
        """
        if "messages" in defaults:
            raise RolecheckUsageError(
                "request() defaults cannot contain 'messages'; the variant provides them"
            )
        return {
            "messages": _thaw(self.messages),
            **_thaw(_freeze(defaults)),
            **_thaw(self.params),
        }

    # -- inspection --------------------------------------------------------------------

    @property
    def instruction_index(self) -> int | None:
        """Index of the instruction message (first system/developer message), or None."""
        return _instruction_index(self.messages)

    @property
    def instruction(self) -> str | None:
        """Text of the instruction message, or None when there is none."""
        index = self.instruction_index
        return None if index is None else _text_of(self.messages[index].get("content"))

    @property
    def tool_names(self) -> tuple[str, ...]:
        """Names of the function tools passed via the API (``params["tools"]``)."""
        return tuple(t["function"]["name"] for t in self._tools())

    # -- derivations -------------------------------------------------------------------

    def with_role(
        self,
        role: str,
        *,
        index: int | None = None,
        separator: str = "\n\n",
        label: str | None = None,
    ) -> Variant:
        """Give the instruction message another role.

        Parameters
        ----------
        role : {"system", "developer", "user-prefixed"}
            New role. ``"user-prefixed"`` removes the instruction message and puts its
            text, followed by ``separator``, in front of the first user message after it.
        index : int, optional
            Index of the instruction message; default the first system/developer one.
        separator : str, default "\\n\\n"
            Between instruction and user text for ``"user-prefixed"``.
        label : str, optional
            Label of the new variant; default replaces the role in this label.

        Returns
        -------
        Variant

        Raises
        ------
        RolecheckUsageError
            If ``role`` is unknown, there is no instruction message (or ``index`` does not
            point at one), or ``"user-prefixed"`` finds no user message after it.
        """
        if role not in ROLE_CHOICES:
            raise RolecheckUsageError(f"unknown role {role!r}; use one of {ROLE_CHOICES}")
        i = self._checked_instruction_index(index)
        messages = [_thaw(m) for m in self.messages]
        if role in INSTRUCTION_ROLES:
            messages[i] = {**messages[i], "role": role}
        else:
            j = next(
                (k for k in range(i + 1, len(messages)) if messages[k]["role"] == "user"), None
            )
            if j is None:
                raise RolecheckUsageError(
                    f"variant {self.label!r} has no user message after the instruction "
                    f"(message {i}) to merge it into; add a user message, or use "
                    "with_role('system') / with_role('developer')"
                )
            text = _text_of(messages[i].get("content"))
            messages[j] = {
                **messages[j],
                "content": _prefix_content(messages[j].get("content"), text, separator),
            }
            del messages[i]
        parts = self.label.split("+")
        if parts[0] in ROLE_CHOICES:
            new_label = "+".join([role, *parts[1:]])
        else:
            new_label = f"{self.label}+{role}"
        return self._derive(messages=messages, label=label or new_label)

    def with_instruction(self, text: str, *, label: str | None = None) -> Variant:
        """Replace the instruction text (a system message is added if there is none).

        Parameters
        ----------
        text : str
            New instruction.
        label : str, optional
            Default: this label + ``"+instruction"``.

        Returns
        -------
        Variant
        """
        _check_text(text, "text")
        messages = self._messages_with_instruction(lambda _old: text)
        return self._derive(messages=messages, tag="instruction", label=label)

    def append_instruction(
        self, text: str, *, separator: str = "\n\n", label: str | None = None
    ) -> Variant:
        """Append text to the instruction (a system message is added if there is none).

        Parameters
        ----------
        text : str
            Text to append.
        separator : str, default "\\n\\n"
            Between the current instruction and ``text``.
        label : str, optional
            Default: this label + ``"+append"``.

        Returns
        -------
        Variant
        """
        _check_text(text, "text")
        messages = self._messages_with_instruction(lambda old: _join(old, text, separator))
        return self._derive(messages=messages, tag="append", label=label)

    def with_preamble(
        self,
        *,
        knowledge_cutoff: str | _dt.date | None = None,
        current_date: str | _dt.date | None = None,
        lines: Mapping[str, str] | None = None,
        position: Literal["start", "after-first-line"] = "start",
        separator: str = "\n",
        label: str | None = None,
    ) -> Variant:
        """Add ``Key: value`` lines (knowledge cutoff, current date, ...) to the instruction.

        The lines come in the order of the production prompts: ``Knowledge cutoff``,
        ``Current date``, then ``lines`` in mapping order, e.g.
        ``"Knowledge cutoff: 2023-10\\nCurrent date: 2024-07-10"``. A system message is
        added if there is no instruction. The date is never read from the clock: pass
        it, so a recorded test sends the same prompt on every replay.

        Parameters
        ----------
        knowledge_cutoff : str or datetime.date, optional
            ``"2023-10"``; a date is shown as year-month.
        current_date : str or datetime.date, optional
            ``"2024-07-10"``; a date (or datetime) is shown in ISO format.
        lines : mapping of str to str, optional
            Further lines, e.g. ``{"Image input capabilities": "Enabled"}``.
        position : {"start", "after-first-line"}, default "start"
            Put the lines before the instruction, or after its first line (where
            ChatGPT's prompt has them, after "You are ChatGPT, ...").
        separator : str, default "\\n"
            Between the preamble and the instruction text.
        label : str, optional
            Default: this label + one tag per line (``"+cutoff"``, ``"+date"``, key slugs).

        Returns
        -------
        Variant

        Raises
        ------
        RolecheckUsageError
            If no line is given, a value spans lines, or ``position`` is unknown.
        """
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
            entries.append((key, value, _slug(key)))
        if not entries:
            raise RolecheckUsageError(
                "with_preamble() needs at least one of knowledge_cutoff=, current_date=, lines="
            )
        for key, value, _ in entries:
            if "\n" in value or "\r" in value:
                raise RolecheckUsageError(f"preamble value for {key!r} must be a single line")
        preamble = "\n".join(f"{key}: {value}" for key, value, _ in entries)

        def insert(old: str) -> str:
            if position == "start":
                return _join(preamble, old, separator)
            first, newline, rest = old.partition("\n")
            if not first:
                return _join(preamble, rest, separator)
            return f"{first}\n{_join(preamble, rest, separator) if newline else preamble}"

        messages = self._messages_with_instruction(insert)
        tag = "+".join(t for _, _, t in entries)
        return self._derive(messages=messages, tag=tag, label=label)

    def with_tools(
        self, tools: Sequence[Mapping[str, Any]], *, replace: bool = False, label: str | None = None
    ) -> Variant:
        """Pass (more) tools via the API.

        Parameters
        ----------
        tools : sequence of mapping
            Function tool definitions (API format or bare function mappings).
        replace : bool, default False
            Replace the current tools instead of adding to them.
        label : str, optional
            Default: this label + ``"+tools"``.

        Returns
        -------
        Variant

        Raises
        ------
        RolecheckUsageError
            If ``tools`` is empty or not a list, a tool is invalid, or names repeat.
        """
        if isinstance(tools, Mapping | str) or not isinstance(tools, Sequence) or not tools:
            raise RolecheckUsageError(
                "with_tools() takes a non-empty list of tool definitions; wrap a single tool "
                "in a list: with_tools([tool])"
            )
        new = [normalize_tool(_thaw(tool)) for tool in tools]
        combined = new if replace else [*(_thaw(t) for t in self._tools()), *new]
        names = [t["function"]["name"] for t in combined]
        duplicates = sorted({n for n in names if names.count(n) > 1})
        if duplicates:
            raise RolecheckUsageError(
                f"tool names must be unique, {duplicates} appear twice; use "
                "with_tools(..., replace=True) to replace the current tools"
            )
        return self._derive(params={**self.params, "tools": combined}, tag="tools", label=label)

    def without_tools(
        self, names: Sequence[str] | None = None, *, label: str | None = None
    ) -> Variant:
        """Remove tools passed via the API.

        Parameters
        ----------
        names : sequence of str, optional
            Tools to remove; default all of them. Removing the last tool also removes
            ``tool_choice`` and ``parallel_tool_calls``, which the API rejects without tools.
        label : str, optional
            Default: this label + ``"+no-tools"`` (or ``"+no-<name>"`` per name).

        Returns
        -------
        Variant

        Raises
        ------
        RolecheckUsageError
            If a name is not among the variant's tools.
        """
        params = dict(self.params)
        if names is None:
            for key in _TOOL_PARAMS:
                params.pop(key, None)
            return self._derive(params=params, tag="no-tools", label=label)
        if isinstance(names, str):
            names = [names]
        missing = [n for n in names if n not in self.tool_names]
        if missing:
            raise RolecheckUsageError(
                f"variant {self.label!r} has no tools named {missing}; its tools are "
                f"{list(self.tool_names)}"
            )
        kept = [t for t in self._tools() if t["function"]["name"] not in names]
        if kept:
            params["tools"] = kept
        else:
            for key in _TOOL_PARAMS:
                params.pop(key, None)
        tag = "+".join(f"no-{_slug(n)}" for n in names)
        return self._derive(params=params, tag=tag, label=label)

    def with_parallel_tool_calls(self, enabled: bool, *, label: str | None = None) -> Variant:
        """Set ``parallel_tool_calls``.

        Parameters
        ----------
        enabled : bool
            Whether the model may call several tools in one response.
        label : str, optional
            Default: this label + ``"+parallel"`` or ``"+no-parallel"``.

        Returns
        -------
        Variant
        """
        if not isinstance(enabled, bool):
            raise RolecheckUsageError(f"enabled must be True or False, got {enabled!r}")
        tag = "parallel" if enabled else "no-parallel"
        params = {**self.params, "parallel_tool_calls": enabled}
        return self._derive(params=params, tag=tag, label=label)

    def tools_in_system_prompt(
        self,
        *,
        multi_tool_use: bool = False,
        keep_api_tools: bool = False,
        blank_lines: bool = True,
        order: PropertyOrder = "schema",
        label: str | None = None,
    ) -> Variant:
        """Describe the API tools in the instruction, as ``# Tools ... namespace functions``.

        Appends :func:`render_tools_namespace` of ``params["tools"]`` to the instruction
        (a system message is added if there is none) and, unless ``keep_api_tools``,
        removes ``tools``, ``tool_choice`` and ``parallel_tool_calls`` from the request.

        Parameters
        ----------
        multi_tool_use : bool, default False
            Also describe the ``multi_tool_use.parallel`` wrapper.
        keep_api_tools : bool, default False
            Keep passing the tools via the API as well (the tools are then described
            twice: by the server and in the prompt).
        blank_lines, order
            Passed to :func:`render_tools_namespace`.
        label : str, optional
            Default: this label + ``"+tools-in-prompt"`` (``"+tools-in-prompt+api"`` with
            ``keep_api_tools``).

        Returns
        -------
        Variant

        Raises
        ------
        RolecheckUsageError
            If the variant has no tools, or a tool is not a function tool.

        Notes
        -----
        Without ``tools`` in the request the API returns no ``tool_calls``: the model can
        only answer in text. To compare *tool-call* behaviour with the tools also
        described in the prompt, use ``keep_api_tools=True``; the default suits text and
        logprob comparisons.
        """
        tools = [_thaw(t) for t in self._tools()]
        if not tools:
            raise RolecheckUsageError(
                f"variant {self.label!r} has no tools to move into the prompt; pass tools=[...] "
                "to Variant.from_messages() or call with_tools([...]) first"
            )
        separator = "\n\n" if blank_lines else "\n"

        def append(old: str) -> str:
            has_header = any(line.strip() == "# Tools" for line in old.splitlines())
            block = render_tools_namespace(
                tools,
                multi_tool_use=multi_tool_use,
                header=not has_header,
                blank_lines=blank_lines,
                order=order,
            )
            return _join(old, block, separator)

        messages = self._messages_with_instruction(append)
        params = dict(self.params)
        if not keep_api_tools:
            for key in _TOOL_PARAMS:
                params.pop(key, None)
        tag = "tools-in-prompt+api" if keep_api_tools else "tools-in-prompt"
        return self._derive(messages=messages, params=params, tag=tag, label=label)

    def with_params(self, *, label: str | None = None, **params: Any) -> Variant:
        """Set request parameters (override existing ones).

        Parameters
        ----------
        label : str, optional
            Default: this label + ``"+key=value"`` per scalar parameter (``"+key"`` else).
        **params
            Parameters, e.g. ``temperature=0.2``.

        Returns
        -------
        Variant

        Raises
        ------
        RolecheckUsageError
            If no parameter is given or ``messages`` is among them.
        """
        if not params:
            raise RolecheckUsageError("with_params() needs at least one parameter, e.g. seed=1")
        tags = [
            _slug(f"{k}={v}", 40) if isinstance(v, str | int | float | bool) else _slug(k)
            for k, v in params.items()
        ]
        return self._derive(params={**self.params, **params}, tag="+".join(tags), label=label)

    def without_params(self, *names: str, label: str | None = None) -> Variant:
        """Remove request parameters.

        Parameters
        ----------
        *names : str
            Parameters to remove.
        label : str, optional
            Default: this label + ``"+no-<name>"`` per name.

        Returns
        -------
        Variant

        Raises
        ------
        RolecheckUsageError
            If no name is given or a name is not set.
        """
        missing = [n for n in names if n not in self.params]
        if not names or missing:
            raise RolecheckUsageError(
                f"without_params() needs names of parameters this variant sets "
                f"({sorted(self.params)}), got {list(names)}"
            )
        params = {k: v for k, v in self.params.items() if k not in names}
        tag = "+".join(f"no-{_slug(n)}" for n in names)
        return self._derive(params=params, tag=tag, label=label)

    def with_label(self, label: str) -> Variant:
        """Return the same variant under another label."""
        return self._derive(label=label)

    # -- dunder ------------------------------------------------------------------------

    def __hash__(self) -> int:
        return hash((self.label, json.dumps(self.request(), sort_keys=True)))

    def __repr__(self) -> str:
        roles = ", ".join(str(m.get("role")) for m in self.messages)
        return f"Variant({self.label!r}, messages=[{roles}], params={sorted(self.params)})"

    # -- helpers -----------------------------------------------------------------------

    def _derive(
        self,
        *,
        messages: Sequence[Mapping[str, Any]] | None = None,
        params: Mapping[str, Any] | None = None,
        tag: str | None = None,
        label: str | None = None,
    ) -> Variant:
        if label is not None and (not isinstance(label, str) or not label.strip()):
            raise RolecheckUsageError(f"label must be a non-empty string, got {label!r}")
        new_label = label or (f"{self.label}+{tag}" if tag else self.label)
        return Variant(
            tuple(self.messages if messages is None else messages),
            self.params if params is None else params,
            new_label,
        )

    def _tools(self) -> list[Mapping[str, Any]]:
        tools = self.params.get("tools") or ()
        return [normalize_tool(_thaw(t)) for t in tools]

    def _checked_instruction_index(self, index: int | None) -> int:
        if index is None:
            found = self.instruction_index
            if found is None:
                roles = [m.get("role") for m in self.messages]
                raise RolecheckUsageError(
                    f"variant {self.label!r} has no instruction message to swap (roles: "
                    f"{roles}); start the messages with {{'role': 'system', 'content': ...}} "
                    "or add one with with_instruction(text)"
                )
            return found
        if not isinstance(index, int) or not -len(self.messages) <= index < len(self.messages):
            raise RolecheckUsageError(
                f"index {index!r} is out of range for {len(self.messages)} messages"
            )
        index %= len(self.messages)
        role = self.messages[index].get("role")
        if role not in INSTRUCTION_ROLES:
            raise RolecheckUsageError(
                f"message {index} has role {role!r}; with_role() changes a system or "
                "developer message, pass the index of one"
            )
        return index

    def _messages_with_instruction(self, edit: Any) -> list[dict[str, Any]]:
        """Messages with ``edit(old_text) -> new_text`` applied to the instruction."""
        messages = [_thaw(m) for m in self.messages]
        index = self.instruction_index
        if index is None:
            messages.insert(0, {"role": "system", "content": edit("")})
        else:
            old = _text_of(messages[index].get("content"))
            messages[index] = {**messages[index], "content": edit(old)}
        return messages


def _instruction_index(messages: Sequence[Mapping[str, Any]]) -> int | None:
    return next((i for i, m in enumerate(messages) if m.get("role") in INSTRUCTION_ROLES), None)


def _default_label(messages: Sequence[Mapping[str, Any]]) -> str:
    index = _instruction_index(messages)
    return "no-instruction" if index is None else str(messages[index]["role"])


def _check_text(text: Any, name: str) -> None:
    if not isinstance(text, str):
        raise RolecheckUsageError(f"{name} must be a string, got {type(text).__name__}")


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
