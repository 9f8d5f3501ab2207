"""The default client (no ``rolecheck_client`` fixture): one per process and settings.

Building an ``AsyncOpenAI`` costs ~18 ms, nearly all of it the SSL context its
HTTP client creates even for an http:// replay: per test, that was a sixth of a
replayed test's time. So tests that need the same client share one, built on
first use and closed by :func:`close_default_clients` at the end of the run
(each xdist worker is its own process, with its own clients). Clients are never
shared across settings: the key holds everything the client is built from, so a
live test still retries and a replay never does, and ``--rolecheck-timeout``
applies per try through each request's ``timeout``, not through the client.

A replay client's transport answers the calls of a test whose cassette session
is serving them (:mod:`~pytest_rolecheck.recording.direct`) from that session,
without vcrpy; any other request goes on to the real transport.
"""

from __future__ import annotations

import os
import threading
from typing import Any

import httpx2
import openai

from ..errors import BackendError
from ..recording.direct import serving_now
from ..recording.format import CALL_INDEX_HEADER
from .client import REPLAY_API_KEY, AnyClient, close_client

_Key = tuple[str, str | None, int, float, bool]
_clients: dict[_Key, openai.AsyncOpenAI] = {}
_lock = threading.Lock()
# The connection limits the SDK gives its own HTTP client.
_LIMITS: Any = openai.DEFAULT_CONNECTION_LIMITS


def make_client(
    *,
    base_url: str | None,
    live: bool,
    api_key: str | None = None,
    max_retries: int = 2,
    timeout: float = 120.0,
) -> openai.AsyncOpenAI:
    """The default client from ``OPENAI_API_KEY`` / ``OPENAI_BASE_URL``, shared per settings.

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
    # Replays never fail transiently; retrying them would only hide a mismatch.
    retries = max_retries if live else 0
    # live is part of the key: a live client has no replay transport, so a replay that
    # reused one (same key, URL, retries 0) would send its calls to the network
    key = (api_key, base_url or os.environ.get("OPENAI_BASE_URL") or None, retries, timeout, live)
    with _lock:
        client = _clients.get(key)
        if client is None:
            # Only a replay client answers from cassettes: a live one never meets a session.
            http = None if live else openai.DefaultAsyncHttpxClient(transport=_ReplayTransport())
            client = _clients[key] = openai.AsyncOpenAI(
                api_key=key[0],
                base_url=key[1],
                max_retries=retries,
                timeout=timeout,
                http_client=http,
            )
        return client


def close_default_clients() -> None:
    """Close every default client of this process (the end of the run)."""
    with _lock:
        clients: list[AnyClient] = list(_clients.values())
        _clients.clear()
    for client in clients:
        close_client(client)


class _ReplayTransport(httpx2.AsyncBaseTransport):
    """Answers a call from the cassette session serving it, else sends it on.

    The response is built as vcrpy's httpx stub builds a replayed one, so the
    SDK sees the same thing on both paths.
    """

    def __init__(self) -> None:
        self._real = httpx2.AsyncHTTPTransport(limits=_LIMITS)

    async def handle_async_request(self, request: httpx2.Request) -> httpx2.Response:
        session = serving_now()
        index = request.headers.get(CALL_INDEX_HEADER)
        if session is None or index is None:
            return await self._real.handle_async_request(request)
        body = await request.aread()
        recorded = session.play(request.method, str(request.url), index, body)
        message: str = recorded["status"]["message"]
        return httpx2.Response(
            recorded["status"]["code"],
            headers=[
                (name, value) for name, values in recorded["headers"].items() for value in values
            ],
            stream=httpx2.ByteStream(recorded["body"]["string"]),
            extensions={"reason_phrase": message.encode("ascii")} if message else None,
        )

    async def aclose(self) -> None:
        await self._real.aclose()
