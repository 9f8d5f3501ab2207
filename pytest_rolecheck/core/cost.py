"""What calls cost: a price table, tokens per model, and the estimate of planned calls.

Pure arithmetic: the price file is read elsewhere (:mod:`pytest_rolecheck.prices`), and
the tokens come from the servers' ``usage`` or, before a call, from an estimate.
Prices are USD per 1M tokens, as providers publish them.
"""

from __future__ import annotations

import fnmatch
import json
import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, Final

PER_TOKENS: Final = 1_000_000
# A rough, well-known rule for English text with BPE tokenizers; only ever an estimate.
CHARS_PER_TOKEN: Final = 4
# The request fields that cap a call's output, by API (chat's old and new name, Responses).
_OUTPUT_CAPS: Final = ("max_completion_tokens", "max_tokens", "max_output_tokens")
# The request fields that hold the prompt (chat, Responses).
_PROMPT_FIELDS: Final = ("messages", "input", "instructions", "tools")


@dataclass(frozen=True, slots=True)
class Price:
    """USD per 1M input and output tokens; ``cached_input`` for cached prompt tokens."""

    input: float
    output: float
    cached_input: float | None = None  # None: cached tokens cost the full input price


@dataclass(frozen=True, slots=True)
class Tokens:
    """Calls and tokens of one model; ``cached`` is the part of ``prompt`` the server cached."""

    calls: int = 0
    prompt: int = 0
    completion: int = 0
    cached: int = 0

    def __add__(self, other: Tokens) -> Tokens:
        return Tokens(
            self.calls + other.calls,
            self.prompt + other.prompt,
            self.completion + other.completion,
            self.cached + other.cached,
        )

    def __sub__(self, other: Tokens) -> Tokens:
        return Tokens(
            self.calls - other.calls,
            self.prompt - other.prompt,
            self.completion - other.completion,
            self.cached - other.cached,
        )

    @property
    def total(self) -> int:
        return self.prompt + self.completion

    def to_json(self) -> dict[str, int]:
        return {
            "calls": self.calls,
            "prompt_tokens": self.prompt,
            "completion_tokens": self.completion,
            "cached_tokens": self.cached,
        }

    @classmethod
    def from_json(cls, data: Any) -> Tokens:
        """Tolerant of missing or odd values (an older or hand-edited report)."""
        data = data if isinstance(data, Mapping) else {}
        return cls(
            *(
                _count(data.get(key))
                for key in ("calls", "prompt_tokens", "completion_tokens", "cached_tokens")
            )
        )


def _count(value: Any) -> int:
    return value if isinstance(value, int) and not isinstance(value, bool) and value > 0 else 0


@dataclass(frozen=True)
class PriceTable:
    """Prices by exact model name and by glob pattern (``gpt-4.1*``).

    An exact name wins; else the longest matching pattern (``gpt-4.1-mini*`` before
    ``gpt-4.1*``); else the model has no price.
    """

    exact: Mapping[str, Price] = field(default_factory=dict)
    patterns: Mapping[str, Price] = field(default_factory=dict)

    def price_for(self, model: str) -> Price | None:
        if model in self.exact:
            return self.exact[model]
        matching = [p for p in self.patterns if fnmatch.fnmatchcase(model, p)]
        if not matching:
            return None
        # Longest first; equally long ones in a fixed order, so a run cannot flip.
        return self.patterns[min(matching, key=lambda p: (-len(p), p))]

    @staticmethod
    def is_pattern(name: str) -> bool:
        return any(char in name for char in "*?[")


def settled(usd: float) -> float:
    """``usd`` rounded to 1e-12 dollars: sums of per-token prices carry float noise
    (``0.00045120000000000007``) into the JSON report otherwise."""
    return round(usd, 12)


def cost_of(price: Price, tokens: Tokens) -> float:
    """USD for ``tokens`` at ``price``; cached prompt tokens at the cached price if any."""
    cached = min(max(tokens.cached, 0), tokens.prompt)
    cached_price = price.input if price.cached_input is None else price.cached_input
    return (
        (tokens.prompt - cached) * price.input
        + cached * cached_price
        + tokens.completion * price.output
    ) / PER_TOKENS


