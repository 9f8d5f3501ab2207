"""The words of ``rolecheck diff``: what changed between two recordings or two reports."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, Final

from ...core.changes import (
    ADDED,
    LOGPROBS,
    NUMBERS,
    REMOVED,
    REQUEST,
    SAME,
    TEXT,
    VERDICT,
    CallChange,
    ComparisonChange,
    RecordingDiff,
)
from ...core.divergence import display_token
from ...core.drift import DRIFTED
from ..numbers import fmt_change, fmt_p, fmt_value
from .details import shorten

# A re-record of a nondeterministic suite may change every call: show a few of each cassette.
MAX_CALLS_SHOWN: Final = 8
MAX_WAYS_SHOWN: Final = 5
_TEXT_WIDTH: Final = 90
_CONTEXT: Final = 30


def _s(n: int, word: str) -> str:
    return f"{n} {word}{'' if n == 1 else 's'}"


def _token(token: str | float | None) -> str:
    return f'"{display_token(str(token))}"'


def _calls(changes: Sequence[CallChange]) -> str:
    numbers = [f"#{c.index + 1}" for c in changes]
    if len(numbers) > MAX_CALLS_SHOWN:
        numbers = [*numbers[:MAX_CALLS_SHOWN], f"… ({len(numbers) - MAX_CALLS_SHOWN} more)"]
    return ", ".join(numbers)


def _text_change(calls: Sequence[CallChange]) -> list[str]:
    """Calls whose text changed the same way: where, and both texts once."""
    change = calls[0]
    if change.position is None:
        where = "its text or tool calls changed"
    elif change.new == "":
        where = f"the new answer ends at token {change.position}"
    elif change.old == "":
        where = f"the old answer ended at token {change.position}"
    else:
        where = f"from token {change.position}: {_token(change.old)} → {_token(change.new)}"
    # Both texts from a little before where they part, so the difference is in view.
    start = max(0, change.offset - _CONTEXT)
    lead = "…" if start else ""
    return [
        f"  {'call' if len(calls) == 1 else 'calls'} {_calls(calls)}: text changed {where}",
        f"    old: {shorten(lead + (change.old_text or '')[start:], _TEXT_WIDTH)}",
        f"    new: {shorten(lead + (change.new_text or '')[start:], _TEXT_WIDTH)}",
    ]


def _request_lines(requests: Sequence[Mapping[str, Any]], family: int) -> list[str]:
    """Each request's old vs new calls, as a drift check decides an arm."""
    if not requests:
        return []
    first = requests[0]
    lines = [
        f"  each request, old vs new calls ({first['metric']}, the drift check's rule, Holm "
        f"over {_s(family, 'request')}):"
    ]
    for e in requests:
        numbers = [f"#{n}" for n in e["calls"]]
        shown = ", ".join(numbers[:3]) + (", …" if len(numbers) > 3 else "")
        change = fmt_change(e["change"], e["change_upper"], exact=e["deterministic"])
        # Deterministic sides need no test: the change is exact, its p a convention.
        p = "" if e["deterministic"] else f", p {fmt_p(e['p_value'])}"
        lines.append(
            f"    calls {shown} ({e['n_recorded']} old, {e['n_live']} new): {e['status']}: "
            f"change {change}, tolerance {fmt_value(e['tolerance'])}{p}"
        )
    return lines


