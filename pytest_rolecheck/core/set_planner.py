"""Cases x trials a prompt set needs, from an A/A pilot of it (``rolecheck plan --cases``).

The pilot holds, for each of its cases, calls of one request (both arms of an
A/A set run send the same request per case), measured into one distance matrix
per case. A simulated run of ``m`` cases with ``t`` trials per case draws ``m``
pilot cases *with replacement* (the set's bounds resample over cases, so the
plan does too) and, for each drawn case, ``2t`` distinct calls of it split
into two arms of ``t``; :func:`~pytest_rolecheck.core.prompt_sets.compare_prompt_set`
gives the verdict. The share of ``equivalent`` verdicts over the simulated runs
is the power to certify equivalence with ``m`` cases of ``t`` trials; it is
printed with a 95% Clopper-Pearson interval (Monte-Carlo error only).

Only the equivalence half of the verdict is needed (``upper < tolerance``),
which does not depend on the permutation test; the simulated runs therefore
draw a single relabelling (``max_exact=0, n_resamples=1``) instead of
thousands.

A ``t`` with ``2t`` above a pilot case's calls cannot be simulated without
reusing a call (a copy sits at distance 0 from itself and fakes agreement):
such cells are marked *not simulable* instead of extrapolated. A pilot whose
every case is deterministic (all its calls identical) needs no simulation:
every A/A case then has change 0, and the answer is the fewest cases the
unseen-case guard lets certify the tolerance, ``1 - alpha ** (1/m) < tolerance``
(14 cases at 0.2).

Each cell uses ``numpy.random.default_rng([seed, m, t])``: a plan is
reproducible and adding cells does not change the others.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Final

import numpy as np
import numpy.typing as npt
from scipy import stats

from ..errors import RolecheckUsageError
from .bounds import smallest_certifiable
from .limits import DEFAULT_ALPHA, DEFAULT_TOLERANCE, MIN_TRIALS_PER_CASE
from .prompt_sets import MIN_CASES, compare_prompt_set

__all__ = [
    "CASES_GRID",
    "TRIALS_GRID",
    "SetPlan",
    "SetPlanCell",
    "fewest_certifying_cases",
    "plan_cases",
]

FloatArray = npt.NDArray[np.float64]

CASES_GRID: Final = (10, 14, 20, 30, 50, 100)
TRIALS_GRID: Final = (3, 4, 5, 8, 10)
_MAX_CASES: Final = 10_000


@dataclass(frozen=True, slots=True)
class SetPlanCell:
    """``m`` cases with ``t`` trials per case per arm: P(equivalent) under A/A, or None."""

    cases: int
    trials: int
    p_equivalent: float | None  # None: not simulable (2t above some pilot case's calls)
    interval: tuple[float, float] | None

    @property
    def calls_per_arm(self) -> int:
        return self.cases * self.trials


@dataclass(frozen=True, slots=True)
class SetPlan:
    """The result of :func:`plan_cases`."""

    cells: tuple[SetPlanCell, ...]
    answer: SetPlanCell | None  # fewest calls per arm reaching power (None: no cell does)
    deterministic: bool
    guard_cases: int | None  # fewest cases the unseen-case guard lets certify (bounded metric)
    pilot_cases: int
    pilot_calls: tuple[int, ...]  # calls per pilot case
    tolerance: float
    alpha: float
    power: float
    replications: int
    seed: int

    @property
    def largest_trials(self) -> int:
        """Largest ``t`` simulable from every pilot case."""
        return min(self.pilot_calls) // 2


def fewest_certifying_cases(tolerance: float, alpha: float) -> int:
    """Fewest quiet cases whose unseen-case guard ``1 - alpha**(1/m)`` is below ``tolerance``."""
    # 1 - alpha**(1/m) < 1 always: a tolerance of 1 or more is certifiable by any set
    start = math.ceil(math.log(alpha) / math.log1p(-tolerance)) if tolerance < 1 else MIN_CASES
    m = max(MIN_CASES, start)
    while smallest_certifiable(m, alpha) >= tolerance:  # float edge at the boundary
        m += 1
    while m > MIN_CASES and smallest_certifiable(m - 1, alpha) < tolerance:
        m -= 1
    return m


def _clopper_pearson(k: int, n: int, level: float = 0.95) -> tuple[float, float]:
    a = (1 - level) / 2
    low = 0.0 if k == 0 else float(stats.beta.ppf(a, k, n - k + 1))
    high = 1.0 if k == n else float(stats.beta.ppf(1 - a, k + 1, n - k))
    return low, high


def _validate(
    matrices: Sequence[FloatArray],
    tolerance: float,
    alpha: float,
    power: float,
    replications: int,
    cases: Sequence[int],
    trials: Sequence[int],
) -> None:
    if len(matrices) < MIN_CASES:
        raise RolecheckUsageError(
            f"the set pilot has {len(matrices)} case(s); at least {MIN_CASES} are needed (the "
            "plan resamples cases, 10 or more give a usable spread). Record an A/A run of the "
            "whole prompt set."
        )
    small = min(int(d.shape[0]) for d in matrices)
    fewest = min(trials, default=MIN_TRIALS_PER_CASE)
    if small < 2 * fewest:
        raise RolecheckUsageError(
            f"a case of the set pilot has {small} call(s); the smallest plan ({fewest} trials "
            f"per case) splits {2 * fewest} distinct calls of every case into two arms. Record "
            f"an A/A run of the set with at least {fewest} trials per case (2 x the trials per "
            "case you expect to need simulate them)."
        )
    if not tolerance > 0 or not math.isfinite(tolerance):
        raise RolecheckUsageError(f"--tolerance {tolerance}: expected a number > 0 (e.g. 0.2).")
    if not 0 < alpha < 1:
        raise RolecheckUsageError(f"--alpha {alpha}: expected a number in (0, 1).")
    if not 0 < power < 1:
        raise RolecheckUsageError(f"--power {power}: expected a number in (0, 1), e.g. 0.8.")
    if replications < 20:
        raise RolecheckUsageError(
            f"--replications {replications}: expected at least 20 (default 200)."
        )
    if any(not MIN_CASES <= m <= _MAX_CASES for m in cases):
        raise RolecheckUsageError(f"cases grid {tuple(cases)}: expected {MIN_CASES}..{_MAX_CASES}.")
    if any(t < MIN_TRIALS_PER_CASE for t in trials):
        raise RolecheckUsageError(
            f"trials grid {tuple(trials)}: expected at least {MIN_TRIALS_PER_CASE} per case."
        )


def _simulate_cell(
    matrices: Sequence[FloatArray],
    m: int,
    t: int,
    *,
    tolerance: float,
    alpha: float,
    bounded: bool,
    replications: int,
    seed: int,
) -> SetPlanCell:
    if any(d.shape[0] < 2 * t for d in matrices):
        return SetPlanCell(cases=m, trials=t, p_equivalent=None, interval=None)
    rng = np.random.default_rng([seed, m, t])
    hits = 0
    for _ in range(replications):
        drawn = rng.integers(len(matrices), size=m)
        run: dict[str, tuple[FloatArray, int]] = {}
        for j, c in enumerate(drawn):
            d = matrices[int(c)]
            idx = rng.permutation(d.shape[0])[: 2 * t]
            run[f"{j}"] = (d[np.ix_(idx, idx)], t)
        result = compare_prompt_set(
            run,
            alpha=alpha,
            tolerance=tolerance,
            bounded=bounded,
            seed=0,
            max_exact=0,
            n_resamples=1,
        )
        hits += result.equivalence_shown
    return SetPlanCell(
        cases=m,
        trials=t,
        p_equivalent=hits / replications,
        interval=_clopper_pearson(hits, replications),
    )


def plan_cases(
    matrices: Sequence[npt.ArrayLike],
    *,
    tolerance: float | None = None,
    alpha: float = DEFAULT_ALPHA,
    bounded: bool = True,
    power: float = 0.8,
    replications: int = 200,
    seed: int = 0,
    cases: Sequence[int] = CASES_GRID,
    trials: Sequence[int] = TRIALS_GRID,
) -> SetPlan:
    """Cases x trials per case needed to certify a prompt set equivalent, from an A/A pilot.

    Parameters
    ----------
    matrices : sequence of array_like, each shape (n_c, n_c)
        Per pilot case, the distances between its calls (one request each).
        At least 2 cases of at least ``2 * min(trials)`` calls.
    tolerance : float, optional
        The largest set change that still counts as equivalent; default
        :data:`~pytest_rolecheck.core.limits.DEFAULT_TOLERANCE`.
    alpha : float, default 0.05
        ``1 - alpha`` is the confidence of the bounds.
    bounded : bool, default True
        The metric lies in [0, 1]: the engine applies the unseen-case guard.
    power : float, default 0.8
        Required share of simulated A/A runs certified equivalent.
    replications : int, default 200
        Simulated runs per cell.
    seed : int, default 0
        Seed; each cell uses ``default_rng([seed, m, t])``.
    cases, trials : sequence of int
        The grid of cases ``m`` and trials per case ``t``.

    Returns
    -------
    SetPlan
        Every cell, and the cell with the fewest calls per arm ``m * t``
        reaching ``power`` (ties: fewer trials), or None. A deterministic pilot
        is answered without simulation (module docstring).

    Raises
    ------
    RolecheckUsageError
        Fewer than 2 pilot cases, a case with fewer than ``2 * min(trials)``
        calls, or invalid arguments.
    """
    if tolerance is None:
        tolerance = DEFAULT_TOLERANCE
    mats = [np.asarray(d, dtype=np.float64) for d in matrices]
    _validate(mats, tolerance, alpha, power, replications, cases, trials)
    guard = fewest_certifying_cases(tolerance, alpha) if bounded else None

    def result(cells: tuple[SetPlanCell, ...], answer: SetPlanCell | None) -> SetPlan:
        return SetPlan(
            cells=cells,
            answer=answer,
            deterministic=not cells,
            guard_cases=guard,
            pilot_cases=len(mats),
            pilot_calls=tuple(int(d.shape[0]) for d in mats),
            tolerance=tolerance,
            alpha=alpha,
            power=power,
            replications=replications,
            seed=seed,
        )

    if all(not np.any(d) for d in mats):
        # Every A/A case has change 0: only the unseen-case guard stands in the way.
        return result((), SetPlanCell(guard or MIN_CASES, MIN_TRIALS_PER_CASE, 1.0, None))
    cells = tuple(
        _simulate_cell(
            mats,
            m,
            t,
            tolerance=tolerance,
            alpha=alpha,
            bounded=bounded,
            replications=replications,
            seed=seed,
        )
        for m in sorted(set(cases))
        for t in sorted(set(trials))
    )
    passing = [c for c in cells if c.p_equivalent is not None and c.p_equivalent >= power]
    answer = min(passing, key=lambda c: (c.calls_per_arm, c.trials), default=None)
    return result(cells, answer)
