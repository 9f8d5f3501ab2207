"""Every verdict text rolecheck writes: headlines, advice, reports and assertion messages.

One place, so the words agree: the terminal, the HTML report, ``str(comparison)``
and a failing assertion all read them from here. Numbers go through
:mod:`~pytest_rolecheck.verdicts.numbers`.

An assertion message reads top-down for someone who never met the statistics: what was
compared, the verdict, whether the **texts** differ or only the **probabilities** (both arms'
typical text and where they part), the numbers as a detail block, one next step naming a helper.

Modules::

    cost          Every text about cost: a row's cell, the run's total, the estimate before a
                  live run.
    details       The detail block of a verdict: the numbers behind it, as text or as report
                  sentences.
    diff          The words of ``rolecheck diff``: what changed between two recordings or reports.
    drift         The words of a drift check: the rule, the terminal section, what to do.
    logprobs      Every text about calls without logprobs: why a comparison went by text, and
                  the errors.
    sets          Every text of a prompt-set comparison: headline, advice, report and assertion
                  message.
"""

from __future__ import annotations

import math
import textwrap
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any, Final, Protocol

from ...core.distances import divergence_position
from ...core.parse import ParsedCall
from ..numbers import fmt_bounds, fmt_confidence, fmt_p, fmt_value
from ..numbers import fmt_exact as _n
from .details import (
    SAME_DISTRIBUTIONS,
    comparison_report,
    exact_basis,
    shorten,
    text_lines,
    tool_call_report,
)

if TYPE_CHECKING:
    from ...core.stats import Bound, Decision, FlipSummary
    from ..compare import Comparison
    from ..prompt_sets import PromptSetComparison
    from ..toolcalls import ToolCallComparison

__all__ = [
    "PLAIN_VERDICT",
    "SAME_DISTRIBUTIONS",
    "assertion_message",
    "counterpart",
    "expected_verdict",
    "row_advice",
    "row_headline",
    "row_texts",
]

# --------------------------------------------------------------------------- helper names

#: The assertion pairs; each entry point belongs to one family.
_FAMILIES: Final[dict[str, tuple[str, str]]] = {
    "roles": ("assert_roles_equivalent", "assert_roles_differ"),
    "variants": ("assert_variants_equivalent", "assert_variants_differ"),
    "tool_calls": ("assert_tool_calls_equivalent", "assert_tool_calls_differ"),
    "module": ("assert_equivalent", "assert_different"),
}
# Comparisons made without an assertion, by what made them.
_COMPARERS: Final[dict[str, str]] = {
    "compare": "module",
    "Rolecheck.compare": "variants",
    "compare_tool_calls": "tool_calls",
}


def _family(called: str) -> tuple[str, str]:
    for pair in _FAMILIES.values():
        if called in pair:
            return pair
    if called in _COMPARERS:
        return _FAMILIES[_COMPARERS[called]]
    raise ValueError(f"unknown rolecheck entry point {called!r}")


def expected_verdict(called: str) -> str:
    """The verdict an assertion helper needs to pass: ``"equivalent"`` or ``"different"``."""
    equivalent, different = _family(called)
    if called == equivalent:
        return "equivalent"
    if called == different:
        return "different"
    raise ValueError(f"{called!r} is not an assertion helper")


def counterpart(called: str) -> str:
    """The helper that asserts a difference, for an entry point of the same family.

    ``assert_roles_equivalent`` -> ``assert_roles_differ``; ``compare`` ->
    ``assert_different``; a ``*_differ`` helper -> its ``*_equivalent`` twin.
    """
    equivalent, different = _family(called)
    return equivalent if called == different else different


# --------------------------------------------------------------------------- shared bits


class Options(Protocol):
    """What the words of a logprob verdict need to know about the options."""

    @property
    def labels(self) -> tuple[str, str]: ...
    @property
    def alpha(self) -> float: ...
    @property
    def tolerance(self) -> float: ...
    @property
    def metric(self) -> str: ...
    @property
    def design(self) -> str: ...
    @property
    def blind(self) -> str | None: ...
    @property
    def bounded(self) -> bool: ...


