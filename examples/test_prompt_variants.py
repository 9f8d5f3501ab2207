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


def test_date_line_changes_the_answer(rolecheck: Rolecheck) -> None:
    """Adding "Knowledge cutoff / Current date" lines is a behavioural change here."""
    plain = Variant.from_messages(MESSAGES, label="plain")
    dated = plain.with_preamble(knowledge_cutoff="2023-10", current_date=datetime.date(2024, 7, 10))
    rolecheck.assert_variants_differ(plain, dated)


def test_tools_via_api_vs_described_in_system_prompt(rolecheck: Rolecheck) -> None:
    """The same two tools, passed through the API or rendered into the system prompt.

    SmolLM2's chat template has no place for tools, so the tools sent through the API
    never reach the model (the prompt has the same number of tokens with or without
    them); the ``namespace functions { ... }`` block that production system prompts
    use is text the model reads, and the answers differ. (This small model never
    calls a tool, so the comparison is of its answers, not of tool calls: see the
    README for tool-call checks on a model that supports them.)
    """
    via_api = Variant.from_messages(MESSAGES, label="tools-via-api", tools=TOOLS)
    in_prompt = via_api.tools_in_system_prompt(label="tools-in-prompt")
    rolecheck.assert_variants_differ(via_api, in_prompt)
