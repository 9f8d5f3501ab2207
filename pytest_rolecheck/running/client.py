"""The one module that talks to the network, through the official ``openai`` SDK.

:class:`CompletionRunner` sends a batch of chat-completion (or Responses-API)
requests with bounded concurrency — ``AsyncOpenAI`` under an ``asyncio`` semaphore, or a sync
``OpenAI`` client in daemon worker threads — stamping each request with its call index
(``x-rolecheck-call``) so a cassette replays every call to the call it was
recorded from, whatever order the concurrent calls finished in. SDK errors are
translated into :mod:`pytest_rolecheck.errors` with a message that says what
to do next.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import queue
import sys
import threading
import time
from collections.abc import Callable, Coroutine, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, TypeVar

import openai

from ..errors import BackendError, RolecheckUsageError
from ..recording.format import CALL_INDEX_HEADER
from ..recording.redaction import is_credential_name
from ..variants.responses import is_responses_request
from .progress import Progress, Usage

if TYPE_CHECKING:
    from .coordinator import CoordinatorClient

# Sent when replaying: the SDK insists on a key, and no real key is needed.
REPLAY_API_KEY = "rolecheck-replay-no-key"
# Sent to the bundled local server, which checks no key.
LOCAL_API_KEY = "rolecheck-local-no-key"

T = TypeVar("T")

# create() arguments that the SDK sends as headers, query or client settings.
_NOT_IN_BODY = ("extra_headers", "extra_query", "timeout")

AnyClient = openai.OpenAI | openai.AsyncOpenAI


@dataclass(frozen=True)
class CallSpec:
    """One request of a batch: its index within the test, its arm, its kwargs."""

    index: int
    arm: str
    request: Mapping[str, Any]

    def body(self) -> dict[str, Any]:
        """The JSON body the SDK will send (what the cassette matches on).

        Mirrors the SDK: ``extra_headers``, ``extra_query`` and ``timeout`` are not
        part of the body, and ``extra_body`` is merged into its top level.
        """
        request = dict(self.request)
        for key in _NOT_IN_BODY:
            request.pop(key, None)
        extra = request.pop("extra_body", None)
        if isinstance(extra, Mapping):
            request.update(extra)
        result: dict[str, Any] = json.loads(json.dumps(request))
        return result

    @property
    def api(self) -> str:
        """``responses`` for a request built for ``responses.create``, else ``chat``."""
        return "responses" if is_responses_request(self.request) else "chat"

    def create_kwargs(self) -> dict[str, Any]:
        """Keyword arguments for the API's create call, call index header added."""
        kwargs = dict(self.request)
        headers = dict(kwargs.get("extra_headers") or {})
        headers[CALL_INDEX_HEADER] = str(self.index)
        kwargs["extra_headers"] = headers
        return kwargs


def client_secrets(client: Any) -> list[str]:
    """Values that must never be written to disk.

    The client's API key, and every value of its default headers and default
    query whose name is a credential's (``Authorization``, ``api-key``, ``key``,
    ``x-api-key``, ``token``, ...). Which of them is long enough to be scrubbed is
    decided by the cassette's redactor.
    """
    found = [getattr(client, "api_key", None)]
    for attribute in ("default_headers", "default_query"):
        try:
            values = getattr(client, attribute, None) or {}
            items = list(values.items())
        except Exception:  # a property of a client subclass; the key above still counts
            continue
        found.extend(value for name, value in items if is_credential_name(name))
    placeholders = (REPLAY_API_KEY, LOCAL_API_KEY)
    return [
        value
        for value in found
        if isinstance(value, str) and value and not any(p in value for p in placeholders)
    ]


def client_base_url(client: Any) -> str:
    return str(getattr(client, "base_url", "") or "")


