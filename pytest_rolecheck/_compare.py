"""``compare()``: from two arms of chat completions to a verdict and a readable report.

Pipeline: responses -> :func:`~pytest_rolecheck._parse.parse_response` ->
distances (:mod:`~pytest_rolecheck._distances`) -> statistics
(:mod:`~pytest_rolecheck._stats`) -> :class:`Comparison`.

Two designs:

``"all-pairs"`` (default)
    Distances between every pair of calls. ``floor`` is the pooled
    call-to-call jitter of both arms, ``½(mean within-A + mean within-B)``,
    ``excess`` the mean cross-arm distance minus the floor,
    ``ratio = excess / floor``.
    Difference test: permutation test of the cross-vs-within Mann-Whitney U.
    Equivalence: jackknife upper bound of the ratio (or of the excess, with
    ``max_excess_tv``).
``"seed"``
    The forum experiment: one baseline call, distances of every trial to it,
    two-sided ``scipy.stats.mannwhitneyu`` of B's distances against A's.
    ``floor`` is A's mean distance to the baseline, ``excess`` B's minus A's,
    the ratio as above; equivalence needs both jackknife bounds of the ratio
    inside ``(-margin, margin)`` (B much *closer* to an A baseline than A's own
    trials is a difference too). Everything hinges on one call, so prefer the
    default.

Verdict rules: see :func:`pytest_rolecheck._stats.decide`, plus the
deterministic short-cut: when every within-arm distance is exactly 0 (a
bit-reproducible backend) no statistics are needed, and the arms are
equivalent iff every cross distance is at most ``1e-6``.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import numpy.typing as npt

from . import _stats
from ._distances import distance_matrix, divergence_position, get_metric
from ._errors import NothingToCompareError, RolecheckAssertionError, RolecheckUsageError
from ._parse import ParsedCall, parse_response
from ._stats import ArmSummary, Bound, FlipSummary, Verdict

__all__ = ["Comparison", "assert_different", "assert_equivalent", "compare"]

Metric = Callable[[ParsedCall, ParsedCall], float]

_UNITS: dict[str, str] = {
    "js": "bits",
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
        See :func:`pytest_rolecheck._stats.decide`.
    p_value : float or None
        Difference-test p-value (None on a deterministic backend).
    floor : float
        Jitter floor: the pooled call-to-call jitter of both arms,
        ``½(mean within-A + mean within-B)`` (all-pairs), or A's mean
        distance to the baseline (seed design).
    excess : float
        ``cross - floor`` (all-pairs) or ``mean(B) - mean(A)`` (seed design).
    ratio, ratio_upper, ratio_lower, ratio_se : float or None
        ``excess / floor``, its 95% upper and lower bounds and jackknife
        standard error (None on a deterministic backend; infinite bounds if
        undefined). The lower bound is used only by the seed design.
    excess_upper, excess_lower, excess_se : float or None
        Same for the absolute excess (used with ``max_excess_tv``).
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
        Share of calls whose text differs from their arm's most common text.
    recommended_trials : int or None
        For an inconclusive verdict: calls per arm likely to settle it.
    advice : str
        What to do next, in plain words.
    """

    verdict: Verdict
    p_value: float | None
    floor: float
    excess: float
    ratio: float | None
    ratio_upper: float | None
    ratio_lower: float | None
    ratio_se: float | None
    excess_upper: float | None
    excess_lower: float | None
    excess_se: float | None
    n_a: int
    n_b: int
    deterministic: bool
    metric: str
    design: str
    alpha: float
    margin: float
    max_excess_tv: float | None
    labels: tuple[str, str]
    summary_a: ArmSummary
    summary_b: ArmSummary
    within_a: float
    within_b: float
    cross: float
    matrix: npt.NDArray[np.float64] = field(repr=False)
    trial_distances_a: tuple[float, ...] | None
    trial_distances_b: tuple[float, ...] | None
    cliffs_delta: float
    flips: FlipSummary
    fingerprints_a: tuple[str, ...]
    fingerprints_b: tuple[str, ...]
    warnings: tuple[str, ...]
    recommended_trials: int | None
    calls_a: tuple[ParsedCall, ...] = field(repr=False)
    calls_b: tuple[ParsedCall, ...] = field(repr=False)
    baseline: ParsedCall | None = field(repr=False)
    advice: str
    headline: str
    notes: tuple[str, ...]
    statistic: float | None
    test: str
    difference_detected: bool
    equivalence_shown: bool
    seed: int

    # ------------------------------------------------------------------ export
    def to_dict(self) -> dict[str, Any]:
        """Return every field but the parsed calls as JSON-serialisable values.

        Non-finite numbers become ``None``; the matrix becomes nested lists.
        ``tv``/``tv_upper`` repeat ``excess``/``excess_upper`` when the metric
        is ``"tv"`` (else ``None``).
        """
        is_tv = self.metric == "tv"
        return {
            "verdict": self.verdict,
            "headline": self.headline,
            "p_value": _json_num(self.p_value),
            "floor": _json_num(self.floor),
            "excess": _json_num(self.excess),
            "ratio": _json_num(self.ratio),
            "ratio_upper": _json_num(self.ratio_upper),
            "ratio_lower": _json_num(self.ratio_lower),
            "ratio_se": _json_num(self.ratio_se),
            "excess_upper": _json_num(self.excess_upper),
            "excess_lower": _json_num(self.excess_lower),
            "excess_se": _json_num(self.excess_se),
            "tv": _json_num(self.excess) if is_tv else None,
            "tv_upper": _json_num(self.excess_upper) if is_tv else None,
            "within_a": _json_num(self.within_a),
            "within_b": _json_num(self.within_b),
            "cross": _json_num(self.cross),
            "n_a": self.n_a,
            "n_b": self.n_b,
            "deterministic": self.deterministic,
            "metric": self.metric,
            "design": self.design,
            "alpha": self.alpha,
            "margin": self.margin,
            "max_excess_tv": self.max_excess_tv,
            "labels": list(self.labels),
            "summary_a": _json_dict(self.summary_a.to_dict()),
            "summary_b": _json_dict(self.summary_b.to_dict()),
            "matrix": [[_json_num(float(x)) for x in row] for row in self.matrix],
            "trial_distances_a": _json_list(self.trial_distances_a),
            "trial_distances_b": _json_list(self.trial_distances_b),
            "cliffs_delta": _json_num(self.cliffs_delta),
            "flips": _json_dict(self.flips.to_dict()),
            "fingerprints_a": list(self.fingerprints_a),
            "fingerprints_b": list(self.fingerprints_b),
            "texts_a": [c.text for c in self.calls_a],
            "texts_b": [c.text for c in self.calls_b],
            "baseline_text": None if self.baseline is None else self.baseline.text,
            "warnings": list(self.warnings),
            "notes": list(self.notes),
            "recommended_trials": self.recommended_trials,
            "advice": self.advice,
            "statistic": _json_num(self.statistic),
            "test": self.test,
            "difference_detected": self.difference_detected,
            "equivalence_shown": self.equivalence_shown,
            "seed": self.seed,
        }

    # ------------------------------------------------------------------ report
    def _bounds(self, lower: float, upper: float, digits: int) -> str:
        if self.design == "seed":
            return f"95% bounds {_n(lower, digits)} .. {_n(upper, digits)}"
        return f"95% upper bound {_n(upper, digits)}"

    def __str__(self) -> str:
        a, b = self.labels
        unit = _UNITS.get(self.metric, "metric units")
        design = "seed design" if self.design == "seed" else "all-pairs design"
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
        floor_what = (
            f"mean distance of {a}'s trials to the baseline"
            if self.design == "seed"
            else "½(within-A + within-B): pooled distance between calls of the same arm"
        )
        cross_what = (
            f"mean distance of {b}'s trials to the baseline"
            if self.design == "seed"
            else "mean distance between calls of different arms"
        )
        lines.append(f"  jitter floor     {_n(self.floor)} ({floor_what})")
        lines.append(f"  cross mean       {_n(self.cross)} ({cross_what})")
        excess_line = f"  excess           {_n(self.excess)} (cross - floor"
        if self.excess_upper is not None and self.excess_lower is not None:
            excess_line += "; " + self._bounds(self.excess_lower, self.excess_upper, 4)
            if self.max_excess_tv is not None:
                excess_line += f", tolerance max_excess_tv {self.max_excess_tv:g}"
        lines.append(excess_line + ")")
        if self.ratio is not None:
            ratio_line = f"  ratio            {_n(self.ratio, 3)} (excess / floor"
            if self.ratio_upper is not None:
                ratio_line += f"; SE {_n(self.ratio_se or 0.0, 3)}; " + self._bounds(
                    self.ratio_lower if self.ratio_lower is not None else -math.inf,
                    self.ratio_upper,
                    3,
                )
                if self.max_excess_tv is None:
                    ratio_line += f", margin {self.margin:g}"
            lines.append(ratio_line + ")")
        what = "distances to the baseline" if self.design == "seed" else "within-arm distances"
        for label, s in ((a, self.summary_a), (b, self.summary_b)):
            lines.append(
                f"  {label:<16} mean {_n(s.mean)}  std {_n(s.std)}  min {_n(s.min)}  "
                f"max {_n(s.max)}  ({s.n} {what})"
            )
        if self.trial_distances_a is not None and self.trial_distances_b is not None:
            lines.append(f"  {a} trials: {_list(self.trial_distances_a)}")
            lines.append(f"  {b} trials: {_list(self.trial_distances_b)}")
        delta_what = (
            f"{b}'s vs {a}'s distances to the baseline"
            if self.design == "seed"
            else "cross vs within distances"
        )
        lines.append(
            f"  Cliff's delta    {self.cliffs_delta:+.2f} ({delta_what}; 0 = no tendency, +1 = "
            f"always larger)"
        )
        f = self.flips
        lines.append(
            f"  text flips       {a} {f.changed_a}/{f.n_a}, {b} {f.changed_b}/{f.n_b} calls differ "
            f"from their arm's most common text (Fisher p = {_p(f.p_value)})"
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


def _json_num(value: float | None) -> float | None:
    if value is None or not math.isfinite(value):
        return None
    return float(value)


def _json_dict(values: Mapping[str, float | int]) -> dict[str, float | int | None]:
    return {k: v if isinstance(v, int) else _json_num(v) for k, v in values.items()}


def _json_list(values: Sequence[float] | None) -> list[float | None] | None:
    return None if values is None else [_json_num(v) for v in values]


def _n(value: float, digits: int = 4) -> str:
    if not math.isfinite(value):
        return "unbounded" if value > 0 else str(value)
    return f"{value:.{digits}g}"


def _p(value: float) -> str:
    return "1" if value >= 1 else f"{value:.3g}"


def _list(values: Sequence[float]) -> str:
    return "[" + ", ".join(f"{v:.4g}" for v in values) + "]"


# --------------------------------------------------------------------------- validation


@dataclass(frozen=True, slots=True)
class _Options:
    metric_fn: Metric
    metric: str
    alpha: float
    margin: float
    max_excess_tv: float | None
    design: str
    seed: int
    labels: tuple[str, str]


def check_options(
    *,
    metric: str | Metric,
    alpha: float,
    margin: float,
    max_excess_tv: float | None,
    design: str,
    seed: int,
    baseline: Any,
    labels: Sequence[str],
) -> _Options:
    """Validate every option of :func:`compare`; also used before calls are made."""
    _stats.validate_options(alpha=alpha, margin=margin, max_excess_tv=max_excess_tv, design=design)
    if isinstance(metric, str):
        fn = get_metric(metric)  # unknown names raise, listing available_metrics()
        name = metric
    elif callable(metric):
        fn = metric
        name = getattr(metric, "__name__", "custom")
    else:
        raise RolecheckUsageError(
            f"metric={metric!r} is neither a metric name nor a callable; pass a name such as "
            f"'js' (see available_metrics()) or a function fn(a, b) -> float."
        )
    if max_excess_tv is not None and fn is not get_metric("tv"):
        raise RolecheckUsageError(
            f"max_excess_tv={max_excess_tv!r} is an absolute tolerance in total-variation units "
            f"(share of probability mass moved) and only has that meaning with metric='tv' "
            f"(got metric={name!r}). Pass metric='tv' together with max_excess_tv, or drop "
            f"max_excess_tv and use margin= (a relative tolerance that works with any metric)."
        )
    if isinstance(seed, bool) or not isinstance(seed, int) or seed < 0:
        raise RolecheckUsageError(
            f"seed={seed!r} is not allowed: it seeds the random relabellings of the permutation "
            f"test and must be a whole number >= 0 (0 is the default)."
        )
    if baseline is not None and design != "seed":
        raise RolecheckUsageError(
            "baseline= is only used by design='seed'; pass design='seed' as well, or drop "
            "baseline= (the default all-pairs design compares every pair of calls)."
        )
    if (
        isinstance(labels, str)
        or len(labels) != 2
        or not all(isinstance(x, str) and x for x in labels)
        or labels[0] == labels[1]
    ):
        raise RolecheckUsageError(
            f"labels={labels!r} is not allowed: pass two different non-empty strings, "
            f"e.g. labels=('developer', 'system')."
        )
    return _Options(
        metric_fn=fn,
        metric=name,
        alpha=float(alpha),
        margin=float(margin),
        max_excess_tv=None if max_excess_tv is None else float(max_excess_tv),
        design=design,
        seed=seed,
        labels=(labels[0], labels[1]),
    )


def _parse_arm(responses: Iterable[Any], label: str) -> tuple[ParsedCall, ...]:
    if isinstance(responses, str | bytes | Mapping) or not isinstance(responses, Iterable):
        raise RolecheckUsageError(
            f"responses for arm {label!r} must be a list of chat-completion responses (or "
            f"ParsedCall values), got a single {type(responses).__name__}; wrap it in a list and "
            f"pass at least {_stats.MIN_CALLS_PER_ARM} calls."
        )
    return tuple(parse_response(r) for r in responses)


def _refuse_empty(
    calls_a: Sequence[ParsedCall], calls_b: Sequence[ParsedCall], labels: tuple[str, str]
) -> None:
    # Zero tokens everywhere makes every distance 0: "equivalent" would prove nothing.
    if any(call.positions for call in (*calls_a, *calls_b)):
        return
    tools = sum(1 for call in (*calls_a, *calls_b) if call.tool_calls)
    why = f" ({tools} answered with tool calls)" if tools else ""
    raise NothingToCompareError(
        f"no call of {labels[0]!r} or {labels[1]!r} produced a token with logprobs "
        f"({len(calls_a)}+{len(calls_b)} calls, 0 tokens{why}): there is nothing to compare, "
        "so no verdict is given. Make the model answer in text: max_tokens >= 1 and a prompt "
        "that asks for an answer; compare tool calls with assert_tool_calls_* instead."
    )


# --------------------------------------------------------------------------- compare


def compare(
    responses_a: Iterable[Any],
    responses_b: Iterable[Any],
    *,
    metric: str | Metric = "js",
    alpha: float = 0.05,
    margin: float = 0.5,
    max_excess_tv: float | None = None,
    design: str = "all-pairs",
    seed: int = 0,
    baseline: Any = None,
    labels: Sequence[str] = ("A", "B"),
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
        Significance level of the difference test.
    margin : float, default 0.5
        Equivalence margin: the largest acceptable change, as a multiple of the
        jitter floor (the ratio ``excess / floor``): the pooled call-to-call
        jitter of both arms, ``½(within-A + within-B)``; in the seed design,
        A's mean distance to the baseline.
    max_excess_tv : float, optional
        Absolute tolerance instead of ``margin``: the largest acceptable
        excess in total-variation units. Only with ``metric="tv"``.
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
    Verdict rules (all-pairs design; the seed design applies the same rules
    to per-trial distances):

    1. If every within-arm distance is exactly 0 (a deterministic backend):
       ``"equivalent"`` iff every cross distance is <= 1e-6, else
       ``"different"``. No p-value, no ratio.
    2. Otherwise ``"equivalent"`` if the jackknife 95% upper bound of
       ``ratio`` is below ``margin`` (of ``excess``, below ``max_excess_tv``)
       -- even when the difference test is also significant (a small but real
       difference within the tolerance; noted in the report).
    3. Else ``"different"`` if the permutation p-value is <= ``alpha``.
    4. Else ``"inconclusive"``, with a recommended number of trials. A
       non-significant difference test is never reported as equivalence.

    References
    ----------
    .. [1] G. J. Székely and M. L. Rizzo, "Energy statistics: A class of
       statistics based on distances", J. Stat. Plan. Inference 143(8),
       pp. 1249-1272, 2013.
    .. [2] D. J. Schuirmann, "A comparison of the two one-sided tests
       procedure and the power approach for assessing the equivalence of
       average bioavailability", J. Pharmacokinet. Biopharm. 15(6),
       pp. 657-680, 1987.
    """
    opts = check_options(
        metric=metric,
        alpha=alpha,
        margin=margin,
        max_excess_tv=max_excess_tv,
        design=design,
        seed=seed,
        baseline=baseline,
        labels=labels,
    )
    calls_a = _parse_arm(responses_a, opts.labels[0])
    calls_b = _parse_arm(responses_b, opts.labels[1])
    _refuse_empty(calls_a, calls_b, opts.labels)
    if opts.design == "seed":
        return _compare_seed(calls_a, calls_b, baseline, opts)
    _stats.validate_arm_sizes(len(calls_a), len(calls_b), opts.labels)
    return _compare_all_pairs(calls_a, calls_b, opts)


@dataclass(frozen=True, slots=True)
class _Core:
    """The design-specific numbers that the shared report assembly needs."""

    n_a: int
    n_b: int
    floor: float
    within_a: float
    within_b: float
    cross: float
    summary_a: ArmSummary
    summary_b: ArmSummary
    matrix: npt.NDArray[np.float64]
    cross_values: npt.NDArray[np.float64]  # cross distances (seed: B's distances)
    within_values: npt.NDArray[np.float64]  # within distances (seed: A's distances)
    trial_distances_a: tuple[float, ...] | None
    trial_distances_b: tuple[float, ...] | None
    baseline: ParsedCall | None


def _compare_all_pairs(
    calls_a: tuple[ParsedCall, ...], calls_b: tuple[ParsedCall, ...], opts: _Options
) -> Comparison:
    n_a, n_b = len(calls_a), len(calls_b)
    d = distance_matrix(calls_a + calls_b, opts.metric_fn)
    energy = _stats.energy_statistics(d, n_a)
    within_a, within_b, cross = _stats.split_pairs(d, n_a)
    core = _Core(
        n_a=n_a,
        n_b=n_b,
        floor=energy.floor,
        within_a=energy.within_a,
        within_b=energy.within_b,
        cross=energy.cross,
        summary_a=_stats.summarize(within_a),
        summary_b=_stats.summarize(within_b),
        matrix=d,
        cross_values=cross,
        within_values=np.concatenate([within_a, within_b]),
        trial_distances_a=None,
        trial_distances_b=None,
        baseline=None,
    )
    if energy.floor == 0.0:
        return _deterministic(core, calls_a, calls_b, opts)
    perm = _stats.permutation_test(d, n_a, seed=opts.seed)
    if perm.exact:
        test = f"permutation test, all {perm.n_relabellings:,} relabellings of the calls"
    else:
        test = (
            f"permutation test, {perm.n_relabellings:,} random relabellings of the calls, "
            f"seed {opts.seed}"
        )
    test += f"; U = {perm.statistic:,.1f}"
    eq = _stats.matrix_equivalence(d, n_a)
    extra: list[str] = []
    if perm.smallest_p > opts.alpha:
        extra.append(
            f"alpha {opts.alpha:g} is below the smallest p-value this design can produce "
            f"({perm.smallest_p:.3g}), so the difference test can never be significant; use "
            f"more trials per arm or a larger alpha."
        )
    return _statistical(core, calls_a, calls_b, opts, perm.p_value, perm.statistic, test, eq, extra)


def _compare_seed(
    calls_a: tuple[ParsedCall, ...],
    calls_b: tuple[ParsedCall, ...],
    baseline: Any,
    opts: _Options,
) -> Comparison:
    if baseline is None:
        if len(calls_a) < _stats.MIN_CALLS_PER_ARM + 1:
            raise RolecheckUsageError(
                f"design='seed' uses the first response of arm {opts.labels[0]!r} as the baseline, "
                f"leaving {max(len(calls_a) - 1, 0)} trial(s); at least "
                f"{_stats.MIN_CALLS_PER_ARM} trials per arm are needed (the Mann-Whitney test "
                f"cannot reach p <= 0.05 with fewer, and the jackknife is unstable). Pass "
                f"{_stats.MIN_CALLS_PER_ARM + 1} or more responses for {opts.labels[0]!r}, or "
                f"baseline= separately."
            )
        base = calls_a[0]
        trials_a = calls_a[1:]
    else:
        base = parse_response(baseline)
        trials_a = calls_a
    _stats.validate_arm_sizes(len(trials_a), len(calls_b), opts.labels)
    n_a, n_b = len(trials_a), len(calls_b)
    full = distance_matrix((base, *trials_a, *calls_b), opts.metric_fn)
    d_a, d_b = full[0, 1 : 1 + n_a].copy(), full[0, 1 + n_a :].copy()
    core = _Core(
        n_a=n_a,
        n_b=n_b,
        floor=float(d_a.mean()),
        within_a=float(d_a.mean()),
        within_b=float(d_b.mean()),
        cross=float(d_b.mean()),
        summary_a=_stats.summarize(d_a),
        summary_b=_stats.summarize(d_b),
        matrix=full[1:, 1:].copy(),
        cross_values=d_b,
        within_values=d_a,
        trial_distances_a=tuple(float(x) for x in d_a),
        trial_distances_b=tuple(float(x) for x in d_b),
        baseline=base,
    )
    if core.floor == 0.0:
        return _deterministic(core, trials_a, calls_b, opts)
    res = _stats.baseline_test(d_a, d_b)
    test = (
        f"Mann-Whitney U of {opts.labels[1]}'s vs {opts.labels[0]}'s distances to the baseline, "
        f"two-sided, {res.method}; U = {res.statistic:g}"
    )
    eq = _stats.trial_equivalence(d_a, d_b)
    extra: list[str] = []
    modal = Counter(c.text for c in trials_a).most_common(1)[0][0]
    if base.text != modal:
        extra.append(
            f"the baseline call's text differs from the most common text of "
            f"{opts.labels[0]}'s trials: every distance is measured from an unusual call. "
            f"Re-run, or use design='all-pairs', which does not depend on one call."
        )
    if res.method == "all-tied":
        return _all_tied(core, trials_a, calls_b, opts, res.statistic, test, extra)
    if res.smallest_p > opts.alpha:
        extra.append(
            f"alpha {opts.alpha:g} is below the smallest p-value the two-sided Mann-Whitney "
            f"test can produce for {n_a} + {n_b} trials ({res.smallest_p:.3g}), so the "
            f"difference test can never be significant; use more trials per arm or a larger "
            f"alpha."
        )
    return _statistical(core, trials_a, calls_b, opts, res.p_value, res.statistic, test, eq, extra)


# --------------------------------------------------------------------------- assembly


def _descriptives(
    core: _Core, calls_a: Sequence[ParsedCall], calls_b: Sequence[ParsedCall], opts: _Options
) -> tuple[float, FlipSummary, tuple[str, ...], tuple[str, ...], list[str]]:
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
    return delta, flips, fp_a, fp_b, warnings


def _flip_warning(flips: FlipSummary, opts: _Options, verdict: Verdict) -> str | None:
    if verdict == "different" or flips.p_value > opts.alpha:
        return None
    a, b = opts.labels
    return (
        f"the share of calls whose text differs from their arm's most common text differs "
        f"({a} {flips.changed_a}/{flips.n_a}, {b} {flips.changed_b}/{flips.n_b}, Fisher p = "
        f"{_p(flips.p_value)}): rare flips are behaviour too; read the texts "
        f"(to_dict()['texts_a'] and ['texts_b'])."
    )


def _floor_words(opts: _Options) -> str:
    """What the ratio is a multiple of, in words."""
    if opts.design == "seed":
        return f"{opts.labels[0]}'s trials' distance to the baseline"
    return "the pooled call-to-call jitter of both arms"


def _limit_words(opts: _Options) -> str:
    if opts.max_excess_tv is not None:
        return f"max_excess_tv {opts.max_excess_tv:g}"
    return f"margin {opts.margin:g}"


def _statistical(
    core: _Core,
    calls_a: Sequence[ParsedCall],
    calls_b: Sequence[ParsedCall],
    opts: _Options,
    p_value: float,
    statistic: float,
    test: str,
    eq: _stats.EquivalenceResult,
    extra_warnings: list[str],
) -> Comparison:
    a, b = opts.labels
    absolute = opts.max_excess_tv is not None
    bound: Bound = eq.excess if absolute else eq.ratio
    limit = opts.max_excess_tv if opts.max_excess_tv is not None else opts.margin
    n = min(core.n_a, core.n_b)
    two_sided = opts.design == "seed"
    decision = _stats.decide(
        p_value=p_value, alpha=opts.alpha, bound=bound, limit=limit, n=n, two_sided=two_sided
    )
    delta, flips, fp_a, fp_b, warnings = _descriptives(core, calls_a, calls_b, opts)
    warnings += extra_warnings
    flip_warning = _flip_warning(flips, opts, decision.verdict)
    if flip_warning:
        warnings.append(flip_warning)
    if not math.isfinite(eq.ratio.upper) and not absolute:
        warnings.append(
            "the jitter floor vanishes when one call is left out (all other calls are identical), "
            "so the relative bound is unbounded: the backend is nearly deterministic. Use more "
            "trials, or metric='tv' with max_excess_tv= for an absolute tolerance."
        )

    notes: list[str] = []
    reach = max(bound.upper, -bound.lower) if two_sided else bound.upper
    which = "bounds" if two_sided else "upper bound"
    size = (
        f"{_n(reach)} TV (95% {which} of the excess)"
        if absolute
        else f"{_n(reach, 3)}x {_floor_words(opts)} (95% {which} of the ratio)"
    )
    if decision.verdict == "equivalent":
        headline = (
            f"With 95% confidence, switching {a} -> {b} moves the outputs by at most {size}, "
            f"below the {_limit_words(opts)}."
        )
        if decision.difference_detected:
            notes.append(
                f"a small but real difference was detected (p = {_p(p_value)} <= alpha "
                f"{opts.alpha:g}); it is within the {_limit_words(opts)}."
            )
        advice = "nothing to do: the change is within the tolerance you declared."
        if decision.difference_detected:
            advice += (
                " If even a change this small matters, lower "
                + ("max_excess_tv=" if absolute else "margin=")
                + f" below {_n(abs(bound.estimate), 3)} (the estimate) and the verdict becomes "
                "'different'."
            )
    elif decision.verdict == "different":
        est = f"{_n(bound.estimate)} TV" if absolute else f"{_n(bound.estimate, 3)}x the jitter"
        how = (
            f"{b}'s trials are at a different distance from the baseline than {a}'s"
            if two_sided
            else "calls of different arms are further apart than calls of the same arm"
        )
        headline = (
            f"{b} behaves differently from {a}: {how} (p = {_p(p_value)} <= alpha "
            f"{opts.alpha:g}); estimated change {est}."
        )
        widen = "max_excess_tv=" if absolute else "margin="
        advice = (
            f"if the change is intended, assert it with assert_different(...); if not, look at "
            f"the texts and fingerprints of the two arms. To accept a change of this size as "
            f"equivalent you would need {widen} above {_n(reach, 3)} (its 95% {which})."
        )
    else:
        headline = (
            f"Inconclusive: no significant difference (p = {_p(p_value)} > alpha "
            f"{opts.alpha:g}), but the change may be as large as {size}, not below the "
            f"{_limit_words(opts)}. This is not evidence of equivalence."
        )
        advice = _inconclusive_advice(decision.recommended_trials, bound, reach, limit, opts, n)

    return _assemble(
        core,
        calls_a,
        calls_b,
        opts,
        (delta, flips, fp_a, fp_b),
        verdict=decision.verdict,
        p_value=p_value,
        floor=core.floor,
        excess=eq.excess.estimate,
        ratio=eq.ratio.estimate,
        ratio_upper=eq.ratio.upper,
        ratio_lower=eq.ratio.lower,
        ratio_se=eq.ratio.se,
        excess_upper=eq.excess.upper,
        excess_lower=eq.excess.lower,
        excess_se=eq.excess.se,
        deterministic=False,
        warnings=tuple(warnings),
        recommended_trials=decision.recommended_trials,
        advice=advice,
        headline=headline,
        notes=tuple(notes),
        statistic=statistic,
        test=test,
        difference_detected=decision.difference_detected,
        equivalence_shown=decision.equivalence_shown,
    )


def _inconclusive_advice(
    recommended: int | None, bound: Bound, reach: float, limit: float, opts: _Options, n: int
) -> str:
    knob = "max_excess_tv=" if opts.max_excess_tv is not None else "margin="
    widen = (
        f"or widen the tolerance (above {knob}{_n(reach, 3)} would pass with these data, if a "
        f"change that large is acceptable)"
        if math.isfinite(reach)
        else f"or widen the tolerance ({knob})"
    )
    if recommended is None:
        return f"increase trials (now {n} per arm) {widen}."
    if abs(bound.estimate) >= limit:
        lead = (
            f"the estimate ({_n(bound.estimate, 3)}) is already beyond the {_limit_words(opts)}, "
            f"so more trials will more likely show a difference than equivalence: increase "
            f"trials to ~{recommended} per arm to confirm it"
        )
        return f"{lead}, {widen}."
    if recommended >= _stats.MAX_RECOMMENDED_TRIALS:
        return (
            f"the tolerance is very tight for this noise level: equivalence would need more "
            f"than {_stats.MAX_RECOMMENDED_TRIALS:,} trials per arm. Widen the tolerance "
            f"({knob}) instead."
        )
    return f"increase trials to ~{recommended} per arm (now {n}) {widen}."


def _assemble(
    core: _Core,
    calls_a: Sequence[ParsedCall],
    calls_b: Sequence[ParsedCall],
    opts: _Options,
    descriptives: tuple[float, FlipSummary, tuple[str, ...], tuple[str, ...]],
    **outcome: Any,
) -> Comparison:
    """Build the :class:`Comparison` from what every verdict path shares plus ``outcome``."""
    delta, flips, fp_a, fp_b = descriptives
    return Comparison(
        n_a=core.n_a,
        n_b=core.n_b,
        metric=opts.metric,
        design=opts.design,
        alpha=opts.alpha,
        margin=opts.margin,
        max_excess_tv=opts.max_excess_tv,
        labels=opts.labels,
        summary_a=core.summary_a,
        summary_b=core.summary_b,
        within_a=core.within_a,
        within_b=core.within_b,
        cross=core.cross,
        matrix=_readonly(core.matrix),
        trial_distances_a=core.trial_distances_a,
        trial_distances_b=core.trial_distances_b,
        cliffs_delta=delta,
        flips=flips,
        fingerprints_a=fp_a,
        fingerprints_b=fp_b,
        calls_a=tuple(calls_a),
        calls_b=tuple(calls_b),
        baseline=core.baseline,
        seed=opts.seed,
        **outcome,
    )


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


def _distinct_outputs(within: npt.NDArray[np.float64]) -> int:
    """Number of groups of calls at distance 0 from each other (within one arm)."""
    seen: list[int] = []
    for i in range(within.shape[0]):
        if not any(within[i, j] == 0.0 for j in seen):
            seen.append(i)
    return len(seen)


def _deterministic(
    core: _Core,
    calls_a: Sequence[ParsedCall],
    calls_b: Sequence[ParsedCall],
    opts: _Options,
) -> Comparison:
    a, b = opts.labels
    delta, flips, fp_a, fp_b, warnings = _descriptives(core, calls_a, calls_b, opts)
    max_cross = float(np.max(core.cross_values))
    equivalent = max_cross <= _stats.DETERMINISTIC_TOLERANCE
    verdict: Verdict = "equivalent" if equivalent else "different"
    reference = core.baseline if core.baseline is not None else calls_a[0]
    if equivalent:
        texts = {c.text for c in (*calls_a, *calls_b)}
        if len(texts) == 1:
            headline = (
                f"deterministic backend: outputs identical (every call of both arms gives the "
                f"same output; largest distance between arms {max_cross:.3g} <= "
                f"{_stats.DETERMINISTIC_TOLERANCE:g})."
            )
        else:
            # Sampling (temperature > 0) picks different tokens from the same
            # distributions: the model behaves identically, the draws differ.
            headline = (
                f"deterministic backend: identical next-token distributions (every call of "
                f"both arms saw the same distributions up to its first diverging token; the "
                f"{len(texts)} distinct texts come from sampling; largest distance between arms "
                f"{max_cross:.3g} <= {_stats.DETERMINISTIC_TOLERANCE:g})."
            )
            if opts.metric == "first_token":
                warnings.append(
                    "the texts differ and metric 'first_token' compares only the first "
                    "position; use metric='js' to compare every position up to the first "
                    "divergence."
                )
            else:
                warnings.append(
                    "the texts differ only where sampling drew different tokens from identical "
                    "distributions; if the sampled outputs themselves matter, compare them "
                    "(text flips above) or compare tool-call outcomes."
                )
        advice = "nothing to do: both arms behave the same on this backend."
    else:
        worst = int(np.argmax(core.cross_values.reshape(-1)))
        other = calls_b[worst % len(calls_b)]
        if core.baseline is None:
            # all-pairs: floor 0 means both within-arm means are 0.
            why = "every call within an arm is identical, so any difference is real"
        else:
            # Seed design: floor 0 says only that A's trials equal the baseline.
            why = f"every trial of {a} is identical to the baseline"
            n_b_outputs = _distinct_outputs(core.matrix[core.n_a :, core.n_a :])
            if n_b_outputs == 1:
                why += f", and so is every call of {b} to each other"
            else:
                why += f"; {b}'s calls vary ({n_b_outputs} distinct outputs in {core.n_b})"
                warnings.append(
                    f"only {a}'s trials are identical: {b}'s calls differ from each other, so "
                    f"the backend is not deterministic for {b}. The verdict rests on {a}'s "
                    f"{core.n_a} identical trials; use design='all-pairs' to compare the arms "
                    f"with statistics."
                )
        headline = (
            f"deterministic backend: outputs {_first_difference(reference, other)} "
            f"({a} vs {b}; {why}; largest distance {max_cross:.4g})."
        )
        advice = (
            "if the change is intended, assert it with assert_different(...); otherwise the "
            "variants really produce different outputs on this backend; inspect the texts."
        )
    return _assemble(
        core,
        calls_a,
        calls_b,
        opts,
        (delta, flips, fp_a, fp_b),
        verdict=verdict,
        p_value=None,
        floor=0.0,
        excess=core.cross,
        ratio=None,
        ratio_upper=None,
        ratio_lower=None,
        ratio_se=None,
        excess_upper=None,
        excess_lower=None,
        excess_se=None,
        deterministic=True,
        warnings=tuple(warnings),
        recommended_trials=None,
        advice=advice,
        headline=headline,
        notes=(),
        statistic=None,
        test=(
            "deterministic backend: every within-arm distance is 0"
            if core.baseline is None
            else f"deterministic backend: every trial of {a} is at distance 0 from the baseline"
        ),
        difference_detected=not equivalent,
        equivalence_shown=equivalent,
    )


def _all_tied(
    core: _Core,
    calls_a: Sequence[ParsedCall],
    calls_b: Sequence[ParsedCall],
    opts: _Options,
    statistic: float,
    test: str,
    extra_warnings: list[str],
) -> Comparison:
    # Every trial of both arms sits at the same non-zero distance from the baseline. The
    # arms may still differ from each other (two different outputs can be equally far
    # from a third), so the seed design has no information either way.
    delta, flips, fp_a, fp_b, warnings = _descriptives(core, calls_a, calls_b, opts)
    warnings += extra_warnings
    headline = (
        f"Inconclusive: every trial of both arms is exactly {core.floor:.4g} away from the "
        f"baseline, so the seed design cannot tell the arms apart (a rank test has no "
        f"information when every value is tied: the two-sided test gives p = 1 whatever the "
        f"arms do)."
    )
    return _assemble(
        core,
        calls_a,
        calls_b,
        opts,
        (delta, flips, fp_a, fp_b),
        verdict="inconclusive",
        p_value=1.0,
        floor=core.floor,
        excess=0.0,
        ratio=0.0,
        ratio_upper=None,
        ratio_lower=None,
        ratio_se=None,
        excess_upper=None,
        excess_lower=None,
        excess_se=None,
        deterministic=False,
        warnings=tuple(warnings),
        recommended_trials=None,
        advice="use design='all-pairs', which compares the calls with each other.",
        headline=headline,
        notes=(),
        statistic=statistic,
        test=test,
        difference_detected=False,
        equivalence_shown=False,
    )


# --------------------------------------------------------------------------- assertions


def _assertion_message(expected: Verdict, result: Comparison) -> str:
    a, b = result.labels
    if expected == "equivalent":
        head = f"assert_equivalent failed: {a} and {b} were not shown equivalent"
        if result.verdict == "different":
            todo = (
                "what to do: if this change is intended, use assert_different(...); otherwise "
                "find what makes the arms differ (texts, fingerprints above)."
            )
        else:
            todo = f"what to do: {result.advice}"
    else:
        head = f"assert_different failed: no difference between {a} and {b} was shown"
        if result.verdict == "equivalent":
            todo = (
                "what to do: the arms are equivalent within the tolerance; if any detectable "
                "difference should count, lower margin= (or max_excess_tv=); if the change was "
                "supposed to matter, check that the variants really differ."
            )
        else:
            todo = f"what to do: {result.advice}"
    return f"{head} (verdict: {result.verdict}).\n\n{result}\n\n{todo}"


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
    result = compare(responses_a, responses_b, **options)
    if result.verdict != "equivalent":
        raise RolecheckAssertionError(_assertion_message("equivalent", result))
    return result


def assert_different(
    responses_a: Iterable[Any], responses_b: Iterable[Any], **options: Any
) -> Comparison:
    """Assert that two arms behave differently.

    Same arguments as :func:`compare`. Passes only on the verdict
    ``"different"``; a real difference that stays within the equivalence
    tolerance gives ``"equivalent"`` and fails here (lower ``margin`` to
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
    result = compare(responses_a, responses_b, **options)
    if result.verdict != "different":
        raise RolecheckAssertionError(_assertion_message("different", result))
    return result
