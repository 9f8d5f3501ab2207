"""Tests of render_tools_namespace: goldens from published prompts, round-trip properties."""

from __future__ import annotations

import json
import re
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from pytest_rolecheck.errors import RolecheckUsageError
from pytest_rolecheck.variants.tools import MULTI_TOOL_USE_BLOCK, render_tools_namespace

# -- goldens ----------------------------------------------------------------------------

# The tool definitions exactly as the published Playground analysis shows them
# (note: "unit" comes before "location" in "properties").
GET_WEATHER: dict[str, Any] = {
    "name": "get_weather",
    "description": "Determine weather in my location",
    "parameters": {
        "type": "object",
        "required": ["location"],
        "properties": {
            "unit": {"enum": ["c", "f"], "type": "string"},
            "location": {
                "type": "string",
                "description": "The city and state e.g. San Francisco, CA",
            },
        },
    },
}
GET_STOCK_PRICE: dict[str, Any] = {
    "name": "get_stock_price",
    "description": "Get the current stock price",
    "parameters": {
        "type": "object",
        "required": ["symbol"],
        "properties": {"symbol": {"type": "string", "description": "The stock symbol"}},
    },
}
# The same get_weather with its properties in the order the rendered prompt lists them.
GET_WEATHER_DEFINITION_ORDER: dict[str, Any] = {
    **GET_WEATHER,
    "parameters": {
        "type": "object",
        "required": ["location"],
        "properties": {
            "location": GET_WEATHER["parameters"]["properties"]["location"],
            "unit": GET_WEATHER["parameters"]["properties"]["unit"],
        },
    },
}

# Verbatim from the published Playground prompt (which is quoted without blank lines).
PLAYGROUND_BLOCK = """\
# Tools
## functions
namespace functions {
// Determine weather in my location
type get_weather = (_: {
// The city and state e.g. San Francisco, CA
location: string,
unit?: "c" | "f",
}) => any;
// Get the current stock price
type get_stock_price = (_: {
// The stock symbol
symbol: string,
}) => any;
} // namespace functions
## multi_tool_use
// This tool serves as a wrapper for utilizing multiple tools. Each tool that can be used \
must be specified in the tool sections. Only tools in the functions namespace are permitted.
// Ensure that the parameters provided to each tool are valid according to that tool's \
specification.
namespace multi_tool_use {
// Use this function to run multiple tools simultaneously, but only if they can operate in \
parallel. Do this even if the prompt suggests using the tools sequentially.
type parallel = (_: {
// The tools to be executed in parallel. NOTE: only functions tools are permitted
tool_uses: {
// The name of the tool to use. The format should either be just the name of the tool, or \
in the format namespace.function_name for plugin and function tools.
recipient_name: string,
// The parameters to pass to the tool. Ensure these are valid according to the tool's own \
specifications.
}[],
}) => any;
} // namespace multi_tool_use"""

# The API's layout: a blank line after each heading, after "namespace x {", between
# functions and before the closing line (as in OpenAI's published renderer).
FUNCTIONS_WITH_BLANK_LINES = """\
# Tools

## functions

namespace functions {

// Determine weather in my location
type get_weather = (_: {
// The city and state e.g. San Francisco, CA
location: string,
unit?: "c" | "f",
}) => any;

// Get the current stock price
type get_stock_price = (_: {
// The stock symbol
symbol: string,
}) => any;

} // namespace functions"""

