"""Prompt sets: :func:`compare` and :func:`compare_tool_calls` over many prompts at once.

Both arms are mappings ``{case_id: [responses...]}`` with the same case ids.
Each case's calls become a distance matrix (the comparison's metric, or for
tool calls 0/1 "same outcome or not") and the pure engine,
:func:`~pytest_rolecheck.core.prompt_sets.compare_prompt_set`, turns the set
into one verdict plus a per-case breakdown: a :class:`PromptSetComparison`.
Its words come from :mod:`~pytest_rolecheck.verdicts.wording.sets`.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, fields
from typing import Any, Final, Literal

import numpy as np
import numpy.typing as npt

from ..core.prompt_sets import CaseResult, CaseStatus, PromptSetResult, compare_prompt_set
from ..core.verdict import Verdict
from ..errors import RolecheckUsageError
from .numbers import json_value
from .observers import comparison_made
from .options import Options, parse_arm, refuse_empty, resolve_metric
from .wording import sets as set_wording

__all__ = [
    "TOOL_CALL_METRIC",
    "CaseComparison",
    "PromptSetComparison",
    "case_ids",
    "compare_set",
    "compare_tool_call_set",
    "is_set",
]

SetKind = Literal["logprobs", "tool-calls"]
#: The metric a tool-call set reports: two calls are 0 apart when their outcomes agree, else 1.
TOOL_CALL_METRIC: Final = "tool-call outcome"


@dataclass(frozen=True, slots=True)
class CaseComparison:
    """One case (prompt) of a :class:`PromptSetComparison`.

    ``status`` is ``"changed"`` (flagged: ``q_value <= alpha``, or a
    deterministic case whose arms differ), ``"no change"`` (deterministic,
    identical arms) or ``"not flagged"``. ``change`` is the case's
    ``cross - min(within_a, within_b)``; ``p_value`` its within-case
    permutation p-value and ``q_value`` the Benjamini-Hochberg adjustment
    across the set (both ``None`` for a deterministic case). The typical
    texts are each arm's most common text (tool calls: outcome).
    """

    id: str
    status: CaseStatus
    change: float
    p_value: float | None
    q_value: float | None
    deterministic: bool
    typical_text_a: str
    typical_text_b: str
    n_a: int
    n_b: int

    def to_dict(self) -> dict[str, Any]:
        return {f.name: json_value(getattr(self, f.name)) for f in fields(self)}


@dataclass(frozen=True, eq=False)
class PromptSetComparison:
    """The outcome of comparing two arms over a prompt set: one verdict, per-case detail.

    ``str(result)`` is the report; ``to_dict()`` its JSON form (derived from
    the fields, ``cases`` as a list of dicts).

    Attributes
    ----------
    kind : {"logprobs", "tool-calls"}
        What was compared: texts' probabilities (``compare``) or tool-call
        outcomes (``compare_tool_calls``).
    verdict : Verdict
        The set's verdict (rule: :mod:`pytest_rolecheck.core.prompt_sets`).
    n_cases : int
        Number of cases.
    trials_a, trials_b : int or None
        Calls per case in each arm (None when the cases differ).
    n_a, n_b : int
        Calls per arm over every case.
    change, change_lower, change_upper, change_se : float
        The set change (mean per-case change) and its case-resampling
        ``1 - alpha`` bounds.
    p_value : float
        The stratified permutation test (labels permuted within cases).
    exact : bool
        The p-value enumerates every labelling (else ``seed`` draws them).
    cases : tuple of CaseComparison
        Per case, in the input order.
    changed : tuple of str
        Ids of the flagged cases, largest change first.
    recommended_cases : int or None
        For an inconclusive verdict: how many cases (same trials) would likely
        settle it.
    """

    kind: SetKind
    verdict: Verdict
    headline: str
    labels: tuple[str, str]
    metric: str
    alpha: float
    tolerance: float
    n_cases: int
    trials_a: int | None
    trials_b: int | None
    n_a: int
    n_b: int
    change: float
    change_lower: float
    change_upper: float
    change_se: float
    p_value: float
    exact: bool
    seed: int | None
    test: str
    cases: tuple[CaseComparison, ...]
    changed: tuple[str, ...]
    recommended_cases: int | None
    difference_detected: bool
    equivalence_shown: bool
    advice: str
    warnings: tuple[str, ...]

    @property
    def deterministic(self) -> bool:
        """Every case was deterministic (no call-to-call variation in either arm)."""
        return all(c.deterministic for c in self.cases)

    def to_dict(self) -> dict[str, Any]:
        """Every field as plain JSON (non-finite numbers become ``None``)."""
        out = {f.name: json_value(getattr(self, f.name)) for f in fields(self)}
        out["deterministic"] = self.deterministic
        return out

    def __str__(self) -> str:
        return set_wording.set_report(self)


# --------------------------------------------------------------------------- inputs


def is_set(responses_a: object, responses_b: object) -> bool:
    """Whether a comparison is over a prompt set (both arms mappings); refuse a mix."""
    a, b = isinstance(responses_a, Mapping), isinstance(responses_b, Mapping)
    single = responses_a if a else responses_b
    if a != b and "choices" in single:  # type: ignore[operator]
        return False  # one response instead of a list: the arm's own check says so
    if a != b:
        which = "first" if a else "second"
        raise RolecheckUsageError(
            f"only the {which} arm is a mapping {{case_id: [responses...]}}: compare a prompt "
            "set with a mapping in both arms (the same case ids), or one prompt with a list of "
            "responses in both arms."
        )
    return a


def case_ids(
    responses_a: Mapping[Any, Any], responses_b: Mapping[Any, Any], labels: Sequence[str]
) -> list[str]:
    """The case ids of both arms, in A's order; refuse ids that are not in both arms.

    Raises
    ------
    RolecheckUsageError
        Naming the ids missing from each arm (first five), or a non-string id.
    """
    for key in (*responses_a, *responses_b):
        if not isinstance(key, str) or not key:
            raise RolecheckUsageError(
                f"case ids must be non-empty strings, got {key!r}; key each arm's mapping by "
                "the case's id, e.g. {'greeting': [responses...]}."
            )
    problems = []
    for arm, ours, theirs in (
        (labels[1], responses_a, responses_b),
        (labels[0], responses_b, responses_a),
    ):
        missing = [k for k in ours if k not in theirs]
        if missing:
            more = f" and {len(missing) - 5} more" if len(missing) > 5 else ""
            problems.append(f"missing from {arm!r}: {', '.join(map(repr, missing[:5]))}{more}")
    if problems:
        raise RolecheckUsageError(
            "both arms of a prompt set must have the same case ids; "
            + "; ".join(problems)
            + ". Run every case in both arms (or drop the extra ids from both)."
        )
    return list(responses_a)


def _trials(counts: Iterable[int]) -> int | None:
    distinct = set(counts)
    return distinct.pop() if len(distinct) == 1 else None


def _typical(texts: Sequence[str]) -> str:
    # The most common text; among equally common ones, the first seen.
    return Counter(texts).most_common(1)[0][0] if texts else ""


# --------------------------------------------------------------------------- compare


def compare_set(
    responses_a: Mapping[str, Iterable[Any]],
    responses_b: Mapping[str, Iterable[Any]],
    opts: Options,
) -> PromptSetComparison:
    """``compare()`` over a prompt set (options already checked)."""
    if opts.design != "all-pairs":
        raise RolecheckUsageError(
            f"design={opts.design!r} is not available for a prompt set: a set pools the "
            "all-pairs change of every case. Drop design= (the default is 'all-pairs')."
        )
    a, b = opts.labels
    ids = case_ids(responses_a, responses_b, opts.labels)
    calls_a = {k: parse_arm(responses_a[k], f"{a}[{k}]") for k in ids}
    calls_b = {k: parse_arm(responses_b[k], f"{b}[{k}]") for k in ids}
    pooled_a = [c for k in ids for c in calls_a[k]]
    pooled_b = [c for k in ids for c in calls_b[k]]
    # One metric for the whole set (the report names it), chosen from every case's calls.
    opts, _ = resolve_metric(opts, pooled_a + pooled_b)
    refuse_empty(pooled_a, pooled_b, opts.labels, opts.metric_fn)
    from ..core.prompt_sets import case_distances

    result = compare_prompt_set(
        case_distances(calls_a, calls_b, opts.metric_fn),
        alpha=opts.alpha,
        tolerance=opts.tolerance,
        bounded=opts.bounded,
        can_certify=opts.blind is None,
        seed=opts.seed,
    )
    texts = {k: ([c.text for c in calls_a[k]], [c.text for c in calls_b[k]]) for k in ids}
    return comparison_made(_build("logprobs", result, texts, opts.labels, opts.metric, opts.blind))


def compare_tool_call_set(
    outcomes_a: Mapping[str, Sequence[tuple[str, ...]]],
    outcomes_b: Mapping[str, Sequence[tuple[str, ...]]],
    *,
    alpha: float,
    tolerance: float,
    seed: int,
    labels: tuple[str, str],
    outcome_text: Any,
) -> PromptSetComparison:
    """``compare_tool_calls()`` over a prompt set, on each call's outcome (parsed already)."""
    cases: dict[str, tuple[npt.NDArray[np.float64], int]] = {}
    for k, arm_a in outcomes_a.items():
        both = [*arm_a, *outcomes_b[k]]
        codes = np.array([both.index(o) for o in both])
        cases[k] = ((codes[:, None] != codes[None, :]).astype(np.float64), len(arm_a))
    result = compare_prompt_set(cases, alpha=alpha, tolerance=tolerance, seed=seed)
    texts = {
        k: ([outcome_text(o) for o in outcomes_a[k]], [outcome_text(o) for o in outcomes_b[k]])
        for k in outcomes_a
    }
    return comparison_made(_build("tool-calls", result, texts, labels, TOOL_CALL_METRIC, None))


