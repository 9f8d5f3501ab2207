"""How long one comparison takes: ``compare()`` on 20 and 14 calls, top-20, 20 tokens.

Run ``python bench/speed.py``. Pinned to one core with one BLAS thread. For
each size it prints the median over ``--repeats`` runs of:

* ``compare()`` from response dicts (the full path: parse + distances + stats),
* ``compare()`` from openai ``ChatCompletion`` objects (if openai is installed),
* ``compare()`` from already parsed calls,
* and the parts: parsing, the distance matrix, the statistics.

10 + 10 calls: C(20, 10) = 184,756 relabellings > 10^4, so 9,999 random
relabellings; 7 + 7 calls: C(14, 7) = 3,432, every relabelling is enumerated.
Target: the full path from dicts <= 50 ms. Exit status 1 if missed.
"""

from __future__ import annotations

import os

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
os.environ.setdefault("OMP_NUM_THREADS", "1")
os.environ.setdefault("MKL_NUM_THREADS", "1")

import argparse
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from _simulator import SimConfig, simulate_arms

from pytest_rolecheck._compare import compare
from pytest_rolecheck._distances import distance_matrix
from pytest_rolecheck._parse import parse_response
from pytest_rolecheck._stats import (
    cliffs_delta,
    energy_statistics,
    matrix_equivalence,
    permutation_test,
    split_pairs,
)

TARGET_MS = 50.0


def _median_ms(fn: Callable[[], Any], repeats: int) -> float:
    fn()  # warm caches (enumerated labellings, imports)
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append((time.perf_counter() - start) * 1e3)
    return statistics.median(times)


def _stats_only(d: Any, n_a: int) -> None:
    energy_statistics(d, n_a)
    permutation_test(d, n_a)
    matrix_equivalence(d, n_a)
    wa, wb, cr = split_pairs(d, n_a)
    cliffs_delta(cr, list(wa) + list(wb))


def _measure(
    n: int, config: SimConfig, metric: str, repeats: int, sdk_type: Any
) -> tuple[int, bool, float, float, float, float, float, float]:
    raw_a, raw_b = simulate_arms(config, n, n, world=1, seed=1)
    calls_a = [parse_response(r) for r in raw_a]
    calls_b = [parse_response(r) for r in raw_b]
    calls = calls_a + calls_b
    d = distance_matrix(calls, metric)
    exact = permutation_test(d, n).exact
    full = _median_ms(lambda: compare(raw_a, raw_b, metric=metric), repeats)
    sdk = float("nan")
    if sdk_type is not None:
        objs_a = [sdk_type.model_validate(r) for r in raw_a]
        objs_b = [sdk_type.model_validate(r) for r in raw_b]
        sdk = _median_ms(lambda: compare(objs_a, objs_b, metric=metric), repeats)
    parsed = _median_ms(lambda: compare(calls_a, calls_b, metric=metric), repeats)
    t_parse = _median_ms(lambda: [parse_response(r) for r in raw_a + raw_b], repeats)
    t_dist = _median_ms(lambda: distance_matrix(calls, metric), repeats)
    t_stats = _median_ms(lambda: _stats_only(d, n), repeats)
    return n, exact, full, sdk, parsed, t_parse, t_dist, t_stats


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=30)
    parser.add_argument("--metric", default="js")
    args = parser.parse_args(argv)
    if hasattr(os, "sched_setaffinity"):
        os.sched_setaffinity(0, {min(os.sched_getaffinity(0))})

    try:
        from openai.types.chat import ChatCompletion
    except ImportError:  # pragma: no cover - openai is a dependency, but keep the bench usable
        ChatCompletion = None  # type: ignore[assignment,misc]

    config = SimConfig(length=20, top_k=20)
    rows = [_measure(n, config, args.metric, args.repeats, ChatCompletion) for n in (10, 7)]
    missed = [
        f"{r[0]}+{r[0]} calls: compare() from dicts took {r[2]:.1f} ms > {TARGET_MS:g} ms"
        for r in rows
        if r[2] > TARGET_MS
    ]

    print(
        f"compare() speed, metric {args.metric}, top-{config.top_k}, {config.length} tokens, "
        f"one core, median of {args.repeats} runs (ms)"
    )
    head = (
        f"{'calls':<8}{'p-value':<11}{'dicts':>8}{'SDK objs':>10}{'parsed':>8}"
        f"{'| parse':>9}{'distances':>11}{'stats':>8}{'target':>8}"
    )
    print(head)
    print("-" * len(head))
    for n, exact, full, sdk, parsed, t_parse, t_dist, t_stats in rows:
        kind = "exact" if exact else "9,999 res."
        print(
            f"{f'{n}+{n}':<8}{kind:<11}{full:8.1f}{sdk:10.1f}{parsed:8.1f}"
            f"{'| ':>4}{t_parse:5.1f}{t_dist:11.1f}{t_stats:8.1f}{TARGET_MS:8.0f}"
        )
    print(
        "dicts = compare() on response dicts (parse + distances + stats); SDK objs = on openai "
        "ChatCompletion objects; parsed = on ParsedCall values. Ratio full/parsed: "
        + ", ".join(f"{r[0]}+{r[0]} {r[2] / r[4]:.1f}x" for r in rows)
    )
    if missed:
        print("\nTARGET MISSED:")
        for m in missed:
            print(f"  - {m}")
        return 1
    print("target met")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
