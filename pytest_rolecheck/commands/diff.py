"""``rolecheck diff``: what changed between two recordings, or two JSON reports.

A thin adapter: cassettes are read by the recording package's reader, responses
parsed by the core parser, compared by :mod:`pytest_rolecheck.core.changes` and put
into words by :mod:`pytest_rolecheck.verdicts.wording.diff`. With one path, the
other side is that path's version in git ``HEAD``.
"""

from __future__ import annotations

import argparse
import json
import re
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final

from ..cli import ExitCode, add_command, error
from ..errors import RolecheckUsageError
from ..settings import Use

if TYPE_CHECKING:
    from ..core.changes import RecordedCall, RecordingDiff

DIFF_FORMAT_VERSION: Final = 1
_CASSETTE, _REPORT, _DIRECTORY = "a cassette", "a JSON report", "a directory"
# Both headers sit in a file's first lines; a file without them is read in full to tell.
_PEEK: Final = 4096

_EXAMPLES = """\
examples:
  rolecheck diff cassettes/                      # the working tree vs git HEAD
  rolecheck diff cassettes/ --against origin/main   # a pull request's cassettes vs main
  rolecheck diff old/cassettes new/cassettes     # two directories, matched by relative path
  rolecheck diff before.json after.json          # two cassettes, or two JSON reports
  rolecheck diff cassettes/ --json diff.json     # also write the differences as JSON

exit status: 0 same behaviour (texts and verdicts; moved probabilities alone are shown),
1 behaviour changed (0 with --exit-zero), 2 bad paths or files.
"""


def add_parser(subparsers: Any) -> argparse.ArgumentParser:
    """Add ``rolecheck diff`` to the ``rolecheck`` command."""
    parser = add_command(
        subparsers,
        "diff",
        run,
        help="show what changed between two recordings or two JSON reports",
        description=(
            "Compare two cassettes (or directories of cassettes) call by call: which calls "
            "answer with another text and the first token where they part. Or compare two "
            "JSON reports comparison by comparison: verdict, change and p before and after. "
            "With one path: its version in git HEAD (or --against REV) is the old side."
        ),
        epilog=_EXAMPLES,
        json=Use(help="also write the differences as JSON to PATH (-: only JSON, on stdout)"),
    )
    parser.add_argument("old", type=Path, help="cassette, directory of cassettes or JSON report")
    parser.add_argument(
        "new",
        type=Path,
        nargs="?",
        help="the same kind as OLD (default: OLD in git, see --against)",
    )
    return parser


# --------------------------------------------------------------------------- reading


def _kind(path: Path) -> str:
    from ..recording.format import FORMAT_KEY
    from ..verdicts.wording import diff as words

    if path.is_dir():
        return _DIRECTORY
    try:
        with path.open("rb") as file:
            head = file.read(_PEEK).decode("utf-8", "replace")
    except FileNotFoundError:
        raise RolecheckUsageError(words.no_such_path(path)) from None
    except OSError as exc:
        raise RolecheckUsageError(words.unreadable(f"{path}: cannot be read ({exc})")) from None
    if re.search(rf'"{FORMAT_KEY}"\s*:', head):
        return _CASSETTE
    if re.search(r'"(rolecheck_report|comparisons)"\s*:', head):
        return _REPORT
    data = _load_json(path)
    if isinstance(data, dict) and FORMAT_KEY in data:
        return _CASSETTE
    if isinstance(data, dict) and "comparisons" in data:
        return _REPORT
    raise RolecheckUsageError(words.neither(path))


def _load_json(path: Path) -> Any:
    from ..verdicts.wording import diff as words

    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError) as exc:
        raise RolecheckUsageError(words.unreadable(f"{path}: cannot be read ({exc})")) from None
    except json.JSONDecodeError as exc:
        raise RolecheckUsageError(
            words.unreadable(f"{path}:{exc.lineno}:{exc.colno}: not valid JSON ({exc.msg})")
        ) from None


def _report_rows(path: Path) -> list[dict[str, Any]]:
    from ..verdicts.wording import diff as words

    data = _load_json(path)
    rows = data.get("comparisons") if isinstance(data, dict) else None
    if not isinstance(rows, list) or not all(isinstance(r, dict) for r in rows):
        raise RolecheckUsageError(words.neither(path))
    return rows


