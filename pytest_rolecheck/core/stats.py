"""Statistics behind the verdicts: difference test, equivalence bound, descriptives.

Everything here works on numbers only: a distance matrix between calls (the
first ``n_a`` rows/columns are arm A, the rest arm B) or, for the seed design,
two vectors of per-trial distances to one baseline call. Turning responses
into those numbers is the job of ``_parse`` and ``_distances``; turning the
numbers into a report is the job of ``_compare``.

Input validation lives in ``_validate_*`` functions, apart from the
computations (the layout of scipy's ``_mannwhitneyu.py``).

The decision rules, in one place (``decide``), the same for every design:

* the *change* is ``delta = cross - min(within_a, within_b)`` (all-pairs,
  :func:`change_bound`) or ``mean(B) - mean(A)`` of the trials' distances to
  the baseline (seed design, :func:`trial_change_bound`); the *tolerance* is
  the largest change that still counts as equivalent, chosen before seeing
  data (:data:`DEFAULT_TOLERANCE`);
* *equivalent*: the ``1 - alpha`` upper bound of the change is below the
  tolerance;
* *different*: the permutation (seed design: Mann-Whitney) p-value is
  ``<= alpha`` **and** the lower bound of the change is above the tolerance;
* otherwise *inconclusive*, never equivalence.

The deterministic short-cut (every within-arm distance exactly 0) is applied
by ``_compare`` before any of this: the change is then known exactly and
compared with the tolerance directly.
"""

from __future__ import annotations

import functools
import itertools
import math
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

import numpy as np
import numpy.typing as npt
from scipy import stats as _sps

from ..errors import RolecheckUsageError
from .limits import DEFAULT_TOLERANCE as DEFAULT_TOLERANCE
from .limits import DESIGNS as DESIGNS
from .limits import MIN_CALLS_PER_ARM as MIN_CALLS_PER_ARM

__all__ = [
    "ArmSummary",
    "Bound",
    "Decision",
    "EnergyStatistics",
    "FlipSummary",
    "PermutationResult",
    "TrialTestResult",
    "Verdict",
    "baseline_test",
    "change_bound",
    "cliffs_delta",
    "decide",
    "energy_statistics",
    "flip_test",
    "permutation_test",
    "recommend_trials",
    "share_lower",
    "smallest_certifiable",
    "split_pairs",
    "summarize",
    "trial_change_bound",
    "unseen_share_upper",
    "validate_arm_sizes",
    "validate_options",
]

FloatArray = npt.NDArray[np.float64]
Verdict = Literal["equivalent", "different", "inconclusive"]

MAX_EXACT_RELABELLINGS = 10_000
N_RESAMPLES = 9_999
# Above this many trials per arm a recommendation is no longer practical advice.
MAX_RECOMMENDED_TRIALS = 10_000
# Bounds the memory of one batch of relabellings (rows x calls float64 values).
_BATCH_CELLS = 2_000_000


# --------------------------------------------------------------------------- results


@dataclass(frozen=True, slots=True)
class ArmSummary:
    """Mean, standard deviation (``ddof=0``, numpy's default), min and max of distances."""

    mean: float
    std: float
    min: float
    max: float
    n: int

    def to_dict(self) -> dict[str, float | int]:
        """Return the fields as a JSON-able dict."""
        return {"mean": self.mean, "std": self.std, "min": self.min, "max": self.max, "n": self.n}


@dataclass(frozen=True, slots=True)
class EnergyStatistics:
    """Energy-distance decomposition of an all-pairs distance matrix.

    ``floor = (within_a + within_b) / 2`` is the pooled call-to-call jitter
    of both arms;
    ``excess = cross - floor`` has expectation 0 when both arms draw calls
    from the same distribution, and is positive when they differ (for a
    metric of negative type it is half the energy distance).
    """

    within_a: float
    within_b: float
    cross: float
    floor: float
    excess: float
    n_a: int
    n_b: int


@dataclass(frozen=True, slots=True)
class PermutationResult:
    """Result of :func:`permutation_test`.

    ``statistic`` is the Mann-Whitney U of the cross-arm pair distances
    against the within-arm pair distances. ``exact`` tells whether every
    relabelling was enumerated; ``smallest_p`` is the smallest p-value the
    design can produce (a test with ``alpha`` below it can never reject).
    """

    statistic: float
    p_value: float
    n_relabellings: int
    exact: bool
    smallest_p: float


@dataclass(frozen=True, slots=True)
class TrialTestResult:
    """Result of :func:`baseline_test` (seed design): Mann-Whitney U of B vs A trials.

    ``smallest_p`` is the smallest p-value the test can give for these pooled
    distances (arms fully separated); an ``alpha`` below it can never reject.
    """

    statistic: float
    p_value: float
    method: str  # "exact", "asymptotic" or "all-tied"
    smallest_p: float


