"""Calibration of the verdicts on simulated noisy APIs (the table in the README).

Run ``python bench/calibration.py`` (1,000 replications per family, metric and
n; about 12 minutes on one core) or ``python bench/calibration.py --quick``
(100 replications, a smoke run). Nothing runs in parallel.

Every replication draws a new prompt ("world", ``bench/_simulator.py``,
:class:`FastWorld`) and two arms of 20 calls as ``ParsedCall`` values; the
distance matrix of the 40 calls is computed once per metric, and the 5 + 5,
10 + 10 and 20 + 20 comparisons use its leading calls, through the engine's
own decision path (``_compare._compare_all_pairs`` with the precomputed
matrix; the permutation test uses 499 random relabellings, enough to resolve
p <= 0.05, or every relabelling when there are at most 1,000).

Families: shared-noise A/A (Gaussian, heavy-tailed, near-deterministic
jitter, sampled multimodal, variable length / end-of-sequence), noise-level
differences only, smooth logit shifts, answer swaps, and mixtures (a share q
of B's calls answered from another prompt: q = 0.1, 0.2, 0.3, and q at the
tolerance). Each family's true change ``delta`` (per metric) is estimated
once from 300 + 300 calls. Rates (Wilson 95% intervals):

* false *different*: P(different) in families with ``delta <= tolerance``
  (target <= alpha);
* false *equivalent*: P(equivalent) in families with ``delta >= tolerance``
  (target <= alpha), including the families built to sit at the tolerance;
* A/A *equivalent* rate, and power (P(different) when ``delta`` is clearly
  above the tolerance, P(equivalent) when clearly below).

A target counts as missed when the Wilson 95% interval (99% with ``--quick``)
lies entirely above alpha, so Monte Carlo error alone does not fail a run. Exit
status 1 if one is.
"""

from __future__ import annotations

import argparse
import contextlib
import functools
import math
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
import numpy.typing as npt

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from _simulator import ArmModel, FastWorld, WorldModel, draw_calls

from pytest_rolecheck.core import stats as _stats
from pytest_rolecheck.core.distances import distance_matrix, uses_text
from pytest_rolecheck.verdicts import compare as _compare
from pytest_rolecheck.verdicts.options import Options
from pytest_rolecheck.verdicts.toolcalls import _compare_outcomes

NS = (5, 10, 20)
ALPHA = 0.05
TOL = _stats.DEFAULT_TOLERANCE
METRICS = ("js", "tv")
# Rank- or position-averaged metrics and the first-token metric: fewer replications, A/A
# families and answer swaps only (their claims: no false "different", never "equivalent"
# on a swap it cannot see).
SIDE_METRICS = ("first_token", "tok_l1", "seed")
# Fewer relabellings than compare()'s 9,999: p <= 0.05 is still resolved (step 0.002).
_stats.permutation_test = functools.partial(  # type: ignore[assignment]
    _stats.permutation_test, n_resamples=499, max_exact=1000
)


@dataclass(frozen=True)
class Family:
    name: str
    kind: str  # "A/A", "noise", "shift", "swap", "mixture"
    a: ArmModel
    b: ArmModel
    world: WorldModel = WorldModel()  # noqa: RUF009 (frozen, so one shared default is safe)
    other_words: bool = False  # B's mixed-in answers are spelled in other words


def families() -> list[Family]:
    g = ArmModel(noise=0.3)
    flat = WorldModel(flat_first=True)
    eos = WorldModel(eos=1.0, length=6)
    fams = [
        Family("A/A gaussian jitter", "A/A", g, g),
        Family("A/A heavy-tailed (t2)", "A/A", ArmModel(0.15, 2.0), ArmModel(0.15, 2.0)),
        Family("A/A near-deterministic", "A/A", ArmModel(1e-7), ArmModel(1e-7)),
        Family(
            "A/A sampled multimodal",
            "A/A",
            ArmModel(0.05, sample=True),
            ArmModel(0.05, sample=True),
            flat,
        ),
        Family("A/A variable length/EOS", "A/A", g, g, eos),
        Family("noise: exact vs 1e-8 jitter", "noise", ArmModel(0.0), ArmModel(1e-8)),
        Family("noise: 0.05 vs 0.3 jitter", "noise", ArmModel(0.05), ArmModel(0.3)),
        Family("shift 0.3 (smooth)", "shift", g, ArmModel(0.3, shift=0.3)),
        Family("shift 1.0 (smooth)", "shift", g, ArmModel(0.3, shift=1.0)),
        Family("top-2 swap at a noisy near-tie", "swap", g, ArmModel(0.3, swap=True)),
        Family("answer swap, quiet", "swap", ArmModel(0.01), ArmModel(0.01, swap=True)),
    ]
    for q in (0.1, 0.2, 0.3):
        fams.append(Family(f"mixture q={q}", "mixture", ArmModel(0.01), ArmModel(0.01, mix=q)))
    fams.append(Family("mixture q=0.2, noisy", "mixture", g, ArmModel(0.3, mix=0.2)))
    fams.append(
        Family(
            "mixture q=0.2, sampled",
            "mixture",
            ArmModel(0.05, sample=True),
            ArmModel(0.05, sample=True, mix=0.2),
            flat,
        )
    )
    return fams


