"""Prompt sets: one comparison over many prompts ("cases"), with a per-case breakdown.

Input: for every case ``c`` a distance matrix of its ``n_a + n_b`` calls (arm A
first), built with the same per-pair metric as a single-prompt comparison
(:func:`case_distances` builds them from parsed calls). Output: a
:class:`PromptSetResult`. Everything here is numbers only (numpy/scipy).

The rule, in formulas
---------------------
Per case, with ``w_A``, ``w_B`` the mean within-arm pair distances and ``x``
the mean cross-arm distance (each an unbiased U-statistic)::

    D_A = x - w_A,   D_B = x - w_B,   delta_c = max(D_A, D_B) = x - min(w_A, w_B)

the single-prompt change: when a share ``q`` of B's answers is replaced,
``D_A`` grows like ``q`` (the energy statistic ``D_A + D_B`` like ``q**2``).
The set change is ``delta = mean_c delta_c``.

*Inference target: the population of prompts the cases stand for.* The cases
are taken as a sample from the prompts the user cares about, so the bounds
resample over cases: with ``m`` cases and ``s(.)`` the sample standard
deviation over cases,

* ``upper = max(mean(delta_c) + t(m-1, 1-alpha) s(delta_c) / sqrt(m), G)``
  with the *unseen-case guard* ``G`` (bounded metrics) the Clopper-Pearson
  upper bound ``Beta(1-alpha; S+1, m-S)``, ``S = sum_c clip(delta_c, 0, 1)``:
  ``m`` quiet cases cannot exclude a change confined to fewer than about
  ``3/m`` of the prompts (with nothing seen, ``G = 1 - alpha**(1/m)``, so at
  least 14 cases are needed to certify 0.2). ``E[delta_c]`` is at least the
  true per-case change (a maximum of unbiased estimates), so the bound is
  conservative;
* ``lower = max_X min(mean(D_X) - t(m-1, 1-alpha/2) s(D_X) / sqrt(m),
  Beta(alpha/2; S_X, m-S_X+1))`` over ``X in {A, B}`` (Bonferroni over the
  two): ``D_X`` is unbiased and at most ``delta_c``, so this is a lower bound
  on the set change without the upward bias of ``delta_c``;
* the difference test is a stratified permutation test: arm labels are
  permuted *within* each case (cases are never mixed), statistic
  ``sum_c delta_c``; exact over every combination of labellings when their
  number is at most ``max_exact``, otherwise ``n_resamples`` draws from a
  generator seeded by the data's shape (so a replay gives the same p forever),
  ``p = (1 + #{T* >= T}) / (1 + n_resamples)``. Under "no case changed" the
  calls of a case are exchangeable, so the test is exact for these cases;
* the verdict is :func:`~pytest_rolecheck.core.stats.decide` with ``n = m``:
  *equivalent* iff ``upper < tolerance``; *different* iff ``p <= alpha`` and
  ``lower > tolerance`` (a minimum-effect test); else *inconclusive*, never
  equivalence from non-significance. Its recommendation counts cases.

Per case: ``delta_c``, the exact permutation p-value over the
``C(n_a + n_b, n_a)`` labellings of the case (random labellings above
``max_exact``) and Benjamini-Hochberg q-values across the non-deterministic
cases; a case is ``"changed"`` when ``q <= alpha``. A deterministic case
(every within-arm distance exactly 0 in both arms) gets no statistics, as on
the single-prompt path: ``"no change"`` when the arms are identical,
``"changed"`` when they differ.
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Final, Literal

import numpy as np
import numpy.typing as npt
from scipy import stats as _sps

from ..errors import RolecheckUsageError
from .bounds import Bound, share_lower, unseen_share_upper
from .decision import decide
from .distances import DEFAULT_METRIC, Metric, distance_matrix
from .limits import DEFAULT_ALPHA, DEFAULT_TOLERANCE, MIN_TRIALS_PER_CASE
from .parse import ParsedCall
from .strata import at_least, benjamini_hochberg, case_null
from .validation import validate_options
from .verdict import Verdict

__all__ = [
    "MAX_EXACT_LABELLINGS",
    "MIN_CALLS_PER_CASE_ARM",
    "MIN_CASES",
    "N_RESAMPLES",
    "CaseResult",
    "CaseStatus",
    "PromptSetResult",
    "benjamini_hochberg",
    "case_distances",
    "compare_prompt_set",
]

FloatArray = npt.NDArray[np.float64]
CaseStatus = Literal["changed", "no change", "not flagged"]

#: Fewest cases: the bounds resample over cases and need a spread.
MIN_CASES = 2
#: Fewest calls per arm of one case (one definition: core.limits).
MIN_CALLS_PER_CASE_ARM: Final = MIN_TRIALS_PER_CASE
#: Enumerate every labelling (per case, and every combination over the set) up to this many.
MAX_EXACT_LABELLINGS = 20_000
#: Random labellings per case (and draws of the set test) above that.
N_RESAMPLES = 4_999


# --------------------------------------------------------------------------- results


@dataclass(frozen=True, slots=True)
class CaseResult:
    """One case of a prompt set.

    ``change`` is ``delta_c = cross - min(within_a, within_b)``; ``p_value`` the
    within-case permutation p-value and ``q_value`` its Benjamini-Hochberg
    adjustment across the set's non-deterministic cases (both ``None`` for a
    deterministic case). ``status`` is ``"changed"`` (``q_value <= alpha``, or a
    deterministic case whose arms differ), ``"no change"`` (deterministic,
    identical arms) or ``"not flagged"``.
    """

    case_id: str
    n_a: int
    n_b: int
    within_a: float
    within_b: float
    cross: float
    change: float
    p_value: float | None
    q_value: float | None
    exact: bool
    deterministic: bool
    status: CaseStatus


@dataclass(frozen=True, slots=True)
class PromptSetResult:
    """One comparison over a prompt set (see the module docstring for the rule).

    ``change`` is the set change ``mean_c delta_c``; ``bound`` holds it with the
    case-resampling bounds (``upper``: equivalence, ``effect_lower``: minimum
    effect; ``df = m - 1``); ``guard`` is the unseen-case bound included in
    ``bound.upper`` (``nan`` for an unbounded metric). ``p_value`` comes from the
    stratified permutation test, ``smallest_p`` is the smallest it can be.
    ``recommended_cases`` is how many cases (same trials) would likely settle an
    inconclusive verdict. ``cases`` keeps the input order.
    """

    verdict: Verdict
    change: float
    bound: Bound
    guard: float
    p_value: float
    exact: bool
    n_relabellings: int
    smallest_p: float
    seed: int | None
    alpha: float
    tolerance: float
    difference_detected: bool
    equivalence_shown: bool
    recommended_cases: int | None
    cases: tuple[CaseResult, ...]

    @property
    def n_cases(self) -> int:
        """Number of cases."""
        return len(self.cases)

    @property
    def n_calls(self) -> int:
        """Calls over both arms and every case."""
        return sum(c.n_a + c.n_b for c in self.cases)


@dataclass(frozen=True, slots=True)
class _Case:
    """One validated case: its parts, observed statistics and labelling null."""

    case_id: str
    d: FloatArray
    n_a: int
    within_a: float
    within_b: float
    cross: float

    @property
    def n_b(self) -> int:
        return int(self.d.shape[0]) - self.n_a

    @property
    def change(self) -> float:
        return self.cross - min(self.within_a, self.within_b)

    @property
    def deterministic(self) -> bool:
        return self.within_a == 0.0 and self.within_b == 0.0


# --------------------------------------------------------------------------- validation


def _validate_case_matrix(case_id: object, value: object) -> tuple[FloatArray, int]:
    if not isinstance(value, tuple | list) or len(value) != 2:
        raise RolecheckUsageError(
            f"case {case_id!r}: expected a (distance_matrix, n_a) pair, got "
            f"{type(value).__name__}; build it with case_distances(calls_a, calls_b, metric)."
        )
    d = np.asarray(value[0], dtype=np.float64)
    n_a = value[1]
    if d.ndim != 2 or d.shape[0] != d.shape[1]:
        raise RolecheckUsageError(
            f"case {case_id!r}: expected a square distance matrix, got shape {d.shape}; build "
            f"it with distance_matrix(calls_a + calls_b, metric)."
        )
    n = d.shape[0]
    if isinstance(n_a, bool) or not isinstance(n_a, int | np.integer):
        raise RolecheckUsageError(f"case {case_id!r}: n_a must be an int, got {n_a!r}.")
    n_a = int(n_a)
    low = MIN_CALLS_PER_CASE_ARM
    if n_a < low or n - n_a < low:
        raise RolecheckUsageError(
            f"case {case_id!r} has {n_a} + {n - n_a} calls; every case needs at least {low} "
            f"calls per arm (a within-arm distance needs a pair). Run more trials per case."
        )
    if not np.all(np.isfinite(d)) or np.any(d < 0):
        raise RolecheckUsageError(
            f"case {case_id!r}: the distance matrix contains negative, NaN or infinite values; "
            "a metric must return a finite number >= 0 for every pair of calls."
        )
    scale = max(1.0, float(np.max(d)))
    if not np.allclose(d, d.T, rtol=0, atol=1e-9 * scale) or np.any(np.diag(d) != 0):
        raise RolecheckUsageError(
            f"case {case_id!r}: the distance matrix must be symmetric with a zero diagonal."
        )
    return (d + d.T) / 2, n_a


def _validate_cases(cases: object) -> list[_Case]:
    if not isinstance(cases, Mapping):
        raise RolecheckUsageError(
            f"cases must be a mapping {{case_id: (distance_matrix, n_a)}}, got "
            f"{type(cases).__name__}."
        )
    if len(cases) < MIN_CASES:
        raise RolecheckUsageError(
            f"a prompt set needs at least {MIN_CASES} cases, got {len(cases)}; compare a "
            "single prompt with compare(responses_a, responses_b) instead."
        )
    out = []
    for case_id, value in cases.items():
        if not isinstance(case_id, str) or not case_id:
            raise RolecheckUsageError(f"case ids must be non-empty strings, got {case_id!r}.")
        d, n_a = _validate_case_matrix(case_id, value)
        wa, wb, cross = _means(d, n_a)
        out.append(_Case(case_id, d, n_a, wa, wb, cross))
    return out


def _validate_engine(max_exact: int, n_resamples: int, seed: int | None) -> None:
    if isinstance(max_exact, bool) or not isinstance(max_exact, int) or max_exact < 0:
        raise RolecheckUsageError(f"max_exact={max_exact!r}: expected an int >= 0.")
    if isinstance(n_resamples, bool) or not isinstance(n_resamples, int) or n_resamples < 1:
        raise RolecheckUsageError(f"n_resamples={n_resamples!r}: expected an int >= 1.")
    if seed is not None and (isinstance(seed, bool) or not isinstance(seed, int) or seed < 0):
        raise RolecheckUsageError(f"seed={seed!r}: expected None (derived) or an int >= 0.")


# --------------------------------------------------------------------------- per case


def _means(d: FloatArray, n_a: int) -> tuple[float, float, float]:
    n_b = d.shape[0] - n_a
    s_aa = d[:n_a, :n_a].sum() / 2
    s_bb = d[n_a:, n_a:].sum() / 2
    return (
        float(s_aa / math.comb(n_a, 2)),
        float(s_bb / math.comb(n_b, 2)),
        float(d[:n_a, n_a:].sum() / (n_a * n_b)),
    )


# --------------------------------------------------------------------------- set level


def _shape_seed(cases: Sequence[_Case]) -> int:
    """A seed from the sorted case sizes only: the same data shape draws the same labellings."""
    shape = ";".join(f"{c.n_a}+{c.n_b}" for c in cases)
    return int(hashlib.sha256(shape.encode()).hexdigest()[:15], base=16)


def _stratified_p(
    observed: float,
    nulls: Sequence[FloatArray],
    exact: Sequence[bool],
    max_exact: int,
    n_resamples: int,
    rng: np.random.Generator,
) -> tuple[float, bool, int, float]:
    """p-value of ``sum_c delta_c`` with labels permuted within each case.

    Returns ``(p, exact, n_relabellings, smallest_p)``.
    """
    sizes = [v.size for v in nulls]
    if all(exact) and math.prod(sizes) <= max_exact:
        dist = np.zeros(1)
        for v in nulls:  # every combination: outer sums, at most max_exact values
            dist = (dist[:, None] + v[None, :]).ravel()
        total = dist.size
        hits = int(np.count_nonzero(at_least(dist, observed)))
        smallest = int(np.count_nonzero(at_least(dist, float(dist.max())))) / total
        return hits / total, True, total, smallest
    draws = np.zeros(n_resamples)
    for v, is_exact in zip(nulls, exact, strict=True):
        # An enumerated case contributes a uniform labelling; a sampled one its own draws
        # (already uniform and independent of the other cases).
        draws += v[rng.integers(v.size, size=n_resamples)] if is_exact else v[:n_resamples]
    hits = int(np.count_nonzero(at_least(draws, observed)))
    return (1 + hits) / (1 + n_resamples), False, n_resamples, 1 / (1 + n_resamples)


def _set_bound(cases: Sequence[_Case], alpha: float, bounded: bool) -> tuple[Bound, float]:
    """Case-resampling bounds on the set change (module docstring); returns (bound, guard)."""
    m = len(cases)
    delta = np.array([c.change for c in cases])
    parts = np.array([[c.cross - c.within_a, c.cross - c.within_b] for c in cases])
    se = float(delta.std(ddof=1) / math.sqrt(m))
    t_eq = float(_sps.t.ppf(1 - alpha, m - 1))
    t_diff = float(_sps.t.ppf(1 - alpha / 2, m - 1))
    upper = float(delta.mean()) + t_eq * se
    guard = math.nan
    lowers = []
    for col in parts.T:
        low = float(col.mean() - t_diff * col.std(ddof=1) / math.sqrt(m))
        if bounded:
            # Per-case changes are left-skewed when most cases move a little and a few not
            # at all; the t bound alone then said "different" at the tolerance in 10% of
            # 10-case sets (bench/prompt_sets.py). The exact bound costs power, not validity.
            low = min(low, share_lower(float(np.clip(col, 0, 1).sum()), m, alpha / 2))
        lowers.append(low)
    if bounded:
        guard = unseen_share_upper(float(np.clip(delta, 0, 1).sum()), m, alpha)
        upper = min(1.0, max(upper, guard))
    lower = max(lowers)
    bound = Bound(
        estimate=float(delta.mean()),
        se=se,
        lower=lower,
        upper=upper,
        t_quantile=t_eq,
        df=m - 1,
        effect_lower=lower,
    )
    return bound, guard


def _case_results(
    cases: Sequence[_Case], p_values: Mapping[str, tuple[float, bool]], alpha: float
) -> tuple[CaseResult, ...]:
    statistical = [c.case_id for c in cases if not c.deterministic]
    q = dict(
        zip(statistical, benjamini_hochberg([p_values[i][0] for i in statistical]), strict=True)
    )
    out = []
    for c in cases:
        status: CaseStatus
        if c.deterministic:
            status = "changed" if c.cross > 0 else "no change"
        else:
            status = "changed" if q[c.case_id] <= alpha else "not flagged"
        p, exact = p_values[c.case_id] if not c.deterministic else (None, True)
        out.append(
            CaseResult(
                case_id=c.case_id,
                n_a=c.n_a,
                n_b=c.n_b,
                within_a=c.within_a,
                within_b=c.within_b,
                cross=c.cross,
                change=c.change,
                p_value=p,
                q_value=None if c.deterministic else float(q[c.case_id]),
                exact=exact,
                deterministic=c.deterministic,
                status=status,
            )
        )
    return tuple(out)


def compare_prompt_set(
    cases: Mapping[str, tuple[npt.ArrayLike, int]],
    *,
    alpha: float = DEFAULT_ALPHA,
    tolerance: float = DEFAULT_TOLERANCE,
    bounded: bool = True,
    can_certify: bool = True,
    seed: int | None = None,
    max_exact: int = MAX_EXACT_LABELLINGS,
    n_resamples: int = N_RESAMPLES,
) -> PromptSetResult:
    """Compare two arms over a set of prompts: one verdict plus a per-case breakdown.

    Parameters
    ----------
    cases : mapping of str to (array_like, int)
        ``{case_id: (distances, n_a)}``: each case's symmetric, zero-diagonal
        distance matrix of its ``n_a + n_b`` calls, arm A first (at least
        :data:`MIN_CALLS_PER_CASE_ARM` per arm), at least :data:`MIN_CASES`
        cases. See :func:`case_distances`.
    alpha : float, default 0.05
        Level of the difference test, ``1 - alpha`` confidence of the bounds
        and the false discovery rate of the per-case flags.
    tolerance : float, default DEFAULT_TOLERANCE
        The largest set change that still counts as equivalent.
    bounded : bool, default True
        The metric lies in [0, 1] (``js``, ``tv``, ``first_token``): apply the
        unseen-case guard and the exact lower bounds.
    can_certify : bool, default True
        False for a metric blind to some changes: never *equivalent*.
    seed : int, optional
        Seed of the random labellings; by default derived from the cases'
        sizes, so the same data always give the same p-values.
    max_exact : int, optional
        Enumerate labellings (per case, and their combinations over the set)
        when there are at most this many.
    n_resamples : int, optional
        Random labellings otherwise.

    Returns
    -------
    PromptSetResult

    Raises
    ------
    RolecheckUsageError
        Fewer than two cases, a case with fewer than two calls in an arm, an
        invalid distance matrix, or invalid options.

    References
    ----------
    .. [1] I. Gao, P. Liang and C. Guestrin, "Model equality testing: which
       model is this API serving?", ICLR 2025 (pooling two-sample evidence
       over prompts).
    .. [2] P. Good, "Permutation, Parametric, and Bootstrap Tests of
       Hypotheses", 3rd ed., Springer, 2005, sec. 3.6 (permutations within
       strata).
    .. [3] Y. Benjamini and Y. Hochberg, J. R. Stat. Soc. B 57(1), pp.
       289-300, 1995.
    .. [4] R. L. Berger, "Multiparameter hypothesis testing and acceptance
       sampling", Technometrics 24(4), pp. 295-300, 1982.
    """
    validate_options(alpha=alpha, tolerance=tolerance, design="all-pairs")
    _validate_engine(max_exact, n_resamples, seed)
    checked = _validate_cases(cases)
    ordered = sorted(checked, key=lambda c: c.case_id)  # random draws never depend on order
    used_seed = _shape_seed(ordered) if seed is None else seed
    rng = np.random.default_rng(used_seed)
    nulls, exact, p_values = [], [], {}
    for c in ordered:
        null, is_exact = case_null(c.d, c.n_a, max_exact, n_resamples, rng)
        hits = int(np.count_nonzero(at_least(null, c.change)))
        p_values[c.case_id] = (
            hits / null.size if is_exact else (1 + hits) / (1 + null.size),
            is_exact,
        )
        nulls.append(null)
        exact.append(is_exact)
    observed = float(sum(c.change for c in ordered))
    p, set_exact, n_relabel, smallest = _stratified_p(
        observed, nulls, exact, max_exact, n_resamples, rng
    )
    bound, guard = _set_bound(checked, alpha, bounded)
    decision = decide(
        p_value=p,
        alpha=alpha,
        bound=bound,
        tolerance=tolerance,
        n=len(checked),
        bounded=bounded,
        can_certify=can_certify,
    )
    return PromptSetResult(
        verdict=decision.verdict,
        change=bound.estimate,
        bound=bound,
        guard=guard,
        p_value=p,
        exact=set_exact,
        n_relabellings=n_relabel,
        smallest_p=smallest,
        seed=None if set_exact and all(exact) else used_seed,
        alpha=alpha,
        tolerance=tolerance,
        difference_detected=decision.difference_detected,
        equivalence_shown=decision.equivalence_shown,
        recommended_cases=decision.recommended_trials,
        cases=_case_results(checked, p_values, alpha),
    )


def case_distances(
    calls_a: Mapping[str, Sequence[ParsedCall]],
    calls_b: Mapping[str, Sequence[ParsedCall]],
    metric: str | Metric = DEFAULT_METRIC,
) -> dict[str, tuple[FloatArray, int]]:
    """Per-case distance matrices for :func:`compare_prompt_set`, in A's key order.

    Raises
    ------
    RolecheckUsageError
        The two mappings do not have the same case ids (the message names the
        ids missing on each side), or :func:`distance_matrix` refuses a call.
    """
    only_a = [k for k in calls_a if k not in calls_b]
    only_b = [k for k in calls_b if k not in calls_a]
    if only_a or only_b:
        raise RolecheckUsageError(
            "both arms must cover the same cases; "
            + "; ".join(
                f"only in {arm}: {', '.join(map(repr, ids[:5]))}"
                + (f" and {len(ids) - 5} more" if len(ids) > 5 else "")
                for arm, ids in (("A", only_a), ("B", only_b))
                if ids
            )
            + ". Run every case in both arms."
        )
    return {
        k: (distance_matrix([*calls_a[k], *calls_b[k]], metric), len(calls_a[k])) for k in calls_a
    }
