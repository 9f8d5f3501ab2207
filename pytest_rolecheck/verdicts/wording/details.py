"""The detail block of a verdict: the numbers behind it, as text or as report sentences.

``str(comparison)``, ``str(tool_call_comparison)``, the "Details:" part of an
assertion message and the HTML report's explanation of each comparison. The
verdict's own words (headline, advice, message) are in
:mod:`~pytest_rolecheck.verdicts.wording`; numbers go through
:mod:`~pytest_rolecheck.verdicts.numbers`.
"""

from __future__ import annotations

import math
import textwrap
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from typing import TYPE_CHECKING, Any, Final

from ...core.distances import uses_text
from ...core.divergence import METRIC_UNITS as _METRIC_UNITS
from ..numbers import fmt_bounds, fmt_confidence, fmt_list, fmt_p, fmt_value
from ..numbers import fmt_exact as _n

if TYPE_CHECKING:
    from ..compare import Comparison
    from ..toolcalls import ToolCallComparison

__all__ = [
    "SAME_DISTRIBUTIONS",
    "comparison_report",
    "exact_basis",
    "row_sentences",
    "shorten",
    "text_lines",
    "tool_call_report",
]

_TEXT_WIDTH: Final = 100
#: Width of a text or outcome quoted in a report or message.
SHORT: Final = 60

#: What the change of a text metric is (all-pairs design): a share of answers, not of characters.
RELATIVE_CHANGE: Final = (
    "largest (cross - within) / (1 - within) of the arms: share of answers moved"
)

#: Why a change is exact when the calls of an arm are not identical: what is said
#: instead of "deterministic", which only identical calls (text and logprobs) are.
SAME_DISTRIBUTIONS = (
    "every within-arm distance is 0 (the texts vary, but the compared next-token "
    "distributions do not)"
)


def exact_basis(identical: bool) -> str:
    """Why the change is known exactly: identical calls, or only identical distributions."""
    return "deterministic backend" if identical else SAME_DISTRIBUTIONS


def comparison_report(c: Comparison, *, with_next: bool = True) -> str:
    """``str(comparison)``: the verdict first, then the numbers, then what to do next."""
    a, b = c.labels
    unit = _METRIC_UNITS.get(c.metric, "metric units")
    seed = c.design == "seed"
    design = "seed design" if seed else "all-pairs design"
    lines = [f"rolecheck: {a} vs {b} -> {c.verdict.upper()}", f"  {c.headline}"]
    lines += [f"  Note: {note}" for note in c.notes]
    lines.append("")
    lines.append(f"  calls            {c.n_a} + {c.n_b} ({design}, metric {c.metric}, {unit})")
    if c.p_value is not None:
        lines.append(f"  difference test  p = {fmt_p(c.p_value)} ({c.test}; alpha {c.alpha:g})")
    else:
        lines.append(f"  difference test  not needed ({c.test})")
    if seed:
        lines.append(f"  {a + ' trials':<16} mean distance to the baseline {_n(c.within_a)}")
        lines.append(f"  {b + ' trials':<16} mean distance to the baseline {_n(c.within_b)}")
        what = f"mean({b}) - mean({a}) distance to the baseline"
    else:
        lines.append(
            f"  within arms      {a} {_n(c.within_a)}, {b} {_n(c.within_b)} (mean "
            f"distance between two calls of the same arm)"
        )
        lines.append(
            f"  cross mean       {_n(c.cross)} (mean distance between calls of different arms)"
        )
        what = RELATIVE_CHANGE if uses_text(c.metric) else "cross - smaller within-arm mean"
    change = f"  change           {_n(c.change)} ({what}"
    if c.change_upper is not None and c.change_lower is not None:
        change += (
            f"; {fmt_confidence(c.alpha)} bounds {fmt_bounds(c.change_lower, c.change_upper, 4)}"
        )
    elif c.exact:
        change += f"; exact: {exact_basis(c.deterministic)}"
    lines.append(change + f"; tolerance {c.tolerance:g})")
    what = "distances to the baseline" if seed else "within-arm distances"
    for label, s in ((a, c.summary_a), (b, c.summary_b)):
        lines.append(
            f"  {label:<16} mean {_n(s.mean)}  std {_n(s.std)}  min {_n(s.min)}  "
            f"max {_n(s.max)}  ({s.n} {what})"
        )
    if c.trial_distances_a is not None and c.trial_distances_b is not None:
        lines.append(f"  {a} trials: {fmt_list(c.trial_distances_a)}")
        lines.append(f"  {b} trials: {fmt_list(c.trial_distances_b)}")
    delta_what = (
        f"{b}'s vs {a}'s distances to the baseline" if seed else "cross vs within distances"
    )
    lines.append(
        f"  Cliff's delta    {c.cliffs_delta:+.2f} ({delta_what}; 0 = no tendency, +1 = "
        f"always larger)"
    )
    f = c.flips
    lines.append(
        f"  text flips       {a} {f.changed_a}/{f.n_a}, {b} {f.changed_b}/{f.n_b} calls differ "
        f"from {a}'s most common text (Fisher p = {fmt_p(f.p_value)})"
    )
    if c.fingerprints_a or c.fingerprints_b:
        lines.append(
            f"  fingerprints     {a}: {', '.join(c.fingerprints_a) or '-'}; "
            f"{b}: {', '.join(c.fingerprints_b) or '-'}"
        )
    if c.warnings:
        lines.append("  warnings:")
        lines += [f"    - {w}" for w in c.warnings]
    if with_next:
        lines.append("")
        lines.append(f"  next: {c.advice}")
    return "\n".join(lines)


