"""Render OpenAI tool definitions as the TypeScript-like ``namespace functions`` block (pure).

Chat models trained by OpenAI do not see the JSON Schema passed in ``tools=``; the
server renders it into the system prompt as a compact TypeScript-like block::

    # Tools

    ## functions

    namespace functions {

    // Determine weather in my location
    type get_weather = (_: {
    // The city and state e.g. San Francisco, CA
    location: string,
    unit?: "c" | "f",
    }) => any;

    } // namespace functions

:func:`render_tools_namespace` produces that block so a test can put the *same* tool
descriptions into the prompt text and compare "tools via the API" with "tools in the
system prompt". The layout (blank lines, ``// default:`` after the comma, enum unions,
``() => any`` for functions without parameters) follows OpenAI's published renderer
for its open-weight models (the ``openai/harmony`` project) and the prompts shown in
public system-prompt extractions.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping, Sequence
from typing import Any, Final, Literal

from ..errors import RolecheckUsageError

__all__ = ["MULTI_TOOL_USE_BLOCK", "combined_tools", "normalize_tool", "render_tools_namespace"]

PropertyOrder = Literal["schema", "required-first"]

# Indentation of the properties of a nested object, per nesting level. Top-level
# parameters are not indented (as in every published example of the format).
_INDENT: Final = "  "
_IDENTIFIER = re.compile(r"^[A-Za-z_$][A-Za-z0-9_$]*$")
_LINE_BREAKS: Final = str.maketrans({"\x85": "\\u0085", "\u2028": "\\u2028", "\u2029": "\\u2029"})

# Verbatim from the published Playground prompt; the blank lines follow the
# section layout of the functions block (a blank line after each "## name" heading,
# after "namespace x {" and before "} // namespace x").
_MULTI_TOOL_USE_LINES: Final[tuple[str, ...]] = (
    "## multi_tool_use",
    "",
    "// This tool serves as a wrapper for utilizing multiple tools. Each tool that can be used "
    "must be specified in the tool sections. Only tools in the functions namespace are permitted.",
    "// Ensure that the parameters provided to each tool are valid according to that tool's "
    "specification.",
    "namespace multi_tool_use {",
    "",
    "// Use this function to run multiple tools simultaneously, but only if they can operate in "
    "parallel. Do this even if the prompt suggests using the tools sequentially.",
    "type parallel = (_: {",
    "// The tools to be executed in parallel. NOTE: only functions tools are permitted",
    "tool_uses: {",
    "// The name of the tool to use. The format should either be just the name of the tool, or "
    "in the format namespace.function_name for plugin and function tools.",
    "recipient_name: string,",
    "// The parameters to pass to the tool. Ensure these are valid according to the tool's own "
    "specifications.",
    "}[],",
    "}) => any;",
    "",
    "} // namespace multi_tool_use",
)
MULTI_TOOL_USE_BLOCK: Final[str] = "\n".join(_MULTI_TOOL_USE_LINES)
"""The ``## multi_tool_use`` section (the ``parallel`` wrapper), with blank lines."""


