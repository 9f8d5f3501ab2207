"""The verdict rule shared by every comparison: :func:`decide`, and the trials advice."""

from __future__ import annotations

import math
from dataclasses import dataclass

from .bounds import Bound, t_quantile
from .limits import MAX_RECOMMENDED_TRIALS
from .verdict import Verdict

__all__ = ["Decision", "decide", "recommend_trials", "verdict_of"]


@dataclass(frozen=True, slots=True)
class Decision:
    """Outcome of :func:`decide`."""

    verdict: Verdict
    difference_detected: bool
    equivalence_shown: bool
    recommended_trials: int | None


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
            tq = t_quantile(max(math.ceil(target) - 1, 1), 1 - alpha)
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
    verdict = verdict_of(
        p_value=p_value,
        alpha=alpha,
        lower=bound.effect_lower,
        upper=bound.upper,
        tolerance=tolerance,
        can_certify=can_certify and (not two_sided or bound.lower > -tolerance),
    )
    recommended = (
        recommend_trials(bound, tolerance, n, alpha=alpha, bounded=bounded)
        if verdict is Verdict.INCONCLUSIVE and (can_certify or abs(bound.estimate) > tolerance)
        else None
    )
    return Decision(
        verdict=verdict,
        difference_detected=verdict is Verdict.DIFFERENT,
        equivalence_shown=verdict is Verdict.EQUIVALENT,
        recommended_trials=recommended,
    )


def verdict_of(
    *,
    p_value: float,
    alpha: float,
    lower: float,
    upper: float,
    tolerance: float,
    can_certify: bool = True,
) -> Verdict:
    """The verdict rule of every comparison kind, on bounds of the size of the change.

    ``different`` iff ``p_value <= alpha`` and ``lower > tolerance``; else
    ``equivalent`` iff ``upper < tolerance`` and ``can_certify``; else
    ``inconclusive``. An exactly known change (deterministic backend) passes it as
    both bounds with ``p_value = 0``.
    """
    if p_value <= alpha and lower > tolerance:
        return Verdict.DIFFERENT
    if can_certify and upper < tolerance:
        return Verdict.EQUIVALENT
    return Verdict.INCONCLUSIVE