def _build(
    kind: SetKind,
    r: PromptSetResult,
    texts: Mapping[str, tuple[list[str], list[str]]],
    labels: tuple[str, str],
    metric: str,
    blind: str | None,
) -> PromptSetComparison:
    cases = tuple(_case(c, texts[c.case_id]) for c in r.cases)
    changed = tuple(c.id for c in sorted(cases, key=lambda c: -c.change) if c.status == "changed")
    bound = r.bound
    words = set_wording.set_texts(
        verdict=r.verdict,
        labels=labels,
        n_cases=r.n_cases,
        change=r.change,
        lower=bound.effect_lower,
        upper=bound.upper,
        p_value=r.p_value,
        alpha=r.alpha,
        tolerance=r.tolerance,
        recommended_cases=r.recommended_cases,
        changed=len(changed),
        guard=r.guard,
        blind=blind,
    )
    warnings = []
    if r.smallest_p > r.alpha:
        warnings.append(set_wording.set_too_small(r.alpha, r.smallest_p))
    return PromptSetComparison(
        kind=kind,
        verdict=r.verdict,
        headline=words[0],
        labels=labels,
        metric=metric,
        alpha=r.alpha,
        tolerance=r.tolerance,
        n_cases=r.n_cases,
        trials_a=_trials(c.n_a for c in cases),
        trials_b=_trials(c.n_b for c in cases),
        n_a=sum(c.n_a for c in cases),
        n_b=sum(c.n_b for c in cases),
        change=r.change,
        change_lower=bound.effect_lower,
        change_upper=bound.upper,
        change_se=bound.se,
        p_value=r.p_value,
        exact=r.exact,
        seed=r.seed,
        test=set_wording.set_test(r.n_cases, r.exact, r.n_relabellings, r.seed),
        cases=cases,
        changed=changed,
        recommended_cases=r.recommended_cases,
        difference_detected=r.difference_detected,
        equivalence_shown=r.equivalence_shown,
        advice=words[1],
        warnings=tuple(warnings),
    )


def _case(c: CaseResult, texts: tuple[list[str], list[str]]) -> CaseComparison:
    return CaseComparison(
        id=c.case_id,
        status=c.status,
        change=c.change,
        p_value=c.p_value,
        q_value=c.q_value,
        deterministic=c.deterministic,
        typical_text_a=_typical(texts[0]),
        typical_text_b=_typical(texts[1]),
        n_a=c.n_a,
        n_b=c.n_b,
    )