def render_tools_namespace(
    tools: Sequence[Mapping[str, Any]],
    *,
    multi_tool_use: bool = False,
    header: bool = True,
    blank_lines: bool = True,
    order: PropertyOrder = "schema",
) -> str:
    """Render tool definitions as the TypeScript-like ``namespace functions`` block.

    Parameters
    ----------
    tools : sequence of mapping
        OpenAI tool definitions, ``{"type": "function", "function": {"name": ...,
        "description": ..., "parameters": <JSON Schema>}}``; a bare function mapping
        (``{"name": ..., "parameters": ...}``) is accepted too.
    multi_tool_use : bool, default False
        Append the ``## multi_tool_use`` section that offers ``multi_tool_use.parallel``
        (what the API adds when parallel tool calls are allowed).
    header : bool, default True
        Start with the ``# Tools`` heading. Use False to append the section to a
        prompt that already has one.
    blank_lines : bool, default True
        Separate sections and functions with blank lines, as the API does. False gives
        the compact form in which the prompt is often quoted (every blank line removed).
    order : {"schema", "required-first"}, default "schema"
        Property order: as listed in ``properties`` (what OpenAI's published renderer
        does), or required properties first, each group in schema order.

    Returns
    -------
    str
        The block, without a trailing newline.

    Raises
    ------
    RolecheckUsageError
        If ``tools`` is empty, or a tool is not a function tool or has no name.

    Notes
    -----
    JSON Schema is mapped as follows: ``string``/``boolean``/``null`` as such,
    ``number`` and ``integer`` as ``number``, ``enum``/``const`` as unions of literals
    (``"c" | "f"``, numbers unquoted), ``anyOf``/``oneOf`` as parenthesised unions,
    ``type: [..., "null"]`` / ``nullable: true`` as ``T | null``, arrays as ``T[]``
    (``(A | B)[]`` for unions), objects inline (nested properties indented), objects
    without properties as ``object`` or ``Record<string, T>``, local ``$ref`` resolved
    (recursive references become ``any``), anything else as ``any``. Descriptions become
    ``//`` lines above the property (one per line of text); defaults a
    ``// default: ...`` comment after the comma.
    """
    if isinstance(tools, Mapping | str | bytes):
        raise RolecheckUsageError(
            "render_tools_namespace() takes a list of tool definitions, got a single "
            f"{type(tools).__name__}; wrap it in a list: render_tools_namespace([tool])"
        )
    if order not in ("schema", "required-first"):
        raise RolecheckUsageError(
            f"order must be 'schema' or 'required-first', got {order!r}",
        )
    functions = [normalize_tool(tool)["function"] for tool in tools]
    if not functions:
        raise RolecheckUsageError(
            "render_tools_namespace() got no tools; pass at least one tool definition"
        )
    sections: list[list[str]] = []
    if header:
        sections.append(["# Tools"])
    body = ["## functions", "", "namespace functions {", ""]
    for function in functions:
        body.extend(_render_function(function, order))
        body.append("")
    body.append("} // namespace functions")
    sections.append(body)
    if multi_tool_use:
        sections.append(list(_MULTI_TOOL_USE_LINES))
    return _join_sections(sections, blank_lines)


def _join_sections(sections: Sequence[Sequence[str]], blank_lines: bool) -> str:
    lines: list[str] = []
    for i, section in enumerate(sections):
        if i:
            lines.append("")
        lines.extend(section)
    if not blank_lines:
        lines = [line for line in lines if line]
    return "\n".join(lines)


def normalize_tool(tool: Any) -> dict[str, Any]:
    """Return ``tool`` as ``{"type": "function", "function": {...}}`` (plain dicts).

    Parameters
    ----------
    tool : mapping
        A function tool definition, or a bare function mapping with a ``name``.

    Returns
    -------
    dict
        A shallow copy in the API's tool format.

    Raises
    ------
    RolecheckUsageError
        If ``tool`` is not a mapping, is not a function tool, or has no valid name,
        or its ``parameters`` is not a mapping.
    """
    if not isinstance(tool, Mapping):
        raise RolecheckUsageError(
            f"a tool definition must be a mapping like {{'type': 'function', 'function': "
            f"{{'name': ..., 'parameters': {{...}}}}}}, got {type(tool).__name__}"
        )
    if "type" in tool:
        if tool["type"] != "function" or not isinstance(tool.get("function"), Mapping):
            raise RolecheckUsageError(
                f"only function tools can be rendered or moved into a prompt, got a tool of "
                f"type {tool['type']!r}; use {{'type': 'function', 'function': {{...}}}}"
            )
        function = dict(tool["function"])
    else:
        function = dict(tool)
    name = function.get("name")
    if not isinstance(name, str) or not name:
        raise RolecheckUsageError(
            f"a function tool needs a non-empty string 'name', got {name!r}; "
            "add 'name' to the tool's function definition"
        )
    params = function.get("parameters")
    if params is not None and not isinstance(params, Mapping):
        raise RolecheckUsageError(
            f"the 'parameters' of tool {name!r} must be a JSON Schema object (a mapping), "
            f"got {type(params).__name__}"
        )
    return {"type": "function", "function": function}


