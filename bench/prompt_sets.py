"""Calibration of the prompt-set engine (``core/prompt_sets.py``) on a heterogeneous simulator.

Run ``python bench/prompt_sets.py`` (1,000 replications per row) or
``python bench/prompt_sets.py --quick`` (200, a smoke run). Exit status 1 when a
target is missed: a rate whose Wilson 95% interval (99% with ``--quick``) lies
entirely above its target, so Monte Carlo error alone does not fail a run.

The simulator (vectorised over the cases of one replication)
-------------------------------------------------------------
A *case* is a prompt with its own answer length (3-24 tokens) and entropy:
30% nearly deterministic (greedy decoding, one dominant token per position;
half of those on a bit-reproducible backend, no jitter at all), 40% low
entropy (sampled, top token 80-97%), 30% high entropy (sampled, flat). The
next-token distribution depends on the position and the previous token (a
Markov chain over 6 tokens); every call adds Gaussian logit jitter (per case
0.02-0.3, the backend's nondeterminism). A call stores its per-position
distributions, so the per-pair distance is the ``tv`` metric's construction:
``1 - prod_t (1 - TV_t)`` over the positions up to the first diverging token,
``1.0`` when two greedy decodes part there. Two calls drawn from the same
distributions are therefore close however different their sampled texts.
The change: arm B moves a share ``q`` of position 0's probability to a token
arm A never produces, in a random ``touched`` share of the cases (all or 1/4).
Power families: every case with q = 0.4 or 0.6, or 1/4 of the cases with q = 1.
A family's true set change is estimated from 12 + 12 calls on 600 cases.

Rows: (1) A/A false *different* for 10/20/50 cases at 3/5 trials (target
<= alpha); (2) A/A *equivalent* rate, and false *equivalent* (and false
*different*) at a set change equal to the tolerance, spread over all cases or
concentrated (a share ~0.2 of the cases changed completely; targets <=
alpha); (3) power when every case changes vs 1/4, beside per-case tests on
the same calls (BH q-values of the engine; each case's single-prompt
decision at alpha/m, Bonferroni, which needs >= 4 calls per arm); (4)
per-case false discovery rate of the "changed" flags (target <= alpha; mean
of V / max(R, 1) with a normal 95% interval).
"""

from __future__ import annotations

import argparse
import functools
import math
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import numpy.typing as npt

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from pytest_rolecheck.core import stats as _stats
from pytest_rolecheck.core.prompt_sets import compare_prompt_set

FloatArray = npt.NDArray[np.float64]
ALPHA = 0.05
TOL = _stats.DEFAULT_TOLERANCE
VOCAB = 6  # tokens arm A can produce; token VOCAB is the one only arm B's change produces
MAX_LEN = 24
N_RESAMPLES = 999  # per engine call; enough to resolve p <= 0.05


# --------------------------------------------------------------------------- simulator


@dataclass(frozen=True)
class Cases:
    """``m`` simulated prompts: Markov logits, lengths, decoding and jitter per case."""

    logits: FloatArray  # (m, MAX_LEN, VOCAB + 1 prev tokens, VOCAB + 1 next tokens)
    length: npt.NDArray[np.int64]  # (m,)
    greedy: npt.NDArray[np.bool_]  # (m,)
    jitter: FloatArray  # (m,)


def draw_cases(rng: np.random.Generator, m: int) -> Cases:
    """Heterogeneous prompts (module docstring)."""
    kind = rng.choice(3, size=m, p=[0.3, 0.4, 0.3])  # near-deterministic, low, high entropy
    scale = np.select([kind == 0, kind == 1], [6.0, 2.5], 0.6)[:, None, None, None]
    logits = rng.standard_normal((m, MAX_LEN, VOCAB + 1, VOCAB + 1)) * scale
    logits[..., VOCAB] = -np.inf  # arm A never produces the change token
    top = logits[..., :VOCAB].argmax(axis=-1)
    boost = np.select([kind == 0, kind == 1], [6.0, 3.0], 0.5)[:, None, None]
    np.put_along_axis(logits, top[..., None], (logits.max(axis=-1) + boost)[..., None], axis=-1)
    jitter = rng.uniform(0.02, 0.3, size=m)
    jitter[(kind == 0) & (rng.random(m) < 0.5)] = 0.0  # bit-reproducible backends
    return Cases(logits, rng.integers(3, MAX_LEN + 1, size=m), kind == 0, jitter)


