"""``rolecheck plan --cases``: cases x trials per case for a prompt set, from an A/A pilot.

Reads the set test's cassette (each distinct request is one case), hands the
per-case distance matrices to :func:`pytest_rolecheck.core.set_planner.plan_cases`
(the simulation and its limits are documented there) and prints the plan.
"""

from __future__ import annotations

import argparse
import json
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from ..errors import RolecheckUsageError
from ..settings import OPTIONS_BY_NAME
from ..verdicts.numbers import fmt_share
from .plan import pilot_header, read_pilot_json, request_groups, resolve_pilot_metric

if TYPE_CHECKING:
    import numpy as np
    import numpy.typing as npt

    from ..core.set_planner import SetPlan, SetPlanCell

    FloatArray = npt.NDArray[np.float64]


@dataclass(frozen=True, slots=True)
class SetPilot:
    """Per case of an A/A prompt-set pilot, the distances between its calls."""

    matrices: tuple[FloatArray, ...]
    metric: str
    source: str
    notes: tuple[str, ...] = ()
    varied: bool = False  # some case's calls wrote different texts


def load_set_pilot(path: Path, *, metric: str = "auto") -> SetPilot:
    """Read an A/A prompt-set pilot from a cassette: each distinct request is one case.

    Raises
    ------
    RolecheckUsageError
        Missing or unreadable file, a JSON report (it keeps no per-case
        distances), or a cassette that is no set pilot.
    """
    from ..core.distances import distance_matrix

    data = read_pilot_json(path)
    if isinstance(data, Mapping) and "comparisons" in data:
        raise RolecheckUsageError(
            f"{path} is a JSON report: a prompt set's row keeps no per-case distances. Pass "
            "the cassette of the A/A set test instead (cassettes/<test file>/<test>.json)."
        )
    if not (isinstance(data, Mapping) and "rolecheck_cassette" in data):
        raise RolecheckUsageError(
            f"{path} is not a rolecheck cassette (no 'rolecheck_cassette' key)."
        )
    groups, _ = request_groups(path)
    sizes = sorted(len(calls) for calls in groups.values())
    # One metric for every case, chosen from all the pilot's calls (as compare() does).
    metric, why = resolve_pilot_metric(metric, [c for calls in groups.values() for c in calls])
    matrices = tuple(distance_matrix(calls, metric) for calls in groups.values())
    spread = f"{sizes[0]}" if sizes[0] == sizes[-1] else f"{sizes[0]}..{sizes[-1]}"
    return SetPilot(
        matrices=matrices,
        metric=metric,
        notes=(*why, *_ab_note(list(groups))),
        varied=any(len({c.text for c in calls}) > 1 for calls in groups.values()),
        source=(
            f"cassette {path}: {len(groups)} cases (one per distinct request; both arms of an "
            f"A/A run send the same request), {spread} calls each"
        ),
    )


def _ab_note(keys: list[str]) -> tuple[str, ...]:
    """A warning when requests share their last message: the arms of an A/B run, not A/A."""
    last: dict[str, int] = {}
    for key in keys:
        messages = json.loads(key).get("messages") if key.startswith("{") else None
        tail = json.dumps(messages[-1], sort_keys=True) if isinstance(messages, list) else key
        last[tail] = last.get(tail, 0) + 1
    shared = sum(count for count in last.values() if count > 1)
    if not shared:
        return ()
    return (
        f"{shared} of the {len(keys)} requests end with the same message as another one: the "
        "arms of this run sent different requests (an A/B run), so each arm's calls count "
        "as a case of their own. Plan from an A/A run of the set (the same set in both arms).",
    )


