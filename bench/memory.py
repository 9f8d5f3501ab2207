"""Replay memory: RSS growth per replayed test over a generated suite.

Run ``python bench/memory.py``. Setup: a temporary project with one test module
holding N copies of the shipped example ``test_developer_vs_system_all_pairs``
(40 calls, 20 tokens x top-20 logprobs each, ~4 MB of cassette), each with its
own copy (a hard link) of the shipped cassette, replayed with the examples' settings
(``rolecheck_local``, record mode ``none``: nothing goes live).

Measured: ``pytest`` runs the suite in a fresh subprocess; a small conftest
reads the process's resident set size (``VmRSS``, after ``gc.collect()``) when
each test has finished. The figure is the least-squares slope of RSS over the
tests after the first ``--warmup`` ones (imports, caches and allocator pools
settle there), in MB per test; the peak RSS (``VmHWM``) is printed too.

Target: slope <= 0.2 MB per test, i.e. a 1,000-test suite replays in bounded
memory. Exit status 1 if missed.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SOURCE = ROOT / "cassettes" / "examples" / "test_seed_experiment"
CASSETTE = SOURCE / "test_developer_vs_system_all_pairs.json"
TARGET_MB_PER_TEST = 0.2

INI = """[pytest]
rolecheck_local = true
rolecheck_cassette_dir = cassettes
rolecheck_trials = 20
rolecheck_max_tokens = 20
rolecheck_top_logprobs = 20
"""

CONFTEST = """
import gc
import json
import os

SAMPLES = []


def _status(field):
    with open("/proc/self/status", encoding="ascii") as status:
        for line in status:
            if line.startswith(field + ":"):
                return int(line.split()[1]) / 1024  # kB -> MB
    raise RuntimeError(field + " not found")


def pytest_runtest_logfinish(nodeid, location):
    gc.collect()
    SAMPLES.append(_status("VmRSS"))


def pytest_sessionfinish(session):
    with open(os.environ["ROLECHECK_MEMORY_OUT"], "w", encoding="utf-8") as out:
        json.dump({"rss": SAMPLES, "peak": _status("VmHWM")}, out)
"""

TEST_HEAD = """
from pytest_rolecheck import assert_roles_equivalent

MESSAGES = [
    {"role": "system", "content": "You are a helpful AI assistant"},
    {"role": "user",
     "content": "Produce two stanza rock song lyrics for 'Rockin with my Kitty Cat'"},
]
"""

TEST_BODY = """

def test_pairs_{i:04d}():
    assert_roles_equivalent(MESSAGES, roles=("developer", "system"))
"""


def make_project(where: Path, tests: int) -> None:
    (where / "pytest.ini").write_text(INI, encoding="utf-8")
    (where / "conftest.py").write_text(CONFTEST, encoding="utf-8")
    body = TEST_HEAD + "".join(TEST_BODY.format(i=i) for i in range(tests))
    (where / "test_memory.py").write_text(body, encoding="utf-8")
    cassettes = where / "cassettes" / "test_memory"
    cassettes.mkdir(parents=True)
    for i in range(tests):
        target = cassettes / f"test_pairs_{i:04d}.json"
        try:  # hard links: 1,000 tests need no 850 MB of copies
            os.link(CASSETTE, target)
        except OSError:  # another file system, or no hard links
            shutil.copyfile(CASSETTE, target)


def slope(values: list[float]) -> float:
    """Least-squares slope of ``values`` over their index."""
    n = len(values)
    mean_x = (n - 1) / 2
    mean_y = sum(values) / n
    num = sum((x - mean_x) * (y - mean_y) for x, y in enumerate(values))
    den = sum((x - mean_x) ** 2 for x in range(n))
    return num / den


def run(tests: int) -> dict[str, object]:
    with tempfile.TemporaryDirectory(prefix="rolecheck-memory-") as tmp:
        where = Path(tmp)
        make_project(where, tests)
        out = where / "memory.json"
        env = dict(os.environ, ROLECHECK_MEMORY_OUT=str(out))
        env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), env.get("PYTHONPATH")]))
        env.pop("OPENAI_BASE_URL", None)
        result = subprocess.run(
            [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-p", "no:randomly"],
            cwd=where,
            env=env,
            capture_output=True,
            text=True,
            check=False,
        )
        if result.returncode != 0 or not out.exists():
            sys.stdout.write(result.stdout[-3000:] + result.stderr[-3000:])
            raise SystemExit(f"the generated suite failed (exit status {result.returncode})")
        data: dict[str, object] = json.loads(out.read_text(encoding="utf-8"))
        return data


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--tests", type=int, default=120, help="replayed tests (default 120)")
    parser.add_argument(
        "--warmup", type=int, default=20, help="tests left out of the slope (default 20)"
    )
    args = parser.parse_args(argv)
    if args.tests < args.warmup + 10:
        parser.error("--tests must exceed --warmup by at least 10")
    data = run(args.tests)
    rss = data["rss"]
    if not isinstance(rss, list) or len(rss) != args.tests:
        raise SystemExit(f"expected {args.tests} RSS samples, got {rss!r}")
    per_test = slope(rss[args.warmup :])
    calls = len(json.loads(CASSETTE.read_text())["interactions"])
    print(f"replayed tests: {args.tests} (cassette {CASSETTE.name}, {calls} calls each)")
    print(
        f"RSS after test 1: {rss[0]:.1f} MB, after test {args.warmup}: {rss[args.warmup - 1]:.1f}"
        f" MB, after test {args.tests}: {rss[-1]:.1f} MB; peak {data['peak']:.1f} MB"
    )
    ok = per_test <= TARGET_MB_PER_TEST
    verdict = "met" if ok else "MISSED"
    print(
        f"RSS growth: {per_test:.3f} MB per test (slope over tests {args.warmup + 1}-"
        f"{args.tests}); target <= {TARGET_MB_PER_TEST} MB per test: {verdict}"
    )
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
