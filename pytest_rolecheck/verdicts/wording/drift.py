"""The words of a drift check: the rule, the section of the terminal summary, what to do."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from ...core.drift import BELOW_MARGIN, DRIFTED, ArmDriftDecision, DriftDecision
from ..numbers import fmt_confidence, fmt_p, fmt_value
from .details import shorten


def drift_rule(alpha: float) -> str:
    """The decision rule, in one sentence (the section's first line, the JSON's ``rule``)."""
    return (
        f"an arm drifted when its Holm-adjusted p ≤ {fmt_value(alpha)} (family-wise error over "
        f"all arms) and the {fmt_confidence(alpha)} lower bound of its change exceeds its "
        "tolerance"
    )


def drift_headline(decision: DriftDecision, tests: int) -> str:
    """One line: how many arms were checked and what came out."""
    n = len(decision.arms)
    arms = f"{n} arm{'s' if n != 1 else ''} of {tests} test{'s' if tests != 1 else ''}"
    outcome = f"{decision.n_drifted} drifted" if decision.drifted else "no drift"
    if decision.n_below_margin:
        outcome += f", {decision.n_below_margin} changed measurably but within tolerance"
    return f"drift check: {arms} run live against their recordings: {outcome}"


def _arm_lines(arm: ArmDriftDecision, entry: Mapping[str, Any]) -> list[str]:
    r = arm.result
    side = ">" if r.change_lower > r.tolerance else "≤"
    lines = [
        f"  {r.arm}",
        f"    change {fmt_value(r.change)} (lower bound {fmt_value(r.change_lower)} {side} "
        f"tolerance {fmt_value(r.tolerance)}, {entry.get('metric', '')}), p {fmt_p(r.p_value)} "
        f"(Holm-adjusted {fmt_p(arm.adjusted_p)}), {entry.get('n_recorded', '?')} recorded vs "
        f"{entry.get('n_live', '?')} live calls",
    ]
    if entry.get("typical_recorded") != entry.get("typical_live"):
        lines.append(f"    recorded: {shorten(str(entry.get('typical_recorded', '')).strip())}")
        lines.append(f"    live:     {shorten(str(entry.get('typical_live', '')).strip())}")
    moved = entry.get("cases_moved") or ()
    if moved:
        lines.append(f"    cases moved: {', '.join(map(str, moved))}")
    return lines


def drift_section(
    decision: DriftDecision,
    entries: Mapping[str, Mapping[str, Any]],
    *,
    save_dir: str | None,
    promote: str | None,
    rewrite: str,
) -> list[str]:
    """The drift section of the terminal summary.

    Parameters
    ----------
    decision : DriftDecision
        The session's decision.
    entries : mapping
        Each arm's entry (:func:`~pytest_rolecheck.verdicts.drift.arm_drift`) by arm id.
    save_dir : str or None
        Where the live calls were written (``--rolecheck-drift-save``), if anywhere.
    promote : str or None
        The command that copies the saved live calls over the cassettes.
    rewrite : str
        The command that re-records the drifted tests.
    """
    tests = len({str(e.get("test", "")) for e in entries.values()})
    lines = [drift_headline(decision, tests), f"rule: {drift_rule(decision.alpha)}"]
    drifted = decision.with_status(DRIFTED)
    below = decision.with_status(BELOW_MARGIN)
    if drifted:
        lines.append(
            f"DRIFTED ({len(drifted)}): behaviour changed beyond the tolerance since recorded"
        )
        for arm in drifted:
            lines += _arm_lines(arm, entries[arm.result.arm])
    if below:
        lines.append(
            f"detectable, below margin ({len(below)}): the live calls differ significantly, but "
            "the change is not shown to exceed the tolerance: more jitter, a tiny change, or too "
            "few calls to tell (not a failure)"
        )
        for arm in below:
            lines += _arm_lines(arm, entries[arm.result.arm])
    if decision.n_no_drift:
        n = decision.n_no_drift
        lines.append(f"no drift: {n} arm{'s' if n != 1 else ''}")
    if drifted:
        lines += drift_advice(save_dir=save_dir, promote=promote, rewrite=rewrite)
    return lines


def drift_advice(*, save_dir: str | None, promote: str | None, rewrite: str) -> list[str]:
    """What to do when an arm drifted: inspect, promote, or escalate."""
    inspect = (
        f"the live calls are in {save_dir}, laid out like the cassettes: diff them with the "
        "recorded ones"
        if save_dir
        else "re-run with --rolecheck-drift-save=DIR to keep the live calls beside the cassettes"
    )
    return [
        "what to do:",
        f"  1. inspect: {inspect};",
        "  2. if the change is one you accept (a new snapshot, a new serving setup), make the "
        "live behaviour the new baseline: "
        + (f"`{promote}`, or re-record: `{rewrite}`;" if promote else f"`{rewrite}`;"),
        "  3. if not, pin the model version or open an incident with the provider, quoting the "
        "arms above (the JSON report has every number).",
    ]


def drift_fix_targets(
    decision: DriftDecision, entries: Mapping[str, Mapping[str, Any]]
) -> Sequence[str]:
    """The node ids of the tests with a drifted arm, in report order, each once."""
    seen: dict[str, None] = {}
    for arm in decision.with_status(DRIFTED):
        entry = entries[arm.result.arm]
        seen.setdefault(str(entry.get("target") or entry.get("test", "")), None)
    return tuple(seen)