def at_tolerance() -> list[Family]:
    """Mixtures whose change equals the tolerance.

    ``cross - within_a`` is linear in the mixed-in share q, so q = tolerance / its value
    at q = 1 (the js metric) puts it at the tolerance; the change, the larger of it and
    ``cross - within_b``, is then at least the tolerance.
    """
    out = []
    for base, label in ((ArmModel(0.01), "quiet"), (ArmModel(0.3), "noisy")):
        whole = Family("", "", base, ArmModel(base.noise, mix=1.0))
        q = min(1.0, TOL / true_delta(whole, "js", side="a"))
        b = ArmModel(base.noise, mix=q)
        out.append(Family(f"mixture at tolerance, {label} (q={q:.3f})", "at-tol", base, b))
    return out


# Every family is one prompt (world 1; world 2 answers B's mixed-in calls), so its true
# change is a number and each replication redraws only the calls' noise and sampling.
WORLD, OTHER = 1, 2


def _arms(fam: Family, rep: int, n: int) -> tuple[list, list]:
    world = FastWorld(WORLD, fam.world)
    other = FastWorld(OTHER, fam.world, other_words=fam.other_words)
    rng = np.random.default_rng([rep, 7])
    return draw_calls(world, other, fam.a, n, rng), draw_calls(world, other, fam.b, n, rng)


# A metric name with this suffix is decided by the rule before relative changes: the text
# metrics' change in absolute units, cross - within (see _old_rule).
OLD = " old"


@contextlib.contextmanager
def _old_rule(metric: str) -> Iterator[None]:
    """Decide as before relative changes when ``metric`` ends in :data:`OLD`."""
    if not metric.endswith(OLD):
        yield
        return
    relative = Options.relative
    Options.relative = property(lambda self: False)  # type: ignore[method-assign,assignment]
    try:
        yield
    finally:
        Options.relative = relative  # type: ignore[method-assign]


def _relative(metric: str) -> bool:
    return uses_text(metric) and not metric.endswith(OLD)


@functools.cache
def true_delta(fam: Family, metric: str, n: int = 300, side: str = "max") -> float:
    """The family's change ``max(D_A, D_B)`` from 300 + 300 calls, in the rule's units.

    ``D_A = cross - within_a`` (over ``1 - within_a`` for a relative change); ``side="a"``:
    ``D_A`` alone.
    """
    a, b = _arms(fam, 999_999, n)
    d = distance_matrix(a + b, metric.removesuffix(OLD))
    wa = d[:n, :n].sum() / (n * (n - 1))
    wb = d[n:, n:].sum() / (n * (n - 1))
    cross = d[:n, n:].mean()
    if _relative(metric):
        da, db = (cross - wa) / (1 - wa), (cross - wb) / (1 - wb)
    else:
        da, db = cross - wa, cross - wb
    if side == "a":
        return float(da)
    if 0 < fam.b.mix < 1:
        # cross - within_a = q * (its value at q = 1): exact in q, without the binomial
        # noise of how many of 300 calls happened to be mixed in.
        whole = replace(fam, name="", kind="", b=replace(fam.b, mix=1.0))
        return float(max(fam.b.mix * true_delta(whole, metric, n, "a"), db))
    return float(max(da, db))


# The check behind "missed": a Wilson interval at this z lies entirely above alpha. 1.96
# (95%) in a full run; --quick uses 2.576 (99%), since 100 replications would otherwise
# flag a rate of exactly 5% in a few percent of smoke runs.
_CHECK_Z = [1.959964]


def missed_rate(k: int, n: int) -> bool:
    return wilson(k, n, _CHECK_Z[0])[0] > ALPHA