DALLE_SIZE_DESCRIPTION = (
    "The size of the requested image. Use 1024x1024 (square) as the default, 1792x1024 if the "
    "user requests a wide image, and 1024x1792 for full-body portraits. Always include this "
    "parameter in the request."
)
DALLE_PROMPT_DESCRIPTION = (
    "The detailed image description, potentially modified to abide by the dalle policies. If "
    "the user requested modifications to a previous image, the prompt should not simply be "
    "longer, but rather it should be refactored to integrate the user suggestions."
)
DALLE_IDS_DESCRIPTION = (
    "If the user references a previous image, this field should be populated with the gen_id "
    "from the dalle image metadata."
)
# text2im as JSON Schema. "size" is a union of string constants (anyOf), which renders
# parenthesised as in the published prompt; a plain enum renders bare (see get_weather).
TEXT2IM: dict[str, Any] = {
    "type": "function",
    "function": {
        "name": "text2im",
        "description": "Create images from a text-only prompt.",
        "parameters": {
            "type": "object",
            "properties": {
                "size": {
                    "description": DALLE_SIZE_DESCRIPTION,
                    "anyOf": [
                        {"const": "1792x1024"},
                        {"const": "1024x1024"},
                        {"const": "1024x1792"},
                    ],
                },
                "n": {
                    "type": "integer",
                    "description": "The number of images to generate. If the user does not "
                    "specify a number, generate 1 image.",
                    "default": 2,
                },
                "prompt": {"type": "string", "description": DALLE_PROMPT_DESCRIPTION},
                "referenced_image_ids": {
                    "type": "array",
                    "items": {"type": "string"},
                    "description": DALLE_IDS_DESCRIPTION,
                },
            },
            "required": ["prompt"],
        },
    },
}
TEXT2IM_BLOCK = f"""\
// Create images from a text-only prompt.
type text2im = (_: {{
// {DALLE_SIZE_DESCRIPTION}
size?: ("1792x1024" | "1024x1024" | "1024x1792"),
// The number of images to generate. If the user does not specify a number, generate 1 image.
n?: number, // default: 2
// {DALLE_PROMPT_DESCRIPTION}
prompt: string,
// {DALLE_IDS_DESCRIPTION}
referenced_image_ids?: string[],
}}) => any;"""


def test_playground_block_from_the_published_json_schemas() -> None:
    rendered = render_tools_namespace(
        [GET_WEATHER, GET_STOCK_PRICE],
        multi_tool_use=True,
        blank_lines=False,
        order="required-first",
    )
    assert rendered == PLAYGROUND_BLOCK


def test_playground_block_in_schema_order_from_definition_order() -> None:
    tools = [{"type": "function", "function": GET_WEATHER_DEFINITION_ORDER}, GET_STOCK_PRICE]
    rendered = render_tools_namespace(tools, multi_tool_use=True, blank_lines=False)
    assert rendered == PLAYGROUND_BLOCK


def test_schema_order_keeps_the_properties_order() -> None:
    rendered = render_tools_namespace([GET_WEATHER], header=False, blank_lines=False)
    assert rendered.splitlines()[4:6] == [
        'unit?: "c" | "f",',
        "// The city and state e.g. San Francisco, CA",
    ]


def test_api_layout_has_blank_lines() -> None:
    assert render_tools_namespace([GET_WEATHER, GET_STOCK_PRICE], order="required-first") == (
        FUNCTIONS_WITH_BLANK_LINES
    )


def test_multi_tool_use_block_with_blank_lines() -> None:
    rendered = render_tools_namespace(
        [GET_WEATHER_DEFINITION_ORDER, GET_STOCK_PRICE], multi_tool_use=True
    )
    assert rendered == FUNCTIONS_WITH_BLANK_LINES + "\n\n" + MULTI_TOOL_USE_BLOCK
    assert MULTI_TOOL_USE_BLOCK.startswith("## multi_tool_use\n\n// This tool serves")
    assert MULTI_TOOL_USE_BLOCK.endswith("}) => any;\n\n} // namespace multi_tool_use")


def test_dalle_text2im_golden() -> None:
    rendered = render_tools_namespace([TEXT2IM], header=False, blank_lines=False)
    lines = rendered.splitlines()
    assert lines[:2] == ["## functions", "namespace functions {"]
    assert lines[-1] == "} // namespace functions"
    assert "\n".join(lines[2:-1]) == TEXT2IM_BLOCK


