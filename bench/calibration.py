"""Calibration of the verdicts on simulated noisy APIs.

Run ``python bench/calibration.py`` (full: 1,000 replications under no effect,
a few minutes on 2 cores) or ``python bench/calibration.py --quick`` (CI smoke).

Every replication simulates a new prompt ("world", see ``bench/_simulator.py``)
and two arms of chat-completion JSON, which go through the real pipeline:
``parse_response`` -> ``compare()``. The arms are nested: the n = 5 and n = 10
comparisons use the first calls of the n = 20 arms, so one replication serves
all three sample sizes. Printed:

1. no effect: the false "different" rate (the share of p <= alpha; target
   <= 0.06 at alpha = 0.05) and the equivalence pass rate (target >= 0.8 at
   n = 10, margin 0.5), for the metrics js, tv, tok_l1, seed and the seed
   design;
2. power against small, medium and large effects (share of "different"
   verdicts), with the pooled ratio the effect produces (n = 20);
3. the deterministic case (no noise): identical arms must always be
   equivalent, any real difference always different;
4. the equivalence test's size at the margin, on a distance-level model whose
   true ratio is known exactly (informational, nominal 0.05).

Targets are checked on the point estimates in a full run. With ``--quick``
(200 replications) the Monte Carlo error is too large for that (a test of
exact size 0.05 exceeds 0.06 in ~20% of 200-replication runs), so a rate
target counts as missed only if an exact binomial test rejects it at the 1%
level. The exit status is 1 if a target is missed.
"""

from __future__ import annotations

import os

# One BLAS thread per worker process: the workers are the parallelism.
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
os.environ.setdefault("OMP_NUM_THREADS", "1")
os.environ.setdefault("MKL_NUM_THREADS", "1")

import argparse
import multiprocessing
import sys
import time
from collections import defaultdict
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from scipy import stats as sps

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from _simulator import SimConfig, simulate_arms

from pytest_rolecheck._compare import compare
from pytest_rolecheck._parse import parse_response
from pytest_rolecheck._stats import matrix_equivalence

NS = (5, 10, 20)
# (row label, metric, design)
METHODS: tuple[tuple[str, str, str], ...] = (
    ("js", "js", "all-pairs"),
    ("tv", "tv", "all-pairs"),
    ("tok_l1", "tok_l1", "all-pairs"),
    ("seed", "seed", "all-pairs"),
    ("seed design", "seed", "seed"),
)
# B's logit perturbation scale (logits; the per-call noise is 0.35).
EFFECTS: dict[str, float] = {"none": 0.0, "small": 0.5, "medium": 1.0, "large": 2.0}
DETERMINISTIC_EFFECTS: dict[str, float] = {
    "none": 0.0,
    "tiny": 0.1,
    "small": 0.5,
    "medium": 1.0,
    "large": 2.0,
}
ALPHA = 0.05
MARGIN = 0.5
FPR_TARGET = 0.06
EQUIV_TARGET = 0.8


@dataclass(frozen=True)
class Task:
    section: str  # "sim" or "det"
    effect_name: str
    effect: float
    rep: int
    seed: int


Row = tuple[int, str, str, float, float, float]


def _run_task(task: Task) -> tuple[Task, list[Row], list[float]]:
    """One replication: simulate, parse, compare at every n and method.

    Returns rows (n, method label, verdict, p-value or nan, excess, floor) and
    the seed-design trial distances of arm A at the largest n.
    """
    config = SimConfig(effect=task.effect)
    if task.section == "det":
        config = config.with_(noise=0.0, heavy_prob=0.0)
    world = task.seed * 1_000_003 + task.rep
    raw_a, raw_b = simulate_arms(config, max(NS), max(NS), world=world, seed=task.seed, extra_a=1)
    calls_a = [parse_response(r) for r in raw_a]
    calls_b = [parse_response(r) for r in raw_b]
    baseline, trials_a = calls_a[0], calls_a[1:]
    rows: list[Row] = []
    trial_distances: list[float] = []
    for n in NS:
        for label, metric, design in METHODS:
            c = compare(
                trials_a[:n],
                calls_b[:n],
                metric=metric,
                design=design,
                baseline=baseline if design == "seed" else None,
                alpha=ALPHA,
                margin=MARGIN,
                seed=task.rep,
            )
            p = float("nan") if c.p_value is None else c.p_value
            rows.append((n, label, c.verdict, p, c.excess, c.floor))
            if n == max(NS) and design == "seed" and c.trial_distances_a is not None:
                trial_distances = list(c.trial_distances_a)
    return task, rows, trial_distances


@dataclass
class Cell:
    reps: int = 0
    diff_p: int = 0  # p <= alpha
    verdict_diff: int = 0
    verdict_equiv: int = 0
    sum_excess: float = 0.0
    sum_floor: float = 0.0

    def add(self, verdict: str, p: float, excess: float, floor: float) -> None:
        self.reps += 1
        self.diff_p += int(p <= ALPHA)
        self.verdict_diff += int(verdict == "different")
        self.verdict_equiv += int(verdict == "equivalent")
        self.sum_excess += excess
        self.sum_floor += floor


