"""``rolecheck plan``: how many trials per arm, from an A/A pilot (the CLI adapter).

Reads the pilot (a cassette or a JSON report) into a distance matrix, hands it
to :func:`pytest_rolecheck.core.planner.plan_trials` (the resampling engine and
its method are documented there) and prints the plan.
"""

from __future__ import annotations

import argparse
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final

from ..cli import ExitCode, add_command, error
from ..core.limits import MIN_CALLS_PER_ARM, MIN_PILOT
from ..errors import RolecheckUsageError
from ..settings import Use
from ..verdicts.numbers import fmt_value

if TYPE_CHECKING:  # numpy loads only when a plan is computed: `rolecheck --help` stays fast
    import numpy as np
    import numpy.typing as npt

    from ..core.planner import Plan

    FloatArray = npt.NDArray[np.float64]


_EPILOG: Final = """\
choosing the tolerance:
  The tolerance is the largest change you accept, in the metric's units (js/tv: the
  share of probability mass moved; default 0.2). Choose it before looking at the A/B
  data, from what matters for your product (the table shows how large the upper bound
  gets when nothing changed). Never derive it from the comparison you are testing:
  the test would certify whatever it measured.

pilot size:
  A pilot of m calls simulates up to m/2 trials per arm (two arms of distinct calls);
  larger rows are extrapolated and marked so. Record 2 x the trials you expect to need.
  With --cases (an A/A run of a prompt set, e.g. the same set in both arms of
  assert_variants_equivalent) each case's c calls simulate up to c/2 trials per case;
  cells beyond are shown as '-', never extrapolated.

examples:
  rolecheck compare --local --variant-a a.yaml --variant-b a.yaml --trials 20 \\
      --cassette pilot.json                      # an A/A pilot of 40 calls
  rolecheck plan pilot.json --tolerance 0.2 --effect 0.5
  rolecheck plan report.json --comparison 2 --arm all
  rolecheck plan --cases \\
      cassettes/examples/test_prompt_sets/test_sampled_set_is_equivalent_to_itself.json
                                                 # a prompt set: cases x trials per case
"""


# --------------------------------------------------------------------------- results


@dataclass(frozen=True, slots=True)
class Pilot:
    """Distances between the calls of one configuration (the A/A pilot)."""

    matrix: FloatArray
    metric: str
    source: str
    notes: tuple[str, ...] = ()
    distinct_texts: int = 1  # how many different texts the pilot calls wrote

    @property
    def n(self) -> int:
        """Number of pilot calls."""
        return int(self.matrix.shape[0])


# --------------------------------------------------------------------------- pilot loading


def _fail(message: str) -> RolecheckUsageError:
    return RolecheckUsageError(message)


def read_pilot_json(path: Path) -> Any:
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise _fail(
            f"no pilot file at {path}; pass a cassette of an A/A run (rolecheck compare "
            "--cassette PATH) or a JSON report (pytest --rolecheck-report=PATH)."
        ) from None
    except (OSError, UnicodeDecodeError) as exc:
        raise _fail(f"{path}: cannot be read ({exc}).") from None
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        raise _fail(
            f"{path}:{exc.lineno}:{exc.colno}: not valid JSON ({exc.msg}); a pilot is a "
            "rolecheck cassette or JSON report."
        ) from None


def resolve_pilot_metric(metric: str, calls: Sequence[Any]) -> tuple[str, list[str]]:
    """The metric a pilot is measured with (``auto`` chosen from its calls), and a note why."""
    from ..core.distances import AUTO, choose_metric

    if metric != AUTO:
        return metric, []
    name, why = choose_metric(calls)
    return name, [why] if why else []


