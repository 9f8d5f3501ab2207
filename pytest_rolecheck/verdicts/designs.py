"""The two designs of :func:`~pytest_rolecheck.compare`: what each one measures.

``all-pairs`` (default): distances between every pair of calls, the permutation
test and :func:`~pytest_rolecheck.core.bounds.change_bound`. ``seed``: each
trial's distance to one baseline call, the Mann-Whitney test and
:func:`~pytest_rolecheck.core.bounds.trial_change_bound`. Deciding and wording
the verdict is :mod:`~pytest_rolecheck.verdicts.compare`'s job.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
import numpy.typing as npt

# Through the module, so the calibration benchmark can swap in a faster permutation test.
from ..core import stats as _stats
from ..core.bounds import Bound
from ..core.descriptives import ArmSummary
from ..core.distances import distance_matrix
from ..core.limits import MIN_CALLS_PER_ARM
from ..core.parse import ParsedCall, parse_response
from ..errors import RolecheckUsageError
from . import wording
from .options import Options

__all__ = ["Core", "Measured", "measure_all_pairs", "measure_seed"]


@dataclass(frozen=True, slots=True)
class Core:
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


@dataclass(frozen=True, slots=True)
class Measured:
    """What a design measured, and which path decides it.

    ``calls_a`` are arm A's trials (the seed design's baseline excluded).
    ``deterministic``: every within-arm distance is 0, the change is ``core.cross``;
    ``all-tied``: every trial is equally far from the baseline (no information).
    """

    core: Core
    calls_a: tuple[ParsedCall, ...]
    calls_b: tuple[ParsedCall, ...]
    path: Literal["deterministic", "all-tied", "statistical"]
    test: str = ""
    p_value: float = 1.0
    statistic: float = 0.0
    bound: Bound | None = None
    warnings: tuple[str, ...] = ()


def measure_all_pairs(
    calls_a: tuple[ParsedCall, ...],
    calls_b: tuple[ParsedCall, ...],
    opts: Options,
    d: npt.NDArray[np.float64] | None = None,
) -> Measured:
    # ``d``: the distance matrix when already computed (the calibration benchmark reuses one
    # matrix of 20 + 20 calls for its 5 + 5 and 10 + 10 comparisons).
    n_a, n_b = len(calls_a), len(calls_b)
    if d is None:
        d = distance_matrix(calls_a + calls_b, opts.metric_fn)
    energy = _stats.pair_means(d, n_a)
    within_a, within_b, cross = _stats.split_pairs(d, n_a)
    core = Core(
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
        return Measured(core, calls_a, calls_b, "deterministic")
    perm = _stats.permutation_test(d, n_a, seed=opts.seed)
    if perm.exact:
        test = f"permutation test, all {perm.n_relabellings:,} relabellings of the calls"
    else:
        test = (
            f"permutation test, {perm.n_relabellings:,} random relabellings of the calls, "
            f"seed {opts.seed}"
        )
    test += f"; U = {perm.statistic:,.1f}"
    bound = _stats.change_bound(
        d, n_a, alpha=opts.alpha, bounded=opts.bounded, relative=opts.relative
    )
    extra: list[str] = []
    if perm.smallest_p > opts.alpha:
        extra.append(wording.alpha_below_smallest_p(opts.alpha, perm.smallest_p, "this design"))
    return Measured(
        core,
        calls_a,
        calls_b,
        "statistical",
        test,
        perm.p_value,
        perm.statistic,
        bound,
        tuple(extra),
    )


def measure_seed(
    calls_a: tuple[ParsedCall, ...],
    calls_b: tuple[ParsedCall, ...],
    baseline: Any,
    opts: Options,
) -> Measured:
    if baseline is None:
        if len(calls_a) < MIN_CALLS_PER_ARM + 1:
            raise RolecheckUsageError(
                f"design='seed' uses the first response of arm {opts.labels[0]!r} as the baseline, "
                f"leaving {max(len(calls_a) - 1, 0)} trial(s); at least "
                f"{MIN_CALLS_PER_ARM} trials per arm are needed (the Mann-Whitney test "
                f"cannot reach p <= 0.05 with fewer, and the bounds are unstable). Pass "
                f"{MIN_CALLS_PER_ARM + 1} or more responses for {opts.labels[0]!r}, or "
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
    core = Core(
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
        return Measured(core, trials_a, calls_b, "deterministic")
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
        return Measured(
            core, trials_a, calls_b, "all-tied", test, 1.0, res.statistic, None, tuple(extra)
        )
    if res.smallest_p > opts.alpha:
        what = f"the two-sided Mann-Whitney test for {n_a} + {n_b} trials"
        extra.append(wording.alpha_below_smallest_p(opts.alpha, res.smallest_p, what))
    bound = _stats.trial_change_bound(d_a, d_b, alpha=opts.alpha, bounded=opts.bounded)
    return Measured(
        core,
        trials_a,
        calls_b,
        "statistical",
        test,
        res.p_value,
        res.statistic,
        bound,
        tuple(extra),
    )