def wilson(k: int, n: int, z: float = 1.959964) -> tuple[float, float]:
    if n == 0:
        return (0.0, 1.0)
    p = k / n
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / (1 + z * z / n)
    return (max(0.0, centre - half), min(1.0, centre + half))


def run(fam: Family, metric: str, reps: int) -> dict[int, dict[str, int]]:
    opts = _compare.check_options(
        metric=metric.removesuffix(OLD),
        alpha=ALPHA,
        tolerance=None,
        design="all-pairs",
        seed=0,
        baseline=None,
        labels=("A", "B"),
    )
    counts = {n: {"equivalent": 0, "different": 0, "inconclusive": 0} for n in NS}
    top = max(NS)
    for rep in range(reps):
        a, b = _arms(fam, rep, top)
        d = _matrix(fam, rep, metric.removesuffix(OLD))
        for n in NS:
            idx = list(range(n)) + list(range(top, top + n))
            sub = d[np.ix_(idx, idx)]
            with _old_rule(metric):
                res = _compare._compare_all_pairs(tuple(a[:n]), tuple(b[:n]), opts, d=sub)
            counts[n][res.verdict] += 1
    return counts


# The old and the new rule decide on the same matrices: computed once per replication.
@functools.lru_cache(maxsize=1_100)
def _matrix(fam: Family, rep: int, metric: str) -> npt.NDArray[np.float64]:
    a, b = _arms(fam, rep, max(NS))
    return distance_matrix(a + b, metric)


def _pct(k: int, n: int) -> str:
    lo, hi = wilson(k, n)
    return f"{k / n:5.1%} [{lo:.1%}, {hi:.1%}]"


# Tool calls: outcome distributions (outcome -> probability) and their true TV distance.
TOOL_FAMILIES: tuple[tuple[str, dict[str, float], dict[str, float]], ...] = (
    ("A/A one outcome (all agree)", {"f": 1.0}, {"f": 1.0}),
    ("A/A two outcomes 0.7/0.3", {"f": 0.7, "g": 0.3}, {"f": 0.7, "g": 0.3}),
    ("A/A three outcomes", {"f": 0.5, "g": 0.3, "t": 0.2}, {"f": 0.5, "g": 0.3, "t": 0.2}),
    ("TV 0.1: 0.7/0.3 vs 0.8/0.2", {"f": 0.7, "g": 0.3}, {"f": 0.8, "g": 0.2}),
    ("TV 0.2: all f vs 20% g", {"f": 1.0}, {"f": 0.8, "g": 0.2}),
    ("TV 0.2: 0.5/0.5 vs 0.7/0.3", {"f": 0.5, "g": 0.5}, {"f": 0.7, "g": 0.3}),
    ("TV 0.2: new third outcome", {"f": 0.85, "g": 0.15}, {"f": 0.65, "g": 0.15, "t": 0.2}),
    ("TV 0.3: all f vs 30% g", {"f": 1.0}, {"f": 0.7, "g": 0.3}),
    ("TV 0.3: 0.5/0.5 vs 0.8/0.2", {"f": 0.5, "g": 0.5}, {"f": 0.8, "g": 0.2}),
    ("TV 0.3: new third outcome", {"f": 0.85, "g": 0.15}, {"f": 0.55, "g": 0.15, "t": 0.3}),
    ("TV 0.6: 0.8/0.2 vs 0.2/0.8", {"f": 0.8, "g": 0.2}, {"f": 0.2, "g": 0.8}),
    ("TV 1: f vs g", {"f": 1.0}, {"g": 1.0}),
)


def _tv(pa: dict[str, float], pb: dict[str, float]) -> float:
    keys = set(pa) | set(pb)
    return 0.5 * sum(abs(pa.get(k, 0.0) - pb.get(k, 0.0)) for k in keys)


def _draw(p: dict[str, float], n: int, rng: np.random.Generator) -> list[tuple[str, ...]]:
    keys = sorted(p)
    picks = rng.choice(len(keys), size=n, p=[p[k] for k in keys])
    return [(keys[i],) for i in picks]


