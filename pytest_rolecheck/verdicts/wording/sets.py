"""Every text of a prompt-set comparison: headline, advice, report and assertion message.

The prompt-set half of :mod:`~pytest_rolecheck.verdicts.wording` (which
dispatches here for a :class:`~pytest_rolecheck.verdicts.prompt_sets.PromptSetComparison`
and owns the words both share); numbers go through
:mod:`~pytest_rolecheck.verdicts.numbers`.
"""

from __future__ import annotations

import math
import textwrap
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any, Final

from ..numbers import fmt_bounds, fmt_confidence, fmt_p, fmt_value
from . import PLAIN_VERDICT, counterpart, expected_verdict, next_step
from .details import shorten

if TYPE_CHECKING:
    from ..prompt_sets import CaseComparison, PromptSetComparison

__all__ = [
    "set_assertion_message",
    "set_plain",
    "set_report",
    "set_row_sentences",
    "set_test",
    "set_texts",
    "set_too_small",
]

_Esc = Callable[[str], str]

#: Flagged cases an assertion message quotes with their texts (the report lists them all).
MESSAGE_CASES: Final = 5


def _cases_for(tolerance: float, alpha: float) -> int:
    """Fewest quiet cases whose unseen-case guard ``1 - alpha ** (1/m)`` is below ``tolerance``."""
    return math.floor(math.log(alpha) / math.log1p(-tolerance)) + 1 if tolerance < 1 else 2


def set_texts(
    *,
    verdict: str,
    labels: tuple[str, str],
    n_cases: int,
    change: float,
    lower: float,
    upper: float,
    p_value: float,
    alpha: float,
    tolerance: float,
    recommended_cases: int | None,
    changed: int,
    guard: float,
    blind: str | None,
) -> tuple[str, str]:
    """Headline and advice of a prompt-set verdict."""
    a, b = labels
    over = f"over the {n_cases} cases"
    flagged = f"{changed} of {n_cases} cases moved on their own (q <= {alpha:g})"
    if verdict == "different":
        return (
            f"{a} and {b} behave differently {over}: the set change {fmt_value(change)} is above "
            f"the tolerance {tolerance:g} (lower bound {fmt_value(lower)}, p = {fmt_p(p_value)}).",
            f"{flagged}; see the per-case table for where. If the change is intended, assert "
            f"it; if not, fix {b}.",
        )
    if verdict == "equivalent":
        return (
            f"{a} and {b} behave the same {over}, within the tolerance {tolerance:g}: the set "
            f"change is at most {fmt_value(upper)} ({fmt_confidence(alpha)} upper bound).",
            f"{flagged}. The bound is about prompts like these cases (they are taken as a sample "
            f"of them), not only these {n_cases}.",
        )
    headline = (
        f"Not settled {over}: the set change {fmt_value(change)} has bounds "
        f"{fmt_bounds(lower, upper)} around the tolerance {tolerance:g} (p = {fmt_p(p_value)})."
    )
    if blind is not None and change < tolerance:
        return headline, f"metric cannot certify equivalence: {blind}. {flagged}."
    need = _cases_for(tolerance, alpha)
    if not math.isnan(guard) and guard >= tolerance and change < tolerance and n_cases < need:
        advice = (
            f"{n_cases} cases cannot exclude a change confined to a few prompts (up to "
            f"{fmt_value(guard)} of them): use at least {need} cases"
        )
    elif recommended_cases is not None:
        advice = (
            f"run about {recommended_cases} cases with the same trials per case (rough estimate)"
        )
    else:
        advice = (
            "more cases will not settle it soon: decide whether a change of this size matters "
            "and set tolerance= accordingly"
        )
    return headline, f"{advice}. {flagged}."


def set_too_small(alpha: float, smallest_p: float) -> str:
    """Warning: the set's test can never reach ``p <= alpha``."""
    return (
        f"alpha {alpha:g} is below the smallest p-value these cases can produce "
        f"({fmt_p(smallest_p)}), so the set can never be shown different; run more trials per "
        "case or add cases."
    )


def set_test(n_cases: int, exact: bool, n_relabellings: int, seed: int | None) -> str:
    """The test line of a set comparison."""
    how = (
        f"exact over {n_relabellings} labellings"
        if exact
        else f"{n_relabellings} random labellings, seed {seed}"
    )
    return (
        f"stratified permutation test over {n_cases} cases (labels permuted within each case; "
        f"{how}); bounds resample over cases"
    )


def _calls(r: PromptSetComparison) -> str:
    if r.trials_a is not None and r.trials_a == r.trials_b:
        return f"{r.trials_a} calls each per case"
    return f"{r.n_a} and {r.n_b} calls in all"