def load_pilot(
    path: Path, *, metric: str = "auto", arm: str | None = None, comparison: int | None = None
) -> Pilot:
    """Read a pilot from a cassette or a JSON report.

    Parameters
    ----------
    path : pathlib.Path
        A rolecheck cassette (the calls are re-measured with ``metric``) or a
        JSON report (the stored distance matrix is used, in its own metric).
    metric : str, default "auto"
        Per-call distance for cassettes (``auto``: chosen from the pilot's calls).
    arm : {"1", "2", ..., "all"}, optional
        Which calls form the pilot. Cassette: the group of identical requests
        (numbered in order of first appearance; default: the only group, else
        1). Report: 1 = arm A, 2 = arm B, all = both arms (default: all when
        the arms carry the labels ``X (A)``/``X (B)`` of an A/A comparison, else
        1).
    comparison : int, optional
        Report only: which comparison (1-based; default the first logprob one).

    Returns
    -------
    Pilot

    Raises
    ------
    RolecheckUsageError
        Missing or unreadable file, neither a cassette nor a report, an arm or
        comparison that does not exist, or fewer than 4 pilot calls.
    """
    data = read_pilot_json(path)
    if isinstance(data, Mapping) and "rolecheck_cassette" in data:
        if comparison is not None:
            raise _fail("--comparison applies to JSON reports; this pilot is a cassette.")
        return _pilot_from_cassette(path, metric=metric, arm=arm)
    if isinstance(data, Mapping) and "comparisons" in data:
        return _pilot_from_report(path, data, arm=arm, comparison=comparison)
    raise _fail(
        f"{path} is neither a rolecheck cassette (no 'rolecheck_cassette' key) nor a JSON "
        "report (no 'comparisons' key)."
    )


def _instruction_role(messages: Any) -> str:
    if isinstance(messages, list):
        for message in messages:
            if isinstance(message, Mapping) and message.get("role") in ("system", "developer"):
                return str(message["role"])
    return "no instruction"


def request_groups(path: Path) -> tuple[dict[str, list[Any]], dict[str, str]]:
    """The cassette's successful calls grouped by request (its ``seed`` left out).

    Read through the recording package's reader, so every cassette format reads.
    """
    from ..core.parse import parse_response
    from ..errors import ResponseFormatError
    from ..recording.format import Unreadable, _parse_json_bytes, read_cassette

    try:
        found, _ = read_cassette(path)
    except (OSError, Unreadable) as exc:
        raise _fail(f"{exc}; the cassette cannot be used as a pilot.") from None
    groups: dict[str, list[Any]] = {}
    described: dict[str, str] = {}
    for index in sorted(found):
        entry = found[index]
        ok, body = _parse_json_bytes(entry.response["body"]["string"])
        if entry.response["status"]["code"] != 200 or not ok:
            continue
        tree = entry.shown
        # Sampled calls carry a seed of their own: the same request otherwise.
        same = {k: v for k, v in tree.items() if k != "seed"} if isinstance(tree, dict) else tree
        key = json.dumps(same, sort_keys=True)
        try:
            call = parse_response(body)
        except ResponseFormatError as exc:
            raise _fail(f"{path}: call #{index} cannot be used as a pilot: {exc}") from None
        if key not in groups:
            groups[key] = []
            req = tree if isinstance(tree, Mapping) else {}
            described[key] = (
                f"model {req.get('model')}, instruction role "
                f"{_instruction_role(req.get('messages'))}, temperature {req.get('temperature')}"
            )
        groups[key].append(call)
    if not groups:
        raise _fail(f"{path}: the cassette holds no successful chat completion to use as pilot.")
    return groups, described


def _pilot_from_cassette(path: Path, *, metric: str, arm: str | None) -> Pilot:
    from ..core.distances import distance_matrix

    groups, described = request_groups(path)
    keys = list(groups)
    notes: list[str] = []
    if arm in (None, "all") and len(keys) == 1:
        chosen = keys
    elif arm == "all":
        chosen = keys
        notes.append(
            "--arm all pools requests that differ: only right if they are the same "
            "configuration (the floor includes any real difference between them)."
        )
    else:
        number = _arm_number(arm or "1", len(keys), "request group")
        chosen = [keys[number - 1]]
        if len(keys) > 1:
            listing = "; ".join(
                f"{i}: {len(groups[k])} calls ({described[k]})" for i, k in enumerate(keys, 1)
            )
            notes.append(
                f"the cassette holds {len(keys)} different requests ({listing}); using group "
                f"{number} as the A/A pilot (choose another with --arm N; if the groups are the "
                "cases of an A/A prompt-set run, pass --cases)."
            )
    calls = [c for k in chosen for c in groups[k]]
    _check_size(len(calls), path)
    desc = ", ".join(described[k] for k in chosen)
    metric, why = resolve_pilot_metric(metric, calls)
    return Pilot(
        matrix=distance_matrix(calls, metric),
        metric=metric,
        source=f"cassette {path}: {len(calls)} calls ({desc})",
        notes=(*why, *notes),
        distinct_texts=len({c.text for c in calls}),
    )