def tool_table(reps: int) -> list[str]:
    """Tool-call verdicts on outcome distributions with a known TV (default tolerance)."""
    missed = []
    print()
    print(f"tool calls: {reps} replications per cell, tolerance {TOL}, alpha {ALPHA}")
    head = f"{'family':<34} {'TV':>5} {'n':>3}  {'P(equivalent)':<24}{'P(different)':<24}"
    print(head)
    print("-" * len(head))
    for name, pa, pb in TOOL_FAMILIES:
        tv = _tv(pa, pb)
        for n in NS:
            rng = np.random.default_rng([n, len(name)])
            counts = {"equivalent": 0, "different": 0, "inconclusive": 0}
            for rep in range(reps):
                res = _compare_outcomes(
                    _draw(pa, n, rng),
                    _draw(pb, n, rng),
                    alpha=ALPHA,
                    tolerance=TOL,
                    names_only=False,
                    ordered=False,
                    seed=rep,
                    labels=("A", "B"),
                )
                counts[res.verdict] += 1
            eq, diff = counts["equivalent"], counts["different"]
            flag = ""
            if tv <= TOL + 1e-9 and missed_rate(diff, reps):
                flag = " MISSED false-different"
            if tv >= TOL - 1e-9 and missed_rate(eq, reps):
                flag = " MISSED false-equivalent"
            if flag:
                missed.append(f"tool calls {name} {n}")
            print(f"{name:<34} {tv:5.2f} {n:>3}  {_pct(eq, reps):<24}{_pct(diff, reps):<24}{flag}")
    return missed


def seed_design_table(reps: int) -> list[str]:
    """The seed design (js) on the A/A families.

    Targets: no false "different"; "equivalent" only by the deterministic shortcut (every
    trial of A equal to the baseline and every call of B equal: the change is exact).
    """
    missed = []
    print()
    print(f"seed design (metric js, one baseline call): {reps} replications per cell")
    head = f"{'family':<34} {'n':>3}  {'P(equivalent)':<24}{'P(different)':<24}"
    print(head)
    print("-" * len(head))
    for fam in families():
        if fam.kind != "A/A":
            continue
        for n in NS:
            counts = {"equivalent": 0, "different": 0, "inconclusive": 0}
            statistical_eq = 0  # equivalence is allowed only where the change is exact
            for rep in range(reps):
                a, b = _arms(fam, rep, n + 1)
                res = _compare.compare(a, b[:n], design="seed", metric="js")
                counts[res.verdict] += 1
                statistical_eq += res.verdict == "equivalent" and not res.exact
            eq, diff = counts["equivalent"], counts["different"]
            flag = " MISSED" if missed_rate(diff, reps) or statistical_eq else ""
            if flag:
                missed.append(f"seed design {fam.name} {n}")
            print(f"{fam.name:<34} {n:>3}  {_pct(eq, reps):<24}{_pct(diff, reps):<24}{flag}")
    return missed


def logprob_table(
    fams: list[Family], metrics_of: Callable[[Family], tuple[tuple[str, int], ...]]
) -> list[str]:
    """One row per family, metric (with its replications) and n; returns the missed targets."""
    header = (
        f"{'family':<44} {'metric':<11} {'delta':>6} {'n':>3}  "
        f"{'P(equivalent)':<24}{'P(different)':<24}"
    )
    print(header)
    print("-" * len(header))
    missed: list[str] = []
    worst_fd: tuple[float, str] = (0.0, "")
    worst_fe: tuple[float, str] = (0.0, "")
    for fam in fams:
        for metric, r in metrics_of(fam):
            delta = true_delta(fam, metric)
            counts = run(fam, metric, r)
            for n in NS:
                c = counts[n]
                eq, diff = c["equivalent"], c["different"]
                flag = ""
                # A family within ~0.01 of the tolerance counts for both claims.
                if delta <= TOL + 0.01 and missed_rate(diff, r):
                    flag, _ = " MISSED false-different", missed.append(f"{fam.name} {metric} {n}")
                if delta >= TOL - 0.01 and missed_rate(eq, r):
                    flag, _ = " MISSED false-equivalent", missed.append(f"{fam.name} {metric} {n}")
                if delta <= TOL + 0.01:
                    worst_fd = max(worst_fd, (diff / r, f"{fam.name}, {metric}, n={n}"))
                if delta >= TOL - 0.01:
                    worst_fe = max(worst_fe, (eq / r, f"{fam.name}, {metric}, n={n}"))
                print(
                    f"{fam.name:<44} {metric:<11} {delta:6.3f} {n:>3}  "
                    f"{_pct(eq, r):<24}{_pct(diff, r):<24}{flag}",
                    flush=True,
                )
    print()
    print(f"worst false-different rate (delta <= tolerance): {worst_fd[0]:.1%} ({worst_fd[1]})")
    print(f"worst false-equivalent rate (delta >= tolerance): {worst_fe[0]:.1%} ({worst_fe[1]})")
    return missed


