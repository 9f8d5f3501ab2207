"""Direct replay: which cassette answers a call, without vcrpy's patching.

A test whose calls all replay and that uses the default client (built by the
plugin, with a transport that asks :func:`serving_now`) needs no vcrpy: its
session answers each request itself (``CassetteSession.play``: the same
matching and the same errors). vcrpy's ``use_cassette`` patches every httpx
transport class and matches each request against every recording with generic
matchers, which cost more than the SDK's own work for a call.

The session is found through a context variable, set around a batch of calls
(``CassetteSession.serving``): the shared default client serves whichever test
is running, and ``asyncio`` hands the variable on to the tasks of the batch
(``run_coroutine_threadsafe`` runs them in a copy of the caller's context).
"""

from __future__ import annotations

import contextvars
from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from .cassette import CassetteSession

# Internal switch (not an option): False sends every replay through vcrpy, so that
# tests can compare the two paths.
ENABLED = True

_SERVING: contextvars.ContextVar[CassetteSession | None] = contextvars.ContextVar(
    "rolecheck_serving", default=None
)


@contextmanager
def serving(session: CassetteSession) -> Iterator[None]:
    """While inside, :func:`serving_now` is ``session`` (in this context and its tasks)."""
    token = _SERVING.set(session)
    try:
        yield
    finally:
        _SERVING.reset(token)


def serving_now() -> CassetteSession | None:
    """The session answering this context's calls directly, if any."""
    return _SERVING.get()
