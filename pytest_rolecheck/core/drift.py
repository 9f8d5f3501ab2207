"""Suite-level drift: which arms changed since they were recorded, with false alarms controlled.

Each arm (a variant, or a case of a prompt set) is compared live against its
recorded calls by the usual engine; this module takes those per-arm numbers
and decides for the whole session. The rule, in two parts:

1. **Family-wise error control (Holm).** The p-values of all arms are adjusted
   by Holm's step-down procedure, so that the probability of flagging *any*
   unchanged arm in a night is at most ``alpha``. Holm, not Benjamini-Hochberg:
   every flagged arm is a page and an investigation, so the guarantee must be
   that a named arm really changed. BH bounds only the expected *share* of
   wrongly named arms among the flags; once one arm truly drifts it lets
   unchanged arms ride along, and more arms mean more of them. Holm is valid
   under any dependence between the arms (arms of one test share a server)
   and is uniformly more powerful than Bonferroni.
2. **A minimum effect.** Significance alone is not drift: more jitter, or a
   tiny but real shift, is detectable with enough calls. An arm is
   ``drifted`` only when its Holm-adjusted p-value is at most ``alpha`` *and*
   the lower confidence bound of its change exceeds its tolerance (the
   minimum-effect test, the same rule the single comparison uses to say
   "different"). Holm-significant with the lower bound at or below the
   tolerance is ``detectable, below margin``; anything else is ``no drift``.

The family pages (``drifted`` is true) when at least one arm is ``drifted``.
Because the second condition only removes flags, the family-wise error of the
page stays at most ``alpha``.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any, Final, Literal

import numpy as np
import numpy.typing as npt

from ..errors import RolecheckUsageError
from .limits import DEFAULT_ALPHA
from .validation import validate_alpha

DriftStatus = Literal["drifted", "detectable, below margin", "no drift"]
DRIFTED: Final[DriftStatus] = "drifted"
BELOW_MARGIN: Final[DriftStatus] = "detectable, below margin"
NO_DRIFT: Final[DriftStatus] = "no drift"
DRIFT_STATUSES: Final = (DRIFTED, BELOW_MARGIN, NO_DRIFT)


@dataclass(frozen=True)
class ArmDrift:
    """One arm's live-vs-recorded comparison, as plain numbers.

    Attributes
    ----------
    arm : str
        A unique id of the arm in the session (e.g. ``"test_x.py::test_y[B]"``).
    p_value : float
        The p-value of "live differs from recorded", in [0, 1].
    change : float
        The estimated size of the change, in the metric's units.
    change_lower, change_upper : float
        Confidence bounds on the change; ``change_lower`` is the lower bound
        of the minimum-effect test (``Comparison.change_lower``).
    tolerance : float
        The largest change that is not drift, in the metric's units (> 0).
    """

    arm: str
    p_value: float
    change: float
    change_lower: float
    change_upper: float
    tolerance: float


@dataclass(frozen=True)
class ArmDriftDecision:
    """One arm's verdict within the family: its input, Holm-adjusted p-value and status."""

    result: ArmDrift
    adjusted_p: float
    status: DriftStatus

    def to_dict(self) -> dict[str, Any]:
        """Return the arm's numbers and status as a JSON-able dict."""
        r = self.result
        return {
            "arm": r.arm,
            "status": self.status,
            "p_value": r.p_value,
            "adjusted_p": self.adjusted_p,
            "change": r.change,
            "change_lower": r.change_lower,
            "change_upper": r.change_upper,
            "tolerance": r.tolerance,
        }


@dataclass(frozen=True)
class DriftDecision:
    """The session's drift verdict.

    Attributes
    ----------
    arms : tuple of ArmDriftDecision
        Every arm, in input order.
    alpha : float
        The family-wise error level.
    drifted : bool
        At least one arm is ``drifted``: the run should fail.
    n_drifted, n_below_margin, n_no_drift : int
        How many arms have each status.
    """

    arms: tuple[ArmDriftDecision, ...]
    alpha: float
    drifted: bool
    n_drifted: int
    n_below_margin: int
    n_no_drift: int

    def with_status(self, status: DriftStatus) -> tuple[ArmDriftDecision, ...]:
        """The arms with ``status``, smallest adjusted p-value first."""
        chosen = [a for a in self.arms if a.status == status]
        return tuple(sorted(chosen, key=lambda a: (a.adjusted_p, a.result.arm)))

    def to_dict(self) -> dict[str, Any]:
        """Return the decision as a JSON-able dict (for the JSON report)."""
        return {
            "alpha": self.alpha,
            "drifted": self.drifted,
            "n_arms": len(self.arms),
            "n_drifted": self.n_drifted,
            "n_below_margin": self.n_below_margin,
            "n_no_drift": self.n_no_drift,
            "arms": [a.to_dict() for a in self.arms],
        }