def test_header_false_starts_at_functions() -> None:
    rendered = render_tools_namespace([GET_STOCK_PRICE], header=False)
    assert rendered.startswith("## functions\n\nnamespace functions {\n\n// Get the current")


# -- individual schema shapes -----------------------------------------------------------


def _body(parameters: dict[str, Any] | None, description: str | None = None) -> str:
    function: dict[str, Any] = {"name": "f"}
    if parameters is not None:
        function["parameters"] = parameters
    if description is not None:
        function["description"] = description
    rendered = render_tools_namespace([function], header=False, blank_lines=False)
    return "\n".join(rendered.splitlines()[2:-1])


def _prop(schema: dict[str, Any], *, required: bool = True) -> str:
    body = _body(
        {"type": "object", "properties": {"p": schema}, "required": ["p"] if required else []}
    )
    lines = body.splitlines()
    assert lines[0] == "type f = (_: {"
    assert lines[-1] == "}) => any;"
    return "\n".join(lines[1:-1])


@pytest.mark.parametrize(
    ("schema", "expected"),
    [
        ({"type": "string"}, "p: string,"),
        ({"type": "integer"}, "p: number,"),
        ({"type": "number"}, "p: number,"),
        ({"type": "boolean"}, "p: boolean,"),
        ({"type": "null"}, "p: null,"),
        ({}, "p: any,"),
        ({"type": "mystery"}, "p: any,"),
        ({"enum": ["c", "f"]}, 'p: "c" | "f",'),
        ({"type": "integer", "enum": [1, 2, 3]}, "p: 1 | 2 | 3,"),
        ({"enum": ["only"]}, 'p: "only",'),
        ({"const": 'say "hi"'}, 'p: "say \\"hi\\"",'),
        ({"enum": ["a\u2028b", "c\x85"]}, 'p: "a\\u2028b" | "c\\u0085",'),
        ({"type": ["string", "null"]}, "p: string | null,"),
        ({"type": ["integer", "number"]}, "p: number,"),
        ({"type": "string", "nullable": True}, "p: string | null,"),
        ({"anyOf": [{"type": "string"}, {"type": "integer"}]}, "p: (string | number),"),
        ({"oneOf": [{"type": "string"}, {"type": "boolean"}]}, "p: (string | boolean),"),
        ({"anyOf": [{"type": "string"}, {"type": "null"}]}, "p: string | null,"),
        ({"anyOf": [{"type": "integer"}, {"type": "number"}]}, "p: number,"),
        ({"allOf": [{"type": "string"}]}, "p: string,"),
        ({"type": "array", "items": {"type": "string"}}, "p: string[],"),
        ({"type": "array"}, "p: any[],"),
        ({"type": "array", "items": {"enum": ["a", "b"]}}, 'p: ("a" | "b")[],'),
        ({"type": "array", "items": {"type": ["string", "null"]}}, "p: (string | null)[],"),
        (
            {"type": "array", "items": {"type": "array", "items": {"type": "number"}}},
            "p: number[][],",
        ),
        (
            {"type": "array", "items": {"anyOf": [{"type": "string"}, {"type": "number"}]}},
            "p: (string | number)[],",
        ),
        ({"type": "object"}, "p: object,"),
        (
            {"type": "object", "additionalProperties": {"type": "number"}},
            "p: Record<string, number>,",
        ),
        ({"type": "string", "default": "x"}, 'p: string, // default: "x"'),
        ({"enum": ["c", "f"], "default": "c"}, 'p: "c" | "f", // default: c'),
        ({"type": "boolean", "default": False}, "p: boolean, // default: false"),
        ({"type": "number", "default": 0.5}, "p: number, // default: 0.5"),
    ],
)
def test_schema_shapes(schema: dict[str, Any], expected: str) -> None:
    assert _prop(schema) == expected


def test_optional_property_has_question_mark() -> None:
    assert _prop({"type": "string"}, required=False) == "p?: string,"