_SEED_BLIND: Final = (
    "the seed design measures each trial's distance to one baseline call, and two arms "
    "equally far from that call can still differ from each other"
)


def blind_words(opts: Options, statistical: bool = True) -> str:
    """Why this metric or design cannot certify equivalence, and what to use instead."""
    if opts.blind is None and statistical and opts.design == "seed":
        return (
            f"the seed design cannot certify equivalence ({_SEED_BLIND}); it can still show a "
            f"difference. Use design='all-pairs' (the default) to show equivalence."
        )
    return (
        f"metric {opts.metric!r} cannot certify equivalence ({opts.blind}); it can still show "
        f"a difference. Use metric='auto' (the default), 'js' or 'tv' to show equivalence."
    )


def alpha_below_smallest_p(alpha: float, smallest_p: float, what: str) -> str:
    """Warning: ``what`` can never reach ``p <= alpha`` with this many calls."""
    return (
        f"alpha {alpha:g} is below the smallest p-value {what} can produce "
        f"({fmt_p(smallest_p)}), so the difference test can never be significant; use more "
        f"trials per arm or a larger alpha."
    )


def different_advice(called: str | None = None) -> str:
    """Advice for a *different* verdict; names the helper when the entry point is known."""
    helper = (
        f"{counterpart(called)}(...)"
        if called is not None
        else "assert_different(...) (with the rolecheck fixture: assert_variants_differ or "
        "assert_roles_differ)"
    )
    return (
        f"if the change is intended, assert it with {helper}; if not, read where the texts of "
        "the two arms part and check their fingerprints."
    )


# --------------------------------------------------------------------------- logprob verdicts


def flip_warning(flips: FlipSummary, opts: Options) -> str:
    """Warning when the share of flipped texts differs although the verdict is not *different*."""
    a, b = opts.labels
    return (
        f"the share of calls whose text differs from {a}'s most common text differs "
        f"({a} {flips.changed_a}/{flips.n_a}, {b} {flips.changed_b}/{flips.n_b}, Fisher p = "
        f"{fmt_p(flips.p_value)}): rare flips are behaviour too; read the texts "
        f"(to_dict()['texts_a'] and ['texts_b'])."
    )


def statistical_texts(
    opts: Options,
    decision: Decision,
    bound: Bound,
    p_value: float,
    n: int,
    room: float,
) -> tuple[str, str, tuple[str, ...]]:
    """Headline, advice and notes of a verdict reached by the statistical test."""
    a, b = opts.labels
    tol = opts.tolerance
    conf = fmt_confidence(opts.alpha)
    two_sided = opts.design == "seed"
    reach = max(bound.upper, -bound.lower) if two_sided else bound.upper
    if decision.verdict == "equivalent":
        headline = (
            f"With {conf} confidence, switching {a} -> {b} changes the outputs by at most "
            f"{_n(reach)} (upper bound; estimate {_n(bound.estimate)}), below the tolerance "
            f"{tol:g}."
        )
        notes: tuple[str, ...] = ()
        if p_value <= opts.alpha:
            notes = (
                f"a small difference is detectable (p = {fmt_p(p_value)} <= alpha "
                f"{opts.alpha:g}); it is within the tolerance {tol:g}.",
            )
        return headline, "nothing to do: the change is within the tolerance you declared.", notes
    if decision.verdict == "different":
        headline = (
            f"{b} behaves differently from {a}: the change {_n(bound.estimate)} is significant "
            f"(p = {fmt_p(p_value)} <= alpha {opts.alpha:g}) and larger than the tolerance "
            f"{tol:g} ({conf} lower bound {_n(bound.effect_lower)})."
        )
        return headline, different_advice(), ()
    headline, advice = _inconclusive(opts, decision, bound, p_value, n, reach, room)
    return headline, advice, ()


