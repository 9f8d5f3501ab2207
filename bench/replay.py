"""Replay cost: a 21-call comparison through the plugin's cassette vs raw vcrpy.

Run ``python bench/replay.py``. Setup (untimed): a loopback server
(``_latency_server.py``) answers 20 tokens x top-20 logprobs per call; the
plugin records one seed-design comparison (1 baseline + 10 developer + 10 system
calls, arms interleaved) into a temporary cassette through its own path
(``Rolecheck`` with ``cassette_file=`` and record mode ``once``). The same 21
requests (taken from that cassette, with the same call-index header, so the
server returns the same bytes) are recorded sequentially into a second cassette
with raw vcrpy (``vcr.VCR(record_mode="once")``, default YAML serializer). The
server is then stopped: a replay that tried the network would fail.

Timed, side by side in every repeat (the order rotates), for each client type:

* ``plugin``: ``Rolecheck`` in record mode ``none`` -> ``run_arms(...)`` ->
  ``finish(save=True)``. That is the whole replay path of one test: settings,
  variants, ``CassetteSession`` (loading the JSON cassette, vcrpy patching,
  ``check_request`` of every call, the custom matchers) and ``CompletionRunner``
  (``AsyncOpenAI`` on an event loop, or ``OpenAI`` in a thread pool; concurrency 8).
* ``raw vcrpy``: ``vcr.VCR(record_mode="none").use_cassette(...)`` (default YAML
  serializer, default matching) around a plain sequential loop of the same 21
  ``chat.completions.create`` calls with the same client type.

Then, over a whole suite (``_suite_replay.py``): the plugin's per-call replay
cost in a generated ``--suite-tests``-test suite (client creation, cassette
load, GC and all, as a real suite pays them) vs the SDK's own ``create()`` over
an ``httpx2.MockTransport`` answering with the same bodies. Target: plugin / SDK
<= 2.0 per call, in CPU time (the wall times are printed too).

Each arm of the 21-call comparison builds its client outside the timed
region. Target: median plugin / median raw vcrpy (wall time) <= 1.2 for each
client type. Also printed, as cross-checks on a busy machine: the median of the
per-repeat ratios (the two arms of a repeat run back to back) and the ratio of
CPU-time medians (a replay is CPU-bound; CPU time ignores what other processes
take). On a miss (or with ``--profile``) both paths are profiled (stack samples
of every thread: the runner works on an event-loop thread or a thread pool) and
the packages and functions where the plugin spends its time are printed.

Exit status 1 if either target is missed.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import json
import statistics
import sys
import tempfile
import threading
import time
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from types import FrameType
from typing import Any, ClassVar

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import openai
import vcr
from _latency_server import MODEL, LatencyServer
from _suite_replay import plugin_per_call_ms, sdk_per_call_ms

from pytest_rolecheck.recording.cassette import CALL_INDEX_HEADER
from pytest_rolecheck.running.client import REPLAY_API_KEY
from pytest_rolecheck.running.session import Rolecheck
from pytest_rolecheck.settings import Settings

CALLS = 21
TRIALS = (CALLS - 1) // 2
TARGET_RATIO = 1.2
SUITE_TARGET = 2.0  # plugin per call / the SDK's create() over a mock transport
NODEID = "tests/test_roles.py::test_developer_role_matches_system"
PROMPT = "Produce two stanza rock song lyrics for 'Rockin with my Kitty Cat'"
INSTRUCTION = "You are a helpful AI assistant"
# A key-like value while recording, so the plugin's scrubbing runs as it does for real.
RECORD_KEY = "sk-bench-recording-key-0123456789"

AnyClient = openai.OpenAI | openai.AsyncOpenAI


def messages(role: str) -> list[dict[str, str]]:
    return [{"role": role, "content": INSTRUCTION}, {"role": "user", "content": PROMPT}]


def make_client(kind: str, base_url: str, api_key: str = REPLAY_API_KEY) -> AnyClient:
    # The options the plugin's default client uses when replaying (no retries).
    cls = openai.AsyncOpenAI if kind == "async" else openai.OpenAI
    return cls(base_url=base_url, api_key=api_key, max_retries=0)


def plugin_rolecheck(mode: str, path: Path, base_url: str, client: AnyClient) -> Rolecheck:
    settings = Settings(record_mode=mode, model=MODEL, base_url=base_url, rootdir=path.parent)
    return Rolecheck(settings, nodeid=NODEID, client_provider=lambda: client, cassette_file=path)


def plugin_calls(rolecheck: Rolecheck) -> list[Any]:
    """The calls of one comparison in seed design, as ``Rolecheck.compare`` makes them.

    Returned in call-index order (baseline, then A and B interleaved).
    """
    a, b, base = rolecheck.run_arms(
        messages("developer"), messages("system"), TRIALS, baseline=True
    )
    rolecheck.finish(save=True)
    assert base is not None
    return [base, *(call for pair in zip(a, b, strict=True) for call in pair)]


def raw_requests(cassette: Path) -> list[tuple[int, dict[str, Any]]]:
    """(call index, kwargs) of every request the plugin recorded, in call order."""
    document = json.loads(cassette.read_text(encoding="utf-8"))
    found = [(item["index"], item["request"]["body"]["json"]) for item in document["interactions"]]
    return sorted(found, key=lambda pair: pair[0])


def raw_calls(client: AnyClient, requests: list[tuple[int, dict[str, Any]]]) -> list[Any]:
    """The plain sequential loop a user would write, sending the same requests."""
    if isinstance(client, openai.AsyncOpenAI):
        results: list[Any] = []

        async def loop() -> None:
            for index, body in requests:
                results.append(
                    await client.chat.completions.create(
                        **body, extra_headers={CALL_INDEX_HEADER: str(index)}
                    )
                )

        # Results stay outside the task: on Python 3.11, asyncio.run reprs the finished
        # task (result included) when it restores the SIGINT handler, ~35 ms for 21 calls.
        asyncio.run(loop())
        return results
    return [
        client.chat.completions.create(**body, extra_headers={CALL_INDEX_HEADER: str(index)})
        for index, body in requests
    ]


def fingerprint(responses: list[Any]) -> list[tuple[str, tuple[float, ...]]]:
    """What must be equal between the two replays: text and generated-token logprobs."""
    out = []
    for response in responses:
        choice = response.choices[0]
        out.append((choice.message.content, tuple(t.logprob for t in choice.logprobs.content)))
    return out


@dataclass
class _Recorded:
    """The two cassettes of one comparison, recorded once (untimed)."""

    plugin_cassette: Path
    raw_cassette: Path
    requests: list[Any]
    responses: list[Any]
    base_url: str


def _record(tmp: Path) -> _Recorded:
    """Record the plugin's cassette, then raw vcrpy's of the same requests, sequentially."""
    plugin_cassette = tmp / "plugin.json"
    raw_cassette = tmp / "raw.yaml"
    with LatencyServer(latency=0.01) as server:
        recorded = plugin_calls(
            plugin_rolecheck(
                "once",
                plugin_cassette,
                server.base_url,
                make_client("async", server.base_url, RECORD_KEY),
            )
        )
        requests = raw_requests(plugin_cassette)
        if len(requests) != CALLS or len(recorded) != CALLS:
            raise SystemExit(f"recorded {len(requests)} calls, expected {CALLS}")
        with vcr.VCR(record_mode="once").use_cassette(str(raw_cassette)):
            raw_calls(make_client("async", server.base_url, RECORD_KEY), requests)
        base_url = server.base_url
    if RECORD_KEY in plugin_cassette.read_text(encoding="utf-8"):
        raise SystemExit("the plugin's cassette holds the API key")
    return _Recorded(plugin_cassette, raw_cassette, requests, recorded, base_url)


def _arms(rec: _Recorded, kinds: Sequence[str]) -> dict[str, Callable[[], Callable[[], Any]]]:
    """Per arm, a factory of a zero-argument timed call (clients are built untimed)."""

    def plugin_arm(kind: str) -> Callable[[], list[Any]]:
        client = make_client(kind, rec.base_url)
        rolecheck = plugin_rolecheck("none", rec.plugin_cassette, rec.base_url, client)
        return lambda: plugin_calls(rolecheck)

    def raw_arm(kind: str) -> Callable[[], list[Any]]:
        client = make_client(kind, rec.base_url)

        def go() -> list[Any]:
            with vcr.VCR(record_mode="none").use_cassette(str(rec.raw_cassette)):
                return raw_calls(client, rec.requests)

        return go

    arms: dict[str, Callable[[], Callable[[], Any]]] = {}
    for kind in kinds:
        arms[f"plugin ({kind})"] = lambda kind=kind: plugin_arm(kind)
        arms[f"raw vcrpy ({kind})"] = lambda kind=kind: raw_arm(kind)
    return arms


def _time_arms(
    arms: dict[str, Callable[[], Callable[[], Any]]], repeats: int
) -> tuple[dict[str, list[float]], dict[str, list[float]]]:
    """Wall and CPU ms of every arm, interleaved in a rotating order."""
    names = list(arms)
    times: dict[str, list[float]] = {name: [] for name in names}
    cpu: dict[str, list[float]] = {name: [] for name in names}
    for repeat in range(repeats):
        shift = repeat % len(names)
        for name in names[shift:] + names[:shift]:
            gc.collect()  # each arm starts with no garbage of the previous one
            go = arms[name]()
            start, start_cpu = time.perf_counter(), time.process_time()
            responses = go()
            times[name].append((time.perf_counter() - start) * 1e3)
            cpu[name].append((time.process_time() - start_cpu) * 1e3)
            if len(responses) != CALLS:
                raise SystemExit(f"{name}: {len(responses)} responses")
            del go, responses
    return times, cpu


def _print_table(
    rec: _Recorded, times: dict[str, list[float]], cpu: dict[str, list[float]], repeats: int
) -> None:
    medians = {name: statistics.median(values) for name, values in times.items()}
    cpu_medians = {name: statistics.median(values) for name, values in cpu.items()}
    print(
        f"replay of a {CALLS}-call comparison (20 tokens x top-20 logprobs per call); "
        f"medians of {repeats} repeats"
    )
    print(
        f"cassette sizes: plugin JSON {rec.plugin_cassette.stat().st_size / 1024:.0f} KiB, "
        f"raw vcrpy YAML {rec.raw_cassette.stat().st_size / 1024:.0f} KiB"
    )
    header = (
        f"{'':<20} {'wall median ms':>15} {'min ms':>7} {'max ms':>7} {'ms/call':>8} "
        f"{'CPU median ms':>14}"
    )
    print(header)
    print("-" * len(header))
    for name, values in times.items():
        print(
            f"{name:<20} {medians[name]:>15.1f} {min(values):>7.1f} {max(values):>7.1f} "
            f"{medians[name] / CALLS:>8.2f} {cpu_medians[name]:>14.1f}"
        )
    print()


def _missed(
    kinds: Sequence[str], times: dict[str, list[float]], cpu: dict[str, list[float]]
) -> list[str]:
    """Print each client type's plugin / raw ratio; return the types over the target."""
    missed: list[str] = []
    for kind in kinds:
        mine, theirs = f"plugin ({kind})", f"raw vcrpy ({kind})"
        ratio = statistics.median(times[mine]) / statistics.median(times[theirs])
        paired = statistics.median(a / b for a, b in zip(times[mine], times[theirs], strict=True))
        cpu_ratio = statistics.median(cpu[mine]) / statistics.median(cpu[theirs])
        passed = ratio <= TARGET_RATIO
        if not passed:
            missed.append(kind)
        print(
            f"ratio plugin / raw vcrpy ({kind}): {ratio:.2f} wall "
            f"(target <= {TARGET_RATIO}) -> {'PASS' if passed else 'FAIL'}; "
            f"median of paired ratios {paired:.2f}, CPU time {cpu_ratio:.2f}"
        )
    return missed


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeats", type=int, default=30, help="timed rounds (default 30)")
    parser.add_argument(
        "--clients",
        choices=("async", "sync", "both"),
        default="both",
        help="client type(s) to measure (default both)",
    )
    parser.add_argument("--profile", action="store_true", help="profile even if on target")
    parser.add_argument(
        "--suite-tests", type=int, default=100, help="tests in the generated suite (default 100)"
    )
    parser.add_argument(
        "--suite-only", action="store_true", help="measure the suite against the SDK only"
    )
    args = parser.parse_args(argv)
    if args.repeats < 1:
        parser.error("--repeats must be >= 1")
    if args.suite_tests < 2:
        parser.error("--suite-tests must be >= 2")
    kinds = ("async", "sync") if args.clients == "both" else (args.clients,)
    missed = [] if args.suite_only else _comparison(args, kinds)
    if not _suite(args.suite_tests, args.repeats):
        missed.append("suite")
    return 1 if missed else 0


