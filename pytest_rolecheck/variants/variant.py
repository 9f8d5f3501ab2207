"""The :class:`Variant` dataclass: one arm's chat request and its derivations (pure)."""

from __future__ import annotations

import datetime as _dt
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Final

from ..errors import RolecheckUsageError
from .messages import (
    INSTRUCTION_ROLES,
    INSTRUCTIONS,
    ROLE_CHOICES,
    PreamblePosition,
    check_json,
    check_label,
    check_text,
    check_variant_args,
    checked_instruction_index,
    default_label,
    edit_placed_instruction,
    freeze,
    insert_preamble,
    instruction_index,
    join,
    merge_into_user,
    placed_instruction,
    plain_message,
    preamble_lines,
    slug,
    text_of,
    thaw,
)
from .tools import PropertyOrder, combined_tools, normalize_tool, render_tools_namespace

__all__ = ["Variant"]

# Request parameters that only make sense while ``tools`` is set; the API rejects them
# without tools, so removing the tools removes them too.
_TOOL_PARAMS: Final = ("tools", "tool_choice", "parallel_tool_calls")


def _without_tool_params(params: Mapping[str, Any]) -> dict[str, Any]:
    return {key: value for key, value in params.items() if key not in _TOOL_PARAMS}


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
        instruction message (``"system"``/``"developer"``), ``"instructions"`` when the
        instruction is the Responses API's ``instructions`` parameter, else
        ``"no-instruction"``.

    Notes
    -----
    Derivation helpers append a tag to the label (``"system+date"``,
    ``"developer+tools-in-prompt"``); every helper takes ``label=`` to override it.
    """

    messages: tuple[Mapping[str, Any], ...]
    params: Mapping[str, Any] = field(default_factory=dict)
    label: str = ""

    def __post_init__(self) -> None:
        check_variant_args(self.messages, self.params, self.label or None)
        plain = [plain_message(m, i) for i, m in enumerate(self.messages)]
        if not plain:
            raise RolecheckUsageError(
                "a Variant needs at least one message; pass e.g. "
                "[{'role': 'user', 'content': '...'}]"
            )
        check_json(plain, "messages")
        check_json(self.params, "request parameters")
        object.__setattr__(self, "messages", freeze(plain))
        object.__setattr__(self, "params", freeze(self.params))
        if not self.label:
            object.__setattr__(self, "label", default_label(self.messages, self.params))

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
        check_variant_args(messages, params, label)
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
            "messages": thaw(self.messages),
            **thaw(freeze(defaults)),
            **thaw(self.params),
        }

    # -- inspection --------------------------------------------------------------------

    @property
    def instruction_index(self) -> int | None:
        """Index of the instruction message (first system/developer message), or None."""
        return instruction_index(self.messages)

    @property
    def instruction(self) -> str | None:
        """Text of the instruction (its message, or ``instructions``), or None."""
        index = self.instruction_index
        if index is None:
            placed = self.params.get(INSTRUCTIONS)
            return placed if isinstance(placed, str) else None
        return text_of(self.messages[index].get("content"))

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
        role : {"system", "developer", "user-prefixed", "instructions"}
            New role. ``"user-prefixed"`` removes the instruction message and puts its
            text, followed by ``separator``, in front of the first user message after it.
            ``"instructions"`` removes it and sends its text as the Responses API's
            ``instructions`` parameter (compare with ``api="responses"``); from there,
            another role puts it back as the first message.
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
        messages, params = placed_instruction(self.messages, self.params)
        i = checked_instruction_index(messages, index, self.label)
        if role in INSTRUCTION_ROLES:
            messages[i] = {**messages[i], "role": role}
        elif role == INSTRUCTIONS:
            params[INSTRUCTIONS] = text_of(messages.pop(i).get("content"))
        else:
            messages = merge_into_user(messages, i, separator, self.label)
        parts = self.label.split("+")
        if parts[0] in ROLE_CHOICES:
            new_label = "+".join([role, *parts[1:]])
        else:
            new_label = f"{self.label}+{role}"
        return self._derive(messages=messages, params=params, label=label or new_label)

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
        check_text(text, "text")
        messages, params = edit_placed_instruction(self.messages, self.params, lambda _old: text)
        return self._derive(messages=messages, params=params, tag="instruction", label=label)

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
        check_text(text, "text")
        messages, params = edit_placed_instruction(
            self.messages, self.params, lambda old: join(old, text, separator)
        )
        return self._derive(messages=messages, params=params, tag="append", label=label)

    def with_preamble(
        self,
        *,
        knowledge_cutoff: str | _dt.date | None = None,
        current_date: str | _dt.date | None = None,
        lines: Mapping[str, str] | None = None,
        position: PreamblePosition = "start",
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
        preamble, tag = preamble_lines(knowledge_cutoff, current_date, lines, position)
        messages, params = edit_placed_instruction(
            self.messages,
            self.params,
            lambda old: insert_preamble(old, preamble, position, separator),
        )
        return self._derive(messages=messages, params=params, tag=tag, label=label)

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
        new = [thaw(tool) for tool in tools]
        combined = combined_tools([] if replace else self._tools(), new)
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
        if names is None:
            params = _without_tool_params(self.params)
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
        params = {**self.params, "tools": kept} if kept else _without_tool_params(self.params)
        tag = "+".join(f"no-{slug(n)}" for n in names)
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
        tools = [thaw(t) for t in self._tools()]
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
            return join(old, block, separator)

        messages, params = edit_placed_instruction(self.messages, self.params, append)
        params = params if keep_api_tools else _without_tool_params(params)
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
            slug(f"{k}={v}", 40) if isinstance(v, str | int | float | bool) else slug(k)
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
        tag = "+".join(f"no-{slug(n)}" for n in names)
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
        check_label(label)
        new_label = label or (f"{self.label}+{tag}" if tag else self.label)
        return Variant(
            tuple(self.messages if messages is None else messages),
            self.params if params is None else params,
            new_label,
        )

    def _tools(self) -> list[Mapping[str, Any]]:
        tools = self.params.get("tools") or ()
        return [normalize_tool(thaw(t)) for t in tools]
