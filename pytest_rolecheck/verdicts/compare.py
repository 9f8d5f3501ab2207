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

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field, fields
from typing import Any

import numpy as np
import numpy.typing as npt

from ..core import stats as _stats
from ..core.decision import verdict_of
from ..core.distances import (
    BLIND_METRICS,
    DEFAULT_METRIC,
    divergence_position,
)
from ..core.limits import DEFAULT_ALPHA, DEFAULT_DESIGN
from ..core.parse import ParsedCall
from ..core.stats import ArmSummary, Bound, FlipSummary
from ..core.verdict import Verdict
from ..errors import RolecheckAssertionError, RolecheckUsageError
from .designs import Core, Measured, measure_all_pairs, measure_seed

# check_options is re-exported: the plugin checks options before making any call.
from .options import Metric, Options, parse_arm, refuse_empty
from .options import check_options as check_options

__all__ = ["Comparison", "assert_different", "assert_equivalent", "compare"]

_UNITS: dict[str, str] = {
    "js": "bits, share of mass moved",
    "tv": "share of probability mass",
    "tok_l1": "nats",
    "first_token": "bits",
    "seed": "nats, rank-aligned",
}


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
        Its ``1 - alpha`` upper and lower bounds and standard error (None on a
        deterministic backend, where the change is known exactly).
    tolerance : float
        The largest change that still counts as equivalent.
    floor : float
        Descriptive: ``½(within_a + within_b)`` (seed design: A's mean
        distance to the baseline).
    n_a, n_b : int
        Calls per arm (trials, without the baseline, in the seed design).
    deterministic : bool
        Every within-arm distance was exactly 0: decided without statistics.
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
            _JSON_NAMES.get(f.name, f.name): _json_value(getattr(self, f.name))
            for f in fields(self)
        }

    # ------------------------------------------------------------------ report
    def __str__(self) -> str:
        a, b = self.labels
        unit = _UNITS.get(self.metric, "metric units")
        seed = self.design == "seed"
        design = "seed design" if seed else "all-pairs design"
        lines = [f"rolecheck: {a} vs {b} -> {self.verdict.upper()}", f"  {self.headline}"]
        lines += [f"  Note: {note}" for note in self.notes]
        lines.append("")
        lines.append(
            f"  calls            {self.n_a} + {self.n_b} ({design}, metric {self.metric}, {unit})"
        )
        if self.p_value is not None:
            lines.append(
                f"  difference test  p = {_p(self.p_value)} ({self.test}; alpha {self.alpha:g})"
            )
        else:
            lines.append(f"  difference test  not needed ({self.test})")
        if seed:
            lines.append(f"  {a + ' trials':<16} mean distance to the baseline {_n(self.within_a)}")
            lines.append(f"  {b + ' trials':<16} mean distance to the baseline {_n(self.within_b)}")
            what = f"mean({b}) - mean({a}) distance to the baseline"
        else:
            lines.append(
                f"  within arms      {a} {_n(self.within_a)}, {b} {_n(self.within_b)} (mean "
                f"distance between two calls of the same arm)"
            )
            lines.append(
                f"  cross mean       {_n(self.cross)} (mean distance between calls of different "
                f"arms)"
            )
            what = "cross - smaller within-arm mean"
        change = f"  change           {_n(self.change)} ({what}"
        if self.change_upper is not None and self.change_lower is not None:
            change += (
                f"; {1 - self.alpha:.0%} bounds {_n(self.change_lower)} .. {_n(self.change_upper)}"
            )
        elif self.deterministic:
            change += "; exact: deterministic backend"
        lines.append(change + f"; tolerance {self.tolerance:g})")
        what = "distances to the baseline" if seed else "within-arm distances"
        for label, s in ((a, self.summary_a), (b, self.summary_b)):
            lines.append(
                f"  {label:<16} mean {_n(s.mean)}  std {_n(s.std)}  min {_n(s.min)}  "
                f"max {_n(s.max)}  ({s.n} {what})"
            )
        if self.trial_distances_a is not None and self.trial_distances_b is not None:
            lines.append(f"  {a} trials: {_list(self.trial_distances_a)}")
            lines.append(f"  {b} trials: {_list(self.trial_distances_b)}")
        delta_what = (
            f"{b}'s vs {a}'s distances to the baseline" if seed else "cross vs within distances"
        )
        lines.append(
            f"  Cliff's delta    {self.cliffs_delta:+.2f} ({delta_what}; 0 = no tendency, +1 = "
            f"always larger)"
        )
        f = self.flips
        lines.append(
            f"  text flips       {a} {f.changed_a}/{f.n_a}, {b} {f.changed_b}/{f.n_b} calls differ "
            f"from {a}'s most common text (Fisher p = {_p(f.p_value)})"
        )
        if self.fingerprints_a or self.fingerprints_b:
            lines.append(
                f"  fingerprints     {a}: {', '.join(self.fingerprints_a) or '-'}; "
                f"{b}: {', '.join(self.fingerprints_b) or '-'}"
            )
        if self.warnings:
            lines.append("  warnings:")
            lines += [f"    - {w}" for w in self.warnings]
        lines.append("")
        lines.append(f"  next: {self.advice}")
        return "\n".join(lines)


