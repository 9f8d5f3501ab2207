"""How fast the ``edit`` text metric is: rapidfuzz against a plain-Python Levenshtein.

Run ``python bench/text_speed.py``. The texts are the 40 answers of the shipped
sampled example (SmolLM2-135M at temperature 1, 20 tokens, ~75 characters each),
and the same answers repeated 4 times (~300 characters, a long answer). For each
it times, side by side and interleaved (order rotated, medians over ``--repeats``
runs, process CPU time on one core):

* ``distance_matrix(calls, "edit")``: what the engine runs (rapidfuzz's C++
  ``cdist`` over every pair);
* the same matrix from a plain-Python dynamic programme per pair (Wagner &
  Fischer), the loop one would write without the library.

Target: the engine's matrix at least ``TARGET_RATIO`` times faster on both text
lengths (checked equal before timing); exit status 1 if missed.
"""

from __future__ import annotations

import os

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

import argparse
import itertools
import json
import statistics
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from pytest_rolecheck.core.distances import distance_matrix
from pytest_rolecheck.core.parse import ParsedCall

ROOT = Path(__file__).resolve().parents[1]
CASSETTE = (
    ROOT / "cassettes/examples/test_seed_experiment/test_sampled_same_prompt_is_equivalent.json"
)
TARGET_RATIO = 10.0


def answers() -> list[str]:
    """The texts of the shipped sampled example's 40 calls."""
    data = json.loads(CASSETTE.read_text(encoding="utf-8"))
    return [
        i["response"]["body"]["json"]["choices"][0]["message"]["content"]
        for i in data["interactions"]
    ]


def levenshtein(x: str, y: str) -> int:
    """The textbook dynamic programme, one row at a time."""
    previous = list(range(len(y) + 1))
    for i, cx in enumerate(x, 1):
        current = [i]
        for j, cy in enumerate(y, 1):
            current.append(min(previous[j] + 1, current[j - 1] + 1, previous[j - 1] + (cx != cy)))
        previous = current
    return previous[-1]


def python_matrix(texts: Sequence[str]) -> np.ndarray:
    out = np.zeros((len(texts), len(texts)))
    for i, j in itertools.combinations(range(len(texts)), 2):
        longest = max(len(texts[i]), len(texts[j]))
        out[i, j] = out[j, i] = levenshtein(texts[i], texts[j]) / longest if longest else 0.0
    return out


def measure(texts: Sequence[str], repeats: int) -> tuple[float, float]:
    """Median CPU milliseconds of the engine's matrix and of the plain-Python one."""
    calls = [ParsedCall(text=t, positions=(), has_logprobs=False) for t in texts]
    fast = distance_matrix(calls, "edit")
    if not np.allclose(fast, python_matrix(texts), rtol=0, atol=1e-12):
        raise SystemExit("the engine's edit matrix differs from the plain-Python reference")
    runs: dict[str, list[float]] = {"rapidfuzz": [], "python": []}
    funcs: dict[str, Callable[[], object]] = {
        "rapidfuzz": lambda: distance_matrix(calls, "edit"),
        "python": lambda: python_matrix(texts),
    }
    for r in range(repeats):
        for name in list(funcs)[r % 2 :] + list(funcs)[: r % 2]:
            start = time.process_time()
            funcs[name]()
            runs[name].append((time.process_time() - start) * 1000)
    return statistics.median(runs["rapidfuzz"]), statistics.median(runs["python"])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args(argv)
    if hasattr(os, "sched_setaffinity"):
        os.sched_setaffinity(0, {min(os.sched_getaffinity(0))})
    short = answers()
    cases = {"as recorded": short, "x4 (long answers)": [t * 4 for t in short]}
    print(
        f"edit distance matrix of {len(short)} answers ({len(short) * (len(short) - 1) // 2} "
        f"pairs), CPU ms, median of {args.repeats} interleaved runs, one core"
    )
    print(f"{'texts':<20}{'mean chars':>11}{'rapidfuzz':>11}{'python':>11}{'ratio':>9}")
    missed = []
    for label, texts in cases.items():
        fast, slow = measure(texts, args.repeats)
        ratio = slow / fast
        mean = sum(map(len, texts)) / len(texts)
        print(f"{label:<20}{mean:11.0f}{fast:11.2f}{slow:11.1f}{ratio:8.0f}x")
        if ratio < TARGET_RATIO:
            missed.append(f"{label}: rapidfuzz only {ratio:.1f}x faster (< {TARGET_RATIO:g}x)")
    print("; ".join(missed) if missed else f"target met (>= {TARGET_RATIO:g}x on both)")
    return 1 if missed else 0


if __name__ == "__main__":
    sys.exit(main())