def _softmax(x: FloatArray) -> FloatArray:
    e = np.exp(x - x.max(axis=-1, keepdims=True))
    return np.asarray(e / e.sum(axis=-1, keepdims=True), dtype=np.float64)


def draw_calls(
    rng: np.random.Generator, cases: Cases, n: int, q: FloatArray
) -> tuple[npt.NDArray[np.int64], FloatArray]:
    """Tokens ``(m, n, MAX_LEN)`` and distributions ``(m, n, MAX_LEN, VOCAB + 1)`` of n calls.

    ``q`` (m,): share of position 0's mass moved to the change token (0 = arm A).
    """
    m = cases.length.size
    tokens = np.zeros((m, n, MAX_LEN), dtype=np.int64)
    probs = np.zeros((m, n, MAX_LEN, VOCAB + 1))
    prev = np.full((m, n), VOCAB, dtype=np.int64)  # start state
    ci = np.arange(m)[:, None]
    for t in range(MAX_LEN):
        row = cases.logits[ci, t, prev]  # (m, n, V + 1)
        noise = rng.standard_normal(row.shape) * cases.jitter[:, None, None]
        p = _softmax(row + noise)
        if t == 0:
            p = p * (1 - q)[:, None, None]
            p[..., VOCAB] += q[:, None]
        sampled = (p.cumsum(axis=-1) < rng.random((m, n, 1))).sum(axis=-1)
        tok = np.where(cases.greedy[:, None], p.argmax(axis=-1), np.minimum(sampled, VOCAB))
        tokens[:, :, t], probs[:, :, t], prev = tok, p, tok
    return tokens, probs


@functools.lru_cache(maxsize=8)
def _pairs(n: int) -> tuple[npt.NDArray[np.intp], npt.NDArray[np.intp]]:
    return np.triu_indices(n, 1)


def distances(cases: Cases, tokens: npt.NDArray[np.int64], probs: FloatArray) -> FloatArray:
    """Per-case ``tv``-style distance matrices ``(m, n, n)`` (module docstring)."""
    m, n = tokens.shape[:2]
    i, j = _pairs(n)
    live = np.arange(MAX_LEN)[None, None, :] < cases.length[:, None, None]
    differs = (tokens[:, i] != tokens[:, j]) & live
    diverged = differs.any(axis=-1)
    first = np.where(diverged, differs.argmax(axis=-1), cases.length[:, None] - 1)
    compared = np.arange(MAX_LEN)[None, None, :] <= first[..., None]
    tv = 0.5 * np.abs(probs[:, i] - probs[:, j]).sum(axis=-1)
    tv = np.where(tv < 1e-6, 0.0, np.minimum(tv, 1.0))
    value = 1.0 - np.where(compared, 1.0 - tv, 1.0).prod(axis=-1)
    value = np.where(diverged & cases.greedy[:, None], 1.0, value)  # greedy decodes parted
    d = np.zeros((m, n, n))
    d[:, i, j] = value
    d[:, j, i] = value
    return d


def simulate(
    rng: np.random.Generator, m: int, n: int, q: float, touched: float
) -> tuple[FloatArray, npt.NDArray[np.bool_]]:
    """One replication: ``(m, 2n, 2n)`` matrices (A first) and which cases were changed."""
    cases = draw_cases(rng, m)
    hit = rng.random(m) < touched if q > 0 else np.zeros(m, dtype=bool)
    ta, pa = draw_calls(rng, cases, n, np.zeros(m))
    tb, pb = draw_calls(rng, cases, n, np.where(hit, q, 0.0))
    d = distances(cases, np.concatenate([ta, tb], axis=1), np.concatenate([pa, pb], axis=1))
    return d, hit


@functools.lru_cache(maxsize=32)
def true_change(q: float, seed: int = 7, m: int = 600, n: int = 12) -> float:
    """Mean per-case change ``max(D_A, D_B)`` when every case moves ``q`` (n + n calls, m cases).

    A family that changes a share ``s`` of the cases has set change ``s * true_change(q)``
    (cases are independent), so the share needs no estimate of its own.
    """
    rng = np.random.default_rng(seed)
    d, _ = simulate(rng, m, n, q, 1.0)
    iu = np.triu_indices(n, 1)
    wa = d[:, :n, :n][:, iu[0], iu[1]].mean(axis=1)
    wb = d[:, n:, n:][:, iu[0], iu[1]].mean(axis=1)
    cross = d[:, :n, n:].mean(axis=(1, 2))
    return float(np.mean(cross - np.minimum(wa, wb)))