# The parsed calls are exported as their texts, under these names.
_JSON_NAMES: Mapping[str, str] = {
    "calls_a": "texts_a",
    "calls_b": "texts_b",
    "baseline": "baseline_text",
}


def _json_num(value: float | None) -> float | None:
    if value is None or not math.isfinite(value):
        return None
    return float(value)


def _json_value(value: Any) -> Any:
    """One field of a :class:`Comparison` as plain JSON (see :meth:`Comparison.to_dict`)."""
    if value is None or isinstance(value, bool | str):
        return str(value) if isinstance(value, Verdict) else value
    if isinstance(value, int | np.integer):
        return int(value)
    if isinstance(value, float | np.floating):
        return _json_num(float(value))
    if isinstance(value, ParsedCall):
        return value.text
    if isinstance(value, ArmSummary | FlipSummary):
        return _json_value(value.to_dict())
    if isinstance(value, Mapping):
        return {k: _json_value(v) for k, v in value.items()}
    if isinstance(value, np.ndarray):
        return _json_value(value.tolist())
    return [_json_value(v) for v in value]


def _n(value: float, digits: int = 4) -> str:
    if not math.isfinite(value):
        return "unbounded" if value > 0 else "-unbounded"
    return f"{value:.{digits}g}"


def _p(value: float) -> str:
    return "1" if value >= 1 else f"{value:.3g}"


def _list(values: Sequence[float]) -> str:
    return "[" + ", ".join(f"{v:.4g}" for v in values) + "]"