def _inconclusive(
    opts: Options,
    decision: Decision,
    bound: Bound,
    p_value: float,
    n: int,
    reach: float,
    room: float,
) -> tuple[str, str]:
    """Headline and advice of an inconclusive verdict; more trials only where they help."""
    from ...core.stats import smallest_certifiable

    tol = opts.tolerance
    est = abs(bound.estimate)
    if room <= tol and reach < tol:
        headline = (
            f"Inconclusive: calls of the same arm already differ by {_n(1 - room)} on average "
            f"(the metric's maximum is 1), so a change beyond that spread can be at most "
            f"{_n(room)}, not the tolerance {tol:g}: this metric cannot certify equivalence here."
        )
        return headline, (
            "each arm's own calls part almost every time (e.g. greedy decoding that flips at "
            "near-ties somewhere in a long completion): compare fewer tokens (max_tokens=) or "
            "the first token (metric='first_token'), or compare the texts or tool-call outcomes."
        )
    if (opts.blind is not None or opts.design == "seed") and reach < tol:
        headline = (
            f"Inconclusive: the change is below the tolerance {tol:g} by this measure "
            f"(upper bound {_n(reach)}), but {blind_words(opts)}"
        )
        fix = "metric='auto'" if opts.blind is not None else "design='all-pairs'"
        return headline, f"compare with {fix} (the default) to certify equivalence."
    side = "<=" if p_value <= opts.alpha else ">"
    headline = (
        f"Inconclusive: estimated change {_n(bound.estimate)}, {fmt_confidence(opts.alpha)} bounds "
        f"{fmt_bounds(bound.lower, bound.upper, 4)} (p = {fmt_p(p_value)} {side} alpha "
        f"{opts.alpha:g}); neither below nor shown above the tolerance {tol:g}. This is not "
        f"evidence of equivalence."
    )
    rec = decision.recommended_trials
    if not math.isfinite(reach):
        # No finite number to quote, and no tolerance to widen to: only more calls (or
        # less noise) give the change a bound at all.
        more = (
            f"increase trials to ~{rec} per arm (now {n})"
            if rec is not None
            else (
                f"increase trials (now {n} per arm) or make each call less noisy (fewer tokens "
                "with max_tokens=, or temperature=0)"
            )
        )
        return headline, f"{n} calls per arm do not bound the change from above: {more}."
    floor = smallest_certifiable(n, opts.alpha) if opts.bounded else 0.0
    if est < tol:
        why = (
            f"the estimate is below the tolerance but {n} calls per arm leave the upper bound "
            f"at {_n(reach)}"
        )
        if floor >= tol:
            why += (
                f" (with {n} calls per arm no tolerance below {fmt_value(floor)} can be "
                f"certified: a change that shows in a few calls out of {n} could go unseen)"
            )
        more = (
            f"increase trials to ~{rec} per arm (now {n}); a rough estimate that assumes "
            f"the change stays where it is"
            if rec is not None
            else f"the tolerance is very tight for this noise: widen it above {_n(reach)} "
            "(tolerance=) if a change that large is acceptable"
        )
        return headline, f"{why}: {more}."
    if rec is not None:
        return headline, (
            f"the estimate is beyond the tolerance but not yet shown to be: more trials will "
            f"more likely show a difference than equivalence; ~{rec} per arm (now {n}) would "
            f"likely confirm it (rough estimate)."
        )
    return headline, (
        f"the change is about as large as the tolerance {tol:g}, so more trials will not "
        f"settle it soon. Decide whether a change of this size matters and set tolerance= "
        f"accordingly, before looking at new data."
    )


