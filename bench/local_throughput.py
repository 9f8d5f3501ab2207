"""Throughput of the bundled local server: the same 20 calls, serial vs concurrent.

Run ``python bench/local_throughput.py``. It starts the bundled server
(`LocalServer`, SmolLM2-135M-Instruct on llama.cpp's ``llama-server``) with the
settings the plugin uses, sends one warm-up call, then, in every repeat and in
rotating order:

* ``serial``: the 20 calls one after another (a sync ``openai.OpenAI`` client);
* ``concurrent``: the same 20 calls through the plugin's `CompletionRunner`
  (``AsyncOpenAI``, concurrency = the server's parallel slots).

The calls are the seed experiment's request (``examples/test_seed_experiment.py``):
the helpful-assistant system message and the rock-song prompt, 20 tokens,
top-20 logprobs, temperature 0. Reported: median wall time, calls/s and the
speed-up (median serial / median concurrent). Target: >= 1.5x on 2 cores.

``--sweep`` starts one server per (parallel, threads) configuration and
measures each the same way, to choose the defaults. The machine may be shared:
run it twice and look at both. Exit status 1 when the target is missed.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import openai

from pytest_rolecheck.running.client import CallSpec, CompletionRunner
from pytest_rolecheck.running.local import DEFAULT_PARALLEL, DEFAULT_THREADS, LocalServer

CALLS = 20
TARGET_SPEEDUP = 1.5
INSTRUCTION = "You are a helpful AI assistant"
PROMPT = "Produce two stanza rock song lyrics for 'Rockin with my Kitty Cat'"


def request(model: str) -> dict[str, Any]:
    return {
        "model": model,
        "messages": [
            {"role": "system", "content": INSTRUCTION},
            {"role": "user", "content": PROMPT},
        ],
        "max_tokens": 20,
        "temperature": 0.0,
        "logprobs": True,
        "top_logprobs": 20,
    }


def run_serial(server: LocalServer) -> float:
    client = openai.OpenAI(base_url=server.base_url, api_key="unused", max_retries=0)
    body = request(server.model)
    started = time.perf_counter()
    for _ in range(CALLS):
        client.chat.completions.create(**body)
    elapsed = time.perf_counter() - started
    client.close()
    return elapsed


def run_concurrent(server: LocalServer, concurrency: int) -> float:
    client = openai.AsyncOpenAI(base_url=server.base_url, api_key="unused", max_retries=0)
    runner = CompletionRunner(client, concurrency=concurrency)
    body = request(server.model)
    specs = [CallSpec(index=i, arm="A", request=body) for i in range(CALLS)]
    started = time.perf_counter()
    runner.run(specs)
    elapsed = time.perf_counter() - started
    runner.close()
    return elapsed


def measure(parallel: int, threads: int, repeats: int) -> tuple[float, float]:
    """Median serial and concurrent wall times (s) for one server configuration."""
    with LocalServer(parallel=parallel, threads=threads) as server:
        run_serial_warmup = openai.OpenAI(base_url=server.base_url, api_key="unused")
        run_serial_warmup.chat.completions.create(**request(server.model))
        run_serial_warmup.close()
        serial: list[float] = []
        concurrent: list[float] = []
        for repeat in range(repeats):
            arms = [("serial", serial), ("concurrent", concurrent)]
            if repeat % 2:
                arms.reverse()
            for name, times in arms:
                if name == "serial":
                    times.append(run_serial(server))
                else:
                    times.append(run_concurrent(server, parallel))
        return statistics.median(serial), statistics.median(concurrent)


def report(parallel: int, threads: int, serial: float, concurrent: float) -> float:
    speedup = serial / concurrent
    print(
        f"parallel {parallel}  threads {threads}  |  serial {serial:6.2f} s "
        f"({CALLS / serial:5.2f} calls/s)  |  concurrent {concurrent:6.2f} s "
        f"({CALLS / concurrent:5.2f} calls/s)  |  speed-up {speedup:4.2f}x",
        flush=True,
    )
    return speedup


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--parallel", type=int, default=DEFAULT_PARALLEL)
    parser.add_argument("--threads", type=int, default=DEFAULT_THREADS)
    parser.add_argument(
        "--sweep",
        nargs="?",
        const="1x1,1x2,2x1,2x2,4x1,4x2,8x1,8x2",
        metavar="PxT,...",
        help="measure each parallel x threads configuration (default: 1/2/4/8 x 1/2)",
    )
    args = parser.parse_args(argv)
    print(
        f"{CALLS} calls of the seed request (20 tokens, top-20 logprobs, temperature 0), "
        f"median of {args.repeats} repeats"
    )
    if args.sweep:
        results = {}
        configs = [tuple(map(int, item.split("x"))) for item in args.sweep.split(",")]
        for parallel, threads in configs:
            serial, concurrent = measure(parallel, threads, args.repeats)
            report(parallel, threads, serial, concurrent)
            results[(parallel, threads)] = CALLS / concurrent
        best = max(results, key=results.__getitem__)
        print(f"fastest concurrent configuration: parallel {best[0]}, threads {best[1]}")
        return 0
    serial, concurrent = measure(args.parallel, args.threads, args.repeats)
    speedup = report(args.parallel, args.threads, serial, concurrent)
    if speedup < TARGET_SPEEDUP:
        print(f"MISSED: speed-up {speedup:.2f}x < target {TARGET_SPEEDUP}x")
        return 1
    print(f"OK: speed-up {speedup:.2f}x >= target {TARGET_SPEEDUP}x")
    return 0


if __name__ == "__main__":
    sys.exit(main())
