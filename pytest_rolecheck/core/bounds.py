"""Confidence bounds on the size of the change between two arms.

All-pairs design: :func:`change_bound` on ``cross - min(within_a, within_b)``
(two-sample jackknife; for the text metrics over the room ``1 - within``); seed
design: :func:`trial_change_bound` on ``mean(B) - mean(A)`` of the distances to
the baseline. With a metric in [0, 1] both are widened by the unseen-change guard
(:func:`unseen_share_upper`).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt
from scipy import stats as _sps

from .limits import DEFAULT_ALPHA
from .validation import validate_matrix, validate_trials

__all__ = [
    "Bound",
    "change_bound",
    "share_lower",
    "smallest_certifiable",
    "t_quantile",
    "trial_change_bound",
    "unseen_share_upper",
]

FloatArray = npt.NDArray[np.float64]


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


def _finite_or_none(value: float) -> float | None:
    return value if math.isfinite(value) else None


def t_quantile(df: int, confidence: float) -> float:
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
    distances: npt.ArrayLike,
    n_a: int,
    *,
    alpha: float = DEFAULT_ALPHA,
    bounded: bool = True,
    relative: bool = False,
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

    With ``relative`` (the text metrics, always with ``bounded``) each component is
    divided by the room its arm leaves, ``R_A = D_A / (1 - within_a)``: the share
    of answers that moved, counting an answer rewritten into a text at distance 1
    from the arm's own as one. Two sampled answers of one arm already differ in
    most of their characters, so ``D_A`` of even a complete rewrite is at most
    ``1 - within_a`` (~0.25); ``R_A`` is ``q`` for a share ``q`` of answers moved
    that far, still linear in ``q``, and 0 for A/A. The jackknife replicates are
    ratios too (the within term of a dropped call leaves the denominator as well),
    and the unseen-change guard is the Clopper-Pearson bound on the relative
    excess ``sum_j (s_j - within_a) / (1 - within_a) = n_b * R_A``: ``n`` calls
    that moved nowhere cannot exclude a share ``1 - alpha ** (1/n)`` that moved.

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
    d = validate_matrix(distances, n_a)
    return _change_bound(d, n_a, alpha=alpha, bounded=bounded, relative=relative)


def _change_bound(
    d: FloatArray, n_a: int, *, alpha: float, bounded: bool, relative: bool = False
) -> Bound:
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
    t_eq = t_quantile(n - 1, 1.0 - alpha)
    # One degree of freedom fewer for the minimum-effect bound: with 5 calls per arm the
    # jackknife SE of a change near the tolerance is too small often enough that t(n - 1)
    # called it "different" in 10% of runs (bench/calibration.py, near-tie swap); t(n - 2)
    # holds alpha there and costs nothing measurable from 10 calls on.
    t_diff = t_quantile(n - 2, 1.0 - alpha / 2)
    parts = []
    for cross_a, own_a, cross_b, own_b, own, scores, m in (
        # D_A = cross - w_A; the unseen-change guard looks at B's calls' distances to A.
        (cross_drop_a, wa_drop_a, cross_drop_b, w_a, w_a, to_a[n_a:] / n_a, n_b),
        (cross_drop_a, w_b, cross_drop_b, wb_drop_b, w_b, to_b[:n_a] / n_b, n_a),
    ):
        est = cross - own
        reps_a, reps_b = cross_a - own_a, cross_b - own_b
        total = float(scores.sum())
        if relative:
            est = float(_per_room(est, own))
            reps_a, reps_b = _per_room(reps_a, own_a), _per_room(reps_b, own_b)
            total, own = m * est, 0.0  # the excess in the same units: what the guard bounds
        se = _two_sample_se(reps_a, reps_b)
        upper, lower = est + t_eq * se, est - t_diff * se
        if bounded:
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


def _per_room(change: npt.ArrayLike, own: npt.ArrayLike) -> FloatArray:
    """``change / (1 - own)``: the change as a share of the room the arm's spread leaves.

    An arm whose calls are all at distance 1 leaves none: the tiny floor keeps the values
    finite, and the comparison refuses to certify there (its room check), as it does for a
    change in characters.
    """
    room = np.maximum(1.0 - np.asarray(own, dtype=np.float64), 1e-12)
    return np.asarray(np.asarray(change, dtype=np.float64) / room, dtype=np.float64)


def _pairs(k: int) -> float:
    return k * (k - 1) / 2


def trial_change_bound(
    d_a: npt.ArrayLike, d_b: npt.ArrayLike, *, alpha: float = DEFAULT_ALPHA, bounded: bool = True
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
    a, b = validate_trials(d_a, d_b)
    na, nb = a.size, b.size
    est = float(b.mean() - a.mean())
    se = math.sqrt(float(a.var(ddof=1)) / na + float(b.var(ddof=1)) / nb)
    n = min(na, nb)
    t_eq = t_quantile(n - 1, 1.0 - alpha)
    t_diff = t_quantile(n - 1, 1.0 - alpha / 2)
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
