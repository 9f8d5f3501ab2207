"""Wall time of one comparison's 21 calls: the seed's serial loop vs the plugin's runner.

Run ``python bench/concurrency.py``. A loopback server (``_latency_server.py``)
answers every chat completion after a fixed delay (200 ms by default) with 20
tokens x top-20 logprobs. The same 21 requests (1 baseline + 10 + 10, arms
interleaved as the plugin sends them) are sent three ways, side by side in
every repeat (the order rotates between repeats):

* ``serial``: the seed's loop, a sync ``openai.OpenAI`` client calling
  ``chat.completions.create`` one request at a time;
* ``runner async``: ``CompletionRunner(openai.AsyncOpenAI(...), concurrency=8)``,
  the plugin's default path;
* ``runner threads``: ``CompletionRunner(openai.OpenAI(...), concurrency=8)``,
  a thread pool, for tests that hand the plugin a sync client.

Each arm gets a fresh client per repeat (built outside the timed region), and
no cassette is involved. Target: median serial / median ``runner async``
>= 5x at concurrency 8 (the ideal is 21 / ceil(21 / 8) = 7x). Exit status 1
if missed.
"""

from __future__ import annotations

import argparse
import gc
import math
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import openai
from _latency_server import MODEL, LatencyServer

from pytest_rolecheck.running.client import CompletionRunner

CALLS = 21
TARGET_SPEEDUP = 5.0
PROMPT = "Produce two stanza rock song lyrics for 'Rockin with my Kitty Cat'"


