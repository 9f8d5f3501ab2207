"""Old vs new calls of each request of a re-recorded cassette, by the drift check's rule.

A cassette records requests, not the test's comparison (which requests are its arms,
the metric and the tolerance live in the test), so ``rolecheck diff`` cannot decide the
test's verdict again from cassettes. It can ask of every request what a drift check asks
of every arm, with the old calls as the recording and the new ones as the live calls:
did this request's behaviour move beyond the tolerance? The comparison is the usual
:func:`~pytest_rolecheck.verdicts.compare.compare` at its defaults, and the statuses come
from :func:`~pytest_rolecheck.core.drift.decide_drift` (Holm over every request compared).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from ..core.changes import RecordedCall, request_arms
from ..core.drift import DriftDecision, decide_drift
from ..core.limits import MIN_CALLS_PER_ARM
from .drift import arm_drift, as_arm


def request_entries(
    cassette: str, old: Mapping[int, RecordedCall], new: Mapping[int, RecordedCall]
) -> list[dict[str, Any]]:
    """One drift entry per request both recordings sent with enough calls that carry logprobs.

    Requests of fewer than 4 calls a side, and tool calls or errors (no logprobs), are left
    out: the calls themselves are still compared one by one.
    """
    from .compare import compare

    entries = []
    for old_calls, new_calls in request_arms(old, new):
        a = [old[i].call for i in old_calls]
        b = [new[i].call for i in new_calls]
        usable = [c for c in (*a, *b) if c is not None and c.has_logprobs and c.positions]
        if min(len(a), len(b)) < MIN_CALLS_PER_ARM or len(usable) < len(a) + len(b):
            continue
        result = compare(usable[: len(a)], usable[len(a) :], labels=("old", "new"))
        label = "calls " + ", ".join(f"#{i + 1}" for i in new_calls)
        entry = arm_drift(result, arm=f"{cassette} [{label}]", test=cassette, label=label)
        entry["calls"] = [i + 1 for i in new_calls]
        entries.append(entry)
    return entries


def decide_requests(entries: list[dict[str, Any]]) -> DriftDecision:
    """The drift check's decision over every request compared (its statuses, in order)."""
    return decide_drift([as_arm(e) for e in entries])