def _arm_number(arm: str, count: int, what: str) -> int:
    try:
        number = int(arm)
    except ValueError:
        number = 0
    if not 1 <= number <= count:
        raise _fail(f"--arm {arm}: expected all or a {what} number from 1 to {count}.")
    return number


def _check_size(n: int, path: Path) -> None:
    if n < MIN_PILOT:
        raise _fail(
            f"{path}: the pilot has {n} call(s); at least {MIN_PILOT} are needed (two arms of "
            f"{MIN_CALLS_PER_ARM} distinct calls; 20-40 give a usable noise floor and simulate "
            "up to 10-20 trials per arm). Record a larger A/A run."
        )


def _pilot_from_report(
    path: Path, data: Mapping[str, Any], *, arm: str | None, comparison: int | None
) -> Pilot:
    import numpy as np

    rows = data.get("comparisons")
    if not isinstance(rows, list) or not rows:
        raise _fail(f"{path}: the report has no comparisons.")
    usable = [
        i
        for i, r in enumerate(rows, 1)
        if isinstance(r, Mapping) and (r.get("details") or {}).get("matrix")
    ]
    if comparison is None:
        if not usable:
            raise _fail(
                f"{path}: no comparison in this report carries a distance matrix (tool-call "
                "comparisons have none); use a report of a logprob comparison."
            )
        comparison = usable[0]
    if comparison not in usable:
        raise _fail(
            f"--comparison {comparison}: expected one of {', '.join(map(str, usable)) or 'none'} "
            f"(the comparisons of {path} with a distance matrix)."
        )
    row = rows[comparison - 1]
    details = row["details"]
    matrix = np.array(
        [[np.nan if x is None else float(x) for x in r] for r in details["matrix"]], dtype=float
    )
    n_a = int(details.get("n_a") or row.get("n_a") or 0)
    labels = [str(x) for x in details.get("labels") or ["A", "B"]]
    aa = (
        len(labels) == 2
        and labels[0].endswith(" (A)")
        and labels[1].endswith(" (B)")
        and labels[0][:-4] == labels[1][:-4]
    )
    notes: list[str] = []
    choice = arm or ("all" if aa else "1")
    if choice == "all":
        index = np.arange(matrix.shape[0])
        if not aa:
            notes.append(
                f"--arm all pools {labels[0]!r} and {labels[1]!r}: only right for an A/A run."
            )
        what = "both arms"
    else:
        number = _arm_number(choice, 2, "arm")
        index = np.arange(n_a) if number == 1 else np.arange(n_a, matrix.shape[0])
        what = f"arm {labels[number - 1]!r}"
        if arm is None:
            notes.append(
                f"using the calls of {what} as the A/A pilot; if this comparison was an A/A "
                "run, pass --arm all to use both arms."
            )
    sub = matrix[np.ix_(index, index)]
    if not np.all(np.isfinite(sub)):
        raise _fail(f"{path}: comparison {comparison} has missing distances; re-run it.")
    _check_size(sub.shape[0], path)
    texts = [*(details.get("texts_a") or []), *(details.get("texts_b") or [])]
    return Pilot(
        matrix=sub,
        metric=str(details.get("metric", "js")),
        source=(
            f"report {path}, comparison {comparison} ({row.get('title', '')}): "
            f"{sub.shape[0]} calls of {what}"
        ),
        notes=tuple(notes),
        # A report without texts cannot tell; its matrix then speaks alone.
        distinct_texts=len({str(texts[i]) for i in index if i < len(texts)}) or 1,
    )


# --------------------------------------------------------------------------- CLI


# Long, not complex: one add_argument per option of `rolecheck plan`.
def add_parser(subparsers: Any) -> argparse.ArgumentParser:
    """Add ``rolecheck plan`` to the ``rolecheck`` command."""
    parser = add_command(
        subparsers,
        "plan",
        run,
        help="trials per arm needed for equivalence / to detect an effect, from an A/A pilot",
        description=(
            "Estimate the noise floor from an A/A pilot (a cassette of a run whose arms send "
            "the same request, or a JSON report of one) and, by resampling the pilot's calls "
            "(seeded), how many trials per arm certify equivalence at --tolerance, or detect a "
            "change of --effect (metric units), with the requested power (default 80%)."
        ),
        epilog=_EPILOG,
        metric=Use(help="distance for cassette pilots (reports keep theirs)"),
        seed=Use(help="seed of the resampling"),
    )
    parser.add_argument("pilot", type=Path, help="cassette (.json) or JSON report of the pilot")
    return parser


