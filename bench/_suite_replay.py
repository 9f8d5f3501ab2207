"""The suite part of ``replay.py``: per-call replay cost over a generated suite vs the SDK's limit.

Setup: ``memory.py``'s generated project (N copies of the shipped 40-call
developer/system example, each with its own hard-linked cassette), replayed by
``pytest`` in a fresh subprocess. A conftest times every test's whole run
(setup, call, teardown: client creation, cassette load and check, vcrpy, the
SDK, parsing, statistics, and whatever garbage collection happens meanwhile);
the per-call cost is the sum over tests (but the first, which pays the
lazy imports) / calls. Start-up and collection are
left out: they do not grow with the calls.

The limit: the SDK's own ``AsyncOpenAI.chat.completions.create()`` over an
``httpx2.MockTransport`` that answers with the same recorded bodies, one after
another on one client, in this process (median per call over the rounds).

Both sides are timed in wall time and in CPU time (``time.process_time``, all
threads of the process): a replay is CPU-bound, so on an idle machine the two
agree, while on a shared one the wall time also counts whatever other
processes took, which differs between the two sides' runs.
"""

from __future__ import annotations

import asyncio
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any, NamedTuple

import httpx2
import openai
from memory import CASSETTE, ROOT, make_project

from pytest_rolecheck.recording.format import read_cassette

TIMING_CONFTEST = """
import json
import os
import time

import pytest

TIMES = []


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_protocol(item, nextitem):
    start, start_cpu = time.perf_counter(), time.process_time()
    yield
    TIMES.append((time.perf_counter() - start, time.process_time() - start_cpu))


def pytest_sessionfinish(session):
    with open(os.environ["ROLECHECK_SUITE_OUT"], "w", encoding="utf-8") as out:
        json.dump(TIMES, out)
"""


class PerCall(NamedTuple):
    """Milliseconds per call: wall time and CPU time."""

    wall: float
    cpu: float


def calls_per_test() -> int:
    return len(json.loads(CASSETTE.read_text(encoding="utf-8"))["interactions"])


def plugin_per_call_ms(tests: int, root: Path = ROOT) -> PerCall:
    """Milliseconds per replayed call over a generated suite of ``tests`` tests."""
    with tempfile.TemporaryDirectory(prefix="rolecheck-suite-") as tmp:
        where = Path(tmp)
        make_project(where, tests)
        (where / "conftest.py").write_text(TIMING_CONFTEST, encoding="utf-8")
        out = where / "times.json"
        env = dict(os.environ, ROLECHECK_SUITE_OUT=str(out))
        env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(root), env.get("PYTHONPATH")]))
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
        times: list[list[float]] = json.loads(out.read_text(encoding="utf-8"))
    if len(times) != tests:
        raise SystemExit(f"timed {len(times)} tests, expected {tests}")
    # The first test pays the lazy imports (numpy, scipy, the SDK): once per run, not per call.
    calls = (tests - 1) * calls_per_test()
    return PerCall(
        sum(wall for wall, _ in times[1:]) * 1e3 / calls,
        sum(cpu for _, cpu in times[1:]) * 1e3 / calls,
    )


def sdk_per_call_ms(rounds: int) -> PerCall:
    """Median milliseconds per ``create()`` over a mock transport, same bodies and requests."""
    found, _ = read_cassette(CASSETTE)  # the one reader: format v2 packs the response bodies
    recorded = [found[index] for index in sorted(found)]
    bodies = [entry.response["body"]["string"] for entry in recorded]
    requests = [entry.shown for entry in recorded]
    position = 0

    def answer(request: httpx2.Request) -> httpx2.Response:
        nonlocal position
        body = bodies[position % len(bodies)]
        position += 1
        return httpx2.Response(200, content=body, headers={"content-type": "application/json"})

    client = openai.AsyncOpenAI(
        api_key="sk-none",
        base_url="http://mock.test/v1",
        max_retries=0,
        http_client=httpx2.AsyncClient(transport=httpx2.MockTransport(answer)),
    )

    async def one_round() -> tuple[float, float]:
        start, start_cpu = time.perf_counter(), time.process_time()
        for request in requests:
            await client.chat.completions.create(**request)
        wall, cpu = time.perf_counter() - start, time.process_time() - start_cpu
        return wall * 1e3 / len(requests), cpu * 1e3 / len(requests)

    async def run() -> list[tuple[float, float]]:
        await one_round()  # warm-up: imports, caches
        return [await one_round() for _ in range(rounds)]

    result: list[Any] = asyncio.run(run())
    return PerCall(
        statistics.median(wall for wall, _ in result), statistics.median(cpu for _, cpu in result)
    )