# Sampled calls (temperature 1) on a backend whose logits are deterministic, as the local
# server's: answers of 12 tokens that part within the first few. The old default (js) and
# the new one for sampled calls (js_edit, what metric="auto" picks) side by side; edit (and
# hamming on the A/A family), what a comparison without logprobs can use, with fewer
# replications.
SAMPLED_METRICS = ("js", "js_edit" + OLD, "js_edit")
SAMPLED_SIDE = ("edit" + OLD, "edit", "hamming" + OLD, "hamming")


def sampled_families() -> list[Family]:
    s, wm = ArmModel(sample=True), WorldModel(length=12)

    def changed(name: str, kind: str, q: float, after: int, other_words: bool) -> Family:
        b = ArmModel(sample=True, mix=q, after=after)
        return Family(name, kind, s, b, wm, other_words)

    fams = [
        Family("sampled A/A", "A/A", s, s, wm),
        # B's answers continue in other words after their third token: all of them, or a
        # share q (the change grows like q).
        changed("sampled, other words after token 3", "late", 1.0, 3, True),
        changed("sampled, other words after token 3, q=0.2", "late", 0.2, 3, True),
        # Another continuation in the same words: the texts look alike, only js can tell.
        changed("sampled, same words, other after token 3", "late", 1.0, 3, False),
        changed("sampled, same words, other from token 0", "early", 1.0, 0, False),
    ]
    # A mixture of late changes whose js_edit change equals the tolerance (linear in q),
    # when the whole change is above it (on this simulator it is not: no such family).
    q = TOL / true_delta(fams[1], "js_edit", side="a")
    if q < 1.0:
        fams.append(
            changed(f"sampled, other after 3, at tolerance (q={q:.3f})", "at-tol", q, 3, True)
        )
    return fams


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="100 replications (smoke run)")
    parser.add_argument("--reps", type=int, default=None)
    parser.add_argument(
        "--part",
        choices=("all", "logprobs", "at-tolerance", "tools", "seed", "sampled"),
        default="all",
        help="run one table only (default: all)",
    )
    args = parser.parse_args(argv)
    reps = args.reps or (100 if args.quick else 1000)
    if args.quick:
        _CHECK_Z[0] = 2.575829
    side_reps = max(50, reps // 4)
    start = time.perf_counter()
    missed: list[str] = []
    if args.part in ("all", "tools"):
        missed += tool_table(reps)
    if args.part in ("all", "seed"):
        missed += seed_design_table(side_reps)
    if args.part in ("all", "logprobs", "at-tolerance"):
        fams = ([] if args.part == "at-tolerance" else families()) + at_tolerance()
        print(
            f"rolecheck calibration: alpha {ALPHA}, tolerance {TOL} (default), {reps} "
            f"replications per cell (side metrics {side_reps}), n = calls per arm; rates with "
            "Wilson 95% CIs"
        )
        print()
        print()
        missed += logprob_table(
            fams,
            lambda fam: (
                tuple((m, reps) for m in METRICS)
                + (
                    tuple((m, side_reps) for m in SIDE_METRICS)
                    if fam.kind in ("A/A", "swap")
                    else ()
                )
            ),
        )
    if args.part in ("all", "sampled"):
        print()
        print(
            f"sampled calls (temperature 1, 12 tokens, deterministic logits): {reps} replications "
            f"per cell for {', '.join(SAMPLED_METRICS)}, {side_reps} for "
            f"{', '.join(SAMPLED_SIDE)} (hamming: A/A only); '{OLD.strip()}': the rule before "
            "relative changes; Wilson 95% CIs"
        )
        missed += logprob_table(
            sampled_families(),
            lambda fam: (
                tuple((m, reps) for m in SAMPLED_METRICS)
                + tuple(
                    (m, side_reps)
                    for m in SAMPLED_SIDE
                    if m.startswith("edit") or fam.kind == "A/A"
                )
            ),
        )
    return finish(missed, start)


def finish(missed: list[str], start: float) -> int:
    print(f"time {time.perf_counter() - start:.0f} s")
    if missed:
        print("targets missed: " + "; ".join(missed))
        return 1
    print("all targets met")
    return 0


if __name__ == "__main__":
    sys.exit(main())