def _case_line(c: CaseComparison, labels: tuple[str, str]) -> list[str]:
    stats = "deterministic" if c.deterministic else f"p {fmt_p(c.p_value)}, q {fmt_p(c.q_value)}"
    return [
        f"  {c.id}: change {fmt_value(c.change)} ({stats})",
        f"    {labels[0]} typically: {shorten(c.typical_text_a)}",
        f"    {labels[1]} typically: {shorten(c.typical_text_b)}",
    ]


def set_plain(r: PromptSetComparison) -> list[str]:
    """Plain words: what was compared, the verdict, and which cases moved with their texts."""
    a, b = r.labels
    what = "by their tool calls" if r.kind == "tool-calls" else f"(metric {r.metric})"
    lines = [
        f"Compared {a} with {b} over {r.n_cases} cases, {_calls(r)} {what}.",
        f"Verdict: {r.verdict} — {PLAIN_VERDICT[r.verdict].format(tol=r.tolerance)}.",
    ]
    if not r.changed:
        return [*lines, "No case moved on its own."]
    moved = {c.id: c for c in r.cases}
    lines.append(f"Cases that moved ({len(r.changed)} of {r.n_cases}, largest change first):")
    for case_id in r.changed[:MESSAGE_CASES]:
        lines += _case_line(moved[case_id], r.labels)
    if len(r.changed) > MESSAGE_CASES:
        lines.append(f"  ... and {len(r.changed) - MESSAGE_CASES} more (see the report).")
    return lines


def _numbers(r: PromptSetComparison) -> list[str]:
    return [
        f"set change: {fmt_value(r.change)} (bounds {fmt_bounds(r.change_lower, r.change_upper)}, "
        f"tolerance {r.tolerance:g}, {fmt_confidence(r.alpha)} confidence)",
        f"p-value: {fmt_p(r.p_value)} ({r.test})",
        f"cases: {r.n_cases}; calls: {r.n_a} + {r.n_b}; flagged: {len(r.changed)}",
        *(f"warning: {w}" for w in r.warnings),
    ]


def set_report(r: PromptSetComparison) -> str:
    """``str()`` of a set comparison: verdict, numbers, every case, what to do."""
    lines = [f"verdict: {r.verdict}", r.headline, *_numbers(r), "per case (largest change first):"]
    for c in sorted(r.cases, key=lambda c: -c.change):
        stats = "deterministic" if c.deterministic else f"p {fmt_p(c.p_value)} q {fmt_p(c.q_value)}"
        lines.append(f"  {c.id}: {c.status}, change {fmt_value(c.change)}, {stats}")
    return "\n".join([*lines, f"next: {r.advice}"])


def set_assertion_message(r: PromptSetComparison, called: str) -> str:
    """The failure message of ``called`` on a set comparison (see ``wording.assertion_message``)."""
    a, b = r.labels
    head = (
        f"{called} failed: {a} and {b} were not shown equivalent over {r.n_cases} cases."
        if expected_verdict(called) == "equivalent"
        else f"{called} failed: no difference between {a} and {b} was shown over {r.n_cases} cases."
    )
    details = textwrap.indent("\n".join([r.headline, *_numbers(r)]), "  ")
    todo = (
        f"if the change is intended, assert it with {counterpart(called)}(...); if not, fix "
        f"{b}: start with the cases that moved (above)."
        if r.verdict == "different"
        else next_step(r.verdict, r.labels, r.tolerance, r.advice, called)
    )
    return "\n".join([head, "", *set_plain(r), "", "Details:", details, "", f"What to do: {todo}"])


def set_row_sentences(
    d: Mapping[str, Any], labels: tuple[str, str], *, esc: _Esc = str, bold: _Esc = str
) -> list[str]:
    """The report's plain words for a prompt-set row (``d``: the set's ``to_dict()``)."""
    a, b = (esc(x) for x in labels)
    n_cases = len(d.get("cases") or ())
    trials_a, trials_b = d.get("trials_a"), d.get("trials_b")
    each = (
        f"{trials_a} calls each per case"
        if trials_a is not None and trials_a == trials_b
        else f"{d.get('n_a')} and {d.get('n_b')} calls in all"
    )
    what = "tool-call outcomes" if d.get("kind") == "tool-calls" else f"metric {d.get('metric')}"
    changed = d.get("changed") or ()
    return [
        f"Compared {a} with {b} over {n_cases} cases, {each} ({esc(what)}).",
        f"Set change {bold(fmt_value(d.get('change')))}, bounds "
        f"{bold(fmt_bounds(d.get('change_lower'), d.get('change_upper')))} against the "
        f"tolerance {fmt_value(d.get('tolerance'))}; p = {bold(fmt_p(d.get('p_value')))} "
        f"({esc(str(d.get('test', '')))}).",
        f"{len(changed)} of {n_cases} cases moved on their own (Benjamini-Hochberg q <= "
        f"{fmt_value(d.get('alpha'))}); the table lists every case, largest change first.",
    ]
