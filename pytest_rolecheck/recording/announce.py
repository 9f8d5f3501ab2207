"""The lines announcing a run's planned live calls (a live run is slow and costs)."""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .format import Unreadable, read_cassette
from .mode import goes_live

if TYPE_CHECKING:
    from ..core.cost import PriceTable

# (model requested, request body, recorded usage) of one call of an old cassette.
Call = tuple[str, Mapping[str, Any], Mapping[str, Any] | None]


def planned_live_calls(
    mode: str, cassettes: Sequence[Path], prices: PriceTable | None = None, *, drift: bool = False
) -> list[str]:
    """Say how many tests will call the model live, how many calls and what they may cost.

    ``cassettes`` are the cassettes of the tests that use rolecheck. Calls are
    known for a test re-recording an existing cassette (as many as it holds, with
    the requests it sent); a new test's calls are only counted as it runs. The
    second line estimates the known calls' tokens and, with ``prices``, their cost.
    Empty: nothing goes live. A drift check (``drift``) runs every test live.
    """
    live = [path for path in cassettes if drift or goes_live(mode, path)]
    if not live:
        return []
    recorded = [calls for calls in map(recorded_calls, live) if calls is not None]
    known = [len(calls) for calls in recorded]
    tests = f"{len(live)} test{'s' if len(live) != 1 else ''}"
    if not known:
        calls = "calls counted as they run"
    elif len(known) == len(live):
        calls = f"{sum(known)} calls (as in their old cassettes)"
    else:
        calls = f"{sum(known)} calls known + those of {len(live) - len(known)} new"
    # Short: it must fit an 80-column terminal.
    what = "drift check, live" if drift else f"recording live (mode {mode})"
    lines = [f"rolecheck: {what}: {tests}, {calls}"]
    if known:
        lines.append(planned_estimate(recorded, prices, unknown_tests=len(live) - len(known)))
    return lines


def planned_estimate(
    recorded: Sequence[Sequence[Call]], prices: PriceTable | None, *, unknown_tests: int
) -> str:
    """The estimate line: ``planned: 1,240 calls, ~310k tokens, ~$0.42 (estimate: ...)``."""
    from ..core.cost import plan, priced
    from ..verdicts.wording.cost import planned_text

    planned = plan(call for calls in recorded for call in calls)
    cost = priced(prices, planned.by_model) if prices is not None else None
    return planned_text(
        calls=planned.calls,
        tokens=planned.tokens,
        cost=cost.usd if cost is not None and len(cost.no_price) < len(planned.by_model) else None,
        missing=cost.no_price if cost is not None else (),
        priced=prices is not None,
        measured=planned.measured_prompts,
        unknown_tests=unknown_tests,
    )


def recorded_calls(path: Path) -> list[Call] | None:
    """The calls of the cassette at ``path``; ``None``: none there, or unreadable.

    For planning only: a replay reads it through the session, which explains what
    is wrong with a bad file.
    """
    try:
        found, setup = read_cassette(path)
    except (OSError, Unreadable):
        return None
    calls: list[Call] = []
    for index in sorted(found):
        recording = found[index]
        request = recording.shown if isinstance(recording.shown, Mapping) else {}
        model = request.get("model") or setup.get("model") or "unknown model"
        calls.append((str(model), request, _usage(recording.response)))
    return calls


def _usage(response: Mapping[str, Any]) -> Mapping[str, Any] | None:
    try:
        usage = json.loads(response["body"]["string"]).get("usage")
    except (KeyError, TypeError, ValueError, AttributeError):
        return None
    return usage if isinstance(usage, Mapping) else None