def test_multi_line_descriptions_give_one_comment_line_each() -> None:
    assert _prop({"type": "string", "description": "first\nsecond\n\nfourth"}) == (
        "// first\n// second\n//\n// fourth\np: string,"
    )
    body = _body({"type": "object", "properties": {}}, description="Line one.\nLine two.")
    assert body == "// Line one.\n// Line two.\ntype f = () => any;"


def test_nested_objects_are_inline_and_indented() -> None:
    schema = {
        "type": "array",
        "items": {
            "type": "object",
            "properties": {
                "name": {"type": "string", "description": "Who"},
                "address": {
                    "type": "object",
                    "properties": {"city": {"type": "string"}},
                    "required": ["city"],
                },
            },
            "required": ["name"],
        },
    }
    assert _prop(schema) == (
        "p: {\n  // Who\n  name: string,\n  address?: {\n    city: string,\n  },\n}[],"
    )


def test_non_identifier_property_names_are_quoted() -> None:
    body = _body({"type": "object", "properties": {"my-key": {"type": "string"}}})
    assert '"my-key"?: string,' in body.splitlines()


@pytest.mark.parametrize(
    "parameters",
    [None, {}, {"type": "object"}, {"type": "object", "properties": {}, "required": []}],
)
def test_functions_without_parameters(parameters: dict[str, Any] | None) -> None:
    assert _body(parameters) == "type f = () => any;"


def test_local_refs_are_resolved_and_recursion_stops() -> None:
    parameters = {
        "type": "object",
        "$defs": {
            "Unit": {"enum": ["c", "f"]},
            "Node": {
                "type": "object",
                "properties": {"child": {"$ref": "#/$defs/Node"}},
            },
        },
        "properties": {
            "unit": {"$ref": "#/$defs/Unit"},
            "tree": {"$ref": "#/$defs/Node"},
            "missing": {"$ref": "#/$defs/Nope"},
        },
        "required": ["unit"],
    }
    assert _body(parameters).splitlines()[1:-1] == [
        'unit: "c" | "f",',
        "tree?: {",
        "  child?: any,",
        "},",
        "missing?: any,",
    ]


def test_tool_validation_errors() -> None:
    with pytest.raises(RolecheckUsageError, match="no tools"):
        render_tools_namespace([])
    with pytest.raises(RolecheckUsageError, match="wrap it in a list"):
        render_tools_namespace(GET_WEATHER)  # type: ignore[arg-type]
    with pytest.raises(RolecheckUsageError, match="only function tools"):
        render_tools_namespace([{"type": "code_interpreter"}])
    with pytest.raises(RolecheckUsageError, match="non-empty string 'name'"):
        render_tools_namespace([{"description": "nameless"}])
    with pytest.raises(RolecheckUsageError, match="must be a JSON Schema object"):
        render_tools_namespace([{"name": "f", "parameters": "x"}])
    with pytest.raises(RolecheckUsageError, match="order must be"):
        render_tools_namespace([GET_WEATHER], order="alphabetical")  # type: ignore[arg-type]


# -- round-trip property: a parser for the emitted subset -------------------------------

_KEY = re.compile(r'("(?:[^"\\]|\\.)*"|[A-Za-z_$][A-Za-z0-9_$]*)(\?)?: ')
_WORDS = ("string", "number", "boolean", "null", "any", "object", "true", "false")