def recording_lines(
    diff: RecordingDiff, requests: Sequence[Mapping[str, Any]] = (), family: int = 0
) -> list[str]:
    """One cassette: a headline, the calls whose behaviour changed, each request's change."""
    n = len(diff.changes)
    if diff.identical:
        return [f"{diff.name}: identical files"]
    if diff.only_in == "new":
        return [f"{diff.name}: new cassette ({_s(n, 'call')})"]
    if diff.only_in == "old":
        return [f"{diff.name}: removed ({_s(n, 'call')} no longer recorded)"]
    changed = [c for c in diff.changes if c.status != SAME]
    if not changed:
        return [f"{diff.name}: same ({_s(n, 'call')})"]
    counts = [
        f"{what} {diff.count(status)}"
        for status, what in (
            (TEXT, "texts"),
            (LOGPROBS, "probabilities only"),
            (REQUEST, "requests"),
            (ADDED, "added"),
            (REMOVED, "removed"),
        )
        if diff.count(status)
    ]
    lines = [f"{diff.name}: {len(changed)} of {_s(n, 'call')} changed ({', '.join(counts)})"]
    # A re-record often changes many calls the same way: one entry per way.
    ways: dict[tuple[object, ...], list[CallChange]] = {}
    for c in changed:
        if c.status == TEXT:
            ways.setdefault((c.position, c.old, c.new, c.old_text, c.new_text), []).append(c)
    for calls in list(ways.values())[:MAX_WAYS_SHOWN]:
        lines += _text_change(calls)
    if len(ways) > MAX_WAYS_SHOWN:
        rest = sum(len(calls) for calls in list(ways.values())[MAX_WAYS_SHOWN:])
        lines.append(f"  … {_s(rest, 'more call')} with another text")
    for status, what in (
        (REQUEST, "another request is sent (the test changed)"),
        (ADDED, "new calls"),
        (REMOVED, "calls no longer made"),
    ):
        of_status = [c for c in changed if c.status == status]
        if of_status:
            lines.append(f"  {what}: {_calls(of_status)}")
    moved = [c for c in changed if c.status == LOGPROBS]
    if moved:
        first = min(moved, key=lambda c: c.position or 0)
        lines.append(
            f"  same text, other probabilities: {_calls(moved)} (earliest at token "
            f"{first.position}: logprob {fmt_value(first.old, 4)} → {fmt_value(first.new, 4)})"
        )
    return lines + _request_lines(requests, family)


def _untouched(diff: RecordingDiff) -> bool:
    return diff.only_in is None and all(c.status == SAME for c in diff.changes)


def recordings_lines(
    diffs: Sequence[RecordingDiff], requests: Sequence[Mapping[str, Any]] = ()
) -> list[str]:
    """Every cassette that changed (a lone cassette also when it did not), then the verdict.

    ``requests`` are the drift entries of every request compared, with their status.
    """
    shown = diffs if len(diffs) == 1 else [d for d in diffs if not _untouched(d)]
    lines = [
        line
        for diff in shown
        for line in recording_lines(
            diff, [e for e in requests if e["test"] == diff.name], len(requests)
        )
    ]
    if shown and len(shown) < len(diffs):
        lines.append(f"{_s(len(diffs) - len(shown), 'more cassette')} unchanged")
    return [*lines, recordings_summary(diffs, requests)]


def recordings_summary(
    diffs: Sequence[RecordingDiff], requests: Sequence[Mapping[str, Any]] = ()
) -> str:
    """The last line: whether any call behaves differently, and any request drifted."""
    drifted = sum(e["status"] == DRIFTED for e in requests)
    moved = f"; {drifted} of {_s(len(requests), 'request')} drifted" if requests else ""
    return _calls_summary(diffs, drifted) + moved


def _calls_summary(diffs: Sequence[RecordingDiff], drifted: int) -> str:
    changed = [d for d in diffs if d.behaviour_changed]
    if not changed and drifted:
        return f"behaviour changed in probabilities: {_s(len(diffs), 'cassette')} compared"
    if not changed:
        moved = sum(d.count(LOGPROBS) for d in diffs)
        extra = f" ({_s(moved, 'call')} with other probabilities only)" if moved else ""
        return f"no change in behaviour: {_s(len(diffs), 'cassette')} compared{extra}"
    texts = sum(d.count(TEXT) for d in diffs)
    return (
        f"behaviour changed in {len(changed)} of {_s(len(diffs), 'cassette')}: "
        f"{_s(texts, 'call')} with another text"
        + "".join(
            f", {_s(k, 'call')} {what}"
            for k, what in (
                (sum(d.count(REQUEST) for d in diffs), "with another request"),
                (sum(d.count(ADDED) for d in diffs), "added"),
                (sum(d.count(REMOVED) for d in diffs), "removed"),
            )
            if k
        )
    )


def _numbers(row: Mapping[str, Any]) -> str:
    change = fmt_change(
        row.get("change"), row.get("change_upper"), exact=bool(row.get("deterministic"))
    )
    if row.get("kind") == "tool-calls":
        change = fmt_change(row.get("tv"), row.get("tv_upper"))
    return (
        f"change {change}, tolerance {fmt_value(row.get('tolerance'))}, "
        f"p {fmt_p(row.get('p_value'))}, {row.get('n_a')}+{row.get('n_b')} calls"
    )