def holm_adjust(p_values: npt.ArrayLike) -> npt.NDArray[np.float64]:
    """Holm step-down adjusted p-values, in input order.

    With ``p_(1) <= ... <= p_(m)`` sorted, the adjusted value of the ``i``-th
    smallest is ``max_{j <= i} min(1, (m - j + 1) p_(j))``; rejecting every
    hypothesis whose adjusted value is at most ``alpha`` is Holm's procedure,
    which controls the family-wise error at ``alpha`` under any dependence.

    Parameters
    ----------
    p_values : array_like
        One-dimensional p-values in [0, 1] (may be empty).

    Returns
    -------
    numpy.ndarray
        Adjusted p-values, same order and length as the input.

    References
    ----------
    .. [1] S. Holm, "A simple sequentially rejective multiple test procedure",
       Scand. J. Statist. 6(2), pp. 65-70, 1979.
    """
    p = np.asarray(p_values, dtype=np.float64)
    if p.ndim != 1 or not np.all(np.isfinite(p)) or np.any((p < 0) | (p > 1)):
        raise RolecheckUsageError(
            "p-values must be a one-dimensional list of numbers in [0, 1]; "
            "pass each arm's Comparison.p_value."
        )
    m = p.size
    order = np.argsort(p, kind="stable")
    scaled = np.minimum(1.0, (m - np.arange(m)) * p[order])
    adjusted = np.empty(m, dtype=np.float64)
    adjusted[order] = np.maximum.accumulate(scaled)
    return adjusted


def _validate(results: Sequence[ArmDrift]) -> None:
    seen: set[str] = set()
    for r in results:
        if not isinstance(r, ArmDrift):
            raise RolecheckUsageError(f"{r!r} is not an ArmDrift; build one per arm.")
        if r.arm in seen:
            raise RolecheckUsageError(
                f"arm {r.arm!r} appears twice; give every arm a unique id (e.g. its test's "
                f"node id and the variant label)."
            )
        seen.add(r.arm)
        numbers = (r.p_value, r.change, r.change_lower, r.change_upper, r.tolerance)
        if not all(isinstance(x, int | float) and not isinstance(x, bool) for x in numbers):
            raise RolecheckUsageError(f"arm {r.arm!r}: every field after the id must be a number.")
        if math.isnan(r.change) or math.isnan(r.change_lower) or math.isnan(r.change_upper):
            raise RolecheckUsageError(f"arm {r.arm!r}: the change and its bounds must not be NaN.")
        if not 0 <= r.p_value <= 1:
            raise RolecheckUsageError(f"arm {r.arm!r}: p_value={r.p_value!r} is not in [0, 1].")
        if not r.change_lower <= r.change <= r.change_upper:
            raise RolecheckUsageError(
                f"arm {r.arm!r}: the bounds must enclose the change "
                f"(got {r.change_lower!r} <= {r.change!r} <= {r.change_upper!r})."
            )
        if not (math.isfinite(r.tolerance) and r.tolerance > 0):
            raise RolecheckUsageError(
                f"arm {r.arm!r}: tolerance={r.tolerance!r} must be a finite number > 0."
            )


def decide_drift(results: Iterable[ArmDrift], *, alpha: float = DEFAULT_ALPHA) -> DriftDecision:
    """Decide drift for a whole session from every arm's live-vs-recorded comparison.

    Parameters
    ----------
    results : iterable of ArmDrift
        One entry per arm of the session (collected from every worker).
    alpha : float, optional
        The family-wise error level: the chance of paging on a night when no
        arm changed is at most ``alpha``.

    Returns
    -------
    DriftDecision
        Per-arm Holm-adjusted p-values and statuses, the family's verdict
        and the counts (see the module docstring for the rule).

    References
    ----------
    .. [1] S. Holm, "A simple sequentially rejective multiple test procedure",
       Scand. J. Statist. 6(2), pp. 65-70, 1979.
    .. [2] J. L. Hodges and E. L. Lehmann, "Testing the approximate validity of
       statistical hypotheses", J. R. Statist. Soc. B 16(2), pp. 261-268, 1954.
    """
    validate_alpha(alpha)
    arms = list(results)
    _validate(arms)
    adjusted = holm_adjust([r.p_value for r in arms])
    decisions = []
    for r, q in zip(arms, adjusted, strict=True):
        status: DriftStatus = NO_DRIFT
        if q <= alpha:
            status = DRIFTED if r.change_lower > r.tolerance else BELOW_MARGIN
        decisions.append(ArmDriftDecision(result=r, adjusted_p=float(q), status=status))
    counts = {s: sum(d.status == s for d in decisions) for s in DRIFT_STATUSES}
    return DriftDecision(
        arms=tuple(decisions),
        alpha=float(alpha),
        drifted=counts[DRIFTED] > 0,
        n_drifted=counts[DRIFTED],
        n_below_margin=counts[BELOW_MARGIN],
        n_no_drift=counts[NO_DRIFT],
    )