class _Parser:
    """Parses the TypeScript-like subset the renderer emits into a small tree.

    Object -> ("object", [(name, optional, child), ...]); array -> ("array", item);
    union -> ("union", [members]); everything else -> ("atom", text).
    """

    def __init__(self, text: str) -> None:
        self.text = text
        self.pos = 0

    def expect(self, token: str) -> None:
        assert self.text.startswith(token, self.pos), (token, self.text[self.pos : self.pos + 40])
        self.pos += len(token)

    def union(self) -> Any:
        members = [self.postfix()]
        while self.text.startswith(" | ", self.pos):
            self.pos += 3
            members.append(self.postfix())
        return members[0] if len(members) == 1 else ("union", members)

    def postfix(self) -> Any:
        node = self.primary()
        while self.text.startswith("[]", self.pos):
            self.pos += 2
            node = ("array", node)
        return node

    def primary(self) -> Any:
        text, pos = self.text, self.pos
        if text.startswith("(", pos):
            self.pos += 1
            node = self.union()
            self.expect(")")
            return node
        if text.startswith("{\n", pos):
            return self.obj()
        if text.startswith("Record<string, ", pos):
            self.pos += len("Record<string, ")
            node = self.union()
            self.expect(">")
            return ("record", node)
        for word in _WORDS:
            if text.startswith(word, pos):
                self.pos += len(word)
                return ("atom", word)
        value, end = json.JSONDecoder().raw_decode(text, pos)
        self.pos = end
        return ("atom", json.dumps(value))

    def obj(self) -> Any:
        self.expect("{\n")
        props = []
        while True:
            line_end = self.text.index("\n", self.pos) if "\n" in self.text[self.pos :] else None
            line = self.text[self.pos : line_end]
            stripped = line.lstrip(" ")
            indent = len(line) - len(stripped)
            if stripped.startswith("//"):
                assert line_end is not None
                self.pos = line_end + 1
                continue
            if stripped.startswith("}"):
                self.pos += indent + 1
                return ("object", props)
            self.pos += indent
            match = _KEY.match(self.text, self.pos)
            assert match, self.text[self.pos : self.pos + 40]
            raw_name = match.group(1)
            name = json.loads(raw_name) if raw_name.startswith('"') else raw_name
            self.pos = match.end()
            child = self.union()
            self.expect(",")
            rest_end = self.text.index("\n", self.pos)
            rest = self.text[self.pos : rest_end]
            assert rest == "" or rest.startswith(" // default: "), rest
            self.pos = rest_end + 1
            props.append((name, match.group(2) == "?", child))


def _parse_function(rendered: str) -> Any:
    lines = rendered.splitlines()
    body = "\n".join(line for line in lines[2:-1] if not line.startswith("// "))
    assert body.startswith("type f = "), body
    if body == "type f = () => any;":
        return None
    parser = _Parser(body)
    parser.expect("type f = (_: ")
    node = parser.union()
    parser.expect(") => any;")
    assert parser.pos == len(body)
    return node


def _shape(node: Any) -> Any:
    """Names and optionality of every object reachable through properties and arrays."""
    kind = node[0]
    if kind == "object":
        return [(name, optional, _shape(child)) for name, optional, child in node[1]]
    if kind == "array":
        return ["array", _shape(node[1])]
    return None


def _expected_shape(schema: dict[str, Any]) -> Any:
    if schema.get("type") == "object" and schema.get("properties"):
        required = set(schema.get("required", []))
        return [
            (name, name not in required, _expected_shape(child))
            for name, child in schema["properties"].items()
        ]
    if schema.get("type") == "array":
        return ["array", _expected_shape(schema.get("items") or {})]
    return None


_names = st.one_of(
    st.text(alphabet="abcxyz_019", min_size=1, max_size=8),
    st.text(min_size=0, max_size=6),
)
_descriptions = st.none() | st.text(max_size=30)
_scalars = st.one_of(
    st.integers(-5, 5), st.text(max_size=5), st.booleans(), st.none(), st.floats(-2, 2)
)
_leaf = st.one_of(
    st.sampled_from(
        [
            {"type": "string"},
            {"type": "integer"},
            {"type": "number"},
            {"type": "boolean"},
            {"type": "null"},
            {},
            {"type": ["string", "null"]},
            {"type": "string", "nullable": True},
            {"type": "object"},
            {"type": "object", "additionalProperties": {"type": "string"}},
            {"anyOf": [{"type": "string"}, {"type": "null"}]},
        ]
    ),
    st.lists(st.text(max_size=5), min_size=1, max_size=4).map(lambda v: {"enum": v}),
    st.lists(st.integers(-9, 9), min_size=1, max_size=4).map(
        lambda v: {"type": "integer", "enum": v}
    ),
    _scalars.map(lambda v: {"const": v}),
)