def combined_tools(
    current: Sequence[Mapping[str, Any]], new: Sequence[Any]
) -> list[dict[str, Any]]:
    """``current`` followed by ``new``, each normalised; tool names must stay unique."""
    combined = [normalize_tool(tool) for tool in (*current, *new)]
    names = [t["function"]["name"] for t in combined]
    duplicates = sorted({n for n in names if names.count(n) > 1})
    if duplicates:
        raise RolecheckUsageError(
            f"tool names must be unique, {duplicates} appear twice; use "
            "with_tools(..., replace=True) to replace the current tools"
        )
    return combined


def _render_function(function: Mapping[str, Any], order: PropertyOrder) -> list[str]:
    lines = _comment_lines(function.get("description"), "")
    name = function["name"]
    params = function.get("parameters")
    if not _has_parameters(params):
        lines.append(f"type {name} = () => any;")
        return lines
    assert params is not None  # for mypy: _has_parameters(None) is False
    renderer = _SchemaRenderer(params, order)
    lines.append(f"type {name} = (_: {renderer.render(params, 0)}) => any;")
    return lines


def _has_parameters(params: Mapping[str, Any] | None) -> bool:
    # An object schema without properties (the usual way to declare "no arguments")
    # renders as "() => any", like a function without a parameters schema.
    if not params:
        return False
    if params.get("type", "object") != "object":
        return True
    if any(key in params for key in ("anyOf", "oneOf", "allOf", "$ref", "enum", "const")):
        return True
    if params.get("properties"):
        return True
    extra = params.get("additionalProperties")
    return isinstance(extra, Mapping) and bool(extra)


def _comment_lines(text: Any, indent: str) -> list[str]:
    if not isinstance(text, str) or not text.strip():
        return []
    return [f"{indent}// {line}".rstrip() for line in text.strip().splitlines()]


def _literal(value: Any) -> str:
    text = json.dumps(value, ensure_ascii=False)
    # json escapes control characters but not these, which str.splitlines() (and many
    # editors) treat as line breaks; a literal must stay on its line.
    return text.translate(_LINE_BREAKS)


def _default_comment(schema: Mapping[str, Any]) -> str:
    if "default" not in schema:
        return ""
    default = schema["default"]
    # An enum's default is one of its literals, shown bare (OpenAI's renderer does the same),
    # unless a control character in it would break the comment's line.
    if isinstance(default, str) and "enum" in schema and default.isprintable():
        return f" // default: {default}"
    return f" // default: {_literal(default)}"


