"""Tests of the Variant value type and its derivation helpers."""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
from types import MappingProxyType
from typing import Any

import httpx2
import openai
import pytest
from openai.types.chat import ChatCompletionMessage

from pytest_rolecheck.errors import RolecheckUsageError
from pytest_rolecheck.variants import ROLE_CHOICES, Variant
from pytest_rolecheck.variants.tools import render_tools_namespace

SYSTEM = "You are a weather assistant. Answer briefly."
USER = "What is the weather in Paris?"
MESSAGES: list[dict[str, Any]] = [
    {"role": "system", "content": SYSTEM},
    {"role": "user", "content": USER},
]
WEATHER_TOOL: dict[str, Any] = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "Determine weather in my location",
        "parameters": {
            "type": "object",
            "required": ["location"],
            "properties": {
                "location": {
                    "type": "string",
                    "description": "The city and state e.g. San Francisco, CA",
                },
                "unit": {"enum": ["c", "f"], "type": "string"},
            },
        },
    },
}
STOCK_FUNCTION: dict[str, Any] = {
    "name": "get_stock_price",
    "description": "Get the current stock price",
    "parameters": {
        "type": "object",
        "required": ["symbol"],
        "properties": {"symbol": {"type": "string", "description": "The stock symbol"}},
    },
}


def _has_frozen_types(value: Any) -> bool:
    if isinstance(value, MappingProxyType | tuple):
        return True
    if isinstance(value, dict):
        return any(_has_frozen_types(v) for v in value.values())
    if isinstance(value, list):
        return any(_has_frozen_types(v) for v in value)
    return False


# -- construction and immutability -------------------------------------------------------


def test_from_messages_freezes_deeply_and_copies() -> None:
    messages = [
        {"role": "system", "content": SYSTEM},
        {"role": "user", "content": [{"type": "text", "text": USER}]},
    ]
    tools = [WEATHER_TOOL]
    variant = Variant.from_messages(messages, tools=tools, temperature=0.7)
    messages[0]["content"] = "changed"
    messages[1]["content"][0]["text"] = "changed"
    tools.append(WEATHER_TOOL)
    assert variant.messages[0]["content"] == SYSTEM
    assert variant.messages[1]["content"][0]["text"] == USER
    assert len(variant.params["tools"]) == 1
    assert isinstance(variant.messages, tuple)
    assert isinstance(variant.messages[1]["content"], tuple)
    with pytest.raises(TypeError):
        variant.messages[0]["content"] = "x"  # type: ignore[index]
    with pytest.raises(TypeError):
        variant.params["temperature"] = 1.0  # type: ignore[index]
    with pytest.raises(TypeError):
        variant.params["tools"][0]["function"]["name"] = "x"
    with pytest.raises(dataclasses.FrozenInstanceError):
        variant.label = "x"  # type: ignore[misc]


def test_direct_construction_freezes_too() -> None:
    variant = Variant(tuple(MESSAGES), {"seed": 1}, "mine")
    assert isinstance(variant.params, MappingProxyType)
    assert isinstance(variant.messages[0], MappingProxyType)
    assert variant.label == "mine"


def test_default_labels() -> None:
    assert Variant.from_messages(MESSAGES).label == "system"
    developer = [{"role": "developer", "content": SYSTEM}, MESSAGES[1]]
    assert Variant.from_messages(developer).label == "developer"
    assert Variant.from_messages([MESSAGES[1]]).label == "no-instruction"
    assert Variant.from_messages(MESSAGES, label="baseline").label == "baseline"


def test_equality_and_hash() -> None:
    a = Variant.from_messages(MESSAGES, temperature=0.5)
    b = Variant.from_messages(list(MESSAGES), temperature=0.5)
    assert a == b
    assert hash(a) == hash(b)
    assert len({a, b}) == 1
    assert a != a.with_label("other")
    assert a != Variant.from_messages(MESSAGES, temperature=0.6)


def test_repr_is_short() -> None:
    variant = Variant.from_messages(MESSAGES, tools=[WEATHER_TOOL])
    assert repr(variant) == "Variant('system', messages=[system, user], params=['tools'])"


def test_sdk_message_objects_are_accepted_without_null_fields() -> None:
    assistant = ChatCompletionMessage(role="assistant", content="Sunny.")
    variant = Variant.from_messages([*MESSAGES, assistant, {"role": "user", "content": "Thanks"}])
    assert variant.request()["messages"][2] == {"role": "assistant", "content": "Sunny."}


