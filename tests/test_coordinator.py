"""The run-wide call budget and shared local server under xdist, and per-call seeds."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Iterator

import pytest

from pytest_rolecheck.errors import BackendError
from pytest_rolecheck.running.calls import with_call_seed
from pytest_rolecheck.running.coordinator import Coordinator, CoordinatorClient


@pytest.fixture
def coordinator() -> Iterator[Coordinator]:
    started: list[int] = []

    def start_server() -> str:
        started.append(1)
        return f"http://127.0.0.1:1234/v1#{len(started)}"

    running = Coordinator(concurrency=2, start_server=start_server)
    yield running
    running.close()


def _max_in_flight(client: CoordinatorClient, callers: int) -> int:
    lock = threading.Lock()
    in_flight = [0, 0]  # now, max

    def call() -> None:
        with client.slot():
            with lock:
                in_flight[0] += 1
                in_flight[1] = max(in_flight)
            time.sleep(0.05)
            with lock:
                in_flight[0] -= 1

    threads = [threading.Thread(target=call) for _ in range(callers)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)
    return in_flight[1]


def test_slots_bound_calls_across_clients(coordinator: Coordinator) -> None:
    # two "workers", each with its own client and 4 threads: never more than 2 at once
    results: list[int] = []
    workers = [
        threading.Thread(
            target=lambda: results.append(_max_in_flight(CoordinatorClient(coordinator.address), 4))
        )
        for _ in range(2)
    ]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join(timeout=60)
    assert len(results) == 2
    assert max(results) <= 2


def test_async_slots_bound_calls(coordinator: Coordinator) -> None:
    client = CoordinatorClient(coordinator.address)
    in_flight = [0, 0]

    async def call() -> None:
        async with client.slot_async():
            in_flight[0] += 1
            in_flight[1] = max(in_flight)
            await asyncio.sleep(0.05)
            in_flight[0] -= 1

    async def main() -> None:
        await asyncio.gather(*(call() for _ in range(6)))

    asyncio.run(main())
    assert in_flight[1] == 2


def test_a_dead_holder_releases_its_slot(coordinator: Coordinator) -> None:
    client = CoordinatorClient(coordinator.address)
    # a worker killed mid-call: its connections close without a goodbye
    held = [client.slot(), client.slot()]
    for slot in held:
        slot.__enter__()
    for slot in held:
        slot.__exit__(RuntimeError, RuntimeError("killed"), None)
    done = threading.Event()

    def take() -> None:
        with client.slot():
            done.set()

    threading.Thread(target=take, daemon=True).start()
    assert done.wait(10), "a slot stayed held after its connection closed"


def test_every_client_gets_the_server_url(coordinator: Coordinator) -> None:
    urls = [CoordinatorClient(coordinator.address).server_url() for _ in range(3)]
    assert [url.rsplit("#", 1)[0] for url in urls] == ["http://127.0.0.1:1234/v1"] * 3


def test_server_error_reaches_the_worker() -> None:
    def broken() -> str:
        raise BackendError("the llama.cpp server is not installed; pip install ...")

    coordinator = Coordinator(concurrency=1, start_server=broken)
    try:
        with pytest.raises(BackendError, match="not installed; pip install"):
            CoordinatorClient(coordinator.address).server_url()
    finally:
        coordinator.close()


def test_unreachable_coordinator_says_what_to_do() -> None:
    coordinator = Coordinator(concurrency=1, start_server=lambda: "")
    address = coordinator.address
    coordinator.close()
    with pytest.raises(BackendError, match="could not reach the xdist controller"):
        CoordinatorClient(address).server_url()


# -- per-call seeds ---------------------------------------------------------------


def test_sampled_calls_get_distinct_reproducible_seeds() -> None:
    request = {"model": "m", "temperature": 1.0}
    seeds = [with_call_seed(request, "t.py::test", "A", i)["seed"] for i in range(20)]
    assert len(set(seeds)) == 20
    assert all(0 <= seed < 2**31 for seed in seeds)
    again = [with_call_seed(request, "t.py::test", "A", i)["seed"] for i in range(20)]
    assert seeds == again
    other_arm = with_call_seed(request, "t.py::test", "B", 0)["seed"]
    other_test = with_call_seed(request, "t.py::other", "A", 0)["seed"]
    assert seeds[0] not in (other_arm, other_test)
    assert "seed" not in request  # not mutated


@pytest.mark.parametrize(
    "request_",
    [
        {"temperature": 0.0},
        {"temperature": 0},
        {"temperature": 1.0, "seed": 7},
        {"temperature": 1.0, "extra_body": {"seed": 7}},
        {"model": "m"},
    ],
)
def test_no_seed_at_temperature_zero_or_when_the_user_set_one(request_: dict[str, object]) -> None:
    assert with_call_seed(request_, "t", "A", 0) == request_
