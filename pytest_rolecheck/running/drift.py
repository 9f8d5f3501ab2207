"""A drift check of a test's comparison: each arm's live calls against its recorded ones."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .session import Rolecheck


def check_drift(
    rolecheck: Rolecheck,
    labels: tuple[str, str],
    arms: tuple[Any, Any],
    compare_arm: Callable[[Any, Any, tuple[str, str]], Any],
) -> None:
    """Compare each arm's live calls with its recorded ones (a drift check).

    The row of the test's own comparison is already added; a drift comparison
    adds none (it runs while ``_own_comparison`` is set).
    """
    from ..verdicts.drift import arm_drift

    for label, live in zip(labels, arms, strict=True):
        if isinstance(live, Mapping):  # a prompt set: {case id: responses}
            recorded: Any = {case: rolecheck.recorded_twins(calls) for case, calls in live.items()}
        else:
            recorded = rolecheck.recorded_twins(live)
        result = compare_arm(recorded, live, ("recorded", "live"))
        arm = f"{rolecheck.nodeid} [{label}]"
        taken = {entry["arm"] for entry in rolecheck.drift_arms}
        if arm in taken:  # the same arm in a second comparison of this test
            arm = next(
                f"{arm} #{k}" for k in range(2, len(taken) + 3) if f"{arm} #{k}" not in taken
            )
        rolecheck.drift_arms.append(
            arm_drift(
                result,
                arm=arm,
                test=rolecheck.nodeid or "",
                label=label,
                target=rolecheck._command_nodeid,
            )
        )