def _suite(tests: int, rounds: int) -> bool:
    """Print the suite's per-call cost against the SDK's; whether it is on target.

    Judged on CPU time: the two sides run one after the other, and on a shared
    machine their wall times count different amounts of other processes' work.
    """
    plugin = plugin_per_call_ms(tests)
    sdk = sdk_per_call_ms(rounds)
    ratio = plugin.cpu / sdk.cpu
    passed = ratio <= SUITE_TARGET
    print(
        f"\nsuite of {tests} replayed tests (40 calls each), ms per call (all of each test's "
        f"run but the first test's) vs the SDK's create() over a mock transport (median of "
        f"{rounds} rounds):\n"
        f"  CPU:  plugin {plugin.cpu:.2f}, SDK {sdk.cpu:.2f}\n"
        f"  wall: plugin {plugin.wall:.2f}, SDK {sdk.wall:.2f} (ratio {plugin.wall / sdk.wall:.2f})"
    )
    print(
        f"ratio plugin / SDK per call (CPU time): {ratio:.2f} (target <= {SUITE_TARGET}) -> "
        f"{'PASS' if passed else 'FAIL'}"
    )
    return passed


def _comparison(args: argparse.Namespace, kinds: Sequence[str]) -> list[str]:
    """The 21-call comparison: plugin vs raw vcrpy; the client types over target."""

    with tempfile.TemporaryDirectory(prefix="rolecheck-replay-") as tmp:
        rec = _record(Path(tmp))
        arms = _arms(rec, kinds)
        expected = fingerprint(rec.responses)
        for name, arm in arms.items():  # warm-up (imports, caches); both replay the same
            if fingerprint(arm()()) != expected:
                raise SystemExit(f"{name} did not replay the recorded responses")
        times, cpu = _time_arms(arms, args.repeats)
        _print_table(rec, times, cpu, args.repeats)
        missed = _missed(kinds, times, cpu)
        for kind in kinds:
            if args.profile or kind in missed:
                profile_pair(kind, arms[f"plugin ({kind})"], arms[f"raw vcrpy ({kind})"])
    return missed