def first_difference(a: ParsedCall, b: ParsedCall) -> str:
    """Where two calls of a deterministic backend first differ, in words."""
    pos = divergence_position(a, b)
    if pos is not None:
        return (
            f"different at position {pos}: {a.positions[pos].token!r} vs {b.positions[pos].token!r}"
        )
    for i, (pa, pb) in enumerate(zip(a.positions, b.positions, strict=False)):
        if pa.logprob != pb.logprob or pa.alternatives != pb.alternatives:
            return (
                f"different at position {i}: same token {pa.token!r}, different logprobs "
                f"({_n(pa.logprob)} vs {_n(pb.logprob)})"
            )
    if len(a.positions) != len(b.positions):
        return (
            f"different at position {min(len(a.positions), len(b.positions))}: one output ends "
            f"there ({len(a.positions)} vs {len(b.positions)} tokens)"
        )
    return "different (the metric sees a difference the tokens do not show)"


def deterministic_texts(
    opts: Options, verdict: str, change: float, where: str, identical: bool = True
) -> tuple[str, str]:
    """Headline and advice when every within-arm distance is 0 (the change is known exactly)."""
    tol, basis = opts.tolerance, exact_basis(identical)
    if verdict == "equivalent":
        return (
            f"{basis}: {where}; the change is exactly {_n(change)}, below the tolerance {tol:g}.",
            "nothing to do: both arms behave the same within the tolerance on this backend.",
        )
    if verdict == "different":
        same = "every call within an arm is identical, so " if identical else ""
        return (
            f"{basis}: outputs {where}; {same}the change is exactly {_n(change)}, above the "
            f"tolerance {tol:g}.",
            different_advice(),
        )
    if change < tol:
        return (
            f"Inconclusive: {basis}, change exactly {_n(change)}, but "
            f"{blind_words(opts, statistical=False)}",
            "compare with metric='auto' (the default) to certify equivalence.",
        )
    return (
        f"Inconclusive: {basis}, the change is exactly {_n(change)}, equal to "
        f"the tolerance {tol:g}.",
        "decide whether a change of this size matters and set tolerance= accordingly.",
    )


def all_tied_texts(floor: float) -> tuple[str, str]:
    """Headline and advice when every seed-design trial sits at the same distance."""
    return (
        f"Inconclusive: every trial of both arms is exactly {_n(floor)} away from the "
        f"baseline, so the seed design cannot tell the arms apart (a rank test has no "
        f"information when every value is tied: the two-sided test gives p = 1 whatever the "
        f"arms do).",
        "use design='all-pairs', which compares the calls with each other.",
    )


# --------------------------------------------------------------------------- tool calls


def tool_call_advice(
    *,
    verdict: str,
    labels: tuple[str, str],
    outcomes: Sequence[str],
    deterministic: bool,
    p_value: float,
    alpha: float,
    tolerance: float,
    tv: float,
    tv_lower: float,
    tv_upper: float,
    n: int,
    recommended: int | None,
    unseen: float,
    names_only: bool,
) -> tuple[str, tuple[str, ...]]:
    """Advice and warnings of a tool-call verdict (``unseen``: the never-seen-outcome rate)."""
    a, b = labels
    if verdict == "different":
        if deterministic:
            return (
                f"every call in {a!r} gave {shorten(outcomes[0])} and every call in {b!r} gave "
                f"{shorten(outcomes[1])}.",
                (),
            )
        return (
            f"the outcome distributions differ (p = {fmt_p(p_value)} <= alpha {alpha:g}) by "
            f"more than the tolerance {tolerance:g} (TV lower bound {fmt_value(tv_lower)}).",
            (),
        )
    if verdict == "equivalent":
        warnings: tuple[str, ...] = ()
        if p_value <= alpha:
            warnings = (
                f"the difference is statistically detectable (p = {fmt_p(p_value)}) but smaller "
                f"than the tolerance {tolerance:g}; lower tolerance= to treat it as a change",
            )
        return (
            f"the outcome distributions differ by at most {fmt_value(tv_upper)} (TV upper bound) "
            f"< tolerance {tolerance:g}.",
            warnings,
        )
    if tv < tolerance:
        why = f"the TV upper bound {fmt_value(tv_upper)} is not below the tolerance {tolerance:g}"
        if unseen >= tolerance:
            why += (
                f" ({n} calls per arm cannot exclude an outcome never seen at a rate up to "
                f"{fmt_value(unseen)})"
            )
    else:
        why = (
            f"the TV {fmt_value(tv)} is above the tolerance {tolerance:g}, but its lower bound "
            f"{fmt_value(tv_lower)} is not (p = {fmt_p(p_value)})"
        )
    more = (
        f"run about {recommended} trials per arm (rough estimate)"
        if recommended is not None
        else "more trials will not settle it soon: decide whether a change of this size "
        "matters and set tolerance= accordingly"
    )
    advice = f"{why}: {more}"
    if not names_only:
        advice += ", or pass names_only=True to compare only which functions are called"
    return advice + ".", ()