@pytest.mark.parametrize(
    ("messages", "params", "message"),
    [
        ([], {}, "at least one message"),
        ("hello", {}, "must be a list of message dicts"),
        ({"role": "user", "content": "x"}, {}, "must be a list of message dicts"),
        ([{"role": "sytem", "content": "x"}], {}, "message 0 has role 'sytem'; use one of"),
        ([{"content": "x"}], {}, "message 0 has role None"),
        ([object()], {}, "message 0 is a object"),
        (MESSAGES, {"messages": []}, "'messages' cannot be a request parameter"),
        (MESSAGES, {"stop": {1, 2}}, "request parameters must be JSON values"),
    ],
)
def test_construction_validation(messages: Any, params: dict[str, Any], message: str) -> None:
    with pytest.raises(RolecheckUsageError, match=message):
        Variant.from_messages(messages, **params)


def test_empty_label_is_rejected() -> None:
    with pytest.raises(RolecheckUsageError, match="label must be a non-empty string"):
        Variant.from_messages(MESSAGES, label=" ")
    with pytest.raises(RolecheckUsageError, match="label must be a non-empty string"):
        Variant.from_messages(MESSAGES).with_label("")


# -- request() ---------------------------------------------------------------------------


def test_request_is_plain_json_and_params_override_defaults() -> None:
    variant = Variant.from_messages(MESSAGES, tools=[WEATHER_TOOL], temperature=0.7)
    request = variant.request(model="m", temperature=0.0, top_logprobs=5)
    assert request == {
        "messages": MESSAGES,
        "model": "m",
        "temperature": 0.7,
        "top_logprobs": 5,
        "tools": [WEATHER_TOOL],
    }
    assert next(iter(request)) == "messages"
    assert not _has_frozen_types(request)
    assert json.loads(json.dumps(request)) == request
    request["messages"][0]["content"] = "mutated"
    request["tools"].clear()
    assert variant.messages[0]["content"] == SYSTEM
    assert variant.request()["tools"] == [WEATHER_TOOL]


def test_request_rejects_messages_in_defaults() -> None:
    with pytest.raises(RolecheckUsageError, match="cannot contain 'messages'"):
        Variant.from_messages(MESSAGES).request(messages=[])


def test_request_goes_through_the_openai_sdk() -> None:
    bodies: list[dict[str, Any]] = []

    def handler(request: httpx2.Request) -> httpx2.Response:
        bodies.append(json.loads(request.content))
        return httpx2.Response(
            200,
            json={
                "id": "x",
                "object": "chat.completion",
                "created": 0,
                "model": "m",
                "choices": [
                    {
                        "index": 0,
                        "finish_reason": "stop",
                        "message": {"role": "assistant", "content": "hi"},
                    }
                ],
            },
        )

    client = openai.OpenAI(
        api_key="test",
        base_url="http://rolecheck.invalid/v1",
        http_client=httpx2.Client(transport=httpx2.MockTransport(handler)),
    )
    variant = (
        Variant.from_messages(MESSAGES, tools=[WEATHER_TOOL])
        .with_preamble(current_date=dt.date(2024, 7, 10))
        .with_parallel_tool_calls(False)
    )
    client.chat.completions.create(**variant.request(model="m"))
    assert bodies == [variant.request(model="m")]


# -- roles -------------------------------------------------------------------------------


def test_with_role_swaps_system_and_developer() -> None:
    system = Variant.from_messages(MESSAGES, seed=1)
    developer = system.with_role("developer")
    assert developer.label == "developer"
    assert developer.messages[0] == {"role": "developer", "content": SYSTEM}
    assert developer.messages[1] == MESSAGES[1]
    assert developer.params == {"seed": 1}
    back = developer.with_role("system")
    assert back == system
    assert system.messages[0]["role"] == "system"  # unchanged


def test_with_role_keeps_the_tags_of_the_label() -> None:
    dated = Variant.from_messages(MESSAGES).with_preamble(current_date="2024-07-10")
    assert dated.label == "system+date"
    assert dated.with_role("developer").label == "developer+date"
    custom = Variant.from_messages(MESSAGES, label="prod")
    assert custom.with_role("developer").label == "prod+developer"
    assert custom.with_role("developer", label="dev").label == "dev"


def test_user_prefixed_merges_the_instruction_into_the_first_user_message() -> None:
    variant = Variant.from_messages(MESSAGES).with_role("user-prefixed")
    assert variant.label == "user-prefixed"
    assert [dict(m) for m in variant.messages] == [
        {"role": "user", "content": f"{SYSTEM}\n\n{USER}"}
    ]
    assert variant.instruction is None