@dataclass(frozen=True, slots=True)
class Cost:
    """What some calls cost: ``usd`` of the priced models, and the models without a price."""

    usd: float
    no_price: tuple[str, ...] = ()

    @property
    def complete(self) -> float | None:
        """The cost of every call; ``None`` when a model has no price (never a false $0)."""
        return None if self.no_price else self.usd


def priced(table: PriceTable, by_model: Mapping[str, Tokens]) -> Cost:
    """The cost of calls to several models; never 0 for a model the table does not price."""
    total = 0.0
    missing: list[str] = []
    for model, tokens in sorted(by_model.items()):
        if tokens.calls <= 0 and tokens.total <= 0:
            continue
        price = table.price_for(model)
        if price is None:
            missing.append(model)
        else:
            total += cost_of(price, tokens)
    return Cost(settled(total), tuple(missing))


def add_tokens(*parts: Mapping[str, Tokens]) -> dict[str, Tokens]:
    """Tokens per model summed over ``parts``."""
    out: dict[str, Tokens] = {}
    for part in parts:
        for model, tokens in part.items():
            out[model] = out.get(model, Tokens()) + tokens
    return out


def minus(after: Mapping[str, Tokens], before: Mapping[str, Tokens]) -> dict[str, Tokens]:
    """The tokens per model counted since ``before`` (models with no new call left out)."""
    out = {model: tokens - before.get(model, Tokens()) for model, tokens in after.items()}
    return {model: tokens for model, tokens in out.items() if tokens.calls > 0}


# --------------------------------------------------------------------------- planning


def estimate_text_tokens(text: str) -> int:
    """Tokens of ``text`` by the chars/4 rule (at least 1 for non-empty text)."""
    return math.ceil(len(text) / CHARS_PER_TOKEN)


def planned_tokens(
    request: Mapping[str, Any], recorded_usage: Mapping[str, Any] | None
) -> tuple[Tokens, bool]:
    """The tokens one planned call will use, and whether its prompt count was measured.

    The prompt: the recorded ``usage`` of the same request when there is one (what the
    server counted), else the request's prompt text by chars/4. The output: at most the
    request's cap (``max_tokens`` ...) per choice; without a cap, what was recorded.
    """
    usage = recorded_usage if isinstance(recorded_usage, Mapping) else {}
    recorded_prompt = usage.get("prompt_tokens", usage.get("input_tokens"))
    measured = isinstance(recorded_prompt, int) and not isinstance(recorded_prompt, bool)
    if measured:
        prompt = int(recorded_prompt)
    else:
        prompt_part = {k: request[k] for k in _PROMPT_FIELDS if k in request}
        prompt = estimate_text_tokens(json.dumps(prompt_part, ensure_ascii=False))
    choices = request.get("n")
    choices = choices if isinstance(choices, int) and choices > 0 else 1
    cap = next((request[k] for k in _OUTPUT_CAPS if isinstance(request.get(k), int)), None)
    if cap is not None:
        completion = cap * choices
    else:
        completion = _count(usage.get("completion_tokens", usage.get("output_tokens")))
    return Tokens(1, prompt, completion, 0), measured


@dataclass(frozen=True, slots=True)
class Plan:
    """The estimate announced before a live run."""

    by_model: Mapping[str, Tokens]
    measured_prompts: int  # calls whose prompt tokens come from a recording

    @property
    def calls(self) -> int:
        return sum(t.calls for t in self.by_model.values())

    @property
    def tokens(self) -> int:
        return sum(t.total for t in self.by_model.values())


def plan(calls: Iterable[tuple[str, Mapping[str, Any], Mapping[str, Any] | None]]) -> Plan:
    """Sum :func:`planned_tokens` over ``(model, request, recorded usage)`` of each call."""
    by_model: dict[str, Tokens] = {}
    measured = 0
    for model, request, usage in calls:
        tokens, known = planned_tokens(request, usage)
        by_model[model] = by_model.get(model, Tokens()) + tokens
        measured += known
    return Plan(by_model, measured)