def shorten(text: str, width: int = SHORT) -> str:
    """``text`` on one line, cut to ``width`` characters with ``…``."""
    flat = " ".join(text.split()) if "\n" in text or "\t" in text else text
    return flat if len(flat) <= width else flat[: width - 1] + "…"


def tool_call_report(c: ToolCallComparison) -> str:
    """``str(tool_call_comparison)``: the outcome table, the TV bounds and the test."""
    label_a, label_b = c.labels
    rows = [
        (shorten(o), str(x), str(y))
        for o, x, y in zip(c.outcomes, c.counts_a, c.counts_b, strict=True)
    ]
    rows.append(("total", str(c.n_a), str(c.n_b)))
    w0 = max(len("outcome"), *(len(r[0]) for r in rows))
    w1 = max(len(label_a), *(len(r[1]) for r in rows))
    w2 = max(len(label_b), *(len(r[2]) for r in rows))
    what = "tool-call names" if c.names_only else "tool calls"
    lines = [
        f"{what}: {c.verdict} ({label_a} vs {label_b})",
        f"  {'outcome':<{w0}}  {label_a:>{w1}}  {label_b:>{w2}}",
    ]
    lines += [f"  {o:<{w0}}  {x:>{w1}}  {y:>{w2}}" for o, x, y in rows]
    bounds = fmt_bounds(c.tv_lower, c.tv_upper)
    if c.deterministic and len(c.outcomes) == 1:
        bound = (
            f"every call agreed, but an outcome never seen in {min(c.n_a, c.n_b)} calls may "
            f"still have a rate up to {fmt_value(c.tv_upper)}; bounds {bounds}"
        )
    else:
        bound = f"bounds {bounds}"
    if c.verdict == "equivalent":
        rule = f"below the tolerance {c.tolerance:g}"
    elif c.verdict == "different":
        rule = f"lower bound above the tolerance {c.tolerance:g}"
    else:
        rule = f"tolerance {c.tolerance:g}: neither below nor shown above it"
    lines += _wrap(
        f"TV distance {fmt_value(c.tv)}, {fmt_confidence(c.alpha)} {bound} ({rule}); "
        f"p = {fmt_p(c.p_value)} ({c.test}, alpha {c.alpha:g})"
    )
    for w in c.warnings:
        lines += _wrap(f"warning: {w}")
    return "\n".join(lines)


def _wrap(text: str) -> list[str]:
    return textwrap.wrap(
        text,
        width=_TEXT_WIDTH,
        initial_indent="  ",
        subsequent_indent="    ",
        break_long_words=False,
    )


# What an HTML report passes to escape text and to emphasise a number (identity for text).
_Esc = Callable[[str], str]


def _num(esc: _Esc, value: Any, digits: int = 4) -> str:
    return esc(fmt_value(value, digits))


def _pv(esc: _Esc, value: Any) -> str:
    return esc(fmt_p(value))