# --------------------------------------------------------------------------- compare


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
) -> Comparison:
    """Decide whether two arms of chat completions behave the same.

    Pure: no network. Each arm is a list of responses to the same request
    (openai ``ChatCompletion`` objects, dicts of the same JSON, or
    ``ParsedCall`` values), requested with ``logprobs=True, top_logprobs=k``.

    Parameters
    ----------
    responses_a, responses_b : iterable
        The calls of each arm (at least 4 each; 10 is a good default).
    metric : str or callable, default "js"
        Per-call distance: a registered name (``available_metrics()``) or a
        function ``fn(a, b) -> float``.
    alpha : float, default 0.05
        Significance level of the difference test and ``1 -`` the confidence
        of the bounds.
    tolerance : float, optional
        The largest change that still counts as equivalent, chosen before
        looking at data: for ``js``, ``tv`` and ``first_token`` the share of
        probability mass moved, in (0, 1]; default
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
    Comparison
        Verdict, numbers, report (``str()``) and advice.

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
    calls_a = parse_arm(responses_a, opts.labels[0])
    calls_b = parse_arm(responses_b, opts.labels[1])
    refuse_empty(calls_a, calls_b, opts.labels)
    if opts.design == "seed":
        return _decide(measure_seed(calls_a, calls_b, baseline, opts), opts)
    _stats.validate_arm_sizes(len(calls_a), len(calls_b), opts.labels)
    return _compare_all_pairs(calls_a, calls_b, opts)


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
    a, b = opts.labels
    return (
        f"the share of calls whose text differs from {a}'s most common text differs "
        f"({a} {flips.changed_a}/{flips.n_a}, {b} {flips.changed_b}/{flips.n_b}, Fisher p = "
        f"{_p(flips.p_value)}): rare flips are behaviour too; read the texts "
        f"(to_dict()['texts_a'] and ['texts_b'])."
    )


_SEED_BLIND = (
    "the seed design measures each trial's distance to one baseline call, and two arms "
    "equally far from that call can still differ from each other"
)


def _blind_words(opts: Options, statistical: bool = True) -> str:
    if opts.blind is None and statistical and opts.design == "seed":
        return (
            f"the seed design cannot certify equivalence ({_SEED_BLIND}); it can still show a "
            f"difference. Use design='all-pairs' (the default) to show equivalence."
        )
    return (
        f"metric {opts.metric!r} cannot certify equivalence ({opts.blind}); it can still show "
        f"a difference. Use metric='js' (the default) or 'tv' to show equivalence."
    )


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
    reach = max(bound.upper, -bound.lower) if two_sided else bound.upper
    headline, advice, notes = _statistical_words(bound, p_value, decision, opts, n, reach, room)
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


def _statistical_words(
    bound: Bound,
    p_value: float,
    decision: _stats.Decision,
    opts: Options,
    n: int,
    reach: float,
    room: float,
) -> tuple[str, str, list[str]]:
    """Headline, advice and notes of a statistical verdict."""
    a, b = opts.labels
    tol = opts.tolerance
    conf = f"{1 - opts.alpha:.0%}"
    est = _n(bound.estimate)
    notes: list[str] = []
    if decision.verdict == Verdict.EQUIVALENT:
        headline = (
            f"With {conf} confidence, switching {a} -> {b} changes the outputs by at most "
            f"{_n(reach)} (upper bound; estimate {est}), below the tolerance {tol:g}."
        )
        if p_value <= opts.alpha:
            notes.append(
                f"a small difference is detectable (p = {_p(p_value)} <= alpha {opts.alpha:g}); "
                f"it is within the tolerance {tol:g}."
            )
        advice = "nothing to do: the change is within the tolerance you declared."
    elif decision.verdict == Verdict.DIFFERENT:
        headline = (
            f"{b} behaves differently from {a}: the change {est} is significant (p = "
            f"{_p(p_value)} <= alpha {opts.alpha:g}) and larger than the tolerance {tol:g} "
            f"({conf} lower bound {_n(bound.effect_lower)})."
        )
        advice = (
            "if the change is intended, assert it with assert_different(...); if not, look at "
            "the texts and fingerprints of the two arms."
        )
    else:
        headline, advice = _inconclusive(bound, p_value, decision, opts, n, reach, room)
    return headline, advice, notes


def _inconclusive(
    bound: Bound,
    p_value: float,
    decision: _stats.Decision,
    opts: Options,
    n: int,
    reach: float,
    room: float,
) -> tuple[str, str]:
    """Headline and advice of an inconclusive verdict; more trials only where they help."""
    tol = opts.tolerance
    conf = f"{1 - opts.alpha:.0%}"
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
            f"(upper bound {_n(reach)}), but {_blind_words(opts)}"
        )
        fix = "metric='js'" if opts.blind is not None else "design='all-pairs'"
        return headline, f"compare with {fix} (the default) to certify equivalence."
    sig = (
        f"p = {_p(p_value)} <= alpha {opts.alpha:g}"
        if p_value <= opts.alpha
        else f"p = {_p(p_value)} > alpha {opts.alpha:g}"
    )
    headline = (
        f"Inconclusive: estimated change {_n(bound.estimate)}, {conf} bounds "
        f"{_n(bound.lower)} .. {_n(bound.upper)} ({sig}); neither below nor shown above the "
        f"tolerance {tol:g}. This is not evidence of equivalence."
    )
    floor = _stats.smallest_certifiable(n, opts.alpha) if opts.bounded else 0.0
    rec = decision.recommended_trials
    if est < tol:
        why = (
            f"the estimate is below the tolerance but {n} calls per arm leave the upper bound "
            f"at {_n(reach)}"
        )
        if floor >= tol:
            why += (
                f" (with {n} calls per arm no tolerance below {floor:.3g} can be certified: a "
                f"change that shows in a few calls out of {n} could go unseen)"
            )
        more = (
            f"increase trials to ~{rec} per arm (now {n}); a rough estimate that assumes "
            f"the change stays where it is"
            if rec is not None
            else "the tolerance is very tight for this noise: widen it (tolerance=) if a "
            "larger change is acceptable"
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


def _first_difference(a: ParsedCall, b: ParsedCall) -> str:
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
                f"({pa.logprob:.4g} vs {pb.logprob:.4g})"
            )
    if len(a.positions) != len(b.positions):
        return (
            f"different at position {min(len(a.positions), len(b.positions))}: one output ends "
            f"there ({len(a.positions)} vs {len(b.positions)} tokens)"
        )
    return "different (the metric sees a difference the tokens do not show)"


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
    headline, advice = _deterministic_words(core, calls_a, calls_b, opts, change, verdict, warnings)
    outcome = _Outcome(
        verdict=verdict,
        change=change,
        headline=headline,
        advice=advice,
        test=_deterministic_test(core, opts),
        warnings=tuple(warnings),
        deterministic=True,
        difference_detected=verdict is Verdict.DIFFERENT,
        equivalence_shown=verdict is Verdict.EQUIVALENT,
    )
    return _assemble(core, calls_a, calls_b, opts, desc, outcome)


def _deterministic_test(core: Core, opts: Options) -> str:
    a, b = opts.labels
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
) -> tuple[str, str]:
    """Headline and advice of a deterministic verdict; caveats are appended to ``warnings``."""
    a, b = opts.labels
    tol = opts.tolerance
    reference = core.baseline if core.baseline is not None else calls_a[0]
    texts = {c.text for c in (*calls_a, *calls_b)}
    where = (
        "every call of both arms gives the same output"
        if change == 0.0 and len(texts) == 1
        else f"{_first_difference(reference, calls_b[0])} ({a} vs {b})"
        if change > 0.0
        else "every call of both arms saw the same next-token distributions up to its first "
        f"diverging token; the {len(texts)} distinct texts come from sampling"
    )
    if verdict == Verdict.EQUIVALENT:
        headline = (
            f"deterministic backend: {where}; the change is exactly {_n(change)}, below the "
            f"tolerance {tol:g}."
        )
        advice = "nothing to do: both arms behave the same within the tolerance on this backend."
        if change == 0.0 and len(texts) > 1:
            warnings.append(
                "the texts differ only where sampling drew different tokens from identical "
                "distributions; if the sampled outputs themselves matter, compare them "
                "(text flips above) or compare tool-call outcomes."
            )
            if opts.metric == "first_token":
                warnings.append(
                    "metric 'first_token' compares only the first position; use metric='js' to "
                    "compare every position up to the first divergence."
                )
    elif verdict == Verdict.DIFFERENT:
        headline = (
            f"deterministic backend: outputs {where}; every call within an arm is identical, so "
            f"the change is exactly {_n(change)}, above the tolerance {tol:g}."
        )
        advice = (
            "if the change is intended, assert it with assert_different(...); otherwise the "
            "variants really produce different outputs on this backend; inspect the texts."
        )
    elif change < tol:
        headline = (
            f"Inconclusive: deterministic backend, change exactly {_n(change)}, but "
            f"{_blind_words(opts, statistical=False)}"
        )
        advice = "compare with metric='js' (the default) to certify equivalence."
    else:
        headline = (
            f"Inconclusive: deterministic backend, the change is exactly {_n(change)}, equal to "
            f"the tolerance {tol:g}."
        )
        advice = "decide whether a change of this size matters and set tolerance= accordingly."
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
    headline = (
        f"Inconclusive: every trial of both arms is exactly {core.floor:.4g} away from the "
        f"baseline, so the seed design cannot tell the arms apart (a rank test has no "
        f"information when every value is tied: the two-sided test gives p = 1 whatever the "
        f"arms do)."
    )
    outcome = _Outcome(
        verdict=Verdict.INCONCLUSIVE,
        change=0.0,
        headline=headline,
        advice="use design='all-pairs', which compares the calls with each other.",
        test=test,
        warnings=tuple(warnings),
        p_value=1.0,
        statistic=statistic,
    )
    return _assemble(core, calls_a, calls_b, opts, desc, outcome)


# --------------------------------------------------------------------------- assertions


def _assertion_message(expected: Verdict, result: Comparison) -> str:
    a, b = result.labels
    if expected == Verdict.EQUIVALENT:
        head = f"assert_equivalent failed: {a} and {b} were not shown equivalent"
        if result.verdict == Verdict.DIFFERENT:
            todo = (
                "what to do: if this change is intended, use assert_different(...); otherwise "
                "find what makes the arms differ (texts, fingerprints above)."
            )
        else:
            todo = f"what to do: {result.advice}"
    else:
        head = f"assert_different failed: no difference between {a} and {b} was shown"
        if result.verdict == Verdict.EQUIVALENT:
            todo = (
                "what to do: the arms are equivalent within the tolerance; if a change this "
                "small should count, lower tolerance= (decided before looking at the data); if "
                "the change was supposed to matter, check that the variants really differ."
            )
        else:
            todo = f"what to do: {result.advice}"
    return f"{head} (verdict: {result.verdict}).\n\n{result}\n\n{todo}"


def refuse_blind_equivalence(metric: object) -> None:
    """Refuse an equivalence assertion with a metric that cannot see every change.

    Raises
    ------
    RolecheckUsageError
        For ``tok_l1`` and ``seed``, with the reason and what to use instead.
    """
    why = BLIND_METRICS.get(metric) if isinstance(metric, str) else None
    if why is not None:
        raise RolecheckUsageError(
            f"an equivalence assertion cannot pass with metric={metric!r}: {why}. Use "
            f"metric='js' (the default) or 'tv' to assert equivalence; {metric!r} can still "
            f"assert a difference."
        )


def assert_equivalent(
    responses_a: Iterable[Any], responses_b: Iterable[Any], **options: Any
) -> Comparison:
    """Assert that two arms behave the same, within the tolerance.

    Same arguments as :func:`compare`. Passes only on the verdict
    ``"equivalent"``: a non-significant difference test is not enough.

    Returns
    -------
    Comparison
        The comparison, for further checks or reporting.

    Raises
    ------
    RolecheckAssertionError
        With the full report and what to do next, when the verdict is
        ``"different"`` or ``"inconclusive"``.
    """
    __tracebackhide__ = True
    refuse_blind_equivalence(options.get("metric", DEFAULT_METRIC))
    return _expect(Verdict.EQUIVALENT, compare(responses_a, responses_b, **options))


def assert_different(
    responses_a: Iterable[Any], responses_b: Iterable[Any], **options: Any
) -> Comparison:
    """Assert that two arms behave differently.

    Same arguments as :func:`compare`. Passes only on the verdict
    ``"different"``; a real difference that stays within the equivalence
    tolerance gives ``"equivalent"`` and fails here (lower ``tolerance`` to
    count it).

    Returns
    -------
    Comparison
        The comparison, for further checks or reporting.

    Raises
    ------
    RolecheckAssertionError
        With the full report and what to do next, when the verdict is
        ``"equivalent"`` or ``"inconclusive"``.
    """
    __tracebackhide__ = True
    return _expect(Verdict.DIFFERENT, compare(responses_a, responses_b, **options))


def _expect(verdict: Verdict, result: Comparison) -> Comparison:
    __tracebackhide__ = True
    if result.verdict != verdict:
        raise RolecheckAssertionError(_assertion_message(verdict, result))
    return result