def test_user_prefixed_with_content_parts_and_separator() -> None:
    messages = [
        {"role": "developer", "content": SYSTEM},
        {
            "role": "user",
            "content": [
                {"type": "text", "text": USER},
                {"type": "image_url", "image_url": {"url": "data:x"}},
            ],
        },
    ]
    merged = Variant.from_messages(messages).with_role("user-prefixed", separator="\n")
    content = merged.request()["messages"][0]["content"]
    assert content[0] == {"type": "text", "text": f"{SYSTEM}\n{USER}"}
    assert content[1]["type"] == "image_url"
    image_first = [messages[0], {"role": "user", "content": [messages[1]["content"][1]]}]
    merged = Variant.from_messages(image_first).with_role("user-prefixed")
    assert merged.request()["messages"][0]["content"][0] == {
        "type": "text",
        "text": f"{SYSTEM}\n\n",
    }


def test_with_role_errors() -> None:
    base = Variant.from_messages(MESSAGES)
    with pytest.raises(RolecheckUsageError, match=r"unknown role 'assistant'; use one of"):
        base.with_role("assistant")
    with pytest.raises(RolecheckUsageError, match="no instruction message to swap"):
        Variant.from_messages([MESSAGES[1]]).with_role("developer")
    with pytest.raises(RolecheckUsageError, match="no instruction message to swap"):
        base.with_role("user-prefixed").with_role("system")
    with pytest.raises(RolecheckUsageError, match="no user message after the instruction"):
        Variant.from_messages([MESSAGES[1], MESSAGES[0]]).with_role("user-prefixed")
    with pytest.raises(RolecheckUsageError, match="message 1 has role 'user'"):
        base.with_role("developer", index=1)
    with pytest.raises(RolecheckUsageError, match="out of range"):
        base.with_role("developer", index=5)


def test_with_role_by_index() -> None:
    messages = [*MESSAGES, {"role": "assistant", "content": "Sunny."}, dict(MESSAGES[0])]
    variant = Variant.from_messages(messages).with_role("developer", index=-1)
    assert [m["role"] for m in variant.messages] == ["system", "user", "assistant", "developer"]


def test_for_roles() -> None:
    developer, system = Variant.for_roles(MESSAGES, temperature=0.2)
    assert (developer.label, system.label) == ("developer", "system")
    assert developer.messages[0]["role"] == "developer"
    assert system.messages[0]["role"] == "system"
    assert developer.params == system.params == {"temperature": 0.2}
    trio = Variant.for_roles(MESSAGES, ROLE_CHOICES)
    assert [v.label for v in trio] == ["system", "developer", "user-prefixed", "instructions"]
    with pytest.raises(RolecheckUsageError, match="distinct roles"):
        Variant.for_roles(MESSAGES, ("system", "system"))
    with pytest.raises(RolecheckUsageError, match="distinct roles"):
        Variant.for_roles(MESSAGES, "system")


# -- instruction text --------------------------------------------------------------------


def test_with_and_append_instruction() -> None:
    base = Variant.from_messages(MESSAGES)
    replaced = base.with_instruction("Be terse.")
    assert replaced.instruction == "Be terse."
    assert replaced.label == "system+instruction"
    appended = base.append_instruction("Use Celsius.")
    assert appended.instruction == f"{SYSTEM}\n\nUse Celsius."
    assert appended.label == "system+append"
    assert base.append_instruction("X", separator=" ").instruction == f"{SYSTEM} X"


def test_instruction_helpers_create_a_system_message_when_missing() -> None:
    base = Variant.from_messages([MESSAGES[1]])
    assert base.with_instruction("Be terse.").request()["messages"] == [
        {"role": "system", "content": "Be terse."},
        MESSAGES[1],
    ]
    assert base.append_instruction("Be terse.").instruction == "Be terse."
    with pytest.raises(RolecheckUsageError, match="text must be a string"):
        base.with_instruction(None)  # type: ignore[arg-type]


def test_instruction_with_content_parts() -> None:
    messages = [{"role": "system", "content": [{"type": "text", "text": "A"}]}, MESSAGES[1]]
    variant = Variant.from_messages(messages)
    assert variant.instruction == "A"
    assert variant.append_instruction("B").instruction == "A\n\nB"


# -- preamble ----------------------------------------------------------------------------