# --------------------------------------------------------------------------- assertion message


PLAIN_VERDICT: Final[dict[str, str]] = {
    "different": "they behave differently: the change is larger than the tolerance {tol:g}",
    "equivalent": "they behave the same, within the tolerance {tol:g}",
    "inconclusive": "not settled: the data show neither a change above the tolerance {tol:g} "
    "nor one below it (this is not evidence that they behave the same)",
}


def _logprob_plain(c: Comparison) -> list[str]:
    a, b = c.labels
    each = f"{c.n_a} calls each" if c.n_a == c.n_b else f"{c.n_a} and {c.n_b} calls"
    lines = [
        f"Compared {a} with {b}, {each} (metric {c.metric}).",
        f"Verdict: {c.verdict} — {PLAIN_VERDICT[c.verdict].format(tol=c.tolerance)}.",
    ]
    from ...core.divergence import divergence_insight

    insight = divergence_insight(c.calls_a, c.calls_b, metric=c.metric, labels=c.labels)
    texts_a, texts_b = [x.text for x in c.calls_a], [x.text for x in c.calls_b]
    return lines + text_lines(insight, texts_a, texts_b, c.labels)


def _tool_plain(c: ToolCallComparison) -> list[str]:
    a, b = c.labels
    each = f"{c.n_a} calls each" if c.n_a == c.n_b else f"{c.n_a} and {c.n_b} calls"
    what = "which functions they call" if c.names_only else "which tools they call, and how"
    lines = [
        f"Compared {a} with {b}, {each}, by {what}.",
        f"Verdict: {c.verdict} — {PLAIN_VERDICT[c.verdict].format(tol=c.tolerance)}.",
    ]
    for label, counts, n in ((a, c.counts_a, c.n_a), (b, c.counts_b, c.n_b)):
        top = max(range(len(counts)), key=lambda i: counts[i])
        lines.append(f"  {label} mostly: {shorten(c.outcomes[top])} ({counts[top]} of {n})")
    return lines


def next_step(verdict: str, labels: Sequence[str], tolerance: Any, advice: str, called: str) -> str:
    """The one thing to do after ``called`` failed with ``verdict`` (never a non-number)."""
    a, b = labels
    if verdict == "different":
        where = (
            "which tools each arm calls"
            if "tool_calls" in called
            else f"where {b}'s texts part from {a}'s"
        )
        return (
            f"if the change is intended, assert it with {counterpart(called)}(...); if not, "
            f"fix {b}: see {where} (above)."
        )
    if verdict == "equivalent":
        return (
            f"{a} and {b} behave the same within the tolerance {fmt_value(tolerance)}. If a "
            f"change this small should count, lower tolerance= (decided before looking at the "
            f"data); otherwise check that the two variants really differ (equivalence is "
            f"asserted with {counterpart(called)})."
        )
    return advice


def expect_failed(verdict: str, expected: str, tolerance: float, advice: str) -> str:
    """``rolecheck compare --expect`` got another verdict: what happened and what to do."""
    if verdict == "different":
        todo = (
            "if the change is intended, pass --expect different; if not, fix the variant "
            "where the texts part (report above)."
        )
    elif verdict == "equivalent":
        todo = (
            f"the arms behave the same within the tolerance {tolerance:g}; if a change this "
            "small should count, lower --tolerance (decided before looking at the data)."
        )
    else:
        todo = advice
    return f"rolecheck compare: verdict {verdict!r}, expected {expected!r}. What to do: {todo}"


