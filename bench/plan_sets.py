"""Does ``rolecheck plan --cases`` predict what a prompt set really achieves?

Run ``python bench/plan_sets.py`` (5 pilots, 400 true runs per cell) or
``--quick`` (3 pilots, 150 runs). On the heterogeneous simulator of
``bench/prompt_sets.py`` (cases differ in length and entropy, 30% nearly
deterministic) each *pilot* is an A/A run of 20 fresh cases with 10 calls each;
:func:`~pytest_rolecheck.core.set_planner.plan_cases` predicts P(equivalent)
for 14/20/30 cases x 3/5 trials at the default tolerance 0.2 and 30/50
cases at 0.1. The *truth* for a cell is the share of
A/A runs on fresh cases from the simulator's population whose set verdict is
``equivalent`` (Wilson 95% interval). Printed per cell: the truth and each
pilot's prediction; per pilot: its answer (the fewest calls per arm reaching
80%) and the true P(equivalent) of that answer.

Exit status 1 when a pilot's answer is badly wrong: its cell's true
P(equivalent) has a Wilson interval entirely below 0.7 (the plan promised
0.8; 20 pilot cases are a sample of the population, so some shortfall is the
pilot's own sampling error, stated, not hidden).
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from prompt_sets import ALPHA, TOL, simulate, wilson

from pytest_rolecheck.core.prompt_sets import compare_prompt_set
from pytest_rolecheck.core.set_planner import plan_cases

# tolerance -> cases: 0.2 crosses the unseen-case guard (14 cases), 0.1 the jitter
GRIDS = {TOL: (14, 20, 30), 0.1: (30, 50)}
TRIALS = (3, 5)
PILOT_CASES = 20
PILOT_CALLS = 10
POWER = 0.8
FLOOR = 0.7


def true_share(tol: float, m: int, t: int, reps: int, seed: int) -> tuple[int, int]:
    """A/A runs of ``m`` fresh cases x ``t`` trials certified equivalent, out of ``reps``."""
    rng = np.random.default_rng([seed, m, t])
    hits = 0
    for _ in range(reps):
        d, _ = simulate(rng, m, t, 0.0, 0.0)
        result = compare_prompt_set(
            {f"c{c}": (d[c], t) for c in range(m)},
            alpha=ALPHA,
            tolerance=tol,
            seed=0,
            max_exact=0,
            n_resamples=1,
        )
        hits += result.equivalence_shown
    return hits, reps


def main(argv: list[str] | None = None) -> int:
    """Print predictions beside the truth; return 1 when an answer falls short (docstring)."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="3 pilots, 150 runs per cell")
    args = parser.parse_args(argv)
    pilots, reps = (3, 150) if args.quick else (5, 400)
    start = time.perf_counter()
    pilot_data = [
        list(simulate(np.random.default_rng([23, p]), PILOT_CASES, PILOT_CALLS // 2, 0.0, 0.0)[0])
        for p in range(pilots)
    ]
    failed = False
    for tol, cases in GRIDS.items():
        failed |= _report(tol, cases, pilot_data, reps)
    print(f"{time.perf_counter() - start:.1f} s")
    return 1 if failed else 0


def _report(tol: float, cases: tuple[int, ...], pilot_data: list[list[Any]], reps: int) -> bool:
    """Print one tolerance's table; True when a pilot's answer falls short."""
    truth = {(m, t): true_share(tol, m, t, reps, seed=11) for m in cases for t in TRIALS}
    plans = [
        plan_cases(d, tolerance=tol, alpha=ALPHA, power=POWER, seed=p, cases=cases, trials=TRIALS)
        for p, d in enumerate(pilot_data)
    ]
    print(
        f"plan --cases vs truth: pilots of {PILOT_CASES} cases x {PILOT_CALLS} A/A calls, "
        f"tolerance {tol}, {reps} true runs per cell"
    )
    print(f"  {'cases':>5} {'trials':>6}  {'true P(eq) [95%]':>22}  predicted by each pilot")
    for (m, t), (k, n) in truth.items():
        lo, hi = wilson(k, n, 1.959964)
        predicted = [
            next(c.p_equivalent for c in plan.cells if (c.cases, c.trials) == (m, t))
            for plan in plans
        ]
        shown = " ".join(f"{x:.2f}" for x in predicted if x is not None)
        print(f"  {m:>5} {t:>6}  {k / n:6.3f} [{lo:.3f}, {hi:.3f}]  {shown}")
    failed = False
    for i, plan in enumerate(plans):
        if plan.answer is None:
            print(f"  pilot {i}: no cell reaches {POWER:.0%}")
            continue
        a = plan.answer
        k, n = truth[(a.cases, a.trials)]
        lo, hi = wilson(k, n, 1.959964)
        short = hi < FLOOR
        failed |= short
        print(
            f"  pilot {i}: answer {a.cases} cases x {a.trials} trials (predicted "
            f"{a.p_equivalent:.2f}); true {k / n:.3f} [{lo:.3f}, {hi:.3f}]"
            + ("  MISSED" if short else "")
        )
    return failed


if __name__ == "__main__":
    sys.exit(main())
