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

Modules::

    variant       The Variant dataclass and its derivations.
    messages      The message edits behind the derivations.
    tools         The ``namespace functions`` rendering of tool definitions.
    responses     A chat request rewritten for the Responses API (``api="responses"``).
    prompt_sets   PromptSet: many cases (prompts) as one arm, their derivations, YAML/JSONL
                  files.
    files         YAML variant files (imported on first use of :func:`load_variant`, so
                  that YAML loads only when needed).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from .messages import INSTRUCTION_ROLES, ROLE_CHOICES
from .tools import render_tools_namespace
from .variant import Variant

__all__ = [
    "INSTRUCTION_ROLES",
    "ROLE_CHOICES",
    "Variant",
    "load_variant",
    "render_tools_namespace",
    "variant_from_mapping",
]

_FROM_FILES = frozenset({"load_variant", "variant_from_mapping"})


def __getattr__(name: str) -> Any:
    if name in _FROM_FILES:
        from . import files

        return getattr(files, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


if TYPE_CHECKING:  # pragma: no cover - for type checkers and IDEs only
    from .files import load_variant, variant_from_mapping
