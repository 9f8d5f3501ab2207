"""The drift section of a run: every arm's live-vs-recorded entry, one decision for the session.

Entries arrive as JSON-able dicts (from every xdist worker); the decision is taken
once, over all of them, when the run ends (:func:`~pytest_rolecheck.core.drift.decide_drift`).
The plugin imports this module at start-up: numpy and the rest load only when a
decision is asked for.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Iterator, Mapping, Sequence
from functools import cached_property
from typing import TYPE_CHECKING, Any, Final

if TYPE_CHECKING:
    from ..core.drift import DriftDecision

#: The key of a drift entry in a test report's ``user_properties``.
DRIFT_PROPERTY: Final = "rolecheck_drift"


class DriftReport:
    """Every arm's drift entry and the session's decision over them.

    Parameters
    ----------
    entries : iterable of mapping
        One entry per arm (:func:`~pytest_rolecheck.verdicts.drift.arm_drift`).
    alpha : float
        The family-wise error level of the decision.
    """

    def __init__(self, entries: Iterable[Mapping[str, Any]] = (), *, alpha: float) -> None:
        self.entries: list[Mapping[str, Any]] = list(entries)
        self.alpha = alpha

    def extend(self, entries: Iterable[Mapping[str, Any]]) -> None:
        self.entries.extend(entries)
        self.__dict__.pop("decision", None)

    @cached_property
    def decision(self) -> DriftDecision:
        from ..core.drift import decide_drift
        from ..verdicts.drift import as_arm

        return decide_drift([as_arm(e) for e in self.entries], alpha=self.alpha)

    @property
    def drifted(self) -> bool:
        return self.decision.drifted

    def by_arm(self) -> dict[str, Mapping[str, Any]]:
        return {str(e["arm"]): e for e in self.entries}

    def lines(self, *, save_dir: str | None, promote: str | None, rewrite: str) -> Iterator[str]:
        """The terminal section (:func:`..verdicts.wording.drift.drift_section`)."""
        from ..verdicts.wording import drift as words

        if not self.entries:
            yield "drift check: no test ran a comparison, nothing to compare with its recording"
            return
        yield from words.drift_section(
            self.decision, self.by_arm(), save_dir=save_dir, promote=promote, rewrite=rewrite
        )

    def targets(self) -> Sequence[str]:
        """The tests with a drifted arm, as a command names them."""
        from ..verdicts.wording import drift as words

        return words.drift_fix_targets(self.decision, self.by_arm())

    def to_json(self) -> dict[str, Any]:
        """The ``drift`` block of the JSON report: the rule, the counts, every arm."""
        from ..verdicts.wording import drift as words

        decision = self.decision
        entries = self.by_arm()
        arms = []
        for arm in decision.arms:
            entry = dict(entries[arm.result.arm])
            entry.update(status=arm.status, adjusted_p=arm.adjusted_p)
            arms.append({key: _plain(value) for key, value in entry.items()})
        return {
            "rule": words.drift_rule(self.alpha),
            "alpha": self.alpha,
            "drifted": decision.drifted,
            "n_arms": len(decision.arms),
            "n_drifted": decision.n_drifted,
            "n_below_margin": decision.n_below_margin,
            "n_no_drift": decision.n_no_drift,
            "arms": arms,
        }


def _plain(value: Any) -> Any:
    # JSON has no infinity; lists and dicts (cases moved) are plain already.
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value