def _ci(k: int, n: int) -> tuple[float, float]:
    """Clopper-Pearson 95% interval of a binomial rate."""
    if n == 0:
        return (float("nan"), float("nan"))
    r = sps.binomtest(k, n).proportion_ci(confidence_level=0.95, method="exact")
    return float(r.low), float(r.high)


def _missed_at_most(k: int, n: int, target: float, quick: bool) -> bool:
    if not quick:
        return k / n > target
    return float(sps.binomtest(k, n, target, alternative="greater").pvalue) < 0.01


def _missed_at_least(k: int, n: int, target: float, quick: bool) -> bool:
    if not quick:
        return k / n < target
    return float(sps.binomtest(k, n, target, alternative="less").pvalue) < 0.01


def _tasks(reps: int, power_reps: int, det_reps: int, seed: int) -> Iterator[Task]:
    for rep in range(reps):
        yield Task("sim", "none", 0.0, rep, seed)
    for name, effect in EFFECTS.items():
        if effect:
            for rep in range(power_reps):
                yield Task("sim", name, effect, rep, seed)
    for name, effect in DETERMINISTIC_EFFECTS.items():
        for rep in range(det_reps):
            yield Task("det", name, effect, rep, seed)


def _margin_check(reps: int, seed: int) -> list[tuple[str, int, float, float]]:
    """Equivalence pass rate when the true ratio equals the margin, exactly.

    Calls are points X in R^d, distance = squared Euclidean, A ~ s*N(0, I),
    B ~ s*N(mu, I) with s = 4 for a share of heavy-noise calls. Then
    E[within] = 2 d E[s^2] and E[cross] = E[within] + |mu|^2, so the ratio is
    |mu|^2 / (2 d E[s^2]); mu is set so that it equals the margin.
    """
    out = []
    rng = np.random.default_rng([seed, 7])
    for dim, heavy in ((1, 0.0), (1, 0.1), (20, 0.0), (20, 0.1)):
        es2 = (1 - heavy) + heavy * 16.0
        mu = np.zeros(dim)
        mu[0] = np.sqrt(MARGIN * 2 * dim * es2)
        for n in NS:
            passed = 0
            for _ in range(reps):
                s = np.where(rng.random((2 * n, 1)) < heavy, 4.0, 1.0)
                x = rng.standard_normal((2 * n, dim)) * s
                x[n:] += mu
                d = ((x[:, None, :] - x[None, :, :]) ** 2).sum(axis=-1)
                passed += int(matrix_equivalence(d, n).ratio.upper < MARGIN)
            label = f"d={dim:<2} heavy={heavy:.0%}"
            _, hi = _ci(passed, reps)
            out.append((label, n, passed / reps, hi))
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--reps", type=int, default=1000, help="replications under no effect")
    parser.add_argument("--power-reps", type=int, default=None, help="replications per effect")
    parser.add_argument("--det-reps", type=int, default=None, help="deterministic replications")
    parser.add_argument("--quick", action="store_true", help="CI smoke: 200 replications")
    parser.add_argument("--workers", type=int, default=min(2, os.cpu_count() or 1))
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    reps = 200 if args.quick and args.reps == 1000 else args.reps
    power_reps = args.power_reps or (50 if args.quick else 200)
    det_reps = args.det_reps or (5 if args.quick else 30)
    quick = args.quick or reps < 1000

    start = time.perf_counter()
    cells: dict[tuple[str, str, int, str], Cell] = defaultdict(Cell)
    seed_distances: list[float] = []
    tasks = list(_tasks(reps, power_reps, det_reps, args.seed))
    results: Iterator[tuple[Task, list[Row], list[float]]]
    pool = None
    if args.workers > 1:
        pool = multiprocessing.get_context("fork").Pool(args.workers)
        results = pool.imap_unordered(_run_task, tasks, chunksize=4)
    else:
        results = map(_run_task, tasks)
    try:
        for task, rows, trial_distances in results:
            for n, label, verdict, p, excess, floor in rows:
                cells[(task.section, task.effect_name, n, label)].add(verdict, p, excess, floor)
            if task.section == "sim" and task.effect_name == "none":
                seed_distances.extend(trial_distances)
    finally:
        if pool is not None:
            pool.close()
            pool.join()
    sim_seconds = time.perf_counter() - start
    t_margin = time.perf_counter()
    margin_rows = _margin_check(max(reps, 1000) if not quick else 400, args.seed)
    margin_seconds = time.perf_counter() - t_margin

    missed: list[str] = []
    cfg = SimConfig()
    print("pytest-rolecheck calibration (simulated noisy API -> parse_response -> compare)")
    print(
        f"simulator: vocab {cfg.vocab_size}, {cfg.length} tokens, top-{cfg.top_k}, logit noise "
        f"{cfg.noise}, heavy-noise calls {cfg.heavy_prob:.0%} (x{cfg.heavy_scale}), near-ties "
        f"{cfg.near_tie_prob:.1%} of positions; alpha {ALPHA}, margin {MARGIN}"
    )
    print(
        f"replications: {reps} under no effect, {power_reps} per effect, {det_reps} deterministic"
        f" per case; mode {'quick' if quick else 'full'}; workers {args.workers}"
    )
    print()

    # --- 1. no effect
    print("1. No effect: false 'different' rate (p <= alpha) [95% CI] | equivalence pass rate")
    header = f"{'method':<13}" + "".join(f"| n={n:<2} false-diff [95% CI]    equiv " for n in NS)
    print(header)
    print("-" * len(header))
    for label, _, design in METHODS:
        line = f"{label:<13}"
        for n in NS:
            c = cells[("sim", "none", n, label)]
            lo, hi = _ci(c.diff_p, c.reps)
            fpr = c.diff_p / c.reps
            eq = c.verdict_equiv / c.reps
            flag = ""
            if _missed_at_most(c.diff_p, c.reps, FPR_TARGET, quick):
                flag += "!"
                missed.append(f"false-different rate {fpr:.3f} > {FPR_TARGET} ({label}, n={n})")
            gated = design == "all-pairs"
            if n == 10 and gated and _missed_at_least(c.verdict_equiv, c.reps, EQUIV_TARGET, quick):
                flag += "*"
                missed.append(f"equivalence pass rate {eq:.3f} < {EQUIV_TARGET} ({label}, n=10)")
            line += f"| {fpr:6.3f} [{lo:.3f}, {hi:.3f}] {eq:9.3f}{flag:<2} "
        print(line)
    print(
        f"targets: false-diff <= {FPR_TARGET} (every row, every n; '!' = missed); equivalence >= "
        f"{EQUIV_TARGET} at n = 10 for the all-pairs rows ('*' = missed). The seed design's "
        f"equivalence rate is shown, not gated: its jitter is measured from one baseline call, "
        f"so its bounds stay wide (the reason it is not the default)."
    )
    if seed_distances:
        q = np.quantile(seed_distances, [0.1, 0.5, 0.9])
        print(
            f"noise floor: seed-metric distance of a trial to the baseline, no effect: median "
            f"{q[1]:.2f} (10%-90%: {q[0]:.2f}-{q[2]:.2f}, mean {np.mean(seed_distances):.2f}); "
            f"the forum experiment measured 0.21-0.54 (mean 0.42) and ~2 after a flip"
        )
    print()

    # --- 2. power
    print("2. Power: share of 'different' verdicts (and of 'equivalent'); ratio = pooled T/floor")
    for name, effect in EFFECTS.items():
        if not effect:
            continue
        print(f"  effect {name} (logit perturbation x{effect}):")
        for label, _, _ in METHODS:
            ref = cells[("sim", name, 20, label)]
            rho = ref.sum_excess / ref.sum_floor if ref.sum_floor else float("nan")
            parts = []
            for n in NS:
                c = cells[("sim", name, n, label)]
                diff, equiv = c.verdict_diff / c.reps, c.verdict_equiv / c.reps
                parts.append(f"n={n:<2} {diff:5.2f} (equiv {equiv:4.2f})")
            print(f"    {label:<13} ratio {rho:6.2f} | " + " | ".join(parts))
    print()

    # --- 3. deterministic
    print("3. Deterministic backend (no noise): share of correct verdicts")
    for name, effect in DETERMINISTIC_EFFECTS.items():
        expected = "equivalent" if effect == 0 else "different"
        parts = []
        for label, _, _ in METHODS:
            rates = []
            for n in NS:
                c = cells[("det", name, n, label)]
                ok = c.verdict_equiv if expected == "equivalent" else c.verdict_diff
                rates.append(ok / c.reps)
                if ok != c.reps:
                    missed.append(
                        f"deterministic {name}: {label} n={n} gave {expected} in "
                        f"{ok}/{c.reps} cases"
                    )
            parts.append(f"{label} {min(rates):.2f}")
        print(f"  {name:<7} (expect {expected:<10}): " + ", ".join(parts) + "  (min over n)")
    print()

    # --- 4. margin
    print(
        "4. Equivalence at the margin: pass rate when the true ratio is exactly 0.5 "
        "(squared-Euclidean model; nominal <= 0.05, informational)"
    )
    for label, n, rate, hi in margin_rows:
        print(f"  {label}  n={n:<2}  {rate:.3f}  (95% CI upper {hi:.3f})")
    print()
    total = time.perf_counter() - start
    print(
        f"runtime: {total:.0f} s total ({sim_seconds:.0f} s simulation + compare, "
        f"{margin_seconds:.0f} s margin check) on {args.workers} worker(s)"
    )
    if missed:
        print("\nTARGETS MISSED:")
        for m in missed:
            print(f"  - {m}")
        return 1
    print("all targets met")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