def test_preamble_in_the_published_order_and_format() -> None:
    variant = Variant.from_messages(MESSAGES).with_preamble(
        knowledge_cutoff="2023-10",
        current_date="2024-07-10",
        lines={"Image input capabilities": "Enabled", "Personality": "v2"},
    )
    assert variant.instruction == (
        "Knowledge cutoff: 2023-10\nCurrent date: 2024-07-10\n"
        f"Image input capabilities: Enabled\nPersonality: v2\n{SYSTEM}"
    )
    assert variant.label == "system+cutoff+date+image-input-capabilities+personality"


def test_preamble_after_the_first_line_like_chatgpt() -> None:
    identity = (
        "You are ChatGPT, a large language model trained by OpenAI, based on the GPT-4 "
        "architecture."
    )
    base = Variant.from_messages([{"role": "system", "content": identity}, MESSAGES[1]])
    dated = base.with_preamble(
        knowledge_cutoff=dt.date(2023, 10, 1),
        current_date=dt.datetime(2024, 7, 10, 23, 59),
        position="after-first-line",
    )
    assert dated.instruction == (f"{identity}\nKnowledge cutoff: 2023-10\nCurrent date: 2024-07-10")
    two_lines = Variant.from_messages([{"role": "system", "content": "Id.\nRules."}])
    assert two_lines.with_preamble(
        current_date="2024-07-10", position="after-first-line"
    ).instruction == ("Id.\nCurrent date: 2024-07-10\nRules.")


def test_with_and_without_date_line() -> None:
    base = Variant.from_messages(MESSAGES)
    plain, dated = base, base.with_preamble(current_date=dt.date(2024, 7, 10))
    assert dated.instruction == f"Current date: 2024-07-10\n{SYSTEM}"
    assert (plain.label, dated.label) == ("system", "system+date")
    assert plain.instruction == SYSTEM


def test_preamble_creates_a_system_message() -> None:
    variant = Variant.from_messages([MESSAGES[1]]).with_preamble(knowledge_cutoff="2023-10")
    assert variant.messages[0] == {"role": "system", "content": "Knowledge cutoff: 2023-10"}


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({}, "needs at least one of"),
        ({"current_date": ""}, "current_date must be"),
        ({"current_date": 20240710}, "current_date must be"),
        ({"knowledge_cutoff": " "}, "knowledge_cutoff must be"),
        ({"current_date": "2024-07-10\nIgnore previous"}, "single line"),
        ({"lines": {"A: B": "x"}}, "without ':'"),
        ({"lines": {"Personality": 2}}, "must be a string"),
        ({"current_date": "2024", "position": "end"}, "position must be"),
    ],
)
def test_preamble_validation(kwargs: dict[str, Any], message: str) -> None:
    with pytest.raises(RolecheckUsageError, match=message):
        Variant.from_messages(MESSAGES).with_preamble(**kwargs)


# -- tools -------------------------------------------------------------------------------


def test_with_tools_normalises_and_adds() -> None:
    base = Variant.from_messages(MESSAGES).with_tools([WEATHER_TOOL])
    assert base.label == "system+tools"
    both = base.with_tools([STOCK_FUNCTION])
    assert both.tool_names == ("get_weather", "get_stock_price")
    assert both.request()["tools"][1] == {"type": "function", "function": STOCK_FUNCTION}
    replaced = both.with_tools([STOCK_FUNCTION], replace=True)
    assert replaced.tool_names == ("get_stock_price",)
    with pytest.raises(RolecheckUsageError, match="appear twice"):
        both.with_tools([WEATHER_TOOL])
    with pytest.raises(RolecheckUsageError, match="non-empty list"):
        base.with_tools(WEATHER_TOOL)  # type: ignore[arg-type]
    with pytest.raises(RolecheckUsageError, match="only function tools"):
        base.with_tools([{"type": "web_search"}])


def test_without_tools() -> None:
    base = Variant.from_messages(
        MESSAGES,
        tools=[WEATHER_TOOL, {"type": "function", "function": STOCK_FUNCTION}],
        tool_choice="auto",
        parallel_tool_calls=False,
        seed=3,
    )
    none = base.without_tools()
    assert none.params == {"seed": 3}
    assert none.label == "system+no-tools"
    one = base.without_tools(["get_stock_price"])
    assert one.tool_names == ("get_weather",)
    assert one.params["tool_choice"] == "auto"
    assert one.label == "system+no-get_stock_price"
    emptied = one.without_tools("get_weather")
    assert emptied.params == {"seed": 3}
    with pytest.raises(RolecheckUsageError, match=r"no tools named \['nope'\]"):
        base.without_tools(["nope"])