def row_sentences(
    kind: str,
    details: Mapping[str, Any],
    labels: tuple[str, str],
    *,
    esc: _Esc = str,
    bold: _Esc = str,
) -> list[str]:
    """The report's plain-words explanation of one comparison (``details``: its ``to_dict()``).

    ``esc`` escapes user text (labels, test names) and ``bold`` marks the numbers
    the verdict rests on; both default to plain text.
    """
    a, b = labels
    if kind == "tool-calls":
        return _tool_sentences(details, a, b, esc, bold)
    return _logprob_sentences(details, a, b, esc, bold)


def _logprob_sentences(d: Mapping[str, Any], a: str, b: str, esc: _Esc, bold: _Esc) -> list[str]:
    metric = str(d.get("metric", "js"))
    unit = _METRIC_UNITS.get(metric, "metric units")
    seed = d.get("design") == "seed"
    out: list[str] = []
    if d.get("deterministic"):
        out.append(
            "Deterministic backend: every call of an arm returned exactly the same output, so "
            "no statistics are needed: the arms either match exactly or differ for real."
        )
    elif d.get("exact"):
        out.append(
            f"The change is exact: {SAME_DISTRIBUTIONS}. The calls were compared only up to "
            f"where their texts part; {esc(metric)} did not compare the answers after that."
        )
    elif seed:
        out.append(
            f"{esc(a)}'s trials are on average {bold(_num(esc, d.get('within_a')))} "
            f"{esc(unit)} ({esc(metric)}) away from the baseline call (a call of {esc(a)})."
        )
        out.append(
            f"{esc(b)}'s trials are on average {_num(esc, d.get('cross'))} {esc(unit)} away "
            f"from it: "
            f"a change of {_num(esc, d.get('change'))}."
        )
    else:
        out.append(
            f"Two calls of the same arm differ by {_num(esc, d.get('within_a'))} ({esc(a)}) and "
            f"{_num(esc, d.get('within_b'))} ({esc(b)}) {esc(unit)} ({esc(metric)}) on average "
            f"— what "
            f"repeating the same request costs."
        )
        beyond = (
            "the share of answers that moved: the distance beyond an arm's own spread, over "
            "the room 1 - within that spread leaves"
            if uses_text(metric)
            else "beyond the quieter arm's own spread"
        )
        out.append(
            f"Two calls of different arms differ by {_num(esc, d.get('cross'))} {esc(unit)} on "
            f"average: a change of {bold(_num(esc, d.get('change')))}, {beyond}."
        )
    if not d.get("exact", d.get("deterministic")) and d.get("p_value") is not None:
        # A JSON report stores an infinite bound as null: print it as the formatter does.
        upper = d.get("change_upper")
        out.append(
            f"Bounds of the change: {_num(esc, d.get('change_lower'), 3)} .. "
            f"{bold(_num(esc, math.inf if upper is None else upper, 3))}; equivalence needs the "
            f"upper bound below "
            f"the tolerance {_num(esc, d.get('tolerance'))}, a difference the lower bound above it."
        )
    if d.get("p_value") is not None:
        out.append(
            f"Difference test: p = {bold(_pv(esc, d.get('p_value')))} at alpha "
            f"{_num(esc, d.get('alpha'))} "
            f"({esc(d.get('test', ''))})."
        )
    flips = d.get("flips") or {}
    if flips:
        out.append(
            f"Text flips: {flips.get('changed_a')}/{flips.get('n_a')} calls of {esc(a)} and "
            f"{flips.get('changed_b')}/{flips.get('n_b')} of {esc(b)} differ from {esc(a)}'s "
            f"most common text (Fisher p = {_pv(esc, flips.get('p_value'))})."
        )
    if d.get("recommended_trials"):
        out.append(f"Trials per arm likely to settle it: about {d.get('recommended_trials')}.")
    return out


