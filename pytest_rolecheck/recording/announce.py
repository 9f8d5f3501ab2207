"""The line announcing a run's planned live calls (a live run is slow and costs)."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from .format import interaction_count
from .mode import goes_live


def planned_live_calls(mode: str, cassettes: Sequence[Path]) -> str | None:
    """Say how many tests will call the model live, and how many calls when known.

    ``cassettes`` are the cassettes of the tests that use rolecheck. Calls are
    known for a test re-recording an existing cassette (as many as it holds); a
    new test's calls are only counted as it runs. ``None``: nothing goes live.
    """
    live = [path for path in cassettes if goes_live(mode, path)]
    if not live:
        return None
    known = [count for count in map(interaction_count, live) if count is not None]
    tests = f"{len(live)} test{'s' if len(live) != 1 else ''}"
    if not known:
        calls = "calls counted as they run"
    elif len(known) == len(live):
        calls = f"{sum(known)} calls (as in their old cassettes)"
    else:
        calls = f"{sum(known)} calls known + those of {len(live) - len(known)} new"
    # Short: it must fit an 80-column terminal.
    return f"rolecheck: recording live (mode {mode}): {tests}, {calls}"