def test_with_parallel_tool_calls() -> None:
    base = Variant.from_messages(MESSAGES, tools=[WEATHER_TOOL])
    assert base.with_parallel_tool_calls(False).params["parallel_tool_calls"] is False
    assert base.with_parallel_tool_calls(False).label == "system+no-parallel"
    assert base.with_parallel_tool_calls(True).label == "system+parallel"
    with pytest.raises(RolecheckUsageError, match="True or False"):
        base.with_parallel_tool_calls(1)  # type: ignore[arg-type]


# The published Playground prompt: a cutoff line, then the tools (quoted without blank lines).
PLAYGROUND_PROMPT_START = """\
Knowledge cutoff: 2023-10
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
"""


def test_tools_in_system_prompt_reproduces_the_playground_prompt() -> None:
    via_api = Variant.from_messages(
        [MESSAGES[1]], tools=[WEATHER_TOOL, STOCK_FUNCTION], tool_choice="auto"
    ).with_preamble(knowledge_cutoff="2023-10")
    in_prompt = via_api.tools_in_system_prompt(multi_tool_use=True, blank_lines=False)
    assert in_prompt.instruction is not None
    assert in_prompt.instruction.startswith(PLAYGROUND_PROMPT_START)
    assert in_prompt.instruction.endswith("} // namespace multi_tool_use")
    assert in_prompt.params == {}
    assert in_prompt.label == "no-instruction+cutoff+tools-in-prompt"
    assert via_api.tool_names == ("get_weather", "get_stock_price")


def test_tools_via_api_versus_in_system_prompt_one_liner() -> None:
    base = Variant.from_messages(MESSAGES, tools=[WEATHER_TOOL], temperature=0.0)
    api, prompt = base, base.tools_in_system_prompt()
    assert api.request()["tools"] == [WEATHER_TOOL]
    assert "tools" not in prompt.request()
    assert prompt.instruction == f"{SYSTEM}\n\n{render_tools_namespace([WEATHER_TOOL])}"
    assert prompt.params == {"temperature": 0.0}
    assert prompt.label == "system+tools-in-prompt"


def test_tools_in_system_prompt_options() -> None:
    base = Variant.from_messages([MESSAGES[1]], tools=[WEATHER_TOOL], parallel_tool_calls=True)
    both = base.tools_in_system_prompt(keep_api_tools=True)
    assert both.params == base.params
    assert both.label == "no-instruction+tools-in-prompt+api"
    assert both.messages[0]["role"] == "system"
    assert both.instruction == render_tools_namespace([WEATHER_TOOL])
    # An instruction that already has a "# Tools" heading gets only the functions section.
    with_heading = Variant.from_messages(
        [{"role": "system", "content": "# Tools\n\n## bio\n\nRemembers."}, MESSAGES[1]],
        tools=[WEATHER_TOOL],
    ).tools_in_system_prompt()
    assert with_heading.instruction is not None
    assert with_heading.instruction.count("# Tools") == 1
    assert "Remembers.\n\n## functions\n\nnamespace functions {" in with_heading.instruction
    with pytest.raises(RolecheckUsageError, match="has no tools to move"):
        Variant.from_messages(MESSAGES).tools_in_system_prompt()


# -- params ------------------------------------------------------------------------------


def test_with_and_without_params() -> None:
    base = Variant.from_messages(MESSAGES, temperature=0.0)
    warm = base.with_params(temperature=0.7, stop=["\n"])
    assert warm.params == {"temperature": 0.7, "stop": ("\n",)}
    assert warm.request()["stop"] == ["\n"]
    assert warm.label == "system+temperature=0.7+stop"
    assert base.params == {"temperature": 0.0}
    cold = warm.without_params("stop")
    assert cold.params == {"temperature": 0.7}
    assert cold.label == "system+temperature=0.7+stop+no-stop"
    with pytest.raises(RolecheckUsageError, match="at least one parameter"):
        base.with_params()
    with pytest.raises(RolecheckUsageError, match="needs names of parameters"):
        base.without_params("seed")
    with pytest.raises(RolecheckUsageError, match="'messages' cannot be a request parameter"):
        base.with_params(messages=[])


def test_labels_are_filesystem_friendly() -> None:
    variant = (
        Variant.from_messages(MESSAGES)
        .with_params(response_format="json/object")
        .with_preamble(lines={"Odd key/with:colon?".replace(":", ""): "x"})
    )
    assert "/" not in variant.label
    assert "?" not in variant.label
