"""Difference tests: is the change between the arms more than chance?

All-pairs design: a permutation test of the Mann-Whitney U of cross-arm
against within-arm pair distances, relabelling calls. Seed design: the
two-sided Mann-Whitney test of the trials' distances to one baseline call.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt
from scipy import stats as _sps

from ..errors import RolecheckUsageError
from .strata import all_labellings
from .validation import validate_matrix, validate_trials

__all__ = [
    "MAX_EXACT_RELABELLINGS",
    "N_RESAMPLES",
    "PermutationResult",
    "TrialTestResult",
    "baseline_test",
    "permutation_test",
]

FloatArray = npt.NDArray[np.float64]
MAX_EXACT_RELABELLINGS = 10_000
N_RESAMPLES = 9_999
# Bounds the memory of one batch of relabellings (rows x calls float64 values).
_BATCH_CELLS = 2_000_000


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
    d = validate_matrix(distances, n_a)
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
        z = all_labellings(n, n_a)
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
    a, b = validate_trials(d_a, d_b)
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