def comparison_lines(change: ComparisonChange) -> list[str]:
    """One comparison of two reports: its verdicts and numbers, before and after."""
    name = f"{change.nodeid} [{change.title}]" if change.nodeid else change.title
    old, new = change.old, change.new
    if new is None:
        assert old is not None
        return [f"{name}: removed (was {old.get('verdict')}; {_numbers(old)})"]
    if old is None:
        return [f"{name}: new ({new.get('verdict')}; {_numbers(new)})"]
    status = change.status
    if status == SAME:
        return [f"{name}: same ({new.get('verdict')}; {_numbers(new)})"]
    head = (
        f"verdict {old.get('verdict')} → {new.get('verdict')}"
        if status == VERDICT
        else f"same verdict ({new.get('verdict')}), other numbers"
    )
    return [
        f"{name}: {head}",
        f"  old: {_numbers(old)}",
        f"  new: {_numbers(new)}",
    ]


def comparisons_lines(changes: Sequence[ComparisonChange]) -> list[str]:
    """Every comparison that changed (a lone one also when it did not), then the verdict."""
    shown = changes if len(changes) == 1 else [c for c in changes if c.status != SAME]
    lines = [line for change in shown for line in comparison_lines(change)]
    if shown and len(shown) < len(changes):
        lines.append(f"{_s(len(changes) - len(shown), 'more comparison')} unchanged")
    return [*lines, comparisons_summary(changes)]


def comparisons_summary(changes: Sequence[ComparisonChange]) -> str:
    """The last line of a report diff."""
    n = _s(len(changes), "comparison")
    flips = sum(c.status == VERDICT for c in changes)
    moved = sum(c.status == NUMBERS for c in changes)
    added = sum(c.status == ADDED for c in changes)
    removed = sum(c.status == REMOVED for c in changes)
    if not flips and not added and not removed:
        extra = f" ({moved} with other numbers)" if moved else ""
        return f"no change in behaviour: {n}, every verdict the same{extra}"
    parts = [f"{flips} changed verdict"]
    parts += [f"{k} {what}" for k, what in ((added, "new"), (removed, "removed")) if k]
    return f"behaviour changed: {n}, {', '.join(parts)}"


def header(old: str, new: str) -> list[str]:
    """The first lines: what is compared with what."""
    return [f"old: {old}", f"new: {new}", ""]


# --------------------------------------------------------------------------- errors


def no_such_path(path: object) -> str:
    return (
        f"no file or directory at {path}; pass two cassettes, two directories of cassettes or "
        "two JSON reports."
    )


def mixed_kinds(old: object, old_kind: str, new: object, new_kind: str) -> str:
    return (
        f"{old} is {old_kind} but {new} is {new_kind}; compare like with like: two cassettes "
        "(or directories of them), or two JSON reports (pytest --rolecheck-report=PATH.json)."
    )


def neither(path: object) -> str:
    return (
        f"{path} is neither a rolecheck cassette nor a JSON report (written by pytest "
        "--rolecheck-report=PATH.json)."
    )


def unreadable(reason: object) -> str:
    return (
        f"{reason}; restore the committed file (git checkout -- FILE) or record it again "
        "(pytest --rolecheck-record-mode=rewrite)."
    )


def no_cassettes(path: object) -> str:
    return f"{path} holds no cassettes (*.json); pass the cassette directory, e.g. cassettes/."


def not_in_git(path: object, rev: str, reason: str) -> str:
    return (
        f"cannot compare {path} with its version in git {rev}: {reason}; run it inside a git "
        "checkout, or name both sides: rolecheck diff OLD NEW."
    )


def no_revision(path: object, rev: str) -> str:
    return (
        f"git knows no commit {rev!r} where {path} is (a new repository, or a branch not "
        "fetched: git fetch origin); pass an existing revision with --against REV."
    )


def new_in_worktree(path: object, rev: str) -> str:
    return (
        f"{path} is not in git {rev} (a new file): nothing to compare it with; name the old "
        f"version yourself: rolecheck diff OLD {path}"
    )


def against_two_paths(rev: str) -> str:
    return (
        f"--against {rev} picks the old side of one path from git; with two paths, drop it "
        "(or drop NEW to compare with git)."
    )


def cannot_write(path: object, exc: OSError) -> str:
    return f"cannot write the JSON to {path} ({exc.strerror or exc}); pass a writable path."