class CompletionRunner:
    """Run batches of chat completions with bounded concurrency.

    Parameters
    ----------
    client
        An ``openai.AsyncOpenAI`` (calls run on an event loop) or ``openai.OpenAI``
        (calls run in worker threads). Azure and other subclasses work alike.
    concurrency
        Maximum number of requests in flight.
    before_call
        Called with each :class:`CallSpec` before anything is sent (the cassette
        uses it to fail fast, with a clear message, on a stale or missing entry).
    explain
        Turns a failure raised from inside the transport (e.g. the cassette
        refusing an unmatched request, which openai 3.x lets through unwrapped)
        into a clear error, or returns ``None`` to leave it to the SDK mapping.
    stored_json, redact
        The cassette's scrubbed copy of a live response, and its scrubber of
        error texts (see :class:`~pytest_rolecheck.recording.cassette.CassetteSession`).
    timeout
        Seconds each try of a call may wait (``--rolecheck-timeout``); ``None``
        keeps the client's own timeout.
    notify
        Receives one line when a call outlasts the timeout, naming every call
        still in flight; ``None`` for no such message.
    slots
        The run's shared call budget under xdist (every call holds one of its
        slots while in flight); ``None``: ``concurrency`` is the only bound.
    """

    def __init__(
        self,
        client: AnyClient,
        *,
        concurrency: int = 8,
        before_call: Callable[[CallSpec], None] | None = None,
        explain: Callable[[BaseException], Exception | None] | None = None,
        progress: Progress | None = None,
        stored_json: Callable[[int], Any] | None = None,
        redact: Callable[[str], str] | None = None,
        timeout: float | None = None,
        notify: Callable[[str], None] | None = None,
        slots: CoordinatorClient | None = None,
    ) -> None:
        if concurrency < 1:
            raise RolecheckUsageError(f"concurrency must be ≥ 1, got {concurrency}.")
        self.client = client
        self.concurrency = concurrency
        self.before_call = before_call
        self.explain = explain
        self.stored_json = stored_json
        self.redact = redact
        # Per request (each try), overriding the client's; None keeps the client's.
        self.timeout = timeout
        # Told which calls are still in flight once one outlasts the timeout (live runs).
        self.notify = notify
        self._in_flight: dict[int, tuple[CallSpec, float]] = {}
        self.progress = progress or Progress()
        self.slots = slots
        self._lock = threading.Lock()  # worker threads record results concurrently

    @property
    def usage(self) -> Usage:
        return self.progress.usage

    def close(self) -> None:
        """Close the client's connections (only call for a client this code created)."""
        if self.progress.total:  # no call made: nothing to close
            close_client(self.client)

    def run(self, specs: Sequence[CallSpec]) -> list[Any]:
        """Send every request and return the responses in the order of ``specs``."""
        if self.before_call is not None:
            # Check the whole batch first: a stale cassette fails before any call.
            for spec in specs:
                self.before_call(spec)
        self.progress.total += len(specs)
        with _Watchdog(self):
            if isinstance(self.client, openai.AsyncOpenAI):
                return _run_coroutine(self._run_async(specs))
            if isinstance(self.client, openai.OpenAI):
                return self._run_threads(specs)
        raise RolecheckUsageError(
            f"the rolecheck_client fixture returned {type(self.client).__name__}; expected an "
            "openai.AsyncOpenAI or openai.OpenAI instance (or None for the default client)."
        )

    @property
    def effective_timeout(self) -> float | None:
        """Seconds one try of a call may take: ours, else the client's (if a number)."""
        if self.timeout is not None:
            return self.timeout
        return _seconds(getattr(self.client, "timeout", None))

    def _kwargs(self, spec: CallSpec) -> dict[str, Any]:
        kwargs = spec.create_kwargs()
        if self.timeout is not None:
            kwargs.setdefault("timeout", self.timeout)  # a test's own timeout= wins
        return kwargs

    def _started(self, spec: CallSpec) -> None:
        with self._lock:
            self._in_flight[spec.index] = (spec, time.monotonic())

    def _ended(self, spec: CallSpec) -> None:
        with self._lock:
            self._in_flight.pop(spec.index, None)

    def in_flight(self) -> list[tuple[CallSpec, float]]:
        """The calls sent and not yet answered, with their start times, oldest first."""
        with self._lock:
            return sorted(self._in_flight.values(), key=lambda item: item[1])

    def _translate(self, exc: Exception, spec: CallSpec) -> Exception:
        if self.explain is not None:
            explained = self.explain(exc)
            if explained is not None:
                return explained
        if isinstance(exc, openai.OpenAIError | json.JSONDecodeError):
            translated = translate_error(
                exc,
                spec,
                client_base_url(self.client),
                timeout=self.effective_timeout,
                tries=1 + int(getattr(self.client, "max_retries", 0) or 0),
            )
            if self.redact is not None:  # a server may echo the key in its error text
                translated = type(translated)(self.redact(str(translated)))
            return translated
        return exc

    def _record(self, spec: CallSpec, response: Any) -> Any:
        if self.stored_json is not None:
            # Hand on the recording (scrubbed) rather than the live answer, so what
            # the test and the reports see is what a replay will give.
            stored = self.stored_json(spec.index)
            if isinstance(stored, dict) and callable(getattr(response, "construct", None)):
                response = type(response).construct(**stored)
        with self._lock:
            self.progress.done += 1
            self.progress.usage.add(response, spec.request.get("model"))
        return response

    async def _run_async(self, specs: Sequence[CallSpec]) -> list[Any]:
        assert isinstance(self.client, openai.AsyncOpenAI)
        client = self.client
        semaphore = asyncio.Semaphore(self.concurrency)
        results: list[Any] = [None] * len(specs)

        slots = self.slots

        async def one(position: int, spec: CallSpec) -> None:
            async with semaphore, slots.slot_async() if slots else contextlib.nullcontext():
                self._started(spec)
                try:
                    api = client.responses if spec.api == "responses" else client.chat.completions
                    response = await api.create(**self._kwargs(spec))
                except Exception as exc:
                    raise self._translate(exc, spec) from exc
                finally:
                    self._ended(spec)
            results[position] = self._record(spec, response)

        try:
            # TaskGroup cancels the remaining calls as soon as one fails.
            async with asyncio.TaskGroup() as group:
                for position, spec in enumerate(specs):
                    group.create_task(one(position, spec))
        except BaseExceptionGroup as group_error:
            raise _first_error(group_error) from None
        return results

    def _run_threads(self, specs: Sequence[CallSpec]) -> list[Any]:
        assert isinstance(self.client, openai.OpenAI)
        client = self.client
        _stop_sends_of_abandoned_batches(client)
        stop = threading.Event()
        pending = iter(enumerate(specs))
        take = threading.Lock()
        outcomes: queue.SimpleQueue[tuple[int, bool, Any]] = queue.SimpleQueue()

        slots = self.slots

        def worker() -> None:
            _WORKER.stop = stop
            while not stop.is_set():
                with take:
                    position, spec = next(pending, (-1, None))
                if spec is None:
                    return
                try:
                    with slots.slot() if slots else contextlib.nullcontext():
                        # in flight once sent, not while waiting for the run's call slot
                        self._started(spec)
                        api = (
                            client.responses if spec.api == "responses" else client.chat.completions
                        )
                        response = api.create(**self._kwargs(spec))
                except Exception as exc:
                    stop.set()  # the batch fails: no call of it starts after this one
                    error = self._translate(exc, spec)
                    if error is not exc:
                        error.__cause__ = exc
                    outcomes.put((position, False, error))
                else:
                    outcomes.put((position, True, self._record(spec, response)))
                finally:
                    self._ended(spec)

        # Daemon threads, not a ThreadPoolExecutor: the interpreter joins an
        # executor's threads at exit, so a Ctrl-C would wait for every call in
        # flight to time out (10 min with the SDK's default timeout).
        for number in range(min(self.concurrency, len(specs))):
            name = f"rolecheck-call-{number}"
            threading.Thread(target=worker, name=name, daemon=True).start()
        results: list[Any] = [None] * len(specs)
        try:
            for _ in specs:
                position, ok, value = outcomes.get()
                if not ok:
                    raise value
                results[position] = value
        finally:
            # On an error or a Ctrl-C: start nothing more, retry nothing.
            stop.set()
        return results