@dataclass(frozen=True, slots=True)
class Bound:
    """Bounds on the change: ``estimate -/+ t * se``, widened by the unseen-change guard.

    ``lower``/``upper`` are one-sided ``1 - alpha`` bounds (equivalence);
    ``effect_lower`` is the lower bound on the size of the change used by the
    minimum-effect test (``1 - alpha/2`` per component or side).
    """

    estimate: float
    se: float
    lower: float
    upper: float
    t_quantile: float
    df: int
    effect_lower: float = -math.inf

    def to_dict(self) -> dict[str, float | int | None]:
        """Return the fields as a JSON-able dict (non-finite values become ``None``)."""
        return {
            "estimate": _finite_or_none(self.estimate),
            "se": _finite_or_none(self.se),
            "lower": _finite_or_none(self.lower),
            "upper": _finite_or_none(self.upper),
            "effect_lower": _finite_or_none(self.effect_lower),
            "t_quantile": self.t_quantile,
            "df": self.df,
        }


@dataclass(frozen=True, slots=True)
class FlipSummary:
    """Share of each arm's calls whose text differs from arm A's most common text.

    ``p_value`` is the two-sided Fisher exact test of the 2x2 table
    (changed / unchanged per arm).
    """

    changed_a: int
    changed_b: int
    n_a: int
    n_b: int
    share_a: float
    share_b: float
    p_value: float

    def to_dict(self) -> dict[str, float | int]:
        """Return the fields as a JSON-able dict."""
        return {
            "changed_a": self.changed_a,
            "changed_b": self.changed_b,
            "n_a": self.n_a,
            "n_b": self.n_b,
            "share_a": self.share_a,
            "share_b": self.share_b,
            "p_value": self.p_value,
        }


@dataclass(frozen=True, slots=True)
class Decision:
    """Outcome of :func:`decide`."""

    verdict: Verdict
    difference_detected: bool
    equivalence_shown: bool
    recommended_trials: int | None


# --------------------------------------------------------------------------- validation


def _finite_or_none(value: float) -> float | None:
    return value if math.isfinite(value) else None


def validate_arm_sizes(n_a: int, n_b: int, labels: tuple[str, str] = ("A", "B")) -> None:
    """Refuse arms with fewer than :data:`MIN_CALLS_PER_ARM` calls.

    Raises
    ------
    RolecheckUsageError
        If an arm is too small, with the reason and the fix.
    """
    for n, label in ((n_a, labels[0]), (n_b, labels[1])):
        if n < MIN_CALLS_PER_ARM:
            raise RolecheckUsageError(
                f"arm {label!r} has {n} call(s); at least {MIN_CALLS_PER_ARM} per arm are "
                f"needed. With 3 calls per arm there are only C(6, 3) = 20 relabellings, so the "
                f"permutation test can never reach p <= 0.05 (its smallest p-value is 0.1), and "
                f"the delete-one jackknife behind the equivalence bound is unstable. "
                "Run more trials per arm (the default is 20; 14 is the fewest to certify 0.2)."
            )


def validate_options(*, alpha: float, tolerance: float, design: str) -> None:
    """Check the numeric and design options shared by every entry point.

    Raises
    ------
    RolecheckUsageError
        If ``alpha`` is not in (0, 1), ``tolerance`` is not a positive finite
        number, or ``design`` is unknown.
    """
    if isinstance(alpha, bool) or not isinstance(alpha, int | float) or not 0 < alpha < 1:
        raise RolecheckUsageError(
            f"alpha={alpha!r} is not allowed: the significance level must be a number strictly "
            f"between 0 and 1 (0.05 is the default)."
        )
    if (
        isinstance(tolerance, bool)
        or not isinstance(tolerance, int | float)
        or not math.isfinite(tolerance)
        or tolerance <= 0
    ):
        raise RolecheckUsageError(
            f"tolerance={tolerance!r} is not allowed: it is the largest change that still counts "
            f"as equivalent, in the metric's units (for js, tv and first_token the share of "
            f"probability mass moved, in (0, 1]), e.g. {DEFAULT_TOLERANCE} (the default)."
        )
    if design not in DESIGNS:
        raise RolecheckUsageError(
            f"design={design!r} is unknown; allowed values: {', '.join(map(repr, DESIGNS))} "
            f"('all-pairs' is the default and recommended)."
        )


def _validate_matrix(distances: npt.ArrayLike, n_a: int) -> FloatArray:
    d = np.asarray(distances, dtype=np.float64)
    if d.ndim != 2 or d.shape[0] != d.shape[1]:
        raise RolecheckUsageError(
            f"expected a square distance matrix, got shape {d.shape}; build it with "
            f"distance_matrix(calls_a + calls_b, metric)."
        )
    n = d.shape[0]
    if not 0 < n_a < n:
        raise RolecheckUsageError(
            f"n_a={n_a} must split the {n} calls into two non-empty arms (A = the first n_a)."
        )
    validate_arm_sizes(n_a, n - n_a)
    if not np.all(np.isfinite(d)) or np.any(d < 0):
        raise RolecheckUsageError(
            "the distance matrix contains negative, NaN or infinite values; a metric must return "
            "a finite number >= 0 for every pair of calls. Fix the custom metric or use a "
            "built-in one (see available_metrics())."
        )
    scale = max(1.0, float(np.max(d)))
    if not np.allclose(d, d.T, rtol=0, atol=1e-9 * scale) or np.any(np.diag(d) != 0):
        raise RolecheckUsageError(
            "the distance matrix must be symmetric with a zero diagonal; a metric must satisfy "
            "d(x, y) == d(y, x) and d(x, x) == 0."
        )
    # Symmetrise exactly so the rank of a pair does not depend on which triangle is read.
    return (d + d.T) / 2