def assertion_message(
    result: Comparison | ToolCallComparison | PromptSetComparison, called: str
) -> str:
    """The failure message of ``called`` (an ``assert_*`` helper) on ``result``: plain words
    (what was compared, the verdict, texts or only probabilities; of a set, the cases that
    moved), the numbers as a detail block, one next step naming the helper that fits.
    """
    from ..compare import Comparison
    from ..prompt_sets import PromptSetComparison
    from .sets import set_assertion_message

    if isinstance(result, PromptSetComparison):
        return set_assertion_message(result, called)
    a, b = result.labels
    expected = expected_verdict(called)
    head = (
        f"{called} failed: {a} and {b} were not shown equivalent."
        if expected == "equivalent"
        else f"{called} failed: no difference between {a} and {b} was shown."
    )
    if isinstance(result, Comparison):
        plain = _logprob_plain(result)
        details = comparison_report(result, with_next=False)
    else:
        plain = _tool_plain(result)
        details = tool_call_report(result)
    body = textwrap.indent(details, "  ")
    todo = next_step(result.verdict, result.labels, result.tolerance, result.advice, called)
    return "\n".join([head, "", *plain, "", "Details:", body, "", f"What to do: {todo}"])


# --------------------------------------------------------------------------- report rows


class ReportRow(Protocol):
    """What the row functions read of a report row (``reporting.row.Row``)."""

    @property
    def kind(self) -> str: ...
    @property
    def verdict(self) -> str: ...
    @property
    def details(self) -> Mapping[str, Any]: ...
    @property
    def insight(self) -> Mapping[str, Any] | None: ...
    @property
    def asserted(self) -> str | None: ...


def row_headline(row: ReportRow) -> str | None:
    """The report's headline of one row: the verdict's own, or plain words for tool calls."""
    details = row.details
    if details.get("headline"):
        return str(details["headline"])
    verdict = row.verdict
    if row.kind != "tool-calls" or verdict not in PLAIN_VERDICT:
        return None
    a, b = (details.get("labels") or ("A", "B"))[:2]
    plain = PLAIN_VERDICT[str(verdict)].format(tol=float(details.get("tolerance") or 0.0))
    return f"Tool calls of {a} and {b}: {plain}."


def row_texts(row: ReportRow) -> str | None:
    """For a report row: do the texts differ, or only the probabilities (None: unknown)."""
    details = row.details
    insight = row.insight
    if row.kind != "logprobs" or not isinstance(insight, Mapping):
        return None
    if not insight.get("representatives"):
        return None
    labels = details.get("labels") or insight.get("labels") or ("A", "B")
    texts_a = [str(t) for t in details.get("texts_a") or ()]
    texts_b = [str(t) for t in details.get("texts_b") or ()]
    return text_lines(insight, texts_a, texts_b, labels)[0]


def row_advice(row: ReportRow) -> str | None:
    """The advice a report shows for one row, or None.

    Only where there is something to do: an assertion that failed, an
    inconclusive verdict, or a difference found without an assertion. A passing
    assertion gets none (its "assert it with ..." would tell the user to do what
    they just did).
    """
    details = row.details
    verdict = row.verdict
    advice = details.get("advice")
    called = row.asserted
    if not advice or verdict not in ("different", "equivalent", "inconclusive"):
        return None
    if verdict == "inconclusive":
        return str(advice)
    if isinstance(called, str):
        if expected_verdict(called) == verdict:
            return None
        labels = details.get("labels") or ("A", "B")
        return next_step(str(verdict), labels, details.get("tolerance"), str(advice), called)
    if verdict == "different" and row.kind == "logprobs":
        return different_advice("Rolecheck.compare")
    return None