class _Watchdog:
    """While a batch runs, says once per call which calls are stuck past the timeout.

    A hung server otherwise looks like a hung test for timeout × tries seconds.
    """

    def __init__(self, runner: CompletionRunner) -> None:
        self._runner = runner
        self._limit = runner.effective_timeout
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def __enter__(self) -> _Watchdog:
        notify, limit = self._runner.notify, self._limit
        if notify is not None and limit is not None:
            self._thread = threading.Thread(
                target=self._watch, args=(notify, limit), name="rolecheck-watchdog", daemon=True
            )
            self._thread.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=1.0)

    def _watch(self, notify: Callable[[str], None], limit: float) -> None:
        runner = self._runner
        told: set[int] = set()
        while not self._stop.wait(min(1.0, limit / 4)):
            now = time.monotonic()
            flight = runner.in_flight()
            late = [s for s, start in flight if now - start > limit and s.index not in told]
            if not late:
                continue
            told.update(spec.index for spec in late)
            waiting = ", ".join(f"#{spec.index + 1} ({spec.arm})" for spec, _ in flight)
            notify(
                f"rolecheck: {_where(late[0], client_base_url(runner.client))} has had no "
                f"answer for {limit:g} s (--rolecheck-timeout); {len(flight)} call"
                f"{'s' if len(flight) != 1 else ''} in flight: {waiting}. The SDK retries a "
                "timed-out call; Ctrl-C stops the run."
            )