def _validate_trials(d_a: npt.ArrayLike, d_b: npt.ArrayLike) -> tuple[FloatArray, FloatArray]:
    a = np.asarray(d_a, dtype=np.float64).ravel()
    b = np.asarray(d_b, dtype=np.float64).ravel()
    validate_arm_sizes(a.size, b.size)
    for x in (a, b):
        if not np.all(np.isfinite(x)) or np.any(x < 0):
            raise RolecheckUsageError(
                "per-trial distances must be finite numbers >= 0; fix the custom metric or use a "
                "built-in one (see available_metrics())."
            )
    return a, b


# --------------------------------------------------------------------------- descriptives


def summarize(values: npt.ArrayLike) -> ArmSummary:
    """Summarise distances the way the seed experiment printed them.

    Parameters
    ----------
    values : array_like
        Distances (at least one).

    Returns
    -------
    ArmSummary
        Mean, population standard deviation (``ddof=0``), min, max and count.
    """
    x = np.asarray(values, dtype=np.float64).ravel()
    if x.size == 0:
        raise RolecheckUsageError("cannot summarise an empty set of distances; pass at least one.")
    return ArmSummary(
        mean=float(np.mean(x)),
        std=float(np.std(x)),
        min=float(np.min(x)),
        max=float(np.max(x)),
        n=int(x.size),
    )


def split_pairs(distances: npt.ArrayLike, n_a: int) -> tuple[FloatArray, FloatArray, FloatArray]:
    """Return the within-A, within-B and cross pair distances of a matrix.

    Parameters
    ----------
    distances : array_like, shape (n_a + n_b, n_a + n_b)
        Symmetric distance matrix, arm A first.
    n_a : int
        Number of calls in arm A.

    Returns
    -------
    within_a, within_b, cross : ndarray
        Upper-triangle distances within A, within B, and all A x B distances.
    """
    d = _validate_matrix(distances, n_a)
    return _split_pairs(d, n_a)


def _split_pairs(d: FloatArray, n_a: int) -> tuple[FloatArray, FloatArray, FloatArray]:
    dA = d[:n_a, :n_a]
    dB = d[n_a:, n_a:]
    return dA[np.triu_indices(n_a, 1)], dB[np.triu_indices(dB.shape[0], 1)], d[:n_a, n_a:].ravel()


def energy_statistics(distances: npt.ArrayLike, n_a: int) -> EnergyStatistics:
    """Within-arm means, cross mean, jitter floor and excess of a distance matrix.

    Parameters
    ----------
    distances : array_like, shape (n_a + n_b, n_a + n_b)
        Symmetric, zero-diagonal distance matrix; arm A is the first ``n_a``
        calls.
    n_a : int
        Number of calls in arm A.

    Returns
    -------
    EnergyStatistics
        ``floor = (within_a + within_b) / 2`` and ``excess = cross - floor``.

    References
    ----------
    .. [1] G. J. Székely and M. L. Rizzo, "Energy statistics: A class of
       statistics based on distances", J. Stat. Plan. Inference 143(8),
       pp. 1249-1272, 2013.
    """
    d = _validate_matrix(distances, n_a)
    return _energy_statistics(d, n_a)


def _energy_statistics(d: FloatArray, n_a: int) -> EnergyStatistics:
    wa, wb, cr = _split_pairs(d, n_a)
    within_a, within_b, cross = float(wa.mean()), float(wb.mean()), float(cr.mean())
    floor = 0.5 * (within_a + within_b)
    return EnergyStatistics(
        within_a=within_a,
        within_b=within_b,
        cross=cross,
        floor=floor,
        excess=cross - floor,
        n_a=n_a,
        n_b=d.shape[0] - n_a,
    )


def cliffs_delta(x: npt.ArrayLike, y: npt.ArrayLike) -> float:
    """Cliff's delta: ``P(X > Y) - P(X < Y)`` over all pairs of the two samples.

    Parameters
    ----------
    x, y : array_like
        The two samples (e.g. cross-arm and within-arm distances).

    Returns
    -------
    float
        A value in [-1, 1]; 0 when neither sample tends to be larger.

    References
    ----------
    .. [1] N. Cliff, "Dominance statistics: Ordinal analyses to answer
       ordinal questions", Psychological Bulletin 114(3), pp. 494-509, 1993.
    """
    xs = np.asarray(x, dtype=np.float64).ravel()
    ys = np.sort(np.asarray(y, dtype=np.float64).ravel())
    if xs.size == 0 or ys.size == 0:
        raise RolecheckUsageError("Cliff's delta needs two non-empty samples.")
    below = np.searchsorted(ys, xs, side="left").sum()  # y < x
    above = ys.size - np.searchsorted(ys, xs, side="right")  # y > x
    return float((below - above.sum()) / (xs.size * ys.size))