def _recorded(path: Path, shown: str) -> dict[int, RecordedCall]:
    """The calls of a cassette, through the recording package's reader."""
    from ..core.changes import RecordedCall
    from ..core.parse import ParsedCall, parse_response
    from ..recording.format import Unreadable, read_cassette
    from ..verdicts.wording import diff as words

    try:
        found, _ = read_cassette(path)
    except FileNotFoundError:
        raise RolecheckUsageError(words.no_such_path(shown)) from None
    except Unreadable as exc:
        raise RolecheckUsageError(words.unreadable(str(exc).replace(str(path), shown))) from None
    calls = {}
    for index, entry in found.items():
        status, body = entry.response["status"]["code"], entry.response["body"]["string"]
        call: ParsedCall | None = None
        if status == 200:
            try:
                call = parse_response(json.loads(body), require_logprobs=False)
            except ValueError:  # not JSON, or not a chat completion: compared as bytes
                call = None
        calls[index] = RecordedCall(entry.canonical, status, body, call)
    return calls


_Compared = tuple["RecordingDiff", list[dict[str, Any]]]


def _cassette_diff(
    name: str, old: Path | None, new: Path | None, shown: tuple[str, str]
) -> _Compared:
    """The calls of one cassette compared, and its requests' old-vs-new drift entries."""
    from ..core.changes import SAME, RecordingDiff, compare_recordings
    from ..verdicts.rerecord import request_entries

    if old is None:
        assert new is not None
        return RecordingDiff(name, compare_recordings({}, _recorded(new, shown[1])), "new"), []
    if new is None:
        return RecordingDiff(name, compare_recordings(_recorded(old, shown[0]), {}), "old"), []
    if old.read_bytes() == new.read_bytes():  # most cassettes of a pull request: not parsed
        return RecordingDiff(name, (), identical=True), []
    before, after = _recorded(old, shown[0]), _recorded(new, shown[1])
    diff = RecordingDiff(name, compare_recordings(before, after))
    if all(c.status == SAME for c in diff.changes):
        return diff, []
    return diff, request_entries(name, before, after)


def _cassettes(directory: Path) -> dict[str, Path]:
    return {
        p.relative_to(directory).as_posix(): p
        for p in sorted(directory.rglob("*.json"))
        if p.is_file()
    }


def _directory_diffs(old: Path, new: Path, shown: tuple[str, str]) -> list[_Compared]:
    from ..verdicts.wording import diff as words

    before, after = _cassettes(old), _cassettes(new)
    if not before and not after:
        raise RolecheckUsageError(words.no_cassettes(shown[1]))
    return [
        _cassette_diff(
            name,
            before.get(name),
            after.get(name),
            (f"{shown[0]}/{name}", f"{shown[1]}/{name}"),
        )
        for name in sorted(set(before) | set(after))
    ]


# --------------------------------------------------------------------------- git HEAD


def _git(cwd: Path, *args: str) -> bytes:
    """Run git in ``cwd``; its stderr as the error when it fails."""
    try:
        done = subprocess.run(["git", *args], cwd=cwd, capture_output=True, check=False, timeout=60)
    except FileNotFoundError:
        raise _GitError("git is not installed") from None
    if done.returncode != 0:
        message = done.stderr.decode("utf-8", "replace").strip().splitlines()
        raise _GitError(message[0].removeprefix("fatal: ") if message else "git failed")
    return done.stdout


class _GitError(Exception):
    pass


def _git_version(path: Path, rev: str, into: Path) -> Path:
    """Write ``path``'s version at git revision ``rev`` (a file or a directory) under ``into``."""
    from ..verdicts.wording import diff as words

    directory = path if path.is_dir() else path.parent
    try:
        _git(directory, "rev-parse", "--is-inside-work-tree")
    except _GitError as exc:
        raise RolecheckUsageError(words.not_in_git(path, rev, str(exc))) from None
    try:
        _git(directory, "rev-parse", "--verify", "--quiet", f"{rev}^{{commit}}")
    except _GitError:
        raise RolecheckUsageError(words.no_revision(path, rev)) from None
    try:
        if not path.is_dir():
            target = into / path.name
            target.write_bytes(_git(directory, "show", f"{rev}:./{path.name}"))
            return target
        listed = _git(path, "ls-tree", "-r", "-z", "--name-only", rev, "--", ".")
        for name in filter(None, listed.decode("utf-8").split("\0")):
            if name.endswith(".json"):
                target = into / name
                target.parent.mkdir(parents=True, exist_ok=True)
                target.write_bytes(_git(path, "show", f"{rev}:./{name}"))
    except _GitError as exc:
        if "does not exist in" in str(exc) or "exists on disk, but not in" in str(exc):
            raise RolecheckUsageError(words.new_in_worktree(path, rev)) from None
        raise RolecheckUsageError(words.not_in_git(path, rev, str(exc))) from None
    return into