def notify_stderr(text: str) -> None:
    """Default ``notify`` outside pytest."""
    print(text, file=sys.stderr, flush=True)


def _seconds(timeout: Any) -> float | None:
    if isinstance(timeout, int | float) and not isinstance(timeout, bool):
        return float(timeout)
    read = getattr(timeout, "read", None)  # an httpx Timeout: the wait for the answer
    return float(read) if isinstance(read, int | float) else None


# The abandon flag of the batch a worker thread belongs to (unset in other threads).
_WORKER = threading.local()


class _BatchAbandoned(Exception):
    """Raised instead of sending a request (or a retry) for a batch already given up."""


def _stop_sends_of_abandoned_batches(client: openai.OpenAI) -> None:
    """Make ``client`` refuse to send from a worker whose batch was abandoned.

    The SDK retries a failed call on its own (``max_retries``) and calls
    ``_prepare_request`` before every attempt; that is the one place to stop a
    retry from a thread we cannot interrupt. Other threads are unaffected.
    """
    prepare = client._prepare_request
    if getattr(prepare, "rolecheck_guard", False):
        return

    def guarded(request: Any) -> None:
        stop = getattr(_WORKER, "stop", None)
        if stop is not None and stop.is_set():
            raise _BatchAbandoned("the batch was interrupted; this call is not sent")
        prepare(request)

    guarded.rolecheck_guard = True  # type: ignore[attr-defined]
    client._prepare_request = guarded  # type: ignore[method-assign]


def _first_error(group: BaseExceptionGroup[BaseException]) -> BaseException:
    for exc in group.exceptions:
        if isinstance(exc, BaseExceptionGroup):
            return _first_error(exc)
        if not isinstance(exc, asyncio.CancelledError):
            return exc
    return group.exceptions[0]