def _fmt(value: float, digits: int = 4) -> str:
    return fmt_value(value, digits)


def pilot_header(source: str, metric: str, notes: Sequence[str]) -> tuple[str, list[str]]:
    """The metric's unit, and the lines naming the pilot (``rolecheck plan`` with or without
    ``--cases``)."""
    from ..core.divergence import METRIC_UNITS

    unit = METRIC_UNITS.get(metric, "metric units")
    return unit, [f"pilot: {source}; metric {metric} ({unit})", *(f"note: {n}" for n in notes)]


def format_plan(pilot: Pilot, plan: Plan) -> list[str]:
    """Lines that ``rolecheck plan`` prints.

    Parameters
    ----------
    pilot : Pilot
        Where the numbers come from.
    plan : Plan
        The result of :func:`~pytest_rolecheck.core.planner.plan_trials`.

    Returns
    -------
    list of str
    """
    unit, lines = pilot_header(pilot.source, pilot.metric, pilot.notes)
    if plan.deterministic and pilot.distinct_texts > 1:
        return lines + _same_distribution_lines(pilot)
    if plan.deterministic:
        return lines + _deterministic_lines()
    return lines + _floor_lines(plan, unit) + _table_lines(plan) + [""] + _answer_lines(plan)


def _deterministic_lines() -> list[str]:
    return [
        "",
        "noise floor: 0 -- deterministic backend: every pilot call gave exactly the same output.",
        "No statistics are needed on such a backend: any difference between two arms is "
        f"detected with the minimum of {MIN_CALLS_PER_ARM} trials per arm, and equivalence "
        "means identical outputs (also shown with "
        f"{MIN_CALLS_PER_ARM} trials). The change is then known exactly and compared with the "
        "tolerance directly.",
        f"trials per arm: {MIN_CALLS_PER_ARM}",
    ]


def _same_distribution_lines(pilot: Pilot) -> list[str]:
    # Floor 0 while the texts differ: the metric compared the calls only up to where they
    # part (sampling). Not "deterministic", and the answers after that were never compared.
    from ..verdicts.wording import SAME_DISTRIBUTIONS

    return [
        "",
        f"noise floor: 0 -- {SAME_DISTRIBUTIONS}: the {pilot.n} pilot calls wrote "
        f"{pilot.distinct_texts} different texts.",
        f"Metric {pilot.metric} compares calls only up to where their texts part, so it sees "
        "no call-to-call variation here, and nothing the answers say after that point. To "
        "size a test of what sampled answers say, measure the pilot with --metric auto (the "
        "default) or js_edit.",
        f"trials per arm with metric {pilot.metric}: {MIN_CALLS_PER_ARM}",
    ]


def _floor_lines(plan: Plan, unit: str) -> list[str]:
    f = plan.floor
    largest = plan.pilot_calls // 2
    return [
        "",
        f"noise floor (mean distance between two pilot calls): {_fmt(f.floor)} {unit}",
        f"  90% bootstrap interval at {f.n_calls} calls: {_fmt(f.interval[0])} .. "
        f"{_fmt(f.interval[1])}",
        f"  pair distances: std {_fmt(f.pair_std)}, min {_fmt(f.pair_min)}, max "
        f"{_fmt(f.pair_max)}; per-call mean distance {_fmt(f.call_mean_min)} .. "
        f"{_fmt(f.call_mean_max)}",
        "",
        f"simulated comparisons ({plan.replications} per row, seed {plan.seed}): each run splits "
        f"2 x trials distinct pilot calls into two arms (up to {largest} trials per arm with "
        f"{plan.pilot_calls} calls); larger rows are extrapolated",
    ]


