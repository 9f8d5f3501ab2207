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
from collections import Counter
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import numpy.typing as npt

from ..core import stats as _stats
from ..core.distances import (
    BLIND_METRICS,
    BOUNDED_METRICS,
    available_metrics,
    distance_matrix,
    get_metric,
)
from ..core.parse import ParsedCall, parse_response
from ..core.stats import ArmSummary, Bound, FlipSummary, Verdict
from ..errors import NothingToCompareError, RolecheckAssertionError, RolecheckUsageError
from . import details, wording

__all__ = ["Comparison", "assert_different", "assert_equivalent", "compare"]

Metric = Callable[[ParsedCall, ParsedCall], float]

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
    p_value: float | None
    change: float
    change_upper: float | None
    change_lower: float | None
    change_se: float | None
    tolerance: float
    floor: float
    n_a: int
    n_b: int
    deterministic: bool
    metric: str
    design: str
    alpha: float
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
        """
        return {
            "verdict": self.verdict,
            "headline": self.headline,
            "p_value": _json_num(self.p_value),
            "change": _json_num(self.change),
            "change_upper": _json_num(self.change_upper),
            "change_lower": _json_num(self.change_lower),
            "change_se": _json_num(self.change_se),
            "tolerance": float(self.tolerance),
            "floor": _json_num(self.floor),
            "within_a": _json_num(self.within_a),
            "within_b": _json_num(self.within_b),
            "cross": _json_num(self.cross),
            "n_a": int(self.n_a),
            "n_b": int(self.n_b),
            "deterministic": bool(self.deterministic),
            "metric": self.metric,
            "design": self.design,
            "alpha": float(self.alpha),
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
            "difference_detected": bool(self.difference_detected),
            "equivalence_shown": bool(self.equivalence_shown),
            "seed": int(self.seed),
        }

    # ------------------------------------------------------------------ report
    def __str__(self) -> str:
        return details.comparison_report(self)


def _json_num(value: float | None) -> float | None:
    if value is None or not math.isfinite(value):
        return None
    return float(value)


def _json_dict(values: Mapping[str, float | int]) -> dict[str, float | int | None]:
    return {k: int(v) if isinstance(v, int) else _json_num(v) for k, v in values.items()}


def _json_list(values: Sequence[float] | None) -> list[float | None] | None:
    return None if values is None else [_json_num(v) for v in values]


# --------------------------------------------------------------------------- validation


@dataclass(frozen=True, slots=True)
class _Options:
    metric_fn: Metric
    metric: str
    alpha: float
    tolerance: float
    design: str
    seed: int
    labels: tuple[str, str]
    bounded: bool  # metric values in [0, 1]: the unseen-change guard applies
    blind: str | None  # why this metric cannot certify equivalence (None: it can)


def check_options(
    *,
    metric: str | Metric,
    alpha: float,
    tolerance: float | None,
    design: str,
    seed: int,
    baseline: Any,
    labels: Sequence[str],
    max_excess_tv: float | None = None,
    margin: Any = None,
) -> _Options:
    """Validate every option of :func:`compare`; also used before calls are made."""
    if margin is not None:
        raise RolecheckUsageError(
            f"margin={margin!r} is no longer supported: a tolerance relative to the measured "
            f"jitter let a change inflate the very floor it was measured against. Pass an "
            f"absolute tolerance= instead, the largest share of probability mass that may move "
            f"(default {_stats.DEFAULT_TOLERANCE})."
        )
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
    if max_excess_tv is not None:
        # The former name of the absolute tolerance, kept as an alias (tv only).
        if fn is not get_metric("tv"):
            raise RolecheckUsageError(
                f"max_excess_tv={max_excess_tv!r} is the former name of tolerance= for "
                f"metric='tv' (got metric={name!r}); pass tolerance={max_excess_tv!r} instead."
            )
        if tolerance is not None:
            raise RolecheckUsageError(
                "pass either tolerance= or its former name max_excess_tv=, not both."
            )
        tolerance = max_excess_tv
    if tolerance is None:
        tolerance = _stats.DEFAULT_TOLERANCE
    _stats.validate_options(alpha=alpha, tolerance=tolerance, design=design)
    builtin = {m: get_metric(m) for m in available_metrics()}
    bounded = any(fn is builtin.get(m) for m in BOUNDED_METRICS)
    blind = next((why for m, why in BLIND_METRICS.items() if fn is builtin.get(m)), None)
    if bounded and tolerance > 1:
        raise RolecheckUsageError(
            f"tolerance={tolerance!r} is not allowed with metric={name!r}: its values are a share "
            f"of probability mass in [0, 1], so the tolerance must be in (0, 1], e.g. "
            f"{_stats.DEFAULT_TOLERANCE} (the default)."
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
        tolerance=float(tolerance),
        design=design,
        seed=seed,
        labels=(labels[0], labels[1]),
        bounded=bounded,
        blind=blind,
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
    tolerance: float | None = None,
    design: str = "all-pairs",
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
        :data:`~pytest_rolecheck.core.stats.DEFAULT_TOLERANCE` (0.2). ``n`` calls
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
    One rule on every path (:func:`pytest_rolecheck.core.stats.decide`):

    1. ``"equivalent"`` iff the ``1 - alpha`` upper bound of the change is
       below ``tolerance`` (and the metric can see every change: ``tok_l1``
       and ``seed`` never certify equivalence);
    2. ``"different"`` iff the difference test is significant **and** the
       lower bound of the change is above ``tolerance``;
    3. otherwise ``"inconclusive"``, with advice that says whether more
       trials would help.

    On a deterministic backend (every within-arm distance exactly 0) the
    change is known exactly and compared with ``tolerance`` directly.

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
        tolerance=tolerance,
        design=design,
        seed=seed,
        baseline=baseline,
        labels=labels,
        max_excess_tv=max_excess_tv,
        margin=margin,
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
    calls_a: tuple[ParsedCall, ...],
    calls_b: tuple[ParsedCall, ...],
    opts: _Options,
    d: npt.NDArray[np.float64] | None = None,
) -> Comparison:
    # ``d``: the distance matrix when already computed (the calibration benchmark reuses one
    # matrix of 20 + 20 calls for its 5 + 5 and 10 + 10 comparisons).
    n_a, n_b = len(calls_a), len(calls_b)
    if d is None:
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
        return _deterministic(core, calls_a, calls_b, opts, energy.cross)
    perm = _stats.permutation_test(d, n_a, seed=opts.seed)
    if perm.exact:
        test = f"permutation test, all {perm.n_relabellings:,} relabellings of the calls"
    else:
        test = (
            f"permutation test, {perm.n_relabellings:,} random relabellings of the calls, "
            f"seed {opts.seed}"
        )
    test += f"; U = {perm.statistic:,.1f}"
    bound = _stats.change_bound(d, n_a, alpha=opts.alpha, bounded=opts.bounded)
    extra: list[str] = []
    if perm.smallest_p > opts.alpha:
        extra.append(wording.alpha_below_smallest_p(opts.alpha, perm.smallest_p, "this design"))
    return _statistical(
        core, calls_a, calls_b, opts, perm.p_value, perm.statistic, test, bound, extra
    )


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
                f"cannot reach p <= 0.05 with fewer, and the bounds are unstable). Pass "
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
    if core.floor == 0.0 and not np.any(core.matrix[n_a:, n_a:]):
        # A's trials equal the baseline and B's calls equal each other: the change is exact.
        return _deterministic(core, trials_a, calls_b, opts, core.cross)
    res = _stats.baseline_test(d_a, d_b)
    test = (
        f"Mann-Whitney U of {opts.labels[1]}'s vs {opts.labels[0]}'s distances to the baseline, "
        f"two-sided, {res.method}; U = {res.statistic:g}"
    )
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
        what = f"the two-sided Mann-Whitney test for {n_a} + {n_b} trials"
        extra.append(wording.alpha_below_smallest_p(opts.alpha, res.smallest_p, what))
    bound = _stats.trial_change_bound(d_a, d_b, alpha=opts.alpha, bounded=opts.bounded)
    return _statistical(
        core, trials_a, calls_b, opts, res.p_value, res.statistic, test, bound, extra
    )


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
    return wording.flip_warning(flips, opts)


def _statistical(
    core: _Core,
    calls_a: Sequence[ParsedCall],
    calls_b: Sequence[ParsedCall],
    opts: _Options,
    p_value: float,
    statistic: float,
    test: str,
    bound: Bound,
    extra_warnings: list[str],
) -> Comparison:
    tol = opts.tolerance
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
        tolerance=tol,
        n=n,
        two_sided=two_sided,
        bounded=opts.bounded,
        can_certify=opts.blind is None and not two_sided and room > tol,
    )
    delta, flips, fp_a, fp_b, warnings = _descriptives(core, calls_a, calls_b, opts)
    warnings += extra_warnings
    flip_warning = _flip_warning(flips, opts, decision.verdict)
    if flip_warning:
        warnings.append(flip_warning)

    headline, advice, notes = wording.statistical_texts(opts, decision, bound, p_value, n, room)
    return _assemble(
        core,
        calls_a,
        calls_b,
        opts,
        (delta, flips, fp_a, fp_b),
        verdict=decision.verdict,
        p_value=p_value,
        change=bound.estimate,
        change_upper=bound.upper,
        change_lower=bound.lower,
        change_se=bound.se,
        deterministic=False,
        warnings=tuple(warnings),
        recommended_trials=decision.recommended_trials,
        advice=advice,
        headline=headline,
        notes=notes,
        statistic=statistic,
        test=test,
        difference_detected=decision.difference_detected,
        equivalence_shown=decision.equivalence_shown,
    )


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
        tolerance=opts.tolerance,
        floor=core.floor,
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


def _deterministic(
    core: _Core,
    calls_a: Sequence[ParsedCall],
    calls_b: Sequence[ParsedCall],
    opts: _Options,
    change: float,
) -> Comparison:
    # Every call within each arm is identical: the change is known exactly and is
    # compared with the tolerance directly, like the bounds on every other path.
    a, b = opts.labels
    tol = opts.tolerance
    delta, flips, fp_a, fp_b, warnings = _descriptives(core, calls_a, calls_b, opts)
    verdict: Verdict
    if change > tol:
        verdict = "different"
    elif change < tol and opts.blind is None:
        verdict = "equivalent"
    else:
        verdict = "inconclusive"
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
    headline, advice = wording.deterministic_texts(opts, verdict, change, where)
    if verdict == "equivalent" and change == 0.0 and len(texts) > 1:
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
    return _assemble(
        core,
        calls_a,
        calls_b,
        opts,
        (delta, flips, fp_a, fp_b),
        verdict=verdict,
        p_value=None,
        change=change,
        change_upper=None,
        change_lower=None,
        change_se=None,
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
            else f"deterministic backend: every trial of {a} equals the baseline and every call "
            f"of {b} equals the others"
        ),
        difference_detected=verdict == "different",
        equivalence_shown=verdict == "equivalent",
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
    headline, advice = wording.all_tied_texts(core.floor)
    return _assemble(
        core,
        calls_a,
        calls_b,
        opts,
        (delta, flips, fp_a, fp_b),
        verdict="inconclusive",
        p_value=1.0,
        change=0.0,
        change_upper=None,
        change_lower=None,
        change_se=None,
        deterministic=False,
        warnings=tuple(warnings),
        recommended_trials=None,
        advice=advice,
        headline=headline,
        notes=(),
        statistic=statistic,
        test=test,
        difference_detected=False,
        equivalence_shown=False,
    )


# --------------------------------------------------------------------------- assertions


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
    refuse_blind_equivalence(options.get("metric", "js"))
    result = compare(responses_a, responses_b, **options)
    if result.verdict != "equivalent":
        raise RolecheckAssertionError(wording.assertion_message(result, "assert_equivalent"))
    return result


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
    result = compare(responses_a, responses_b, **options)
    if result.verdict != "different":
        raise RolecheckAssertionError(wording.assertion_message(result, "assert_different"))
    return result
