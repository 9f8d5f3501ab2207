"""The one module that talks to the network, through the official ``openai`` SDK.

:class:`CompletionRunner` sends a batch of chat-completion requests with bounded
concurrency — ``AsyncOpenAI`` under an ``asyncio`` semaphore, or a sync
``OpenAI`` client in a thread pool — stamping each request with its call index
(``x-rolecheck-call``) so a cassette replays every call to the call it was
recorded from, whatever order the concurrent calls finished in. SDK errors are
translated into :mod:`pytest_rolecheck._errors` with a message that says what
to do next.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import threading
from collections.abc import Callable, Coroutine, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, TypeVar

import openai

from ._cassette import CALL_INDEX_HEADER
from ._client_progress import Progress, Usage
from ._errors import BackendError, RolecheckUsageError

if TYPE_CHECKING:
    from ._coordinator import CoordinatorClient

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

    def create_kwargs(self) -> dict[str, Any]:
        """Keyword arguments for ``chat.completions.create``, call index header added."""
        kwargs = dict(self.request)
        headers = dict(kwargs.get("extra_headers") or {})
        headers[CALL_INDEX_HEADER] = str(self.index)
        kwargs["extra_headers"] = headers
        return kwargs


def make_client(
    *,
    base_url: str | None,
    live: bool,
    api_key: str | None = None,
    max_retries: int = 2,
    timeout: float = 120.0,
) -> openai.AsyncOpenAI:
    """Build the default client from ``OPENAI_API_KEY`` / ``OPENAI_BASE_URL``.

    When nothing will go live (every call replays from a cassette) no key is
    needed, so a placeholder is used; a real key never reaches a cassette.
    ``api_key`` overrides the environment (the local backend needs none).
    """
    api_key = api_key or os.environ.get("OPENAI_API_KEY")
    if not api_key:
        if live:
            raise BackendError(
                "OPENAI_API_KEY is not set, and this test needs live calls (no cassette to "
                "replay, or a re-recording mode). Set OPENAI_API_KEY (and OPENAI_BASE_URL for "
                "another OpenAI-compatible server), override the `rolecheck_client` fixture, or "
                "record against the bundled local model with --rolecheck-local."
            )
        api_key = REPLAY_API_KEY
    return openai.AsyncOpenAI(
        api_key=api_key,
        base_url=base_url or os.environ.get("OPENAI_BASE_URL") or None,
        # Replays never fail transiently; retrying them would only hide a mismatch.
        max_retries=max_retries if live else 0,
        timeout=timeout,
    )


def client_secrets(client: Any) -> list[str]:
    """Values that must never be written to disk (the client's API key)."""
    key = getattr(client, "api_key", None)
    placeholders = (REPLAY_API_KEY, LOCAL_API_KEY)
    return [key] if isinstance(key, str) and key and key not in placeholders else []


def client_base_url(client: Any) -> str:
    return str(getattr(client, "base_url", "") or "")


class CompletionRunner:
    """Run batches of chat completions with bounded concurrency.

    Parameters
    ----------
    client
        An ``openai.AsyncOpenAI`` (calls run on an event loop) or ``openai.OpenAI``
        (calls run in a thread pool). Azure and other subclasses work alike.
    concurrency
        Maximum number of requests in flight.
    before_call
        Called with each :class:`CallSpec` before anything is sent (the cassette
        uses it to fail fast, with a clear message, on a stale or missing entry).
    explain
        Turns a failure raised from inside the transport (e.g. the cassette
        refusing an unmatched request, which openai 3.x lets through unwrapped)
        into a clear error, or returns ``None`` to leave it to the SDK mapping.
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
        slots: CoordinatorClient | None = None,
    ) -> None:
        if concurrency < 1:
            raise RolecheckUsageError(f"concurrency must be ≥ 1, got {concurrency}.")
        self.client = client
        self.concurrency = concurrency
        self.before_call = before_call
        self.explain = explain
        self.progress = progress or Progress()
        self.slots = slots
        self._lock = threading.Lock()  # the thread pool records results concurrently

    @property
    def usage(self) -> Usage:
        return self.progress.usage

    def close(self) -> None:
        """Close the client's connections (only call for a client this code created)."""
        client = self.client
        if isinstance(client, openai.AsyncOpenAI):
            if self.progress.total == 0:
                return  # no call was made: nothing to close, and no loop needed
            _run_coroutine(client.close())
        elif isinstance(client, openai.OpenAI):
            client.close()

    def run(self, specs: Sequence[CallSpec]) -> list[Any]:
        """Send every request and return the responses in the order of ``specs``."""
        if self.before_call is not None:
            # Check the whole batch first: a stale cassette fails before any call.
            for spec in specs:
                self.before_call(spec)
        self.progress.total += len(specs)
        if isinstance(self.client, openai.AsyncOpenAI):
            return _run_coroutine(self._run_async(specs))
        if isinstance(self.client, openai.OpenAI):
            return self._run_threads(specs)
        raise RolecheckUsageError(
            f"the rolecheck_client fixture returned {type(self.client).__name__}; expected an "
            "openai.AsyncOpenAI or openai.OpenAI instance (or None for the default client)."
        )

    def _translate(self, exc: Exception, spec: CallSpec) -> Exception:
        if self.explain is not None:
            explained = self.explain(exc)
            if explained is not None:
                return explained
        if isinstance(exc, openai.OpenAIError):
            return translate_error(exc, spec, client_base_url(self.client))
        return exc

    def _record(self, response: Any) -> Any:
        with self._lock:
            self.progress.done += 1
            self.progress.usage.add(response)
        return response

    async def _run_async(self, specs: Sequence[CallSpec]) -> list[Any]:
        assert isinstance(self.client, openai.AsyncOpenAI)
        client = self.client
        semaphore = asyncio.Semaphore(self.concurrency)
        results: list[Any] = [None] * len(specs)

        slots = self.slots

        async def one(position: int, spec: CallSpec) -> None:
            async with semaphore, slots.slot_async() if slots else contextlib.nullcontext():
                try:
                    response = await client.chat.completions.create(**spec.create_kwargs())
                except Exception as exc:
                    raise self._translate(exc, spec) from exc
            results[position] = self._record(response)

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

        slots = self.slots

        def one(spec: CallSpec) -> Any:
            try:
                with slots.slot() if slots else contextlib.nullcontext():
                    response = client.chat.completions.create(**spec.create_kwargs())
            except Exception as exc:
                raise self._translate(exc, spec) from exc
            return self._record(response)

        pool = ThreadPoolExecutor(max_workers=self.concurrency)
        try:
            futures = [pool.submit(one, spec) for spec in specs]
            results = [future.result() for future in futures]
        except BaseException:
            # Do not wait for calls in flight (a Ctrl-C must not hang on a slow API).
            pool.shutdown(wait=False, cancel_futures=True)
            raise
        pool.shutdown()
        return results


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


def translate_error(exc: openai.OpenAIError, spec: CallSpec, base_url: str) -> Exception:
    """Turn an SDK error into one of ours, saying what happened and what to do."""
    where = f"call #{spec.index + 1} ({spec.arm}) to {base_url or 'the API'}"
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
                "--rolecheck-model / rolecheck_model and --rolecheck-base-url."
            )
        elif status == 429:
            hint = "rate limited: lower --rolecheck-concurrency, or retry later."
        elif "logprob" in detail.lower():
            hint = (
                "this model or server does not support logprobs; rolecheck needs "
                "logprobs=True with top_logprobs=k (set --rolecheck-top-logprobs), or a model that "
                "returns them."
            )
        elif status >= 500:
            hint = "the server failed; retry, or read the server's log."
        else:
            hint = "the request was rejected; check the variant's parameters."
        return BackendError(f"{where} failed with HTTP {status}: {detail}\n{hint}")
    if isinstance(exc, openai.APITimeoutError):
        return BackendError(
            f"{where} timed out. A slow server or model: lower --rolecheck-concurrency, or "
            "give the client a longer timeout in the rolecheck_client fixture."
        )
    if isinstance(exc, openai.APIConnectionError):
        cause = exc.__cause__ or exc.__context__
        return BackendError(
            f"could not connect for {where}: {cause or exc}. Is the server running and the "
            "base URL right (--rolecheck-base-url / OPENAI_BASE_URL)? To record against the "
            "bundled local model, pass --rolecheck-local."
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
