"""What changed between two recordings of the same calls, or two reports of the same comparisons.

The data behind ``rolecheck diff`` (pure): calls arrive parsed and report rows as plain
mappings; reading the files is the command's job. Calls pair by their index, as replay
matches them; comparisons by test id and title.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Final

from .metrics import divergence_position
from .parse import ParsedCall

# Call statuses. Only the first two leave the behaviour as it was.
SAME: Final = "same"
LOGPROBS: Final = "logprobs"  # same text and tool calls, other probabilities
TEXT: Final = "text"  # another answer (text, tool calls, or an error response)
REQUEST: Final = "request"  # the test sends another request at this index
ADDED: Final = "added"
REMOVED: Final = "removed"
# Comparison statuses besides SAME / ADDED / REMOVED.
NUMBERS: Final = "numbers"  # same verdict, other change, bound or p
VERDICT: Final = "verdict"

_BEHAVIOUR_KEPT: Final = frozenset({SAME, LOGPROBS, NUMBERS})
# The numbers of a report row a reviewer weighs, in the order they are shown.
REPORT_NUMBERS: Final = ("change", "change_upper", "p_value", "tv", "tv_upper", "n_a", "n_b")


@dataclass(frozen=True, slots=True)
class RecordedCall:
    """One call of a recording: what was sent, and what came back."""

    request: str | bytes  # the request body in the form replay matches on
    status: int  # the response's HTTP status
    body: bytes  # the response body as recorded
    call: ParsedCall | None  # None: not a chat completion (an error, a foreign body)


@dataclass(frozen=True, slots=True)
class CallChange:
    """How one call differs between the old and the new recording.

    ``position`` is the first token where the answers (``TEXT``) or their
    probabilities (``LOGPROBS``) part; ``old``/``new`` the token there, or the
    generated token's logprob for ``LOGPROBS``. ``None`` where it does not apply.
    """

    index: int
    status: str
    position: int | None = None
    old: str | float | None = None
    new: str | float | None = None
    old_text: str | None = None
    new_text: str | None = None
    offset: int = 0  # the first character where the two texts differ

    @property
    def behaviour_changed(self) -> bool:
        return self.status not in _BEHAVIOUR_KEPT

    def to_dict(self) -> dict[str, Any]:
        return {
            "call": self.index + 1,
            "status": self.status,
            "position": self.position,
            "old": self.old,
            "new": self.new,
            "old_text": self.old_text,
            "new_text": self.new_text,
            "offset": self.offset if self.status == TEXT else None,
        }


def _answer(call: RecordedCall) -> tuple[Any, ...]:
    """What a test sees of a call: the text and tool calls, or the error response."""
    if call.call is None:
        return (call.status, call.body)
    return (call.status, call.call.text, call.call.tool_calls, call.call.refusal)


def _text(call: RecordedCall) -> str:
    if call.call is not None:
        return call.call.text
    return f"HTTP {call.status}: " + call.body.decode("utf-8", "replace")


def compare_call(index: int, old: RecordedCall, new: RecordedCall) -> CallChange:
    """The change of one call recorded twice (same index)."""
    if old.request != new.request:
        return CallChange(index, REQUEST)
    a, b = old.call, new.call
    if _answer(old) != _answer(new) or (a is not None and b is not None and a.keys != b.keys):
        position, old_token, new_token = None, None, None
        if a is not None and b is not None:
            position = divergence_position(a, b)
            if position is None and len(a.positions) != len(b.positions):
                position = min(len(a.positions), len(b.positions))  # one answer ends there
            if position is not None:
                old_token = a.positions[position].token if position < len(a.positions) else ""
                new_token = b.positions[position].token if position < len(b.positions) else ""
        texts = (_text(old), _text(new))
        offset = next(
            (i for i, (x, y) in enumerate(zip(*texts, strict=False)) if x != y),
            min(map(len, texts)),
        )
        return CallChange(index, TEXT, position, old_token, new_token, *texts, offset)
    if a is not None and b is not None:
        for i, (pa, pb) in enumerate(zip(a.positions, b.positions, strict=True)):
            if pa.logprob != pb.logprob or pa.alternatives != pb.alternatives:
                return CallChange(index, LOGPROBS, i, pa.logprob, pb.logprob, a.text, b.text)
    return CallChange(index, SAME)


def compare_recordings(
    old: Mapping[int, RecordedCall], new: Mapping[int, RecordedCall]
) -> tuple[CallChange, ...]:
    """Every call of either recording, by index: added, removed, or how it changed."""
    changes = []
    for index in sorted(set(old) | set(new)):
        if index not in new:
            changes.append(CallChange(index, REMOVED, old_text=_text(old[index])))
        elif index not in old:
            changes.append(CallChange(index, ADDED, new_text=_text(new[index])))
        else:
            changes.append(compare_call(index, old[index], new[index]))
    return tuple(changes)


def _arm_key(request: str | bytes) -> str | bytes:
    """A request without its ``seed``: sampled calls of one arm each carry their own."""
    if isinstance(request, bytes):
        return request
    try:
        tree = json.loads(request)
    except ValueError:
        return request
    if isinstance(tree, dict):
        tree.pop("seed", None)
    return json.dumps(tree, sort_keys=True)


def request_arms(
    old: Mapping[int, RecordedCall], new: Mapping[int, RecordedCall]
) -> list[tuple[tuple[int, ...], tuple[int, ...]]]:
    """The calls of each request both recordings sent: (old indices, new indices) per request.

    A request is one arm of a test (or one case of a prompt set's arm); seeds aside,
    its calls are draws of the same behaviour, in order of first appearance in ``new``.
    """
    arms: dict[str | bytes, tuple[list[int], list[int]]] = {}
    for side, calls in ((1, new), (0, old)):
        for index in sorted(calls):
            key = _arm_key(calls[index].request)
            if side == 1 or key in arms:
                arms.setdefault(key, ([], []))[side].append(index)
    return [(tuple(a), tuple(b)) for a, b in arms.values() if a and b]


@dataclass(frozen=True, slots=True)
class ComparisonChange:
    """One comparison of two reports, matched by test id and title."""

    nodeid: str | None
    title: str
    old: Mapping[str, Any] | None
    new: Mapping[str, Any] | None

    @property
    def status(self) -> str:
        if self.old is None:
            return ADDED
        if self.new is None:
            return REMOVED
        if self.old.get("verdict") != self.new.get("verdict"):
            return VERDICT
        if any(self.old.get(k) != self.new.get(k) for k in REPORT_NUMBERS):
            return NUMBERS
        return SAME

    @property
    def behaviour_changed(self) -> bool:
        return self.status not in _BEHAVIOUR_KEPT

    def to_dict(self) -> dict[str, Any]:
        def side(row: Mapping[str, Any] | None) -> dict[str, Any] | None:
            if row is None:
                return None
            return {k: row.get(k) for k in ("verdict", "tolerance", *REPORT_NUMBERS)}

        return {
            "nodeid": self.nodeid,
            "title": self.title,
            "status": self.status,
            "old": side(self.old),
            "new": side(self.new),
        }


def _keyed(rows: Sequence[Mapping[str, Any]]) -> dict[tuple[Any, str, int], Mapping[str, Any]]:
    """Rows by (test id, title, occurrence): a test may compare the same variants twice."""
    keyed: dict[tuple[Any, str, int], Mapping[str, Any]] = {}
    for row in rows:
        nodeid, title = row.get("nodeid"), str(row.get("title", ""))
        n = 1
        while (nodeid, title, n) in keyed:
            n += 1
        keyed[(nodeid, title, n)] = row
    return keyed


def compare_reports(
    old: Sequence[Mapping[str, Any]], new: Sequence[Mapping[str, Any]]
) -> tuple[ComparisonChange, ...]:
    """Every comparison of either report, in the new report's order (removed ones last)."""
    before, after = _keyed(old), _keyed(new)
    keys = list(after) + [k for k in before if k not in after]
    return tuple(ComparisonChange(k[0], k[1], before.get(k), after.get(k)) for k in keys)


@dataclass(frozen=True, slots=True)
class RecordingDiff:
    """One cassette compared: its name (path relative to the compared directory) and calls.

    ``only_in`` is ``"old"`` or ``"new"`` for a cassette on one side only (every call
    then removed or added), ``None`` when both sides have it. ``identical``: the two
    files are the same bytes, so no call was read.
    """

    name: str
    changes: tuple[CallChange, ...]
    only_in: str | None = None
    identical: bool = False

    def count(self, *statuses: str) -> int:
        return sum(c.status in statuses for c in self.changes)

    @property
    def behaviour_changed(self) -> bool:
        return self.only_in is not None or any(c.behaviour_changed for c in self.changes)

    def to_dict(self) -> dict[str, Any]:
        return {
            "cassette": self.name,
            "only_in": self.only_in,
            "identical": self.identical,
            "calls": None if self.identical else len(self.changes),
            "changed": [c.to_dict() for c in self.changes if c.status != SAME],
        }