class _SchemaRenderer:
    """Turns one function's parameter schema into TypeScript-like text."""

    def __init__(self, root: Mapping[str, Any], order: PropertyOrder) -> None:
        self._root = root
        self._order = order
        self._ref_stack: list[str] = []

    def render(self, schema: Any, level: int) -> str:
        """Type expression of ``schema``; objects span lines, properties at ``level``."""
        text, _ = self._type(schema, level)
        return text

    # Each _type* method returns (text, is_bare_union): bare unions need parentheses
    # before "[]" so that ``("a" | "b")[]`` is not read as ``"a" | "b"[]``.
    def _type(self, schema: Any, level: int) -> tuple[str, bool]:
        if schema is True or not isinstance(schema, Mapping) or not schema:
            return "any", False
        if "$ref" in schema:
            return self._ref(schema, level)
        text, bare_union = self._base_type(schema, level)
        if schema.get("nullable") is True and not _mentions_null(text):
            return f"{text} | null", True
        return text, bare_union

    def _ref(self, schema: Mapping[str, Any], level: int) -> tuple[str, bool]:
        ref = schema["$ref"]
        target = self._resolve(ref)
        if target is None or ref in self._ref_stack:
            return "any", False  # unknown or recursive reference
        self._ref_stack.append(ref)
        try:
            merged = {**target, **{k: v for k, v in schema.items() if k != "$ref"}}
            return self._type(merged, level)
        finally:
            self._ref_stack.pop()

    def _resolve(self, ref: Any) -> Mapping[str, Any] | None:
        if not isinstance(ref, str) or not ref.startswith("#"):
            return None
        node: Any = self._root
        for part in filter(None, ref[1:].split("/")):
            part = part.replace("~1", "/").replace("~0", "~")
            if not isinstance(node, Mapping) or part not in node:
                return None
            node = node[part]
        return node if isinstance(node, Mapping) else None

    def _base_type(self, schema: Mapping[str, Any], level: int) -> tuple[str, bool]:
        if "const" in schema:
            return _literal(schema["const"]), False
        enum = schema.get("enum")
        if isinstance(enum, Sequence) and not isinstance(enum, str) and enum:
            literals = list(dict.fromkeys(_literal(v) for v in enum))
            return " | ".join(literals), len(literals) > 1
        for key in ("anyOf", "oneOf"):
            branches = schema.get(key)
            if isinstance(branches, Sequence) and not isinstance(branches, str) and branches:
                return self._union(branches, level)
        all_of = schema.get("allOf")
        if isinstance(all_of, Sequence) and not isinstance(all_of, str) and all_of:
            if len(all_of) == 1:
                return self._type(all_of[0], level)
            parts = [self.render(branch, level) for branch in all_of]
            return "(" + " & ".join(parts) + ")", False
        kind = schema.get("type")
        if isinstance(kind, Sequence) and not isinstance(kind, str):
            names = [k for k in kind if isinstance(k, str)]
            non_null = [k for k in names if k != "null"]
            parts = list(dict.fromkeys(self.render({**schema, "type": k}, level) for k in non_null))
            if "null" in names:
                parts.append("null")
            if not parts:
                return "any", False
            return " | ".join(parts), len(parts) > 1
        if kind is None and ("properties" in schema or "additionalProperties" in schema):
            kind = "object"
        if kind is None and "items" in schema:
            kind = "array"
        return self._simple(kind, schema, level)

    def _union(self, branches: Sequence[Any], level: int) -> tuple[str, bool]:
        non_null = [b for b in branches if not _is_null_schema(b)]
        has_null = len(non_null) < len(branches)
        parts = list(dict.fromkeys(self.render(b, level) for b in non_null))
        if not parts:
            return "null", False
        # Optional[X] (anyOf: [X, null]) reads best as "X | null", without parentheses.
        if len(parts) == 1:
            text, _ = self._type(non_null[0], level)
            return (f"{text} | null", True) if has_null else (text, False)
        text = "(" + " | ".join(parts) + ")"
        return (f"{text} | null", True) if has_null else (text, False)

    def _simple(self, kind: Any, schema: Mapping[str, Any], level: int) -> tuple[str, bool]:
        if kind == "string":
            return "string", False
        if kind in ("number", "integer"):
            return "number", False
        if kind == "boolean":
            return "boolean", False
        if kind == "null":
            return "null", False
        if kind == "array":
            items = schema.get("items")
            if items is None or items is True or items == {}:
                return "any[]", False
            text, bare_union = self._type(items, level)
            return (f"({text})[]" if bare_union else f"{text}[]"), False
        if kind == "object":
            return self._object(schema, level), False
        return "any", False

    def _object(self, schema: Mapping[str, Any], level: int) -> str:
        properties = schema.get("properties")
        if not isinstance(properties, Mapping) or not properties:
            extra = schema.get("additionalProperties")
            if isinstance(extra, Mapping) and extra:
                return f"Record<string, {self.render(extra, level)}>"
            return "object"
        required = schema.get("required")
        required_set = (
            {r for r in required if isinstance(r, str)}
            if isinstance(required, Sequence) and not isinstance(required, str)
            else set()
        )
        names = list(properties)
        if self._order == "required-first":
            names = [n for n in names if n in required_set] + [
                n for n in names if n not in required_set
            ]
        indent = _INDENT * level
        lines = ["{"]
        for name in names:
            prop = properties[name]
            prop_map: Mapping[str, Any] = prop if isinstance(prop, Mapping) else {}
            lines.extend(_comment_lines(prop_map.get("description"), indent))
            key = name if _IDENTIFIER.match(name) else _literal(name)
            optional = "" if name in required_set else "?"
            type_text = self.render(prop, level + 1)
            lines.append(f"{indent}{key}{optional}: {type_text},{_default_comment(prop_map)}")
        lines.append(_INDENT * max(level - 1, 0) + "}")
        return "\n".join(lines)


def _is_null_schema(schema: Any) -> bool:
    return isinstance(schema, Mapping) and (
        schema.get("type") == "null" or ("const" in schema and schema["const"] is None)
    )


def _mentions_null(text: str) -> bool:
    return text == "null" or text.endswith(" | null")
