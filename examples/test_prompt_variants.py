"""Prompt variants built the way production system prompts are composed.

System prompts are a preamble of facts (knowledge cutoff, current date) plus
tools, either passed through the API's ``tools=`` or described in the prompt
as a TypeScript-like ``namespace functions { ... }`` block. Each test changes
one of those parts and states what the bundled SmolLM2-135M-Instruct model
does about it; re-record against your own model to learn what yours does.
"""

from __future__ import annotations

import datetime

from pytest_rolecheck import Rolecheck, Variant

MESSAGES = [
    {"role": "system", "content": "You are a helpful assistant."},
    {"role": "user", "content": "What is the weather like in Paris today?"},
]
TOOLS = [
    {
        "type": "function",
        "function": {
            "name": "get_weather",
            "description": "Determine weather in my location",
            "parameters": {
                "type": "object",
                "properties": {
                    "location": {
                        "type": "string",
                        "description": "The city and state e.g. San Francisco, CA",
                    },
                    "unit": {"type": "string", "enum": ["c", "f"]},
                },
                "required": ["location"],
            },
        },
    },
    {
        "type": "function",
        "function": {
            "name": "get_stock_price",
            "description": "Get the current stock price",
            "parameters": {
                "type": "object",
                "properties": {"symbol": {"type": "string", "description": "The stock symbol"}},
                "required": ["symbol"],
            },
        },
    },
]
# The local server answers this model name with llama.cpp's ChatML
# function-calling format, so tools passed through the API come back as tool_calls.
# llama.cpp treats a missing tool_choice as "none" (OpenAI's default is "auto"
# when tools are given), so the variants say "auto" explicitly.
FUNCTION_CALLING = "smollm2-135m-instruct+function-calling"
PLAIN = "smollm2-135m-instruct"


def test_date_line_changes_the_answer(rolecheck: Rolecheck) -> None:
    """Adding "Knowledge cutoff / Current date" lines is a behavioural change here."""
    plain = Variant.from_messages(MESSAGES, label="plain")
    dated = plain.with_preamble(knowledge_cutoff="2023-10", current_date=datetime.date(2024, 7, 10))
    rolecheck.assert_variants_differ(plain, dated)


def test_tools_via_api_vs_described_in_system_prompt(rolecheck: Rolecheck) -> None:
    """The same two tools, passed through the API or rendered into the prompt."""
    via_api = Variant.from_messages(
        MESSAGES, label="tools-via-api", tools=TOOLS, tool_choice="auto", model=FUNCTION_CALLING
    )
    in_prompt = via_api.tools_in_system_prompt().with_params(model=PLAIN, label="tools-in-prompt")
    result = rolecheck.assert_tool_calls_differ(via_api, in_prompt)
    # Through the API the model always calls a function; from the prompt alone
    # this small model only ever answers in text.
    counts = result.counts  # outcome -> (calls in A, calls in B)
    assert counts["<text>"] == (0, result.n_b)


def test_sampled_tool_choice_is_stable(rolecheck: Rolecheck) -> None:
    """A/A at temperature 1, comparing which function is called (not its arguments)."""
    via_api = Variant.from_messages(
        MESSAGES, label="tools-via-api", tools=TOOLS, tool_choice="auto", model=FUNCTION_CALLING
    )
    rolecheck.assert_tool_calls_equivalent(via_api, via_api, temperature=1.0, names_only=True)