# --------------------------------------------------------------------------- the command


def _decided(entries: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The entries with their status and Holm-adjusted p-value over all of them."""
    from ..verdicts.rerecord import decide_requests

    if not entries:
        return []
    decision = decide_requests(entries)
    return [
        e | {"status": arm.status, "adjusted_p": arm.adjusted_p}
        for e, arm in zip(entries, decision.arms, strict=True)
    ]


def _compare(
    old: Path, new: Path, shown: tuple[str, str]
) -> tuple[list[str], dict[str, Any], bool]:
    """(text lines, JSON document, behaviour changed) of two paths of the same kind."""
    from ..core.changes import compare_reports
    from ..core.drift import DRIFTED
    from ..verdicts.wording import diff as words

    for path, name in zip((old, new), shown, strict=True):
        if not path.exists():
            raise RolecheckUsageError(words.no_such_path(name))
    kinds = (_kind(old), _kind(new))
    if kinds[0] != kinds[1]:
        raise RolecheckUsageError(words.mixed_kinds(shown[0], kinds[0], shown[1], kinds[1]))
    document: dict[str, Any] = {
        "rolecheck_diff": DIFF_FORMAT_VERSION,
        "old": shown[0],
        "new": shown[1],
    }
    lines = words.header(*shown)
    if kinds[0] == _REPORT:
        changes = compare_reports(_report_rows(old), _report_rows(new))
        lines += words.comparisons_lines(changes)
        changed = any(c.behaviour_changed for c in changes)
        document["comparisons"] = [c.to_dict() for c in changes]
    else:
        if kinds[0] == _DIRECTORY:
            compared = _directory_diffs(old, new, shown)
        else:
            compared = [_cassette_diff(str(new), old, new, shown)]
        diffs = [diff for diff, _ in compared]
        requests = _decided([entry for _, entries in compared for entry in entries])
        lines += words.recordings_lines(diffs, requests)
        changed = any(d.behaviour_changed for d in diffs) or any(
            e["status"] == DRIFTED for e in requests
        )
        document["cassettes"] = [
            d.to_dict() | {"requests": [e for e in requests if e["test"] == d.name]} for d in diffs
        ]
    document["behaviour_changed"] = changed
    return lines, document, changed


def run(args: argparse.Namespace) -> int:
    """Run ``rolecheck diff`` with parsed arguments; return the exit status."""
    from ..recording.files import write_text_atomic
    from ..verdicts.wording import diff as words

    with tempfile.TemporaryDirectory(prefix="rolecheck-diff-") as tmp:
        if args.new is None:
            if not args.old.exists():
                raise RolecheckUsageError(words.no_such_path(args.old))
            rev = args.against or "HEAD"
            old = _git_version(args.old, rev, Path(tmp))
            shown = (f"{args.old} (git {rev})", f"{args.old} (working tree)")
            lines, document, changed = _compare(old, args.old, shown)
        elif args.against is not None:
            raise RolecheckUsageError(words.against_two_paths(args.against))
        else:
            lines, document, changed = _compare(args.old, args.new, (str(args.old), str(args.new)))
    text = json.dumps(document, indent=2, ensure_ascii=False) + "\n"
    if args.json is not None and str(args.json) == "-":
        sys.stdout.write(text)
    else:
        print("\n".join(lines))
        if args.json is not None:
            try:
                write_text_atomic(args.json, text)
            except OSError as exc:
                return error("diff", words.cannot_write(args.json, exc), ExitCode.FAILED)
    return ExitCode.FAILED if changed and not args.exit_zero else ExitCode.OK