class _LoopThread:
    """One event loop, in a daemon thread, that runs every batch of the process.

    An ``AsyncOpenAI`` client pools connections bound to the loop that opened
    them, and users hand us session-scoped clients: running each batch under a
    fresh ``asyncio.run`` would reuse those connections on a closed loop. One
    long-lived loop also serves callers that already run inside a loop
    (pytest-asyncio tests), where ``asyncio.run`` is refused.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._loop: asyncio.AbstractEventLoop | None = None

    def _ensure(self) -> asyncio.AbstractEventLoop:
        with self._lock:
            if self._loop is None or self._loop.is_closed():
                try:
                    loop = asyncio.new_event_loop()
                except Exception as exc:
                    # The loop's self-pipe is a local socket pair; network blockers
                    # such as pytest-socket refuse it unless unix sockets are allowed.
                    raise BackendError(
                        f"could not create an asyncio event loop ({type(exc).__name__}: "
                        f"{exc}). With pytest-socket, add --allow-unix-socket next to "
                        "--disable-socket: replays need no network, but asyncio needs a "
                        "local socket pair."
                    ) from exc
                thread = threading.Thread(
                    target=loop.run_forever, name="rolecheck-event-loop", daemon=True
                )
                thread.start()
                self._loop = loop
            return self._loop

    @property
    def started(self) -> bool:
        with self._lock:
            return self._loop is not None and not self._loop.is_closed()

    def run(self, coro: Coroutine[Any, Any, T]) -> T:
        future = asyncio.run_coroutine_threadsafe(coro, self._ensure())
        try:
            return future.result()
        except BaseException:
            future.cancel()  # e.g. Ctrl-C while waiting: stop the calls too
            raise


_LOOP = _LoopThread()


def _run_coroutine(coro: Coroutine[Any, Any, T]) -> T:
    return _LOOP.run(coro)


def close_client(client: AnyClient) -> None:
    """Close a client's connections; an async one's on the loop that opened them."""
    if isinstance(client, openai.AsyncOpenAI):
        if _LOOP.started:  # else no call was made: nothing to close, and no loop needed
            _run_coroutine(client.close())
    elif isinstance(client, openai.OpenAI):
        client.close()


def _where(spec: CallSpec, base_url: str) -> str:
    path = "/responses" if spec.api == "responses" else "/chat/completions"
    endpoint = f"{base_url.rstrip('/')}{path}" if base_url else "the API"
    return f"call #{spec.index + 1} ({spec.arm}) to {endpoint}"


def _root_cause(exc: BaseException) -> str:
    """``Type: message`` of the first exception in the chain that says something."""
    seen: set[int] = set()
    current: BaseException | None = exc.__cause__ or exc.__context__ or exc
    first = current
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        text = str(current).strip().rstrip(".")
        if text:
            return f"{type(current).__name__}: {text}"
        current = current.__cause__ or current.__context__
    return type(first).__name__ if first is not None else "no detail"


def _never_connected(exc: BaseException) -> bool:
    """Whether the chain says the connection was never made (vs broken after it was)."""
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        name = type(current).__name__
        if name in ("ConnectError", "ConnectTimeout", "ConnectionRefusedError", "gaierror"):
            return True
        current = current.__cause__ or current.__context__
    return False


def translate_error(
    exc: Exception,
    spec: CallSpec,
    base_url: str,
    *,
    timeout: float | None = None,
    tries: int = 1,
) -> Exception:
    """Turn an SDK error into one of ours: the call, the endpoint, what to do."""
    where = _where(spec, base_url)
    if isinstance(exc, json.JSONDecodeError):
        # The SDK lets a broken 2xx body through as a raw parse error.
        start = exc.doc[:120] + ("…" if len(exc.doc) > 120 else "")
        return BackendError(
            f"{where} answered with a body that is not valid JSON ({exc.msg}, line "
            f"{exc.lineno} column {exc.colno}); it begins {start!r}. The server is not an "
            "OpenAI-compatible chat-completions endpoint, or it broke off its answer: check "
            "--rolecheck-base-url / OPENAI_BASE_URL and read the server's log."
        )
    if isinstance(exc, openai.APIStatusError):
        status = exc.status_code
        detail = _error_detail(exc)
        if status == 401:
            hint = (
                "the API key was refused: check OPENAI_API_KEY (or the rolecheck_client fixture)."
            )
        elif status == 404:
            hint = (
                f"model {spec.request.get('model')!r} or the endpoint was not found: check "
                "--rolecheck-model / rolecheck_model and --rolecheck-base-url"
                + (
                    ", and that the server has the Responses API (else use api='chat')."
                    if spec.api == "responses"
                    else "."
                )
            )
        elif status == 429:
            hint = "rate limited: lower --rolecheck-concurrency, or retry later."
        elif "logprob" in detail.lower():
            from ..verdicts.wording.logprobs import rejected_hint

            hint = rejected_hint()  # logprobs=auto asks again without them; only true gets here
        elif status >= 500:
            hint = "the server failed; retry, or read the server's log."
        else:
            hint = "the request was rejected; check the variant's parameters."
        return BackendError(f"{where} failed with HTTP {status}: {detail}\n{hint}")
    if isinstance(exc, openai.APITimeoutError):
        limit = f"{timeout:g} s" if timeout is not None else "the client's timeout"
        longer = f"{2 * timeout:g}" if timeout is not None else "N"
        return BackendError(
            f"{where} timed out: no answer within {limit} "
            f"({tries} tr{'ies' if tries != 1 else 'y'}). If the server is slow but working, "
            f"allow more time per call with --rolecheck-timeout={longer} (or lower "
            "--rolecheck-concurrency); if it hangs, restart it or read its log."
        )
    if isinstance(exc, openai.APIConnectionError):
        cause = _root_cause(exc)
        if _never_connected(exc):
            return BackendError(
                f"could not connect for {where}: {cause}. Is the server running and the "
                "base URL right (--rolecheck-base-url / OPENAI_BASE_URL)? To record against "
                "the bundled local model, pass --rolecheck-local."
            )
        return BackendError(
            f"{where}: the server accepted the connection but dropped it before answering "
            f"({cause}). It is running; read its log (a crash, or a proxy or size limit "
            "in between), then run the test again."
        )
    return BackendError(f"{where} failed: {exc}")


def _error_detail(exc: openai.APIStatusError) -> str:
    body = exc.body
    if isinstance(body, Mapping):
        message = body.get("message") or body.get("error") or body
        if isinstance(message, Mapping):
            message = message.get("message", message)
        text = str(message)
    else:
        text = str(exc.message)
    return text if len(text) <= 500 else text[:500] + " …"