def format_set_plan(pilot: SetPilot, plan: SetPlan) -> list[str]:
    """Lines that ``rolecheck plan --cases`` prints.

    Parameters
    ----------
    pilot : SetPilot
        Where the numbers come from.
    plan : SetPlan
        The result of :func:`~pytest_rolecheck.core.set_planner.plan_cases`.

    Returns
    -------
    list of str
    """
    _, lines = pilot_header(pilot.source, pilot.metric, pilot.notes)
    lines.append("")
    guard = (
        f"{plan.guard_cases} quiet cases bound the share of prompts that could change, "
        f"1 - alpha^(1/cases), below the tolerance {plan.tolerance:g}"
    )
    if plan.deterministic and plan.answer is not None:
        a = plan.answer
        why = (
            f"only the unseen-case guard sets the size: {guard}"
            if plan.guard_cases is not None
            else "the engine's minimum applies"
        )
        from ..verdicts.wording import SAME_DISTRIBUTIONS

        basis = (
            f"in every case {SAME_DISTRIBUTIONS}: metric {pilot.metric} compares calls only up "
            "to where their texts part (measure with --metric auto to compare the answers)"
            if pilot.varied
            else "deterministic cases: every call of every pilot case gave exactly the same output"
        )
        return [
            *lines,
            f"{basis}, so an A/A set has change 0 and no trials beyond the minimum are needed; "
            f"{why}.",
            f"to certify equivalence at tolerance {plan.tolerance:g}: {a.cases} cases x "
            f"{a.trials} trials per case ({a.calls_per_arm} calls per arm)",
        ]
    largest = plan.largest_trials
    lines.append(
        f"simulated A/A set comparisons ({plan.replications} per cell, seed {plan.seed}): each "
        "draws the cases with replacement from the pilot's and splits 2 x trials distinct "
        f"calls of each into two arms (up to {largest} trials per case with "
        f"{min(plan.pilot_calls)} calls in the smallest case)"
    )
    trials = sorted({c.trials for c in plan.cells})
    lines.append(f"  {'cases':>5}  " + "  ".join(f"{f't={t}':>17}" for t in trials))
    for m in sorted({c.cases for c in plan.cells}):
        row = {c.trials: c for c in plan.cells if c.cases == m}
        lines.append(f"  {m:>5}  " + "  ".join(f"{_cell(row[t]):>17}" for t in trials))
    lines += [
        "  P(equivalent) of an A/A set (upper bound of the set change < tolerance "
        f"{plan.tolerance:g}), 95% interval of the simulation; '-': not simulable, a pilot "
        "case has fewer than 2 x trials calls (record more trials per case to fill it).",
    ]
    if plan.guard_cases is not None:
        lines.append(f"  fewer than {plan.guard_cases} cases never certify: {guard}.")
    lines += [
        f"  the simulated sets draw from the pilot's {plan.pilot_cases} cases: they stand for "
        "the prompts you care about only as well as the pilot's cases do.",
        "",
    ]
    pct = fmt_share(plan.power)
    head = f"to certify equivalence at tolerance {plan.tolerance:g} with {pct} power: "
    if plan.answer is None:
        lines.append(
            head + "no simulated cell reaches it; record a pilot with more trials per case, "
            "or widen the tolerance"
        )
    else:
        a = plan.answer
        lines.append(
            head + f"{a.cases} cases x {a.trials} trials per case ({a.calls_per_arm} calls per "
            "arm, the fewest in the table)"
        )
    lines.append(
        "choose the tolerance from what matters to you, before looking at the A/B data (see "
        "`rolecheck plan --help`)"
    )
    return lines


def _cell(cell: SetPlanCell) -> str:
    if cell.p_equivalent is None or cell.interval is None:
        return "-"
    low, high = cell.interval
    return f"{cell.p_equivalent:.2f} ({low:.2f}-{high:.2f})"


def run_cases(args: argparse.Namespace) -> list[str]:
    """Plan a prompt set from ``args`` (``rolecheck plan --cases``); the lines to print."""
    from ..core.distances import BOUNDED_METRICS
    from ..core.set_planner import TRIALS_GRID, plan_cases

    for name, value in (("--arm", args.arm), ("--comparison", args.comparison)):
        if value is not None:
            raise RolecheckUsageError(
                f"{name} does not apply with --cases: every request group is a case. Drop {name}."
            )
    if args.max_trials != OPTIONS_BY_NAME["max_trials"].default:
        raise RolecheckUsageError(
            "--max-trials does not apply with --cases: the grid is "
            f"{', '.join(map(str, TRIALS_GRID))} trials per case. Drop --max-trials."
        )
    if args.effect is not None:
        raise RolecheckUsageError(
            "--effect is not available with --cases: a set plan answers for equivalence only. "
            "Drop --effect."
        )
    pilot = load_set_pilot(args.pilot, metric=args.metric)
    try:
        plan = plan_cases(
            pilot.matrices,
            tolerance=args.tolerance,
            alpha=args.alpha,
            bounded=pilot.metric in BOUNDED_METRICS,
            power=args.power,
            replications=args.replications,
            seed=args.seed,
        )
    except RolecheckUsageError as exc:
        if not pilot.notes:
            raise
        # A too-small "pilot" is often an A/B cassette: say so, it is the real fix.
        raise RolecheckUsageError(f"{exc} Note: {' '.join(pilot.notes)}") from None
    return format_set_plan(pilot, plan)
