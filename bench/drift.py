"""Calibration of the suite-level drift rule (``core/drift.py``) on a simulated nightly suite.

Run ``nice -n 19 python bench/drift.py`` (500 quiet nights of 50 arms, about 5 minutes
on a shared core) or ``python bench/drift.py --quick`` (100 nights, a smoke run). Exit
status 1 when a target is missed: a rate whose Wilson 95% interval (99% with ``--quick``)
lies entirely on the wrong side of its target, so Monte Carlo error alone does not fail a run.

The simulator
-------------
An arm is 20 recorded and 20 live calls (the same trials as recorded). A call is a
point in R^8: recorded calls ``N(0, s^2 I)``, live calls ``N(shift e_1, (jitter s)^2 I)``
with ``s = 0.5``; the distance of two calls is ``1 - exp(-|x - y|^2 / 16)``, in [0, 1]
like the built-in metrics (about 0.2 between two calls of one arm: the recorded jitter).
Every arm is decided by the engine's own functions, exactly as ``compare()`` does for the
all-pairs design: ``permutation_test`` (the p-value, 10,000 relabellings) and
``change_bound`` (the change and its bounds), then all arms of a night go through
``decide_drift`` at alpha = 0.05 with the default tolerance 0.2. A change's size is its
true ``delta`` (the quantity ``change_bound`` estimates), from 400,000 sampled pairs.

Rows
----
(a) Quiet nights (50 unchanged arms): share of nights that page (target <= alpha).
(b) Per-arm power: one changed arm among 49 unchanged ones; the share of nights it is
    named ``drifted``, for a change at the tolerance (target <= alpha: a change of the
    margin's size is not drift) and small/medium/large changes (1.5x, 2x, 3x the
    tolerance; target for large >= 80%).
(c) Jitter-only nights (every arm's live calls noisier, no shift): share of nights that
    page (target <= alpha) and share reporting "detectable, below margin".
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from calibration import finish
from prompt_sets import ALPHA, TOL, wilson

from pytest_rolecheck.core.bounds import change_bound
from pytest_rolecheck.core.difference import permutation_test
from pytest_rolecheck.core.drift import DRIFTED, ArmDrift, decide_drift

ARMS = 50
TRIALS = 20
DIM = 8
SCALE = 0.5
# Live calls this much noisier than recorded, no shift: a serving change that only adds jitter.
JITTERS = (1.25, 1.5)
# Changes as multiples of the tolerance: at the margin, then small / medium / large.
CHANGES = (("at margin", 1.0), ("small", 1.5), ("medium", 2.0), ("large", 3.0))
POWER_TARGET = 0.8
Z95 = 1.959964  # the printed intervals


def _points(rng: np.random.Generator, n: int, shift: float, jitter: float) -> np.ndarray:
    x = rng.standard_normal((n, DIM)) * (SCALE * jitter)
    x[:, 0] += shift
    return x


def _distance(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    return np.asarray(1.0 - np.exp(-((x - y) ** 2).sum(-1) / (2 * DIM)), dtype=np.float64)


def arm(rng: np.random.Generator, name: str, shift: float = 0.0, jitter: float = 1.0) -> ArmDrift:
    """One arm's recorded-vs-live comparison by the engine's functions."""
    x = np.vstack(
        [_points(rng, TRIALS, 0.0, 1.0), _points(rng, TRIALS, shift, jitter)],
    )
    d = _distance(x[:, None, :], x[None, :, :])
    test = permutation_test(d, TRIALS, seed=int(rng.integers(2**31)))
    bound = change_bound(d, TRIALS, alpha=ALPHA, bounded=True)
    return ArmDrift(name, test.p_value, bound.estimate, bound.lower, bound.upper, TOL)


def true_delta(shift: float, jitter: float = 1.0, pairs: int = 400_000) -> float:
    """``cross - min(within_recorded, within_live)`` of the population, by sampling pairs."""
    rng = np.random.default_rng(12345)
    rec = [_points(rng, pairs, 0.0, 1.0) for _ in range(2)]
    live = [_points(rng, pairs, shift, jitter) for _ in range(2)]
    cross = float(_distance(rec[0], live[0]).mean())
    within = min(float(_distance(*rec).mean()), float(_distance(*live).mean()))
    return cross - within


def shift_for(delta: float) -> float:
    """The shift whose true delta is ``delta`` (bisection; delta grows with the shift)."""
    lo, hi = 0.0, 5.0
    for _ in range(30):
        mid = (lo + hi) / 2
        lo, hi = (mid, hi) if true_delta(mid, pairs=100_000) < delta else (lo, mid)
    return (lo + hi) / 2


def _pct(k: int, n: int, z: float) -> str:
    lo, hi = wilson(k, n, z)
    return f"{k / n:6.1%} [{lo:5.1%}, {hi:5.1%}]  ({k}/{n})"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="100 nights (smoke run)")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    nights = 100 if args.quick else 500
    jitter_nights = 40 if args.quick else 150
    # The "missed" check: 95% Wilson in a full run, 99% in a smoke run (fewer nights).
    z = 2.575829 if args.quick else Z95
    start = time.perf_counter()
    rng = np.random.default_rng(args.seed)
    missed: list[str] = []
    print(f"{ARMS} arms x {TRIALS} recorded + {TRIALS} live calls, alpha {ALPHA}, tolerance {TOL}")
    print("rates with Wilson 95% intervals\n")

    # (a) Quiet nights; their arms are also the 49 unchanged arms of the power nights.
    quiet: list[list[ArmDrift]] = []
    pages = holm = raw = 0
    for night in range(nights):
        arms = [arm(rng, f"n{night}a{i}") for i in range(ARMS)]
        quiet.append(arms)
        decision = decide_drift(arms, alpha=ALPHA)
        pages += decision.drifted
        holm += decision.n_drifted + decision.n_below_margin > 0
        raw += any(a.p_value <= ALPHA for a in arms)
    print(f"(a) quiet nights paging (Holm + margin): {_pct(pages, nights, Z95)}")
    print(f"    Holm alone (any arm detectable): {_pct(holm, nights, Z95)}")
    print(f"    for contrast, nights with any raw p <= alpha: {_pct(raw, nights, Z95)}")
    # Holm alone is the claim; the margin only removes flags.
    if wilson(holm, nights, z)[0] > ALPHA:
        missed.append("(a) family-wise false alarms above alpha")

    # (b) One changed arm among 49 unchanged ones.
    print("\n(b) per-arm power: one changed arm among 49 unchanged (drifted / below margin)")
    for label, factor in CHANGES:
        delta = factor * TOL
        shift = shift_for(delta)
        named = below = 0
        for night in range(nights):
            changed = arm(rng, "changed", shift=shift)
            decision = decide_drift([changed, *quiet[night][1:]], alpha=ALPHA)
            status = decision.arms[0].status
            named += status == DRIFTED
            below += status != DRIFTED and decision.arms[0].adjusted_p <= ALPHA
        print(
            f"    {label:>9} (delta {delta:.2f}, shift {shift:.2f}): drifted "
            f"{_pct(named, nights, Z95)}; detectable, below margin {below / nights:.1%}"
        )
        if factor == 1.0 and wilson(named, nights, z)[0] > ALPHA:
            missed.append("(b) a change at the margin named drifted more often than alpha")
        if label == "large" and wilson(named, nights, z)[1] < POWER_TARGET:
            missed.append(f"(b) power for a large change below {POWER_TARGET:.0%}")

    # (c) Every arm noisier, nothing shifted.
    print("\n(c) jitter-only nights (every live arm noisier, no shift)")
    for jitter in JITTERS:
        delta = true_delta(0.0, jitter)
        pages = reported = 0
        for night in range(jitter_nights):
            arms = [arm(rng, f"j{night}a{i}", jitter=jitter) for i in range(ARMS)]
            decision = decide_drift(arms, alpha=ALPHA)
            pages += decision.drifted
            reported += decision.n_below_margin > 0
        print(
            f"    jitter x{jitter} (delta {delta:.3f}): paging {_pct(pages, jitter_nights, Z95)}"
            f"; reporting detectable, below margin {_pct(reported, jitter_nights, Z95)}"
        )
        if delta < TOL and wilson(pages, jitter_nights, z)[0] > ALPHA:
            missed.append(f"(c) jitter x{jitter} alone pages more often than alpha")

    print()
    return finish(missed, start)


if __name__ == "__main__":
    sys.exit(main())
