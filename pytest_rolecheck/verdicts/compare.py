"""``compare()``: from two arms of chat completions to a verdict and a readable report.

Pipeline: responses -> :func:`~pytest_rolecheck.core.parse.parse_response` ->
distances (:mod:`~pytest_rolecheck.core.distances`) -> statistics
(:mod:`~pytest_rolecheck.core.stats`) -> :class:`Comparison`.

Two designs:

``"all-pairs"`` (default)
    Distances between every pair of calls. The *change* is
    ``cross - min(within_a, within_b)``: how much further a call of one arm is
    from the other arm's calls than from its own arm's (linear in a mixture:
    a share ``q`` of answers rewritten moves it by ``q``).
    Difference test: permutation test of the cross-vs-within Mann-Whitney U.
``"seed"``
    The forum experiment: one baseline call, distances of every trial to it,
    two-sided ``scipy.stats.mannwhitneyu`` of B's distances against A's. The
    change is ``mean(B) - mean(A)``; both signs count. Everything hinges on
    one call, so prefer the default.

Verdict rules: :func:`pytest_rolecheck.core.stats.decide`, the same on every
path: *equivalent* iff the upper bound of the change is below ``tolerance``,
*different* iff the test is significant and the lower bound is above it. On
a deterministic backend (every within-arm distance exactly 0) the change is
known exactly and compared with ``tolerance`` directly.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field, fields, replace
from typing import Any, overload

import numpy as np
import numpy.typing as npt

from ..core import stats as _stats
from ..core.decision import verdict_of
from ..core.distances import DEFAULT_METRIC
from ..core.limits import DEFAULT_ALPHA, DEFAULT_DESIGN
from ..core.parse import ParsedCall
from ..core.stats import ArmSummary, Bound, FlipSummary
from ..core.verdict import Verdict
from . import wording
from .designs import Core, Measured, measure_all_pairs, measure_seed
from .numbers import json_value
from .observers import comparison_made

# check_options is re-exported: the plugin checks options before making any call.
from .options import Metric, Options, parse_arm, refuse_empty, resolve_metric
from .options import check_options as check_options
from .prompt_sets import PromptSetComparison, compare_set, is_set
from .wording import details

__all__ = ["Comparison", "compare"]

# --------------------------------------------------------------------------- result


@dataclass(frozen=True, eq=False)
class Comparison:
    """The outcome of :func:`compare`: verdict, the numbers behind it, and advice.

    ``str(comparison)`` is a multi-line report (verdict first, then the
    numbers, then what to do next); ``to_dict()`` is its JSON-able form.

    Attributes
    ----------
    verdict : {"equivalent", "different", "inconclusive"}
        See :func:`pytest_rolecheck.core.stats.decide`.
    p_value : float or None
        Difference-test p-value (None on a deterministic backend).
    change : float
        The size of the change between the arms, in the metric's units:
        ``cross - min(within_a, within_b)`` (all-pairs) or
        ``mean(B) - mean(A)`` of the trials' distances to the baseline (seed).
    change_upper, change_lower, change_se : float or None
        Its ``1 - alpha`` upper and lower bounds and standard error (None when
        the change is known exactly, see ``exact``).
    tolerance : float
        The largest change that still counts as equivalent.
    floor : float
        Descriptive: ``½(within_a + within_b)`` (seed design: A's mean
        distance to the baseline).
    n_a, n_b : int
        Calls per arm (trials, without the baseline, in the seed design).
    exact : bool
        Every within-arm distance was exactly 0: the change is known exactly and
        decided without statistics.
    deterministic : bool
        ``exact`` and every call of each arm identical (text and logprobs). With a
        token metric and sampled calls the texts can vary while every within-arm
        distance is 0 (the compared prefix distributions are identical): exact,
        but not deterministic.
    within_a, within_b, cross : float
        Mean within-A, within-B and cross-arm distances (seed design: mean
        distance of A's and of B's trials to the baseline; ``cross`` equals
        ``within_b`` there).
    summary_a, summary_b : ArmSummary
        Per-arm mean/std/min/max of within-arm pair distances (all-pairs) or
        of the distances to the baseline (seed design).
    matrix : numpy.ndarray
        Distance matrix of the calls (A then B), read-only; in the seed design
        the trials' matrix (the baseline excluded).
    trial_distances_a, trial_distances_b : tuple of float or None
        Seed design: each trial's distance to the baseline.
    cliffs_delta : float
        Cliff's delta of cross vs within distances (seed design: B's vs A's
        distances to the baseline); descriptive.
    flips : FlipSummary
        Share of each arm's calls whose text differs from A's most common text.
    recommended_trials : int or None
        For an inconclusive verdict: calls per arm likely to settle it, when
        more trials are what is missing.
    advice : str
        What to do next, in plain words.
    """

    verdict: Verdict
    headline: str
    p_value: float | None
    change: float
    change_upper: float | None
    change_lower: float | None
    change_se: float | None
    tolerance: float
    floor: float
    within_a: float
    within_b: float
    cross: float
    n_a: int
    n_b: int
    exact: bool
    deterministic: bool
    metric: str
    design: str
    alpha: float
    labels: tuple[str, str]
    summary_a: ArmSummary
    summary_b: ArmSummary
    matrix: npt.NDArray[np.float64] = field(repr=False)
    trial_distances_a: tuple[float, ...] | None
    trial_distances_b: tuple[float, ...] | None
    cliffs_delta: float
    flips: FlipSummary
    fingerprints_a: tuple[str, ...]
    fingerprints_b: tuple[str, ...]
    calls_a: tuple[ParsedCall, ...] = field(repr=False)
    calls_b: tuple[ParsedCall, ...] = field(repr=False)
    baseline: ParsedCall | None = field(repr=False)
    warnings: tuple[str, ...]
    notes: tuple[str, ...]
    recommended_trials: int | None
    advice: str
    statistic: float | None
    test: str
    difference_detected: bool
    equivalence_shown: bool
    seed: int

    # ------------------------------------------------------------------ export
    def to_dict(self) -> dict[str, Any]:
        """Return every field as JSON-serialisable values, in field order.

        Non-finite numbers become ``None``; the matrix becomes nested lists; the
        parsed calls become their texts (``texts_a``, ``texts_b``, ``baseline_text``).
        """
        return {
            _JSON_NAMES.get(f.name, f.name): json_value(getattr(self, f.name)) for f in fields(self)
        }

    # ------------------------------------------------------------------ report
    def __str__(self) -> str:
        return details.comparison_report(self)


# The parsed calls are exported as their texts, under these names.
_JSON_NAMES: Mapping[str, str] = {
    "calls_a": "texts_a",
    "calls_b": "texts_b",
    "baseline": "baseline_text",
}


# --------------------------------------------------------------------------- compare


@overload
def compare(
    responses_a: Mapping[str, Iterable[Any]],
    responses_b: Mapping[str, Iterable[Any]],
    *,
    metric: str | Metric = ...,
    alpha: float = ...,
    tolerance: float | None = ...,
    design: str = ...,
    seed: int = ...,
    baseline: Any = ...,
    labels: Sequence[str] = ...,
    max_excess_tv: float | None = ...,
    margin: Any = ...,
) -> PromptSetComparison: ...
@overload
def compare(
    responses_a: Iterable[Any],
    responses_b: Iterable[Any],
    *,
    metric: str | Metric = ...,
    alpha: float = ...,
    tolerance: float | None = ...,
    design: str = ...,
    seed: int = ...,
    baseline: Any = ...,
    labels: Sequence[str] = ...,
    max_excess_tv: float | None = ...,
    margin: Any = ...,
) -> Comparison: ...


# Long by its docstring (the public entry point documents every option); the body is short.
def compare(
    responses_a: Iterable[Any],
    responses_b: Iterable[Any],
    *,
    metric: str | Metric = DEFAULT_METRIC,
    alpha: float = DEFAULT_ALPHA,
    tolerance: float | None = None,
    design: str = DEFAULT_DESIGN,
    seed: int = 0,
    baseline: Any = None,
    labels: Sequence[str] = ("A", "B"),
    max_excess_tv: float | None = None,
    margin: Any = None,
) -> Comparison | PromptSetComparison:
    """Decide whether two arms of chat completions behave the same.

    Pure: no network. Each arm is a list of responses to the same request
    (openai ``ChatCompletion`` objects, dicts of the same JSON, or
    ``ParsedCall`` values), requested with ``logprobs=True, top_logprobs=k``.

    Parameters
    ----------
    responses_a, responses_b : iterable, or mapping of str to iterable
        The calls of each arm (at least 4 each; 10 is a good default). A
        prompt set: both arms mappings ``{case_id: [responses...]}`` with the
        same ids (at least 2 cases, 2 calls per case and arm; 14+ cases to
        certify the default tolerance), compared as one set (rule:
        :mod:`pytest_rolecheck.core.prompt_sets`).
    metric : str or callable, default "auto"
        Per-call distance: a registered name (``available_metrics()``) or a
        function ``fn(a, b) -> float``. ``"auto"`` chooses from the calls
        (:func:`~pytest_rolecheck.core.distances.choose_metric`): ``js`` for
        greedy calls, ``js_edit`` for sampled ones, ``edit`` without logprobs;
        the report's notes say which.
    alpha : float, default 0.05
        Significance level of the difference test and ``1 -`` the confidence
        of the bounds.
    tolerance : float, optional
        The largest change that still counts as equivalent, chosen before
        looking at data: for ``js``, ``tv`` and ``first_token`` the share of
        probability mass moved, for the text metrics the share of answers that
        moved (beyond an arm's own call-to-call spread, over the room it leaves), in (0, 1]; default
        :data:`~pytest_rolecheck.core.limits.DEFAULT_TOLERANCE` (0.2). ``n`` calls
        per arm cannot certify a tolerance below ``1 - alpha ** (1/n)``
        (0.259 for 10 calls, 0.139 for 20, 0.095 for 30).
    design : {"all-pairs", "seed"}, default "all-pairs"
        ``"seed"`` reproduces the forum experiment (one baseline call).
    seed : int, default 0
        Seed of the permutation test's random relabellings, so the same
        calls always give the same p-value.
    baseline : response, optional
        Seed design only: the baseline call. Default: ``responses_a[0]``, and
        A's trials are then ``responses_a[1:]``.
    labels : (str, str), default ("A", "B")
        Names of the arms in the report.
    max_excess_tv : float, optional
        Former name of ``tolerance`` (``metric="tv"`` only).
    margin : None
        Removed (a tolerance relative to the jitter floor); passing it raises
        with what to use instead.

    Returns
    -------
    Comparison or PromptSetComparison
        Verdict, numbers, report (``str()``) and advice; a
        :class:`~pytest_rolecheck.verdicts.prompt_sets.PromptSetComparison`
        (with its per-case breakdown) for a prompt set.

    Raises
    ------
    RolecheckUsageError
        Invalid option, unknown metric or design, fewer than 4 calls per arm.
    ResponseFormatError
        A response cannot be parsed (e.g. ``NoLogprobsError`` when the server
        returned no logprobs).

    Notes
    -----
    One rule on every path, :func:`pytest_rolecheck.core.decision.decide` (its
    docstring has the rule and the references); on a deterministic backend the
    change is known exactly and compared with ``tolerance`` directly.
    """
    opts = check_options(
        metric=metric,
        alpha=alpha,
        tolerance=tolerance,
        design=design,
        seed=seed,
        baseline=baseline,
        labels=labels,
        max_excess_tv=max_excess_tv,
        margin=margin,
    )
    if is_set(responses_a, responses_b):
        return compare_set(responses_a, responses_b, opts)  # type: ignore[arg-type]
    calls_a = parse_arm(responses_a, opts.labels[0])
    calls_b = parse_arm(responses_b, opts.labels[1])
    opts, why = resolve_metric(opts, calls_a + calls_b)
    refuse_empty(calls_a, calls_b, opts.labels, opts.metric_fn)
    if opts.design == "seed":
        result = _decide(measure_seed(calls_a, calls_b, baseline, opts), opts)
    else:
        _stats.validate_arm_sizes(len(calls_a), len(calls_b), opts.labels)
        result = _compare_all_pairs(calls_a, calls_b, opts)
    # The choice of the default metric is part of the result: say which and why.
    return comparison_made(replace(result, notes=(why, *result.notes)) if why else result)


def _compare_all_pairs(
    calls_a: tuple[ParsedCall, ...],
    calls_b: tuple[ParsedCall, ...],
    opts: Options,
    d: npt.NDArray[np.float64] | None = None,
) -> Comparison:
    # Kept apart for the calibration benchmark, which passes a precomputed matrix ``d``.
    return _decide(measure_all_pairs(calls_a, calls_b, opts, d), opts)


def _decide(m: Measured, opts: Options) -> Comparison:
    """Send what a design measured down its verdict path."""
    if m.path == "deterministic":
        return _deterministic(m.core, m.calls_a, m.calls_b, opts, m.core.cross)
    if m.path == "all-tied":
        return _all_tied(m.core, m.calls_a, m.calls_b, opts, m.statistic, m.test, [*m.warnings])
    assert m.bound is not None  # a statistical path always has its bound
    return _statistical(
        m.core, m.calls_a, m.calls_b, opts, m.p_value, m.statistic, m.test, m.bound, [*m.warnings]
    )


# --------------------------------------------------------------------------- assembly


@dataclass(frozen=True, slots=True)
class _Descriptives:
    """The descriptive numbers every verdict path reports alongside its decision."""

    cliffs_delta: float
    flips: FlipSummary
    fingerprints_a: tuple[str, ...]
    fingerprints_b: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class _Outcome:
    """What one verdict path decided and says; the rest of a Comparison is shared."""

    verdict: Verdict
    change: float
    headline: str
    advice: str
    test: str
    warnings: tuple[str, ...]
    p_value: float | None = None
    statistic: float | None = None
    change_upper: float | None = None
    change_lower: float | None = None
    change_se: float | None = None
    exact: bool = False
    deterministic: bool = False
    recommended_trials: int | None = None
    notes: tuple[str, ...] = ()
    difference_detected: bool = False
    equivalence_shown: bool = False


def _descriptives(
    core: Core, calls_a: Sequence[ParsedCall], calls_b: Sequence[ParsedCall], opts: Options
) -> tuple[_Descriptives, list[str]]:
    a, b = opts.labels
    delta = _stats.cliffs_delta(core.cross_values, core.within_values)
    flips = _stats.flip_test([c.text for c in calls_a], [c.text for c in calls_b])
    fp_a = tuple(sorted({c.system_fingerprint for c in calls_a if c.system_fingerprint}))
    fp_b = tuple(sorted({c.system_fingerprint for c in calls_b if c.system_fingerprint}))
    warnings: list[str] = []
    if fp_a and fp_b and set(fp_a) != set(fp_b):
        warnings.append(
            f"system_fingerprint differs between the arms ({a}: {', '.join(fp_a)}; {b}: "
            f"{', '.join(fp_b)}): the backend configuration changed between calls, so part of "
            f"any difference may come from the server, not from your change. Re-record both arms "
            f"in one run (calls are interleaved)."
        )
    models_a = {c.model for c in calls_a if c.model}
    models_b = {c.model for c in calls_b if c.model}
    if models_a and models_b and models_a != models_b:
        warnings.append(
            f"the arms were answered by different models ({a}: {', '.join(sorted(models_a))}; "
            f"{b}: {', '.join(sorted(models_b))}); compare variants on the same model."
        )
    return _Descriptives(delta, flips, fp_a, fp_b), warnings


def _flip_warning(flips: FlipSummary, opts: Options, verdict: Verdict) -> str | None:
    if verdict == Verdict.DIFFERENT or flips.p_value > opts.alpha:
        return None
    return wording.flip_warning(flips, opts)


def _statistical(
    core: Core,
    calls_a: Sequence[ParsedCall],
    calls_b: Sequence[ParsedCall],
    opts: Options,
    p_value: float,
    statistic: float,
    test: str,
    bound: Bound,
    extra_warnings: list[str],
) -> Comparison:
    n = min(core.n_a, core.n_b)
    two_sided = opts.design == "seed"
    # With a metric in [0, 1], a change beyond an arm's own spread can be at most
    # 1 - within: when calls of the same arm already part (nearly) always, the metric has
    # no room to show a change of the tolerance's size, and a small estimate means nothing.
    room = 1.0 - min(core.within_a, core.within_b) if opts.bounded and not two_sided else 1.0
    if opts.relative:
        # A relative change (text metrics) is a share of that room: all of it, or none.
        room = 1.0 if room > 0 else 0.0
    decision = _stats.decide(
        p_value=p_value,
        alpha=opts.alpha,
        bound=bound,
        tolerance=opts.tolerance,
        n=n,
        two_sided=two_sided,
        bounded=opts.bounded,
        can_certify=opts.blind is None and not two_sided and room > opts.tolerance,
    )
    desc, warnings = _descriptives(core, calls_a, calls_b, opts)
    warnings += extra_warnings
    flip_warning = _flip_warning(desc.flips, opts, decision.verdict)
    if flip_warning:
        warnings.append(flip_warning)
    headline, advice, notes = wording.statistical_texts(opts, decision, bound, p_value, n, room)
    outcome = _Outcome(
        verdict=decision.verdict,
        change=bound.estimate,
        headline=headline,
        advice=advice,
        test=test,
        warnings=tuple(warnings),
        p_value=p_value,
        statistic=statistic,
        change_upper=bound.upper,
        change_lower=bound.lower,
        change_se=bound.se,
        recommended_trials=decision.recommended_trials,
        notes=tuple(notes),
        difference_detected=decision.difference_detected,
        equivalence_shown=decision.equivalence_shown,
    )
    return _assemble(core, calls_a, calls_b, opts, desc, outcome)


_COMPARISON_FIELDS = frozenset(f.name for f in fields(Comparison))


def _shared(obj: Any) -> dict[str, Any]:
    """The fields of the dataclass ``obj`` that a :class:`Comparison` has too, by name."""
    return {f.name: getattr(obj, f.name) for f in fields(obj) if f.name in _COMPARISON_FIELDS}


def _assemble(
    core: Core,
    calls_a: Sequence[ParsedCall],
    calls_b: Sequence[ParsedCall],
    opts: Options,
    desc: _Descriptives,
    outcome: _Outcome,
) -> Comparison:
    """Build the :class:`Comparison` from what every verdict path shares plus ``outcome``."""
    values = {**_shared(core), **_shared(opts), **_shared(desc), **_shared(outcome)}
    values.update(matrix=_readonly(core.matrix), calls_a=tuple(calls_a), calls_b=tuple(calls_b))
    return Comparison(**values)


def _readonly(matrix: npt.NDArray[np.float64]) -> npt.NDArray[np.float64]:
    out = np.array(matrix, dtype=np.float64, copy=True)
    out.flags.writeable = False
    return out


def _deterministic(
    core: Core,
    calls_a: Sequence[ParsedCall],
    calls_b: Sequence[ParsedCall],
    opts: Options,
    change: float,
) -> Comparison:
    # Every call within each arm is identical: the change is known exactly and is
    # compared with the tolerance directly, like the bounds on every other path.
    desc, warnings = _descriptives(core, calls_a, calls_b, opts)
    verdict = verdict_of(
        p_value=0.0,
        alpha=opts.alpha,
        lower=change,
        upper=change,
        tolerance=opts.tolerance,
        can_certify=opts.blind is None,
    )
    # "Deterministic" only when the calls of each arm are identical, text and logprobs.
    arm_a = calls_a if core.baseline is None else (core.baseline, *calls_a)
    identical = all(len({(c.text, c.positions) for c in arm}) == 1 for arm in (arm_a, calls_b))
    headline, advice = _deterministic_words(
        core, calls_a, calls_b, opts, change, verdict, warnings, identical
    )
    outcome = _Outcome(
        verdict=verdict,
        change=change,
        headline=headline,
        advice=advice,
        test=_deterministic_test(core, opts, identical),
        warnings=tuple(warnings),
        exact=True,
        deterministic=identical,
        difference_detected=verdict is Verdict.DIFFERENT,
        equivalence_shown=verdict is Verdict.EQUIVALENT,
    )
    return _assemble(core, calls_a, calls_b, opts, desc, outcome)


def _deterministic_test(core: Core, opts: Options, identical: bool) -> str:
    a, b = opts.labels
    if not identical:
        return wording.SAME_DISTRIBUTIONS
    return (
        "deterministic backend: every within-arm distance is 0"
        if core.baseline is None
        else f"deterministic backend: every trial of {a} equals the baseline and every call "
        f"of {b} equals the others"
    )


def _deterministic_words(
    core: Core,
    calls_a: Sequence[ParsedCall],
    calls_b: Sequence[ParsedCall],
    opts: Options,
    change: float,
    verdict: Verdict,
    warnings: list[str],
    identical: bool,
) -> tuple[str, str]:
    """Headline and advice of an exact verdict; caveats are appended to ``warnings``."""
    a, b = opts.labels
    reference = core.baseline if core.baseline is not None else calls_a[0]
    texts = {c.text for c in (*calls_a, *calls_b)}
    where = (
        "every call of both arms gives the same output"
        if change == 0.0 and len(texts) == 1
        else f"{wording.first_difference(reference, calls_b[0])} ({a} vs {b})"
        if change > 0.0
        else "every call of both arms saw the same next-token distributions up to its first "
        f"diverging token; the {len(texts)} distinct texts come from sampling"
    )
    headline, advice = wording.deterministic_texts(opts, verdict, change, where, identical)
    if verdict == Verdict.EQUIVALENT and change == 0.0 and len(texts) > 1:
        warnings.append(
            f"metric {opts.metric!r} compares the calls only up to where their texts part; "
            "after that the answers were not compared. If what sampled answers say matters, "
            "compare their texts too: metric='js_edit' (what metric='auto' picks for sampled "
            "calls) or 'edit'."
        )
        if opts.metric == "first_token":
            warnings.append(
                "metric 'first_token' compares only the first position; use metric='js' to "
                "compare every position up to the first divergence."
            )
    return headline, advice


def _all_tied(
    core: Core,
    calls_a: Sequence[ParsedCall],
    calls_b: Sequence[ParsedCall],
    opts: Options,
    statistic: float,
    test: str,
    extra_warnings: list[str],
) -> Comparison:
    # Every trial of both arms sits at the same non-zero distance from the baseline. The
    # arms may still differ from each other (two different outputs can be equally far
    # from a third), so the seed design has no information either way.
    desc, warnings = _descriptives(core, calls_a, calls_b, opts)
    warnings += extra_warnings
    headline, advice = wording.all_tied_texts(core.floor)
    outcome = _Outcome(
        verdict=Verdict.INCONCLUSIVE,
        change=0.0,
        headline=headline,
        advice=advice,
        test=test,
        warnings=tuple(warnings),
        p_value=1.0,
        statistic=statistic,
    )
    return _assemble(core, calls_a, calls_b, opts, desc, outcome)
