"""Why a replayed call was refused: the messages, whichever path found the problem.

vcrpy's stubs and the direct replay (:mod:`.direct`) refuse the same requests;
both go through :class:`~pytest_rolecheck.recording.cassette.CassetteSession`,
which words every refusal with these functions, so the two paths cannot drift
apart in what they tell the user.
"""

from __future__ import annotations

import difflib
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from .diff import _changed_keys, body_diff
from .fix_command import endpoint_of
from .format import CALL_INDEX_HEADER
from .paths import _display


def not_found(path: Path, record: str, mode: str, directory: Path | None) -> str:
    """No cassette at ``path``; ``record`` is the command that records it."""
    if directory is not None and not directory.is_dir():
        # A typo in the directory must not read as "this one test has no cassette".
        parent = directory.parent
        existing = sorted(
            p.name
            for p in (parent.iterdir() if parent.is_dir() else ())
            if p.is_dir() and not p.name.startswith(".")
        )
        close = difflib.get_close_matches(directory.name, existing, n=1)
        listing = ", ".join(f"{name}/" for name in existing[:12]) or "none"
        hint = f"did you mean {close[0]!r}? " if close else ""
        return (
            f"the cassette directory {_display(directory)} does not exist: nothing was "
            f"recorded there yet, or its name is misspelt (directories in "
            f"{_display(parent)}: {listing}). {hint}Fix --rolecheck-cassette-dir / "
            f"rolecheck_cassette_dir (relative to the rootdir), or record into the new "
            f"directory with `{record}`"
        )
    return (
        f"no cassette at {_display(path)} — record it with `{record}` "
        f"(record mode {mode!r} only replays and never calls the API)"
    )


def corrupt(where: str, rewrite: str) -> str:
    return (
        f"corrupt cassette {where}. Re-record it with `{rewrite}` "
        "(or restore the file from version control)"
    )


def exhausted(path: Path, index: int, count: int, rewrite: str) -> str:
    """The cassette (``count`` calls) holds no call ``index``."""
    where = _display(path)
    if index >= count:
        problem = (
            f"the cassette {where} recorded {count} call{'s' if count != 1 else ''}, "
            f"the test requested call #{index + 1} ({CALL_INDEX_HEADER}: {index})"
        )
    else:
        problem = (
            f"the cassette {where} has no recording of call #{index + 1} "
            f"({CALL_INDEX_HEADER}: {index}); it holds {count} calls"
        )
    return (
        f"{problem} — the test now makes more or different calls (more trials, "
        f"variants or comparisons?). Re-record it: `{rewrite}`"
    )


def mismatch(nodeid: str, path: Path, index: int, recorded: Any, shown: Any, rewrite: str) -> str:
    """Call ``index``'s body ``shown`` differs from the ``recorded`` one."""
    changed = _changed_keys(recorded, shown)
    what = f" (changed: {', '.join(changed)})" if changed else ""
    return (
        f"call #{index + 1} of {nodeid} no longer matches its recording in "
        f"{_display(path)}{what}: the prompt or the parameters changed.\n"
        f"{body_diff(recorded, shown)}\n"
        f"If the change is intended, re-record: `{rewrite}`"
    )


def paths_differ(nodeid: str, index: int, then: str, now: str, point: str, rewrite: str) -> str:
    """Call ``index`` went to another method or path (``then``/``now``: "METHOD uri")."""
    return (
        f"call #{index + 1} of {nodeid} was recorded as {then} but this request "
        f"is {now}: the paths differ (method and path must match; the host and port "
        f"are ignored when replaying). Replay with a client whose base URL has the "
        f"recorded path (the rolecheck_client fixture, or `{point}`); if the endpoint "
        f"change is intended, re-record: `{rewrite}`"
    )


def sent_twice(nodeid: str, index: int) -> str:
    return (
        f"call #{index + 1} of {nodeid} ({CALL_INDEX_HEADER}: {index}) was sent twice; "
        "each call must carry its own index"
    )


def unused(
    nodeid: str, path: Path, calls_made: int, count: int, unused: list[int], rewrite: str
) -> str:
    """A replay of ``calls_made`` calls left the ``unused`` of ``count`` recordings unplayed."""
    return (
        f"{nodeid} made {calls_made} call{'s' if calls_made != 1 else ''} but its "
        f"cassette {_display(path)} recorded {count}: {len(unused)} recorded "
        f"call{'s' if len(unused) != 1 else ''} (#{unused[0] + 1} on) went unused, so the "
        "result came from a subset of the recording (fewer trials or comparisons than "
        f"recorded?). Re-record it to match the test: `{rewrite}`"
    )


def url_key(method: str, uri: str) -> tuple[str, str]:
    """What of a request's URL must match its recording: the method and the path."""
    return method.upper(), urlsplit(uri).path or "/"


def base_of(uri: str) -> str:
    """The base URL a recorded request went to (its URI without the API's path)."""
    base = endpoint_of(uri) or uri
    for suffix in ("/chat/completions", "/responses"):
        if base.endswith(suffix):
            return base[: -len(suffix)]
    return base