def _table_lines(plan: Plan) -> list[str]:
    largest = plan.pilot_calls // 2
    lines: list[str] = []
    detect = plan.effect is not None
    head = f"  {'trials':>6}  {'P(equivalent)':>13}  {'A/A upper bound: median':>23}  "
    head += f"{'90th pct':>8}"
    if detect:
        head += f"  {'P(different)':>12}"
    lines.append(head + "  row")
    for r in plan.rows:
        line = (
            f"  {r.n:>6}  {r.p_equivalent:>13.2f}  {_fmt(r.median_upper, 3):>23}  "
            f"{_fmt(r.q90_upper, 3):>8}"
        )
        if detect:
            line += f"  {r.p_detect or 0.0:>12.2f}"
        lines.append(line + ("  extrapolated" if r.extrapolated else "  simulated"))
    lines.append(
        "  P(equivalent): share of A/A runs with verdict `equivalent` (upper bound of the "
        f"change < tolerance {plan.tolerance:g})."
    )
    if detect:
        lines.append(
            f"  P(different): share of runs with a change of {plan.effect:g} whose verdict is "
            f"`different` (p <= {plan.alpha:g} and lower bound > tolerance), what "
            "assert_*_differ needs."
        )
    both = plan.effect is not None and plan.effect > plan.tolerance
    monotone = "both shares" if both else "P(equivalent)"
    lines.append(f"  {monotone} made non-decreasing in trials (adjacent rows pooled).")
    if any(r.extrapolated for r in plan.rows):
        lines.append(
            f"  extrapolated rows reuse the {largest}-trial runs: no pilot call is used twice; "
            f"the A/A bound shrinks like trials^-{plan.beta:.2f} (fitted to the simulated rows), "
            "the change's like trials^-0.5. Record a pilot of 2 x trials calls to simulate them."
        )
    if detect:
        lines.append(
            f"  assumed change: every call of arm B moves {plan.effect:g} x w away from "
            "arm A's calls (w: the relative jitter of a random pilot call, mean 1); each arm's "
            "own jitter stays as in the pilot. A change that also makes calls noisier, or shows "
            "in only some calls, needs more trials than P(different) says."
        )
    return lines


def _answer_lines(plan: Plan) -> list[str]:
    lines: list[str] = []
    pct = f"{plan.power:.0%}"
    lines.append(
        f"to certify equivalence at tolerance {plan.tolerance:g} with {pct} power: "
        + _answer(plan.n_equivalence, plan, "widen the tolerance (see the A/A upper bounds above)")
    )
    if plan.effect is not None and plan.effect <= plan.tolerance:
        lines.append(
            f"a change of {plan.effect:g} is not above the tolerance {plan.tolerance:g}: it is "
            "meant to pass as equivalent, so no number of trials makes assert_*_differ pass "
            "reliably (P(different) tends to 0 as trials grow). To detect it, choose a "
            f"tolerance below {plan.effect:g}."
        )
    elif plan.effect is not None:
        lines.append(
            f"to detect a change of {plan.effect:g} with {pct} power at alpha "
            f"{plan.alpha:g}: " + _answer(plan.n_detect, plan, "use a larger --effect")
        )
    lines.append(
        "choose the tolerance from what matters to you, before looking at the "
        "A/B data (see `rolecheck plan --help`)"
    )
    return lines


def _answer(n: int | None, plan: Plan, otherwise: str) -> str:
    if n is None:
        return f"more than {plan.max_trials} trials per arm; {otherwise} or raise --max-trials"
    text = f"{n} trials per arm"
    if 2 * n > plan.pilot_calls:
        text += (
            f" (extrapolated beyond the {plan.pilot_calls}-call pilot; an A/A pilot of "
            f"{2 * n} calls would simulate it)"
        )
    return text


def run(args: argparse.Namespace) -> int:
    """Run ``rolecheck plan`` with parsed arguments; return the exit status."""
    from ..core.distances import BOUNDED_METRICS, uses_text
    from ..core.planner import plan_trials

    try:
        if args.cases:
            from .plan_sets import run_cases

            print("\n".join(run_cases(args)))
            return ExitCode.OK
        pilot = load_pilot(args.pilot, metric=args.metric, arm=args.arm, comparison=args.comparison)
        plan = plan_trials(
            pilot.matrix,
            tolerance=args.tolerance,
            effect=args.effect,
            alpha=args.alpha,
            bounded=pilot.metric in BOUNDED_METRICS,
            relative=uses_text(pilot.metric),
            power=args.power,
            replications=args.replications,
            seed=args.seed,
            max_trials=args.max_trials,
        )
    except RolecheckUsageError as exc:
        return error("plan", exc)
    print("\n".join(format_plan(pilot, plan)))
    return ExitCode.OK
