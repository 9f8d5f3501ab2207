"""Record modes and the ONE rule for whether a test's calls go to the network."""

from __future__ import annotations

import enum
from pathlib import Path


class RecordMode(enum.StrEnum):
    """When the calls of a test go to the network.

    ``none``
        Replay only; a missing cassette fails, nothing ever goes live (the CI default).
    ``once``
        Replay if the test's cassette exists, otherwise call live and record it.
    ``all``, ``rewrite``
        Every call goes live; on success the cassette is replaced as a whole (the old
        file is never read, so nothing stale survives). If the test fails, the old
        cassette stays.
    """

    NONE = "none"
    ONCE = "once"
    ALL = "all"
    REWRITE = "rewrite"


def goes_live(mode: RecordMode | str, cassette: Path | None) -> bool:
    """Whether the calls of a test with this ``cassette`` (``None``: none) go to the network.

    Decided once per test, before any call: a cassette the test writes must not flip it.
    """
    if cassette is None:
        return True  # outside pytest, and `rolecheck compare` without --cassette
    mode = RecordMode(mode)
    return mode in (RecordMode.ALL, RecordMode.REWRITE) or (
        mode is RecordMode.ONCE and not cassette.exists()
    )