def make_requests() -> list[tuple[str, dict[str, Any]]]:
    """The 21 requests of a seed-design comparison: baseline, then A and B interleaved."""

    def request(role: str) -> dict[str, Any]:
        return {
            "model": MODEL,
            "messages": [
                {"role": role, "content": "You are a helpful AI assistant"},
                {"role": "user", "content": PROMPT},
            ],
            "max_tokens": 20,
            "temperature": 0.0,
            "logprobs": True,
            "top_logprobs": 20,
        }

    arms: list[tuple[str, dict[str, Any]]] = [("developer (baseline)", request("developer"))]
    for _ in range((CALLS - 1) // 2):
        arms.append(("developer", request("developer")))
        arms.append(("system", request("system")))
    return arms


def make_specs(arms: list[tuple[str, dict[str, Any]]]) -> list[Any]:
    from pytest_rolecheck.running.client import CallSpec

    return [CallSpec(index=i, arm=arm, request=req) for i, (arm, req) in enumerate(arms)]


def check_responses(name: str, responses: list[Any]) -> None:
    if len(responses) != CALLS:
        raise SystemExit(f"{name}: got {len(responses)} responses, expected {CALLS}")
    for response in responses:
        content = response.choices[0].logprobs.content
        if len(content) != 20 or len(content[0].top_logprobs) != 20:
            raise SystemExit(f"{name}: a response lacks 20 x top-20 logprobs")


Contenders = dict[str, Callable[[], Callable[[], list[Any]]]]


def _contenders(base_url: str, concurrency: int) -> Contenders:
    """Per arm, a factory that builds its client (untimed) and returns the timed call."""
    arms = make_requests()
    specs = make_specs(arms)

    def sync_client() -> openai.OpenAI:
        return openai.OpenAI(base_url=base_url, api_key="bench-no-key", max_retries=0)

    def async_client() -> openai.AsyncOpenAI:
        return openai.AsyncOpenAI(base_url=base_url, api_key="bench-no-key", max_retries=0)

    def serial() -> Callable[[], list[Any]]:
        client = sync_client()

        def go() -> list[Any]:
            return [client.chat.completions.create(**req) for _, req in arms]

        return go

    def runner_async() -> Callable[[], list[Any]]:
        runner = CompletionRunner(async_client(), concurrency=concurrency)
        return lambda: runner.run(specs)

    def runner_threads() -> Callable[[], list[Any]]:
        runner = CompletionRunner(sync_client(), concurrency=concurrency)
        return lambda: runner.run(specs)

    return {
        "serial (seed loop, OpenAI)": serial,
        f"runner async (AsyncOpenAI, c={concurrency})": runner_async,
        f"runner threads (OpenAI, c={concurrency})": runner_threads,
    }


def _time(contenders: Contenders, server: LatencyServer, repeats: int) -> dict[str, list[float]]:
    """Seconds per run of every contender, interleaved in a rotating order."""
    names = list(contenders)
    # warm-up: imports, first-connection costs, the server's response cache
    for name in names:
        check_responses(name, contenders[name]()())
    times: dict[str, list[float]] = {name: [] for name in names}
    for repeat in range(repeats):
        shift = repeat % len(names)
        for name in names[shift:] + names[:shift]:
            # Free the previous arm's clients now, outside the timed region: an
            # AsyncOpenAI collected while an event loop runs in the collecting
            # thread schedules its close on that loop.
            gc.collect()
            go = contenders[name]()
            served = server.served
            start = time.perf_counter()
            responses = go()
            times[name].append(time.perf_counter() - start)
            check_responses(name, responses)
            del go, responses
            if server.served - served != CALLS:
                raise SystemExit(f"{name}: the server answered {server.served - served} calls")
    return times


def _report(times: dict[str, list[float]], latency: float, concurrency: int) -> float:
    """Print the table; return the speed-up of the async runner over the serial loop."""
    serial_name, async_name, threads_name = names = list(times)
    medians = {name: statistics.median(values) for name, values in times.items()}
    ideal = {
        serial_name: CALLS * latency,
        async_name: math.ceil(CALLS / concurrency) * latency,
        threads_name: math.ceil(CALLS / concurrency) * latency,
    }
    print(
        f"{CALLS} chat completions (20 tokens x top-20) against a loopback server with "
        f"{latency * 1e3:.0f} ms latency per call; medians of {len(times[serial_name])} repeats"
    )
    header = f"{'':<36} {'median s':>9} {'min s':>7} {'max s':>7} {'ideal s':>8} {'speed-up':>9}"
    print(header)
    print("-" * len(header))
    for name in names:
        values = times[name]
        speedup = medians[serial_name] / medians[name]
        print(
            f"{name:<36} {medians[name]:>9.3f} {min(values):>7.3f} {max(values):>7.3f} "
            f"{ideal[name]:>8.2f} {speedup:>8.2f}x"
        )
    speedup = medians[serial_name] / medians[async_name]
    threads_speedup = medians[serial_name] / medians[threads_name]
    best = ideal[serial_name] / ideal[async_name]
    print()
    print(
        f"speed-up serial / runner async: {speedup:.2f}x (target >= {TARGET_SPEEDUP:.0f}x, "
        f"ideal {best:.1f}x) -> {'PASS' if speedup >= TARGET_SPEEDUP else 'FAIL'}"
    )
    print(f"speed-up serial / runner threads: {threads_speedup:.2f}x (for information)")
    return speedup


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeats", type=int, default=5, help="timed rounds (default 5)")
    parser.add_argument(
        "--latency", type=float, default=0.2, help="server delay per call, s (default 0.2)"
    )
    parser.add_argument("--concurrency", type=int, default=8, help="runner concurrency (8)")
    args = parser.parse_args(argv)
    if args.repeats < 1 or args.latency < 0 or args.concurrency < 1:
        parser.error("--repeats and --concurrency must be >= 1, --latency >= 0")
    with LatencyServer(latency=args.latency) as server:
        times = _time(_contenders(server.base_url, args.concurrency), server, args.repeats)
    speedup = _report(times, args.latency, args.concurrency)
    return 0 if speedup >= TARGET_SPEEDUP else 1


if __name__ == "__main__":
    sys.exit(main())
