"""Every text about cost: a row's cell, the run's total, the estimate before a live run.

The rule, said the same way everywhere: costs are estimates at the user's price table
(USD per 1M tokens); a replayed call costs $0 now, and shows what it cost when recorded
(at the same prices); a model the table does not price is named, never counted as $0.
"""

from __future__ import annotations

from collections.abc import Sequence

from ..numbers import MISSING, fmt_count, fmt_rounded_count, fmt_usd


def no_price(models: Sequence[str]) -> str:
    return f"no price for {', '.join(models)}"


def cost_cell(
    cost: float | None, missing: Sequence[str], *, replayed: bool, now: bool = False
) -> str:
    """A row's cost: ``~$0.012`` live, ``$0 (~$0.012 recorded)`` replayed (``now``: ``$0``)."""
    if missing:
        return no_price(missing)
    if cost is None:
        return MISSING
    if replayed:
        return "$0" if now else f"$0 (~{fmt_usd(cost)} recorded)"
    return f"~{fmt_usd(cost)}"


def totals_text(
    *,
    live: tuple[int, float | None],
    replayed: tuple[int, float | None],
    no_price: Sequence[str],
) -> str:
    """The run's cost: ``cost ~$0.42 live; replay cost $0 (recorded cost ~$1.10)``.

    ``live`` and ``replayed`` are (calls, USD at the price table; None: nothing priced).
    """
    parts = []
    if live[0] and live[1] is not None:
        parts.append(f"cost ~{fmt_usd(live[1])} live")
    if replayed[0]:
        recorded = f" (recorded cost ~{fmt_usd(replayed[1])})" if replayed[1] is not None else ""
        parts.append(f"replay cost $0{recorded}")
    if no_price:
        parts.append(_not_counted(no_price))
    return "; ".join(parts)


def _not_counted(models: Sequence[str]) -> str:
    return f"{no_price(models)}: its calls are not counted"


def planned_text(
    *,
    calls: int,
    tokens: int,
    cost: float | None,
    missing: Sequence[str],
    priced: bool,
    measured: int,
    unknown_tests: int,
) -> str:
    """The estimate announced before a live run: ``planned: 1,240 calls, ~310k tokens, ~$0.42``.

    ``measured``: calls whose prompt tokens come from their old recording (else chars/4);
    answers are counted at their max_tokens. ``unknown_tests``: new tests, not counted.
    """
    text = f"rolecheck: planned: {fmt_count(calls)} calls, ~{fmt_rounded_count(tokens)} tokens"
    if priced and cost is not None:
        text += f", ~{fmt_usd(cost)}"
    if priced and missing:
        text += f" ({_not_counted(missing)})"
    if unknown_tests:
        text += f" + {unknown_tests} new test{'s' if unknown_tests != 1 else ''} not counted"
    source = "recorded prompts" if measured == calls else "prompts at chars/4"
    if 0 < measured < calls:
        source = "recorded prompts where known, else chars/4"
    return f"{text} (estimate: {source}, answers at max_tokens)"