def _with_extras(schema: dict[str, Any], description: str | None, default: Any) -> dict[str, Any]:
    out = dict(schema)
    if description is not None:
        out["description"] = description
    if default is not None:
        out["default"] = default
    return out


def _objects(children: st.SearchStrategy[dict[str, Any]]) -> st.SearchStrategy[dict[str, Any]]:
    return st.dictionaries(_names, children, min_size=1, max_size=4).flatmap(
        lambda props: st.lists(st.sampled_from(sorted(props)), unique=True).map(
            lambda req: {"type": "object", "properties": props, "required": req}
        )
    )


_schemas = st.recursive(
    _leaf,
    lambda children: st.one_of(
        children.map(lambda item: {"type": "array", "items": item}),
        # The marker keeps the union a union (branches that render alike are merged).
        st.lists(children, min_size=1, max_size=2).map(
            lambda branches: {"anyOf": [*branches, {"const": "marker-branch"}]}
        ),
        _objects(children),
    ),
    max_leaves=8,
)
_properties = st.builds(_with_extras, _schemas, _descriptions, st.none() | _scalars)
_parameters = _objects(_properties)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(_parameters)
def test_rendering_parses_back_to_the_same_names_and_optionality(
    parameters: dict[str, Any],
) -> None:
    rendered = render_tools_namespace(
        [{"name": "f", "parameters": parameters}], header=False, blank_lines=False
    )
    assert _shape(_parse_function(rendered)) == _expected_shape(parameters)


@settings(max_examples=60, deadline=None)
@given(_parameters)
def test_required_first_puts_required_names_first(parameters: dict[str, Any]) -> None:
    rendered = render_tools_namespace(
        [{"name": "f", "parameters": parameters}],
        header=False,
        blank_lines=False,
        order="required-first",
    )
    top = _shape(_parse_function(rendered))
    optional_flags = [optional for _, optional, _ in top]
    assert optional_flags == sorted(optional_flags)
    assert sorted(name for name, _, _ in top) == sorted(parameters["properties"])


_json = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(max_size=5),
    lambda children: (
        st.lists(children, max_size=3)
        | st.dictionaries(
            st.sampled_from(
                [
                    "type",
                    "properties",
                    "items",
                    "enum",
                    "anyOf",
                    "oneOf",
                    "allOf",
                    "$ref",
                    "const",
                    "required",
                    "default",
                    "description",
                    "nullable",
                    "additionalProperties",
                    "x",
                ]
            ),
            children,
            max_size=4,
        )
    ),
    max_leaves=12,
)


@settings(max_examples=150, deadline=None)
@given(st.dictionaries(st.text(max_size=4), _json, max_size=4))
def test_arbitrary_schemas_never_crash(properties: dict[str, Any]) -> None:
    rendered = render_tools_namespace(
        [{"name": "f", "parameters": {"type": "object", "properties": properties}}]
    )
    assert rendered.startswith("# Tools\n\n## functions\n\nnamespace functions {\n\n")
    assert rendered.endswith("\n\n} // namespace functions")


def test_enum_default_with_a_control_character_stays_on_its_line() -> None:
    # Found by the property test above: a bare "\f" broke the "// default:" comment.
    parameters = {
        "type": "object",
        "properties": {"mode": {"enum": ["", "\f"], "default": "\f"}},
        "required": [],
    }
    rendered = render_tools_namespace(
        [{"name": "f", "parameters": parameters}], header=False, blank_lines=False
    )
    assert '// default: "\\f"' in rendered
    assert _shape(_parse_function(rendered)) == _expected_shape(parameters)
