"""One arm of a drift check: its live-vs-recorded comparison as the session's decision needs it.

The comparison itself is the usual one (``compare`` or ``compare_tool_calls``, of
one prompt or of a prompt set) with the recorded calls as arm A and the live ones
as arm B. :func:`arm_drift` turns any of them into one JSON-able entry (it
crosses from xdist workers to the controller) and :func:`as_arm` back into the
numbers :func:`~pytest_rolecheck.core.drift.decide_drift` takes.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Mapping, Sequence
from typing import Any

from ..core.drift import ArmDrift


def arm_drift(
    result: Any, *, arm: str, test: str, label: str, target: str | None = None
) -> dict[str, Any]:
    """The drift entry of one arm from its recorded-vs-live comparison ``result``.

    Parameters
    ----------
    result : Comparison, ToolCallComparison or PromptSetComparison
        Arm A the recorded calls, arm B the live ones.
    arm : str
        The arm's id, unique in the session (test id and variant label).
    test, label : str
        The test's node id and the arm's label, for the report.
    target : str, optional
        The test as a command run from where pytest was started names it
        (default ``test``), for the re-record command.

    Returns
    -------
    dict
        The numbers of :class:`~pytest_rolecheck.core.drift.ArmDrift` plus what
        the report shows: the typical text before and after, the cases that moved
        and, for a prompt set, every case's change and q-value.
    """
    change, lower, upper = _change(result)
    p_value = result.p_value
    if p_value is None:
        # Deterministic arms: no jitter to test against, the change is exact.
        p_value = 0.0 if change > 0 else 1.0
    recorded, live = _typical_texts(result)
    return {
        "arm": arm,
        "test": test,
        "target": target or test,
        "label": label,
        "kind": "tool-calls" if _is_tool_calls(result) else "logprobs",
        "metric": getattr(result, "metric", "tv"),
        "verdict": str(result.verdict),
        "p_value": float(p_value),
        "change": change,
        # JSON has no infinity: an unbounded side is stored as null (as in the JSON report).
        "change_lower": lower if math.isfinite(lower) else None,
        "change_upper": upper if math.isfinite(upper) else None,
        "tolerance": float(result.tolerance),
        "n_recorded": int(result.n_a),
        "n_live": int(result.n_b),
        "deterministic": bool(getattr(result, "deterministic", False)),
        "typical_recorded": recorded,
        "typical_live": live,
        "cases_moved": list(getattr(result, "changed", ())),
        # A prompt set: each case's own live-vs-recorded change, largest first.
        "cases": [
            {"id": c.id, "status": c.status, "change": float(c.change), "q_value": c.q_value}
            for c in sorted(getattr(result, "cases", ()), key=lambda c: -c.change)
        ],
    }


def as_arm(entry: Mapping[str, Any]) -> ArmDrift:
    """The numbers of a drift entry (from :func:`arm_drift`, possibly through JSON)."""
    return ArmDrift(
        arm=str(entry["arm"]),
        p_value=float(entry["p_value"]),
        change=float(entry["change"]),
        change_lower=_bound(entry["change_lower"], -math.inf),
        change_upper=_bound(entry["change_upper"], math.inf),
        tolerance=float(entry["tolerance"]),
    )


def _bound(value: Any, unbounded: float) -> float:
    return unbounded if value is None else float(value)


def _is_tool_calls(result: Any) -> bool:
    return hasattr(result, "tv") or getattr(result, "kind", None) == "tool-calls"


def _change(result: Any) -> tuple[float, float, float]:
    if hasattr(result, "tv"):  # ToolCallComparison
        change, lower, upper = result.tv, result.tv_lower, result.tv_upper
    else:
        change, lower, upper = result.change, result.change_lower, result.change_upper
    change = float(change)
    # A deterministic comparison has no bounds: its change is exact.
    lower = change if lower is None else min(float(lower), change)
    upper = change if upper is None else max(float(upper), change)
    return change, lower, upper


def _typical_texts(result: Any) -> tuple[str, str]:
    """The most common recorded and live answer (of the most moved case, for a set)."""
    cases = getattr(result, "cases", None)
    if cases:
        moved = max(cases, key=lambda c: c.change)
        return moved.typical_text_a, moved.typical_text_b
    if hasattr(result, "outcomes"):  # tool calls: the most common outcome of each side
        return _most_common(result.outcomes, result.counts_a), _most_common(
            result.outcomes, result.counts_b
        )
    return _most_common_text(result.calls_a), _most_common_text(result.calls_b)


def _most_common(outcomes: Sequence[str], counts: Sequence[int]) -> str:
    if not outcomes:
        return ""
    best = max(range(len(outcomes)), key=lambda i: counts[i])
    return str(outcomes[best])


def _most_common_text(calls: Sequence[Any]) -> str:
    texts = [call.text for call in calls]
    return Counter(texts).most_common(1)[0][0] if texts else ""