def flip_test(texts_a: Sequence[str], texts_b: Sequence[str]) -> FlipSummary:
    """Compare how often each arm's text differs from arm A's most common text.

    A greedy decode that flips one token rewrites the rest of the answer; such
    rare flips are behaviour too, and they are easy to miss in averages. Both
    arms are counted against the *same* reference, A's modal text: counted
    against its own modal text, an arm whose every call gives one new answer
    would show no flips at all.

    Parameters
    ----------
    texts_a, texts_b : sequence of str
        The generated texts of each arm's calls.

    Returns
    -------
    FlipSummary
        Counts, shares and the two-sided Fisher exact p-value.

    References
    ----------
    .. [1] R. A. Fisher, "On the interpretation of chi-square from
       contingency tables, and the calculation of P", J. R. Stat. Soc. 85(1),
       pp. 87-94, 1922.
    """
    if not texts_a or not texts_b:
        raise RolecheckUsageError("flip_test needs at least one text per arm.")
    reference = Counter(texts_a).most_common(1)[0][0]
    changed = [sum(t != reference for t in texts) for texts in (texts_a, texts_b)]
    n_a, n_b = len(texts_a), len(texts_b)
    table = [[changed[0], n_a - changed[0]], [changed[1], n_b - changed[1]]]
    same_share = changed[0] * n_b == changed[1] * n_a
    p = 1.0 if same_share else float(_sps.fisher_exact(table).pvalue)
    return FlipSummary(
        changed_a=changed[0],
        changed_b=changed[1],
        n_a=n_a,
        n_b=n_b,
        share_a=changed[0] / n_a,
        share_b=changed[1] / n_b,
        p_value=min(1.0, p),
    )


# --------------------------------------------------------------------------- difference test


@functools.lru_cache(maxsize=32)
def _all_labellings(n: int, n_a: int) -> FloatArray:
    """Every 0/1 labelling of ``n`` calls with ``n_a`` ones (read-only, cached)."""
    total = math.comb(n, n_a)
    cols = np.fromiter(
        itertools.chain.from_iterable(itertools.combinations(range(n), n_a)),
        dtype=np.intp,
        count=total * n_a,
    )
    z = np.zeros((total, n), dtype=np.float64)
    z[np.repeat(np.arange(total), n_a), cols] = 1.0
    z.flags.writeable = False
    return z


def _cross_rank_sums(z: FloatArray, rank_matrix: FloatArray, row_sums: FloatArray) -> FloatArray:
    # For a 0/1 label vector z the pair (i, j) is a cross pair iff z_i + z_j - 2 z_i z_j = 1, so
    # the sum of ranks over cross pairs (i < j) is z.r - z'Rz with r the row sums of the
    # symmetric, zero-diagonal rank matrix R. One matmul scores a whole batch of relabellings.
    return np.asarray(z @ row_sums - np.einsum("pi,pi->p", z @ rank_matrix, z), dtype=np.float64)


def permutation_test(
    distances: npt.ArrayLike,
    n_a: int,
    *,
    seed: int = 0,
    max_exact: int = MAX_EXACT_RELABELLINGS,
    n_resamples: int = N_RESAMPLES,
) -> PermutationResult:
    """Test whether calls of different arms are further apart than calls of the same arm.

    All pairwise distances (upper triangle) are ranked once (average ranks for
    ties). The statistic is the Mann-Whitney U of the cross-arm pairs against
    the within-arm pairs; large U means cross pairs rank high. Its null
    distribution comes from relabelling *calls* (not pairs) between the arms:
    every relabelling when there are at most ``max_exact`` of them, otherwise
    ``n_resamples`` random relabellings drawn from ``numpy.random.Generator``
    seeded with ``seed``, with ``p = (1 + #{U* >= U}) / (1 + n_resamples)`` so
    that the same data give the same p-value forever.

    The textbook Mann-Whitney p-value treats the pair distances as independent
    observations. They are not: the ``n - 1`` distances involving one call
    share that call, so one unusual call moves many of them together and the
    effective sample size is far smaller than the number of pairs. Permuting
    the calls keeps that dependence intact, which makes the test exact under
    the null hypothesis that all calls are exchangeable.

    Parameters
    ----------
    distances : array_like, shape (n_a + n_b, n_a + n_b)
        Symmetric, zero-diagonal distance matrix; arm A is the first ``n_a``.
    n_a : int
        Number of calls in arm A (at least 4 in each arm).
    seed : int, optional
        Seed of the random relabellings (only used when not enumerating).
    max_exact : int, optional
        Enumerate all ``C(n_a + n_b, n_a)`` relabellings when there are at
        most this many.
    n_resamples : int, optional
        Number of random relabellings otherwise.

    Returns
    -------
    PermutationResult
        U statistic, one-sided p-value (cross larger), relabelling count,
        whether enumeration was exact, and the smallest reachable p-value.

    Raises
    ------
    RolecheckUsageError
        If the matrix is not a valid distance matrix or an arm has fewer than
        4 calls.

    References
    ----------
    .. [1] H. B. Mann and D. R. Whitney, "On a test of whether one of two
       random variables is stochastically larger than the other", Ann. Math.
       Statist. 18(1), pp. 50-60, 1947.
    .. [2] B. Phipson and G. K. Smyth, "Permutation p-values should never be
       zero: calculating exact p-values when permutations are randomly
       drawn", Stat. Appl. Genet. Mol. Biol. 9(1), 2010.
    .. [3] M. J. Anderson, "A new method for non-parametric multivariate
       analysis of variance", Austral Ecology 26, pp. 32-46, 2001 (permuting
       observations, not distances).
    """
    d = _validate_matrix(distances, n_a)
    if max_exact < 0 or n_resamples < 1:
        raise RolecheckUsageError("max_exact must be >= 0 and n_resamples >= 1.")
    return _permutation_test(d, n_a, seed=seed, max_exact=max_exact, n_resamples=n_resamples)