def _tool_sentences(d: Mapping[str, Any], a: str, b: str, esc: _Esc, bold: _Esc) -> list[str]:
    what = "tool names" if d.get("names_only") else "tool calls (names and arguments)"
    out = [
        f"Compared the {what} of {d.get('n_a')} calls of {esc(a)} and {d.get('n_b')} calls of "
        f"{esc(b)}.",
    ]
    if d.get("tv") is not None:
        rule = (
            f"equivalence needs the upper bound below the tolerance "
            f"{_num(esc, d.get('tolerance'))}, "
            f"a difference the lower bound ({_num(esc, d.get('tv_lower'), 3)}) above it"
        )
        out.append(
            f"Share of calls whose outcome would have to change to turn one arm's outcome mix "
            f"into the other's (total variation): {bold(_num(esc, d.get('tv'), 3))}, upper bound "
            f"{_num(esc, d.get('tv_upper'), 3)} ({rule})."
        )
    if d.get("p_value") is not None:
        out.append(
            f"Difference test: p = {bold(_pv(esc, d.get('p_value')))} at alpha "
            f"{_num(esc, d.get('alpha'))} "
            f"({esc(d.get('test', ''))})."
        )
    return out


# --------------------------------------------------------------------------- texts


def _quote(text: str, width: int = SHORT) -> str:
    return '"' + shorten(text.replace("\n", "⏎"), width) + '"'


def _parting(tokens_a: Sequence[str], tokens_b: Sequence[str], pos: int) -> str:
    """The two texts from a little before the first diverging token on."""
    prefix = "".join(tokens_a[:pos])
    lead = ("…" + prefix[-20:]) if len(prefix) > 20 else prefix
    rest_a, rest_b = "".join(tokens_a[pos:]), "".join(tokens_b[pos:])
    return f"{_quote(lead + rest_a, 45)} vs {_quote(lead + rest_b, 45)}"


def text_lines(
    insight: Mapping[str, Any],
    texts_a: Sequence[str],
    texts_b: Sequence[str],
    labels: Sequence[str],
) -> list[str]:
    """Do the texts differ, or only the probabilities? Both arms' typical text, where they part.

    ``insight`` is :func:`~pytest_rolecheck.core.divergence.divergence_insight` (its
    medoid call per arm and their first diverging position); plain JSON, so a report
    row can be worded the same way as a failing assertion. The first line is the answer.
    """
    a, b = labels
    reps = insight["representatives"]
    text_a, text_b = str(reps["a"]["text"]), str(reps["b"]["text"])
    tokens_a = [str(t) for t in reps["a"]["tokens"]]
    tokens_b = [str(t) for t in reps["b"]["tokens"]]
    if text_a != text_b:
        lines = [
            "The texts differ.",
            f"  typical {a} text: {_quote(text_a)}",
            f"  typical {b} text: {_quote(text_b)}",
        ]
        pos = insight.get("divergence")
        if pos is not None:
            pos = int(pos)
            lines.append(
                f"  they part at token {pos}: {tokens_a[pos]!r} ({a}) vs {tokens_b[pos]!r} ({b})"
            )
            if max(len(text_a), len(text_b)) > SHORT:
                # The shortened texts may stop before the parting point: show it.
                lines.append(f"  from there: {_parting(tokens_a, tokens_b, pos)}")
        elif not tokens_a and not tokens_b:
            pass  # compared by text, without tokens: the two texts above say it all
        else:
            short, long_ = sorted(((len(tokens_a), a), (len(tokens_b), b)))
            lines.append(
                f"  {short[1]}'s text stops after {short[0]} tokens where {long_[1]}'s goes on "
                f"to {long_[0]}"
            )
        seen = set(texts_a)
        same = sum(1 for t in texts_b if t in seen)
        lines.append(f"  {same} of {len(texts_b)} {b} calls write a text that some {a} call wrote.")
        return lines
    common = Counter(texts_a).most_common(1)[0][0] if texts_a else text_a
    flipped_a = sum(1 for t in texts_a if t != common)
    flipped_b = sum(1 for t in texts_b if t != common)
    head = (
        "The texts are the same in every call: any difference is in the token probabilities only."
        if set(texts_a) == set(texts_b) == {text_a}
        else "The typical text is the same in both arms: the difference is mostly in the "
        f"probabilities; {flipped_b} of {len(texts_b)} {b} calls (and {flipped_a} of "
        f"{len(texts_a)} {a} calls) sampled another text than {a}'s most common one."
    )
    lines = [head, f"  typical text of both: {_quote(text_a)}"]
    focus = insight.get("focus")
    if isinstance(focus, Mapping) and focus.get("reason") == "largest difference":
        lines.append(
            f"  the probabilities differ most at token {focus['position']} ({focus['token_a']!r})."
        )
    return lines
