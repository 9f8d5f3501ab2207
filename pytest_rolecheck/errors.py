"""Exception hierarchy shared by every layer (pure: no third-party imports).

Every error a user can hit carries a message that says what happened and the
command or option that fixes it, in the spirit of pytest_httpx.
"""

from __future__ import annotations


class RolecheckError(Exception):
    """Base class of every error raised by pytest-rolecheck."""


class RolecheckAssertionError(AssertionError):
    """A behavioural assertion failed; the message is the full comparison report."""


class RolecheckUsageError(RolecheckError, ValueError):
    """An argument or option has a value that is not allowed."""


class NothingToCompareError(RolecheckError):
    """The calls hold nothing the comparison measures (no token, no tool call): a refusal.

    Not an :class:`AssertionError`: no verdict was reached, so neither
    ``assert_*_equivalent`` nor ``assert_*_differ`` may pass or fail on it.
    """


class ResponseFormatError(RolecheckError, ValueError):
    """A chat-completion response cannot be used (malformed, or missing a field)."""


class NoLogprobsError(ResponseFormatError):
    """The model or server returned no token logprobs for a call."""


class CassetteError(RolecheckError):
    """Base class of cassette problems (missing, stale, exhausted, corrupt)."""


class CassetteNotFoundError(CassetteError):
    """Replay was asked for but the test has no cassette."""


class CassetteMismatchError(CassetteError):
    """A request no longer matches what the cassette recorded (prompt or params changed)."""


class CassetteExhaustedError(CassetteError):
    """The test made more calls than the cassette recorded."""


class CassetteCorruptError(CassetteError):
    """The cassette file cannot be parsed."""


class CassetteUnusedError(CassetteError):
    """A replay made fewer calls than the cassette recorded (the rest went unused)."""


class BackendError(RolecheckError):
    """The completion backend failed (server error, unreachable, misconfigured)."""


class BackendNotInstalledError(BackendError):
    """The optional local backend (llama.cpp server + SmolLM2 model) is not installed."""


class RolecheckWarning(UserWarning):
    """Something made a result mean less than it seems (e.g. another model answered)."""