def solve(change: Callable[[float], float], target: float, x0: float, x1: float) -> float:
    """The x in [0, 1] with ``change(x) == target`` (secant steps; the change is ~linear in x).

    :func:`true_change` uses the same seed for every x (common random numbers).
    """
    f0, f1 = change(x0) - target, change(x1) - target
    for _ in range(5):
        if abs(f1) < 2e-3 or f1 == f0:
            break
        x0, f0, x1 = x1, f1, min(1.0, max(0.0, x1 - f1 * (x1 - x0) / (f1 - f0)))
        f1 = change(x1) - target
    return x1


# --------------------------------------------------------------------------- running


def wilson(k: int, n: int, z: float) -> tuple[float, float]:
    """Wilson score interval of a binomial proportion."""
    if n == 0:
        return (0.0, 1.0)
    p = k / n
    den = 1 + z * z / n
    mid = (p + z * z / (2 * n)) / den
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / den
    return (max(0.0, mid - half), min(1.0, mid + half))


@dataclass
class Row:
    """Counts of one family x design."""

    reps: int = 0
    significant: int = 0
    different: int = 0
    equivalent: int = 0
    any_flag: int = 0
    any_bonferroni: int = 0
    fdp_sum: float = 0.0
    fdp_sq: float = 0.0


def _bonferroni_any(d: FloatArray, n: int) -> bool:
    """Any case 'different' by its own single-prompt decision at alpha / m."""
    m = d.shape[0]
    for c in range(m):
        perm = _stats.permutation_test(d[c], n)
        bound = _stats.change_bound(d[c], n, alpha=ALPHA / m)
        dec = _stats.decide(p_value=perm.p_value, alpha=ALPHA / m, bound=bound, tolerance=TOL, n=n)
        if dec.verdict == "different":
            return True
    return False


def run_row(seed: int, m: int, n: int, q: float, touched: float, reps: int, bonf: bool) -> Row:
    """``reps`` replications of one family and design through the engine."""
    rng = np.random.default_rng(seed)
    row = Row()
    for _ in range(reps):
        d, hit = simulate(rng, m, n, q, touched)
        res = compare_prompt_set(
            {f"case-{c}": (d[c], n) for c in range(m)}, alpha=ALPHA, n_resamples=N_RESAMPLES
        )
        flags = np.array([c.status == "changed" for c in res.cases])
        false = int(np.count_nonzero(flags & ~hit))
        fdp = false / max(1, int(flags.sum()))
        row.reps += 1
        row.significant += res.p_value <= ALPHA
        row.different += res.verdict == "different"
        row.equivalent += res.verdict == "equivalent"
        row.any_flag += bool(flags.any())
        row.fdp_sum += fdp
        row.fdp_sq += fdp * fdp
        if bonf and n >= _stats.MIN_CALLS_PER_ARM:
            row.any_bonferroni += _bonferroni_any(d, n)
    return row


def fmt(k: int, n: int, z: float) -> str:
    """``rate [lo, hi]`` with a Wilson interval."""
    lo, hi = wilson(k, n, z)
    return f"{k / n:6.3f} [{lo:.3f}, {hi:.3f}]"