# --------------------------------------------------------------------------- profiling

_GROUPS = (
    ("pytest_rolecheck/", "pytest_rolecheck"),
    ("/vcr/", "vcrpy"),
    ("/openai/", "openai"),
    ("/pydantic", "pydantic"),
    ("/httpx2/", "httpx2"),
    ("/httpcore2/", "httpx2"),
    ("/yaml/", "yaml"),
    ("/asyncio/", "asyncio"),
    ("/anyio/", "asyncio"),
    ("/concurrent/", "threads"),
    ("threading.py", "threads"),
    ("/json/", "json"),
    ("/selectors.py", "asyncio"),
    ("/socket.py", "sockets"),
    ("/ssl.py", "sockets"),
)


def _group(filename: str) -> str:
    for needle, name in _GROUPS:
        if needle in filename:
            return name
    return "other"


class _Sampler:
    """Time-weighted stack sampler over every thread.

    cProfile sees only the thread that enables it, while the runner works on an
    event-loop thread or in a thread pool. Every ``interval`` this samples the
    stacks of all threads that are not waiting (blocked in a selector, a lock or
    a queue) and charges the wall time since the previous sample to them, shared
    equally. A C call that holds the GIL (``json.loads``) is charged to the
    Python function that called it.
    """

    _IDLE: ClassVar[frozenset[tuple[str, str]]] = frozenset(
        {
            ("selectors.py", "select"),
            ("threading.py", "wait"),
            ("threading.py", "_wait_for_tstate_lock"),
            ("queue.py", "get"),
            ("thread.py", "_worker"),
            ("socket.py", "readinto"),
            ("socketserver.py", "serve_forever"),
        }
    )

    def __init__(self, interval: float = 0.001) -> None:
        self.interval = interval
        self.own: Counter[str] = Counter()
        self.cumulative: Counter[str] = Counter()
        self.groups: Counter[str] = Counter()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._switch = sys.getswitchinterval()

    def _idle(self, frame: FrameType) -> bool:
        return (Path(frame.f_code.co_filename).name, frame.f_code.co_name) in self._IDLE

    def _sample(self) -> None:
        me = threading.get_ident()
        last = time.perf_counter()
        while not self._stop.wait(self.interval):
            weight = time.perf_counter() - last
            frames = sys._current_frames()
            busy = [f for ident, f in frames.items() if ident != me and not self._idle(f)]
            for frame in busy:
                share = weight / len(busy)
                self.own[_where_frame(frame)] += share
                self.groups[_group(frame.f_code.co_filename)] += share
                seen: set[str] = set()
                current: FrameType | None = frame
                while current is not None:
                    where = _where_frame(current)
                    if where not in seen:
                        seen.add(where)
                        self.cumulative[where] += share
                    current = current.f_back
            last = time.perf_counter()  # the sampler's own work is charged to no one

    def __enter__(self) -> _Sampler:
        sys.setswitchinterval(self.interval / 2)  # let the sampler in often
        self._stop.clear()
        self._thread = threading.Thread(target=self._sample, name="bench-sampler", daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
        sys.setswitchinterval(self._switch)


def _where_frame(frame: FrameType) -> str:
    code = frame.f_code
    return _where((code.co_filename, code.co_firstlineno, code.co_name))


def _profile(make: Callable[[], Callable[[], list[Any]]], rounds: int) -> _Sampler:
    sampler = _Sampler()
    for _ in range(rounds):
        gc.collect()
        go = make()
        with sampler:
            go()
        del go
    return sampler


def profile_pair(
    kind: str,
    plugin: Callable[[], Callable[[], list[Any]]],
    raw: Callable[[], Callable[[], list[Any]]],
    rounds: int = 10,
) -> None:
    """Print where the plugin's replay spends its time, next to raw vcrpy's."""
    stats = {"plugin": _profile(plugin, rounds), "raw": _profile(raw, rounds)}
    print(
        f"\nprofile ({kind} client): sampled stacks of all threads over {rounds} replays "
        "each, busy ms per replay"
    )
    print(f"  {'package (own time)':<22} {'plugin':>7} {'raw':>7} {'extra':>7}")
    groups = set(stats["plugin"].groups) | set(stats["raw"].groups)
    rows = [
        (stats["plugin"].groups[g] / rounds * 1e3, stats["raw"].groups[g] / rounds * 1e3, g)
        for g in groups
    ]
    for mine, theirs, group in sorted(rows, key=lambda r: r[1] - r[0]):
        print(f"  {group:<22} {mine:>7.1f} {theirs:>7.1f} {mine - theirs:>+7.1f}")
    mine, theirs = sum(r[0] for r in rows), sum(r[1] for r in rows)
    print(f"  {'total':<22} {mine:>7.1f} {theirs:>7.1f} {mine - theirs:>+7.1f}")

    print(f"\n  functions with the most own time beyond raw vcrpy's ({kind}, ms per replay)")
    print(f"    {'plugin':>7} {'raw':>6} {'extra':>7}  where")
    names = set(stats["plugin"].own) | set(stats["raw"].own)
    extra = [
        (stats["plugin"].own[n] / rounds * 1e3, stats["raw"].own[n] / rounds * 1e3, n)
        for n in names
    ]
    for mine, theirs, where in sorted(extra, key=lambda r: r[1] - r[0])[:12]:
        print(f"    {mine:>7.1f} {theirs:>6.1f} {mine - theirs:>+7.1f}  {where}")

    print(f"\n  pytest-rolecheck and vcrpy functions by cumulative time ({kind}, plugin path)")
    ours = [
        (ms / rounds * 1e3, where)
        for where, ms in stats["plugin"].cumulative.items()
        if where.startswith(("pytest_rolecheck/", "vcr/"))
    ]
    for ms, where in sorted(ours, reverse=True)[:12]:
        print(f"    {ms:>7.1f}  {where}")


def _where(key: tuple[str, int, str]) -> str:
    filename, line, func = key
    for marker in ("pytest_rolecheck/", "site-packages/", "lib/python3"):
        if marker in filename:
            tail = filename.split(marker, 1)[1]
            if marker == "pytest_rolecheck/":
                filename = "pytest_rolecheck/" + tail
            elif marker == "lib/python3":
                filename = tail.split("/", 1)[-1]
            else:
                filename = tail
            break
    return f"{filename}:{line}:{func}"


if __name__ == "__main__":
    sys.exit(main())