def _permutation_test(
    d: FloatArray, n_a: int, *, seed: int, max_exact: int, n_resamples: int
) -> PermutationResult:
    n = d.shape[0]
    n_b = n - n_a
    iu = np.triu_indices(n, 1)
    rank_matrix = np.zeros((n, n), dtype=np.float64)
    rank_matrix[iu] = _sps.rankdata(d[iu], method="average")
    rank_matrix += rank_matrix.T
    row_sums = rank_matrix.sum(axis=1)

    z_obs = np.zeros((1, n), dtype=np.float64)
    z_obs[0, :n_a] = 1.0
    s_obs = float(_cross_rank_sums(z_obs, rank_matrix, row_sums)[0])
    n_cross = n_a * n_b
    u_stat = s_obs - n_cross * (n_cross + 1) / 2
    # Ranks are multiples of 1/2, so the sums are exact in float64; the tolerance only guards
    # against a BLAS that reassociates.
    threshold = s_obs - 1e-9 * max(1.0, abs(s_obs))

    total = math.comb(n, n_a)
    symmetric = 2 if n_a == n_b else 1  # swapping equal-sized arms gives the same cross pairs
    if total <= max_exact:
        z = _all_labellings(n, n_a)
        count = int(np.count_nonzero(_cross_rank_sums(z, rank_matrix, row_sums) >= threshold))
        return PermutationResult(
            statistic=u_stat,
            p_value=count / total,
            n_relabellings=total,
            exact=True,
            smallest_p=symmetric / total,
        )

    rng = np.random.default_rng(seed)
    batch = max(1, _BATCH_CELLS // n)
    count = 0
    done = 0
    while done < n_resamples:
        size = min(batch, n_resamples - done)
        z = rng.permuted(np.broadcast_to(z_obs, (size, n)), axis=1)
        count += int(np.count_nonzero(_cross_rank_sums(z, rank_matrix, row_sums) >= threshold))
        done += size
    return PermutationResult(
        statistic=u_stat,
        p_value=(1 + count) / (1 + n_resamples),
        n_relabellings=n_resamples,
        exact=False,
        smallest_p=1 / (1 + n_resamples),
    )


def baseline_test(d_a: npt.ArrayLike, d_b: npt.ArrayLike) -> TrialTestResult:
    """Seed design: are B's trials at a different distance from the baseline than A's?

    Given the baseline call, the per-trial distances of the two arms are
    independent samples, so ``scipy.stats.mannwhitneyu(d_b, d_a,
    method="auto")`` is valid here (unlike on pairwise distances). The test is
    two-sided: when the baseline is an unusual call (a flipped token), B's
    trials can well be *closer* to it than A's own trials, and that is a
    difference too. When every distance is tied the test has no information:
    the two-sided test gives p = 1 (scipy's one-sided *exact* method would
    give 0.58 for 5 + 5 ties, the forum's pitfall); the p-value is set to 1
    and the method reported as ``"all-tied"``, so the caller can say why.

    ``smallest_p`` is the p-value of the most extreme assignment of these
    pooled distances to the arms (the smaller ``n_b`` or the larger ``n_b``
    values in B): the rank statistic is most extreme there, and the
    method and tie correction depend only on the pooled values. Without ties
    and with both arms of at most 8 trials this is the exact two-sided
    minimum ``2 / C(n_a + n_b, n_a)`` (2/70 = 0.0286 for 4 + 4).

    Parameters
    ----------
    d_a, d_b : array_like
        Distances of each arm's trials to the baseline call.

    Returns
    -------
    TrialTestResult
        U statistic of B vs A, two-sided p-value, the method used and the
        smallest reachable p-value.

    References
    ----------
    .. [1] H. B. Mann and D. R. Whitney, "On a test of whether one of two
       random variables is stochastically larger than the other", Ann. Math.
       Statist. 18(1), pp. 50-60, 1947.
    """
    a, b = _validate_trials(d_a, d_b)
    pooled = np.concatenate([a, b])
    if np.all(pooled == pooled[0]):
        return TrialTestResult(
            statistic=a.size * b.size / 2, p_value=1.0, method="all-tied", smallest_p=1.0
        )
    has_ties = np.unique(pooled).size < pooled.size
    method = "asymptotic" if (a.size > 8 and b.size > 8) or has_ties else "exact"
    res = _sps.mannwhitneyu(b, a, alternative="two-sided", method="auto")
    ordered = np.sort(pooled)
    # Full separation: the k smallest pooled values in one arm (k = n_b: B lowest; k = n_a:
    # A lowest). With unequal arms and ties the two can differ; take the smaller p.
    smallest = min(
        float(
            _sps.mannwhitneyu(
                ordered[:k], ordered[k:], alternative="two-sided", method="auto"
            ).pvalue
        )
        for k in {b.size, a.size}
    )
    return TrialTestResult(
        statistic=float(res.statistic),
        p_value=float(res.pvalue),
        method=method,
        smallest_p=smallest,
    )


# --------------------------------------------------------------------------- change bounds


def _t_quantile(df: int, confidence: float) -> float:
    return float(_sps.t.ppf(confidence, max(df, 1)))


def unseen_share_upper(total: float, n: int, alpha: float) -> float:
    """Upper ``1 - alpha`` bound on the mean of ``n`` values in [0, 1] summing to ``total``.

    Clopper-Pearson with a continuous number of "successes":
    ``Beta(1 - alpha; total + 1, n - total)``; for ``total = 0`` it is
    ``1 - alpha ** (1 / n)``, the largest rate of something never seen in
    ``n`` calls. Among [0, 1] variables with a given mean the Bernoulli one is
    the most spread out, so the bound also holds for distances in [0, 1]. It
    is what keeps ``n`` quiet calls from certifying that a rare, large change
    (a mixture) is absent.
    """
    total = min(max(total, 0.0), float(n))
    if total >= n:
        return 1.0
    return float(_sps.beta.ppf(1.0 - alpha, total + 1.0, n - total))


def share_lower(total: float, n: int, alpha: float) -> float:
    """Lower ``1 - alpha`` bound on the mean of ``n`` values in [0, 1] summing to ``total``.

    The Clopper-Pearson counterpart of :func:`unseen_share_upper`:
    ``Beta(alpha; total, n - total + 1)``, 0 when ``total = 0``.
    """
    total = min(max(total, 0.0), float(n))
    if total <= 0:
        return 0.0
    return float(_sps.beta.ppf(alpha, total, n - total + 1.0))


def smallest_certifiable(n: int, alpha: float) -> float:
    """The smallest tolerance ``n`` calls per arm can certify with a bounded metric."""
    return unseen_share_upper(0.0, n, alpha)


def _two_sample_se(reps_a: FloatArray, reps_b: FloatArray) -> float:
    """Two-sample delete-one jackknife SE (Arvesen 1969) from each arm's replicates."""
    var = 0.0
    for reps in (reps_a, reps_b):
        m = reps.size
        var += (m - 1) / m * float(np.sum((reps - reps.mean()) ** 2))
    return math.sqrt(var)


def change_bound(
    distances: npt.ArrayLike, n_a: int, *, alpha: float = 0.05, bounded: bool = True
) -> Bound:
    """Confidence bounds on the change between arms, ``delta = cross - min(within_a, within_b)``.

    ``cross`` is the mean distance between calls of different arms, ``within_x``
    the mean distance between two calls of arm ``x``. ``delta`` is the larger of
    ``D_A = cross - within_a`` and ``D_B = cross - within_b``: how much further a
    call of one arm is from the other arm's calls than from its own arm's. It is
    linear in a mixture: if a share ``q`` of B's calls behave like some C,
    ``D_A = q * (d(A, C) - d(A, A'))``, so with a metric in [0, 1] meaning
    "probability mass moved" a tolerance ``0.2`` reads "at most 20% of the mass
    moved". (The energy statistic ``2 cross - within_a - within_b`` is quadratic
    in ``q`` and its noise floor grows with the change.)

    Each of ``D_A``, ``D_B`` is a two-sample U-statistic; its standard error is
    the two-sample delete-one-call jackknife, its bounds ``D -/+ t(df) * SE``
    with ``df = min(n_a, n_b) - 1`` (``- 2`` for the lower bound of the
    minimum-effect test, a small-sample correction calibrated at 5 calls).
    With ``bounded`` (metric values in [0, 1]) the upper bound of ``D_A`` is also at least
    ``unseen_share_upper(sum_j s_j, n_b) - within_a`` with ``s_j`` the mean
    distance of B's call ``j`` to A's calls: ``n`` calls that all look alike
    cannot exclude a change that shows in fewer than ~``3/n`` of the calls;
    and the lower bound at most ``share_lower(sum_j s_j, n_b) - within_a``.

    * ``upper`` is ``max(upper_A, upper_B)`` at level ``1 - alpha`` each: both
      must be below a tolerance (an intersection-union test, level ``alpha``);
    * ``lower`` is ``max(lower_A, lower_B)`` at level ``1 - alpha/2`` each
      (Bonferroni over the two): above a tolerance it shows the change exceeds it.

    Returns
    -------
    Bound
        ``estimate = delta``; ``se`` of the larger component.

    References
    ----------
    .. [1] J. N. Arvesen, "Jackknifing U-statistics", Ann. Math. Statist.
       40(6), pp. 2076-2100, 1969.
    .. [2] R. L. Berger, "Multiparameter hypothesis testing and acceptance
       sampling", Technometrics 24(4), pp. 295-300, 1982.
    """
    d = _validate_matrix(distances, n_a)
    return _change_bound(d, n_a, alpha=alpha, bounded=bounded)


def _change_bound(d: FloatArray, n_a: int, *, alpha: float, bounded: bool) -> Bound:
    n_b = d.shape[0] - n_a
    to_a = d[:, :n_a].sum(axis=1)  # each call's summed distance to the A calls
    to_b = d[:, n_a:].sum(axis=1)
    s_aa = to_a[:n_a].sum() / 2
    s_bb = to_b[n_a:].sum() / 2
    s_ab = to_b[:n_a].sum()
    w_a = s_aa / _pairs(n_a)
    w_b = s_bb / _pairs(n_b)
    cross = s_ab / (n_a * n_b)
    # Leave one call out: its within and cross pairs go.
    cross_drop_a = (s_ab - to_b[:n_a]) / ((n_a - 1) * n_b)
    cross_drop_b = (s_ab - to_a[n_a:]) / (n_a * (n_b - 1))
    wa_drop_a = (s_aa - to_a[:n_a]) / _pairs(n_a - 1)
    wb_drop_b = (s_bb - to_b[n_a:]) / _pairs(n_b - 1)
    n = min(n_a, n_b)
    t_eq = _t_quantile(n - 1, 1.0 - alpha)
    # One degree of freedom fewer for the minimum-effect bound: with 5 calls per arm the
    # jackknife SE of a change near the tolerance is too small often enough that t(n - 1)
    # called it "different" in 10% of runs (bench/calibration.py, near-tie swap); t(n - 2)
    # holds alpha there and costs nothing measurable from 10 calls on.
    t_diff = _t_quantile(n - 2, 1.0 - alpha / 2)
    parts = []
    for est, reps_a, reps_b, own, scores, m in (
        # D_A = cross - w_A; the unseen-change guard looks at B's calls' distances to A.
        (cross - w_a, cross_drop_a - wa_drop_a, cross_drop_b - w_a, w_a, to_a[n_a:] / n_a, n_b),
        (cross - w_b, cross_drop_a - w_b, cross_drop_b - wb_drop_b, w_b, to_b[:n_a] / n_b, n_a),
    ):
        se = _two_sample_se(reps_a, reps_b)
        upper, lower = est + t_eq * se, est - t_diff * se
        if bounded:
            total = float(scores.sum())
            upper = max(upper, unseen_share_upper(total, m, alpha) - own)
            # The same exact bound from below: with few calls the jackknife SE of 0/1-like
            # distances is itself noisy, and a "different" must not rest on it alone.
            lower = min(lower, share_lower(total, m, alpha / 2) - own)
        parts.append((est, se, lower, upper))
    est, se = max((p[0], p[1]) for p in parts)
    return Bound(
        estimate=float(est),
        se=float(se),
        lower=float(max(p[2] for p in parts)),
        effect_lower=float(max(p[2] for p in parts)),
        upper=float(min(1.0, max(p[3] for p in parts)) if bounded else max(p[3] for p in parts)),
        t_quantile=t_eq,
        df=n - 1,
    )


def _pairs(k: int) -> float:
    return k * (k - 1) / 2


def trial_change_bound(
    d_a: npt.ArrayLike, d_b: npt.ArrayLike, *, alpha: float = 0.05, bounded: bool = True
) -> Bound:
    """Seed design: bounds on ``mean(d_b) - mean(d_a)``, the trials' distances to the baseline.

    B's trials further from (or closer to) an A baseline than A's own trials
    is a change either way, so the effect is ``|estimate|``. Standard error
    ``sqrt(var_a / n_a + var_b / n_b)`` (the jackknife of a difference of
    means), ``t`` with ``min(n_a, n_b) - 1`` degrees of freedom. ``lower`` and
    ``upper`` are at level ``1 - alpha`` each (for the two one-sided
    equivalence tests); with ``bounded`` they are widened by the unseen-change
    guard of :func:`unseen_share_upper` on each arm's distances.
    ``effect_lower`` (lower bound of ``|estimate|``) uses ``1 - alpha/2`` per side.
    """
    a, b = _validate_trials(d_a, d_b)
    na, nb = a.size, b.size
    est = float(b.mean() - a.mean())
    se = math.sqrt(float(a.var(ddof=1)) / na + float(b.var(ddof=1)) / nb)
    n = min(na, nb)
    t_eq = _t_quantile(n - 1, 1.0 - alpha)
    t_diff = _t_quantile(n - 1, 1.0 - alpha / 2)
    upper, lower = est + t_eq * se, est - t_eq * se
    if bounded:
        upper = max(upper, unseen_share_upper(float(b.sum()), nb, alpha) - float(a.mean()))
        lower = min(lower, float(b.mean()) - unseen_share_upper(float(a.sum()), na, alpha))
    return Bound(
        estimate=est,
        se=se,
        lower=lower,
        upper=upper,
        t_quantile=t_eq,
        df=n - 1,
        effect_lower=max(est - t_diff * se, -(est + t_diff * se)),
    )


# --------------------------------------------------------------------------- decision


def recommend_trials(
    bound: Bound, tolerance: float, n: int, *, alpha: float, bounded: bool
) -> int | None:
    """Trials per arm at which the bound that blocks a verdict would likely clear the tolerance.

    Only when the *width* of the bound is what blocks: for an estimate below the
    tolerance, the ``N`` where ``estimate + t(N - 1) * SE * sqrt(n / N)`` (and,
    with ``bounded``, the unseen-change guard ``1 - alpha ** (1 / N)``) fall
    below it; for an estimate above it, the ``N`` where the lower bound
    ``estimate - t * SE * sqrt(n / N)`` clears it. Assumes the estimate stays
    where it is and the SE shrinks like ``1 / sqrt(N)``.

    Returns
    -------
    int or None
        ``None`` when more trials would not help (estimate at the tolerance
        or zero/infinite SE with nothing else blocking), or more than
        :data:`MAX_RECOMMENDED_TRIALS` would be needed.
    """
    est, se = abs(bound.estimate), bound.se
    if not (math.isfinite(est) and math.isfinite(se)):
        return None
    gap = abs(tolerance - est)
    if gap <= 1e-12 * max(1.0, tolerance):
        return None
    need = float(n + 1)
    if est < tolerance and bounded:
        # 1 - alpha ** (1/N) < tolerance - est  (the guard with nothing seen)
        room = tolerance - est
        need = max(need, math.log(alpha) / math.log1p(-room) if room < 1 else need)
    if se > 0:
        target = need
        for _ in range(50):  # fixed point: the t quantile depends on the N it helps choose
            tq = _t_quantile(max(math.ceil(target) - 1, 1), 1 - alpha)
            new = max(need, n * (tq * se / gap) ** 2)
            if abs(new - target) < 0.01:
                break
            target = new
        need = target
    if need > MAX_RECOMMENDED_TRIALS:
        return None
    return int(max(math.ceil(need), n + 1))


def decide(
    *,
    p_value: float,
    alpha: float,
    bound: Bound,
    tolerance: float,
    n: int,
    two_sided: bool = False,
    bounded: bool = True,
    can_certify: bool = True,
) -> Decision:
    """Combine the difference test and the change bounds into one verdict.

    Rules (strict inequalities as written), the same on every path:

    * ``equivalence_shown = bound.upper < tolerance`` (with ``two_sided``, also
      ``bound.lower > -tolerance``) and the metric can see every change
      (``can_certify``);
    * ``difference_detected = p_value <= alpha`` and ``bound.effect_lower >
      tolerance``: significant **and** larger than the tolerance (a
      minimum-effect test), so noise-level or tiny differences are not
      *different*;
    * otherwise ``"inconclusive"``, with :func:`recommend_trials` when more
      trials would help. The two assertions never both pass on the same data
      (the upper bound is at least the lower one).

    References
    ----------
    .. [1] D. J. Schuirmann, "A comparison of the two one-sided tests
       procedure and the power approach for assessing the equivalence of
       average bioavailability", J. Pharmacokinet. Biopharm. 15(6),
       pp. 657-680, 1987.
    .. [2] J. L. Hodges and E. L. Lehmann, "Testing the approximate validity
       of statistical hypotheses", J. R. Stat. Soc. B 16(2), pp. 261-268, 1954.
    """
    equivalent = bool(
        can_certify and bound.upper < tolerance and (not two_sided or bound.lower > -tolerance)
    )
    different = bool(p_value <= alpha and bound.effect_lower > tolerance)
    verdict: Verdict
    if different:
        verdict = "different"
    elif equivalent:
        verdict = "equivalent"
    else:
        verdict = "inconclusive"
    recommended = (
        recommend_trials(bound, tolerance, n, alpha=alpha, bounded=bounded)
        if verdict == "inconclusive" and (can_certify or abs(bound.estimate) > tolerance)
        else None
    )
    return Decision(
        verdict=verdict,
        difference_detected=different,
        equivalence_shown=equivalent,
        recommended_trials=recommended,
    )
