"""How many trials per arm, estimated from an A/A pilot by resampling (``rolecheck plan``).

A *pilot* is a small run in which both arms send the same request (an A/A run):
every difference between its calls is call-to-call jitter. From it the command
estimates the noise floor (the mean distance between two calls of the same
configuration) and its spread, then simulates comparisons of ``n`` calls per arm
by resampling the pilot's calls, for increasing ``n``:

* **certifying equivalence** at ``--tolerance``: both simulated arms are drawn
  from the pilot, so nothing changed; the share of simulations whose verdict
  is ``equivalent`` (upper bound of the change
  ``cross - min(within_a, within_b)`` below the tolerance,
  :func:`pytest_rolecheck.core.stats.change_bound`) is the power to certify
  equivalence with ``n`` trials (what ``assert_*_equivalent`` needs);
* **detecting an effect** of ``--effect`` (in the metric's units, like the
  tolerance): the same simulated arms, with each call of arm B moved away from
  every call of arm A by ``effect x w``, where ``w`` is the relative jitter of
  a randomly chosen pilot call (its mean distance to the other pilot calls
  divided by the floor; ``w`` averages 1). The change therefore is ``effect``
  on average and varies from call to call as much as the pilot's jitter does.
  The share of simulations whose verdict (:func:`pytest_rolecheck.core.stats.decide`
  on the permutation test and the same bound the engine uses) is
  ``different`` is the power to detect it (what ``assert_*_differ`` needs): a
  significant p-value alone is not enough: the change must also be shown
  larger than the tolerance. A change below the tolerance is *meant* to pass
  as equivalent; the plan says so instead of giving a number of trials. The
  model assumes each arm's own jitter stays as in the pilot and that every B
  call carries the change; a change that also adds noise, or shows in only
  some calls, needs more trials than this predicts (the output says so).

Resampling: a simulated run splits ``2n`` distinct pilot calls into two arms,
so only ``n <= m // 2`` can be simulated from ``m`` pilot calls (no call is
ever used twice: a copy would sit at an impossible distance 0 from itself, or
at a made-up one, and bias the table). Larger ``n`` are *extrapolated* from
the runs at ``m // 2`` and marked so: the A/A change estimate and its standard
error shrink like ``n**-beta``, ``beta`` fitted to the simulated rows and
clipped to [0.5, 1] (1/n is the rate when nothing changed, 1/sqrt(n) the
slowest plausible one); with the change, the estimate's spread and SE shrink
like ``1/sqrt(n)`` around its mean and the jackknife lower bound stands in for
the permutation test; with a metric in [0, 1] no row's upper bound is below
``1 - alpha ** (1/n)``, the guard against changes too rare to be seen. The
shares are made non-decreasing in ``n`` (pool adjacent violators) before the
smallest sufficient ``n`` is read off. Each
``n`` uses its own generator seeded with ``(seed, n)``, so a plan is
reproducible and adding ``n`` values does not change the others. Simulated
permutation tests use 199 random relabellings (exact enumeration when there
are at most 1,000), enough to tell ``p <= 0.05`` apart.

Choosing the tolerance: see ``rolecheck plan --help``.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Final

import numpy as np
import numpy.typing as npt
from scipy import stats

from ..errors import RolecheckUsageError
from .bounds import change_bound, share_lower, smallest_certifiable
from .decision import decide
from .difference import permutation_test
from .limits import DEFAULT_ALPHA, DEFAULT_TOLERANCE, MIN_CALLS_PER_ARM
from .pilot import FloorEstimate, estimate_floor, validate_pilot
from .verdict import Verdict

__all__ = [
    "DEFAULT_GRID",
    "FloorEstimate",
    "Plan",
    "PlanRow",
    "estimate_floor",
    "plan_trials",
]

FloatArray = npt.NDArray[np.float64]

DEFAULT_GRID: Final = (4, 5, 6, 7, 8, 10, 12, 14, 16, 20, 25, 30, 40, 50, 60, 80, 100, 150, 200)
_SIM_RESAMPLES: Final = 199
_SIM_MAX_EXACT: Final = 1000
_SLOWEST_RATE: Final = 0.5


# --------------------------------------------------------------------------- results


@dataclass(frozen=True, slots=True)
class PlanRow:
    """Outcomes with ``n`` calls per arm.

    ``p_equivalent``: share of A/A runs whose verdict is ``equivalent``;
    ``p_detect``: share of runs with the change whose verdict is
    ``different`` (None without ``--effect``). Both as made non-decreasing in
    ``n`` by :func:`plan_trials` (``p_detect`` only when ``effect > tolerance``).
    ``extrapolated``: ``2n`` exceeds the pilot's calls, so the row is scaled
    from the largest simulated one instead of simulated.
    """

    n: int
    p_equivalent: float
    median_upper: float
    q90_upper: float
    p_detect: float | None
    extrapolated: bool = False


@dataclass(frozen=True, slots=True)
class Plan:
    """The result of :func:`plan_trials`."""

    floor: FloorEstimate
    rows: tuple[PlanRow, ...]
    n_equivalence: int | None
    n_detect: int | None
    deterministic: bool
    tolerance: float
    effect: float | None
    alpha: float
    power: float
    replications: int
    seed: int
    max_trials: int
    pilot_calls: int
    beta: float | None  # fitted SE exponent, when some row is extrapolated


# --------------------------------------------------------------------------- simulation


@dataclass(frozen=True, slots=True)
class _Draws:
    """Per-replicate outcomes of the simulated comparisons with ``n`` calls per arm."""

    n: int
    rho: FloatArray  # A/A: change estimate
    se: FloatArray  # A/A: its jackknife standard error
    upper: FloatArray  # A/A: 95% upper bound of the change, as the engine computes it
    shifted_rho: FloatArray | None  # with the change: change estimate
    shifted_se: FloatArray | None
    different: FloatArray | None  # with the change: 1.0 where the verdict was "different"
    significant: FloatArray | None  # with the change: 1.0 where p <= alpha


def _split(d: FloatArray, n: int, rng: np.random.Generator) -> FloatArray:
    """Two arms of ``n`` distinct pilot calls each (needs ``2n <= m``)."""
    idx = rng.permutation(d.shape[0])[: 2 * n]
    return d[np.ix_(idx, idx)]


def _simulate(
    d: FloatArray,
    weights: FloatArray,
    floor: float,
    n: int,
    *,
    tolerance: float,
    effect: float | None,
    alpha: float,
    bounded: bool,
    relative: bool,
    replications: int,
    seed: int,
) -> _Draws:
    rng = np.random.default_rng([seed, n])
    # A relative change (text metrics) of ``effect`` moves the distances by ``effect`` times
    # the room the pilot's spread leaves.
    unit = 1.0 - floor if relative else 1.0
    rho, se, upper = (np.empty(replications) for _ in range(3))
    s_rho, s_se, different, significant = (np.empty(replications) for _ in range(4))
    for r in range(replications):
        sub = _split(d, n, rng)
        bound = change_bound(sub, n, alpha=alpha, bounded=bounded, relative=relative)
        rho[r], se[r], upper[r] = bound.estimate, bound.se, bound.upper
        if effect is None:
            continue
        shifted = sub.copy()
        # Each B call moves by its own amount: the jitter of a random pilot call.
        move = effect * unit * rng.choice(weights, size=n)
        shifted[:n, n:] += move[None, :]
        shifted[n:, :n] += move[:, None]
        moved = change_bound(shifted, n, alpha=alpha, bounded=bounded, relative=relative)
        s_rho[r], s_se[r] = moved.estimate, moved.se
        p = permutation_test(
            shifted, n, seed=seed + r, max_exact=_SIM_MAX_EXACT, n_resamples=_SIM_RESAMPLES
        ).p_value
        # The verdict assert_*_differ needs: significant and shown above the tolerance.
        verdict = decide(
            p_value=p, alpha=alpha, bound=moved, tolerance=tolerance, n=n, bounded=bounded
        ).verdict
        different[r] = verdict is Verdict.DIFFERENT
        significant[r] = p <= alpha
    return _Draws(
        n=n,
        rho=rho,
        se=se,
        upper=upper,
        shifted_rho=None if effect is None else s_rho,
        shifted_se=None if effect is None else s_se,
        different=None if effect is None else different,
        significant=None if effect is None else significant,
    )


def _fit_exponent(draws: Sequence[_Draws]) -> float:
    """``beta`` in ``SE ~ n**-beta``, fitted to the simulated rows, clipped to [0.5, 1].

    Under no change the estimate is a degenerate statistic whose standard error
    shrinks like ``1/n``; ``1/sqrt(n)`` is the slowest plausible rate. The
    clip keeps a noisy fit on few rows inside that range.
    """
    xs: list[float] = []
    ys: list[float] = []
    for dr in draws:
        ok = dr.se[np.isfinite(dr.se) & (dr.se > 0)]
        if 2 * ok.size >= dr.se.size:  # a median over mostly unbounded runs says nothing
            xs.append(math.log(dr.n))
            ys.append(math.log(float(np.median(ok))))
    if len(xs) < 2:
        return _SLOWEST_RATE
    slope = float(np.polyfit(xs, ys, 1)[0])
    return min(max(-slope, _SLOWEST_RATE), 1.0)


def _monotone(values: Sequence[float]) -> list[float]:
    """Least-squares non-decreasing fit (pool adjacent violators, equal weights).

    References
    ----------
    .. [1] R. E. Barlow, D. J. Bartholomew, J. M. Bremner and H. D. Brunk,
       "Statistical Inference under Order Restrictions", Wiley, 1972.
    """
    blocks: list[tuple[float, int]] = []
    for value in values:
        total, count = value, 1
        while blocks and blocks[-1][0] / blocks[-1][1] > total / count:
            prev_total, prev_count = blocks.pop()
            total, count = total + prev_total, count + prev_count
        blocks.append((total, count))
    return [total / count for total, count in blocks for _ in range(count)]


class _Planner:
    """Rows of the plan, simulated (``2n <= m``) or extrapolated from the largest split."""

    def __init__(
        self,
        d: FloatArray,
        floor: float,
        *,
        tolerance: float,
        effect: float | None,
        alpha: float,
        bounded: bool,
        relative: bool,
        replications: int,
        seed: int,
    ) -> None:
        self.d = d
        self.floor = floor
        self.tolerance = tolerance
        self.bounded = bounded
        self.relative = relative
        self.effect = effect
        self.alpha = alpha
        self.replications = replications
        self.seed = seed
        self.largest = d.shape[0] // 2
        self.weights = (d.sum(axis=1) / (d.shape[0] - 1)) / floor
        self._draws: dict[int, _Draws] = {}
        self._rows: dict[int, PlanRow] = {}
        self._beta: float | None = None

    def draws(self, n: int) -> _Draws:
        if n not in self._draws:
            self._draws[n] = _simulate(
                self.d,
                self.weights,
                self.floor,
                n,
                tolerance=self.tolerance,
                effect=self.effect,
                alpha=self.alpha,
                bounded=self.bounded,
                relative=self.relative,
                replications=self.replications,
                seed=self.seed,
            )
        return self._draws[n]

    @property
    def beta(self) -> float:
        # Fitted on a fixed set of rows, so the exponent (and every extrapolated row) does not
        # depend on which rows the search happened to visit.
        if self._beta is None:
            fit = sorted({n for n in DEFAULT_GRID if n <= self.largest} | {self.largest})
            self._beta = _fit_exponent([self.draws(n) for n in fit])
        return self._beta

    def row_ns(self) -> list[int]:
        """The ``n`` of every row computed so far."""
        return sorted(self._rows)

    def row(self, n: int) -> PlanRow:
        """The unsmoothed row for ``n`` calls per arm."""
        if n not in self._rows:
            self._rows[n] = self._simulated(n) if n <= self.largest else self._extrapolated(n)
        return self._rows[n]

    def rows(self) -> tuple[PlanRow, ...]:
        """Every row computed so far, by ``n``, with the shares made non-decreasing in ``n``."""
        raw = [self._rows[n] for n in sorted(self._rows)]
        eq = _monotone([r.p_equivalent for r in raw])
        if self.effect is not None and self.effect > self.tolerance:
            det: list[float | None] = list(_monotone([r.p_detect or 0.0 for r in raw]))
        else:
            # Below the tolerance more trials *certify* the change: no monotone trend to impose.
            det = [r.p_detect for r in raw]
        return tuple(
            dataclasses.replace(r, p_equivalent=e, p_detect=p)
            for r, e, p in zip(raw, eq, det, strict=True)
        )

    def _summary(
        self, n: int, upper: FloatArray, different: FloatArray | None, extrapolated: bool
    ) -> PlanRow:
        finite = np.where(np.isfinite(upper), upper, np.inf)
        return PlanRow(
            n=n,
            p_equivalent=float(np.mean(finite < self.tolerance)),
            # inverted_cdf never interpolates, so an unbounded (inf) bound gives inf, not NaN
            median_upper=float(np.quantile(finite, 0.5, method="inverted_cdf")),
            q90_upper=float(np.quantile(finite, 0.9, method="inverted_cdf")),
            p_detect=None if different is None else float(np.mean(different)),
            extrapolated=extrapolated,
        )

    def _simulated(self, n: int) -> PlanRow:
        dr = self.draws(n)
        return self._summary(n, dr.upper, dr.different, extrapolated=False)

    def _extrapolated(self, n: int) -> PlanRow:
        base = self.draws(self.largest)
        t_upper = float(stats.t.ppf(1.0 - self.alpha, n - 1))
        guard = smallest_certifiable(n, self.alpha) if self.bounded else -np.inf
        # A/A: estimate and SE both shrink like n**-beta around 0.
        scale = (self.largest / n) ** self.beta
        with np.errstate(invalid="ignore"):
            upper = (base.rho + t_upper * base.se) * scale
        upper = np.maximum(np.where(np.isnan(upper), np.inf, upper), guard)
        different: FloatArray | None = None
        if (
            base.shifted_rho is not None
            and base.shifted_se is not None
            and base.significant is not None
        ):
            # With a real change the estimate converges to it and its SE shrinks like
            # 1/sqrt(n). A run significant at n0 stays so with more calls; for the others the
            # jackknife lower bound above 0 stands in for the permutation test. An unbounded
            # SE stays unbounded: never equivalent, and no new significance.
            ok = np.isfinite(base.shifted_rho) & np.isfinite(base.shifted_se)
            centre = float(np.mean(base.shifted_rho[ok])) if ok.any() else 0.0
            shrink = math.sqrt(self.largest / n)
            est = np.where(ok, centre + (base.shifted_rho - centre) * shrink, 0.0)
            se = np.where(ok, base.shifted_se * shrink, 0.0)
            t_lower = float(stats.t.ppf(1.0 - self.alpha / 2, n - 1))
            lower = np.where(ok, est - t_lower * se, -np.inf)
            if self.bounded:
                # The engine's exact bound from below, as on the simulated rows: without it
                # the first extrapolated row could jump from "never" to "always different".
                own = 0.0 if self.relative else self.floor
                exact = np.vectorize(share_lower)(n * (est + own), n, self.alpha / 2) - own
                lower = np.minimum(lower, exact)
            detected = ((base.significant > 0) | (lower > 0)) & (lower > self.tolerance)
            different = detected.astype(float)
        return self._summary(n, upper, different, extrapolated=True)


def _validate_plan(
    tolerance: float,
    effect: float | None,
    alpha: float,
    power: float,
    replications: int,
    max_trials: int,
) -> None:
    if not tolerance > 0 or not math.isfinite(tolerance):
        raise RolecheckUsageError(f"--tolerance {tolerance}: expected a number > 0 (e.g. 0.2).")
    if effect is not None and (not effect > 0 or not math.isfinite(effect)):
        raise RolecheckUsageError(
            f"--effect {effect}: expected a number > 0 (in the metric's units)."
        )
    if not 0 < alpha < 1:
        raise RolecheckUsageError(f"--alpha {alpha}: expected a number in (0, 1).")
    if not 0 < power < 1:
        raise RolecheckUsageError(f"--power {power}: expected a number in (0, 1), e.g. 0.8.")
    if replications < 20:
        raise RolecheckUsageError(
            f"--replications {replications}: expected at least 20 (default 200)."
        )
    if max_trials < MIN_CALLS_PER_ARM:
        raise RolecheckUsageError(
            f"--max-trials {max_trials}: expected at least {MIN_CALLS_PER_ARM}."
        )


# Long by its docstring (every parameter and the method's limits); the body is short.
def plan_trials(
    matrix: npt.ArrayLike,
    *,
    tolerance: float | None = None,
    effect: float | None = None,
    alpha: float = DEFAULT_ALPHA,
    bounded: bool = True,
    relative: bool = False,
    power: float = 0.8,
    replications: int = 200,
    seed: int = 0,
    max_trials: int = 200,
) -> Plan:
    """Trials per arm needed to certify equivalence / detect an effect, by resampling a pilot.

    Parameters
    ----------
    matrix : array_like, shape (m, m)
        Distances between the calls of an A/A pilot (one configuration),
        ``m >= 8``.
    tolerance : float, optional
        The largest change that still counts as equivalent (metric units);
        default :data:`~pytest_rolecheck.core.stats.DEFAULT_TOLERANCE`.
    effect : float, optional
        Effect to detect, in the metric's units: each simulated call of arm B
        moves away from the calls of arm A by ``effect * w`` (``w``: relative
        jitter of a random pilot call, mean 1). None: plan for equivalence only.
    alpha : float, default 0.05
        Significance level of the difference test.
    bounded : bool, default True
        The metric's values lie in [0, 1] (js, tv, first_token): the bounds
        include the unseen-change guard.
    relative : bool, default False
        The change is a share of the room the pilot's spread leaves, as the engine
        measures it for the text metrics (``change_bound(relative=True)``); ``effect``
        and ``tolerance`` are read in those units.
    power : float, default 0.8
        Required share of simulated runs reaching the goal.
    replications : int, default 200
        Simulated runs per ``n``.
    seed : int, default 0
        Seed; each ``n`` uses ``numpy.random.default_rng([seed, n])``.
    max_trials : int, default 200
        Largest ``n`` tried.

    Returns
    -------
    Plan
        The floor estimate, the table and the smallest ``n`` reaching
        ``power`` for each goal (None when ``max_trials`` is not enough, and
        for detection when ``effect <= tolerance``: such a change is meant to be
        certified equivalent). A deterministic pilot (floor 0) needs no
        simulation: 4 trials detect any difference, and equivalence means
        identical outputs.

    Raises
    ------
    RolecheckUsageError
        Invalid arguments or pilot matrix.

    Notes
    -----
    The method (simulated rows, extrapolated rows, the monotone fit) is described
    in the module docstring; :func:`_search` finds the smallest passing ``n``.
    Monte-Carlo error of a share is about ``sqrt(p (1 - p) / R)`` (0.028 at
    p = 0.8 and R = 200).

    References
    ----------
    .. [1] B. Efron and R. J. Tibshirani, "An Introduction to the Bootstrap",
       Chapman & Hall, 1993.
    .. [2] D. N. Politis, J. P. Romano and M. Wolf, "Subsampling", Springer,
       1999 (subsamples without replacement; rate estimation, ch. 8).
    .. [3] M. J. Anderson, "A new method for non-parametric multivariate
       analysis of variance", Austral Ecology 26, pp. 32-46, 2001.
    """
    d = validate_pilot(matrix)
    if tolerance is None:
        tolerance = DEFAULT_TOLERANCE
    _validate_plan(tolerance, effect, alpha, power, replications, max_trials)
    floor = estimate_floor(d, seed=seed)
    common: dict[str, Any] = {
        "tolerance": tolerance,
        "effect": effect,
        "alpha": alpha,
        "power": power,
        "replications": replications,
        "seed": seed,
        "max_trials": max_trials,
        "pilot_calls": d.shape[0],
    }
    if floor.floor == 0.0:
        return Plan(
            floor=floor,
            rows=(),
            n_equivalence=MIN_CALLS_PER_ARM,
            n_detect=MIN_CALLS_PER_ARM if effect is not None else None,
            deterministic=True,
            beta=None,
            **common,
        )
    planner = _Planner(
        d,
        floor.floor,
        tolerance=tolerance,
        effect=effect,
        alpha=alpha,
        bounded=bounded,
        relative=relative,
        replications=replications,
        seed=seed,
    )
    goals = ["eq"] + (["detect"] if effect is not None and effect > tolerance else [])
    first = _search(planner, goals, power=power, max_trials=max_trials)
    return Plan(
        floor=floor,
        rows=planner.rows(),
        n_equivalence=first.get("eq"),
        n_detect=first.get("detect"),
        deterministic=False,
        beta=planner.beta if max(planner.row_ns()) > planner.largest else None,
        **common,
    )


def _search(
    planner: _Planner, goals: Sequence[str], *, power: float, max_trials: int
) -> dict[str, int | None]:
    """The smallest ``n`` reaching ``power`` for each goal (``"eq"``, ``"detect"``).

    The grid 4, 5, 6, 7, 8, 10, 12, ... is searched until every goal is reached, then the
    gap below the first passing grid value is bisected.
    """

    def first(goal: str) -> int | None:
        for r in planner.rows():
            value = r.p_equivalent if goal == "eq" else r.p_detect
            if value is not None and value >= power:
                return r.n
        return None

    grid = [n for n in DEFAULT_GRID if n <= max_trials]
    if grid[-1] != max_trials:
        grid.append(max_trials)
    previous = MIN_CALLS_PER_ARM - 1
    for n in grid:
        planner.row(n)
        for goal in goals:
            hit = first(goal)
            if hit is not None and hit > previous:
                # Bisect the gap below the first passing grid value; the monotone fit is redone
                # with every new row, and the answer is read off the final fit below.
                low, high = previous, hit
                while high - low > 1:
                    mid = (low + high) // 2
                    planner.row(mid)
                    hit = first(goal)
                    if hit is not None and hit <= mid:
                        high = mid
                    else:
                        low = mid
        if all(first(goal) is not None for goal in goals):
            break
        previous = n
    return {goal: first(goal) for goal in goals}