def main(argv: list[str] | None = None) -> int:
    """Print the calibration tables; return 1 when a target is missed."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="200 replications per row")
    args = parser.parse_args(argv)
    reps = 200 if args.quick else 1000
    z = 2.576 if args.quick else 1.96
    start = time.perf_counter()
    missed: list[str] = []

    def check(name: str, k: int, n: int, target: float) -> str:
        if wilson(k, n, z)[0] > target:
            missed.append(name)
            return "  MISSED"
        return ""

    # At the tolerance: every case moves a little (spread), or ~22% of the cases move
    # completely (concentrated: the case a handful of quiet cases can miss).
    q_spread = solve(true_change, TOL, 0.15, 0.25)
    share_conc = TOL / true_change(1.0)
    q_mid, q_all, q_quarter = 0.4, 0.6, 1.0
    print(f"prompt sets: alpha {ALPHA}, tolerance {TOL}, {reps} replications per row")
    print(
        f"families (true set change): at the tolerance, spread q={q_spread:.3f}"
        f" ({true_change(q_spread):.3f}), concentrated q=1 in a share {share_conc:.3f} of the"
        f" cases ({share_conc * true_change(1.0):.3f}); power: all q={q_mid}"
        f" ({true_change(q_mid):.3f}), all q={q_all}"
        f" ({true_change(q_all):.3f}), 1/4 q={q_quarter} ({0.25 * true_change(q_quarter):.3f})"
    )
    print(
        "\n(1)+(2) A/A: stratified permutation p <= alpha, false different, any case flagged"
        " (targets <= alpha) and the equivalent rate"
    )
    designs = [(m, n) for m in (10, 20, 50) for n in (3, 5)]
    for k, (m, n) in enumerate(designs):
        r = run_row(1000 + k, m, n, 0.0, 0.0, reps, bonf=False)
        sig = check(f"A/A p <= alpha {m}x{n}", r.significant, r.reps, ALPHA)
        flag = check(f"A/A different {m}x{n}", r.different, r.reps, ALPHA)
        fdr = check(f"A/A any false flag {m}x{n}", r.any_flag, r.reps, ALPHA)
        print(
            f"  {m:2d} cases x {n} trials: p <= alpha {fmt(r.significant, r.reps, z)}{sig}"
            f"  different {fmt(r.different, r.reps, z)}{flag}"
            f"  equivalent {fmt(r.equivalent, r.reps, z)}"
            f"  any case flagged {fmt(r.any_flag, r.reps, z)}{fdr}"
        )
    print("\n(2) set change at the tolerance: false equivalent / false different (<= alpha)")
    for name, q, touched in (("spread", q_spread, 1.0), ("concentrated", 1.0, share_conc)):
        for k, (m, n) in enumerate(designs):
            r = run_row(2000 + 10 * k + int(q * 4), m, n, q, touched, reps, bonf=False)
            e = check(f"{name} equivalent {m}x{n}", r.equivalent, r.reps, ALPHA)
            dd = check(f"{name} different {m}x{n}", r.different, r.reps, ALPHA)
            print(
                f"  {name:12s} {m:2d} x {n}: equivalent {fmt(r.equivalent, r.reps, z)}{e}"
                f"  different {fmt(r.different, r.reps, z)}{dd}"
            )
    print("\n(3) power at the same calls; (4) per-case FDR of 'changed' flags (target <= alpha)")
    print("    set = P(set different); BH = P(any case flagged, engine q <= alpha);")
    print("    Bonf = P(any case different by its single-prompt decision at alpha/m)")
    families = (
        ("all, q=0.4", q_mid, 1.0),
        ("all cases", q_all, 1.0),
        ("1/4 of cases", q_quarter, 0.25),
    )
    for name, q, touched in families:
        for k, (m, n) in enumerate(designs):
            # A single-prompt test of n + n calls can never reach p <= alpha / m when its
            # smallest p-value, 2 / C(2n, n), is larger: then it rejects nothing, by arithmetic.
            floor = 2 / math.comb(2 * n, n)
            can = n >= _stats.MIN_CALLS_PER_ARM and floor <= ALPHA / m
            r = run_row(3000 + 10 * k + int(touched * 4), m, n, q, touched, reps, bonf=can)
            bonf = (
                fmt(r.any_bonferroni, r.reps, z)
                if can
                else "  n/a (needs >= 4 calls/arm)"
                if n < _stats.MIN_CALLS_PER_ARM
                else f" 0 (smallest p {floor:.4f} > alpha/m)"
            )
            mean = r.fdp_sum / r.reps
            half = 1.96 * math.sqrt(max(0.0, r.fdp_sq / r.reps - mean * mean) / r.reps)
            miss = ""
            if mean - half > ALPHA:
                missed.append(f"FDR {name} {m}x{n}")
                miss = "  MISSED"
            print(
                f"  {name:12s} {m:2d} x {n}: set {fmt(r.different, r.reps, z)}"
                f"  BH {fmt(r.any_flag, r.reps, z)}  Bonf {bonf}"
                f"  FDR {mean:.3f} [{max(0.0, mean - half):.3f}, {mean + half:.3f}]{miss}"
            )
    print(f"\n{time.perf_counter() - start:.0f} s; missed: {', '.join(missed) or 'none'}")
    return 1 if missed else 0


if __name__ == "__main__":
    sys.exit(main())
