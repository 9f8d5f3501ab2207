"""``rolecheck cassettes upgrade``: rewrite cassettes in the current file format, in place.

Only argparse is imported at module level: ``rolecheck --help`` stays fast.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from ..cli import ExitCode, add_command, error


def add_parser(subparsers: Any) -> argparse.ArgumentParser:
    """Add ``rolecheck cassettes`` (and its ``upgrade``) to the ``rolecheck`` command."""
    from ..settings import OPTIONS_BY_NAME

    default_dir = OPTIONS_BY_NAME["cassette_dir"].default
    parser = add_command(
        subparsers,
        "cassettes",
        lambda args: error("cassettes", "name an action: rolecheck cassettes upgrade"),
        help="maintain cassette files (upgrade: convert them to the current format)",
        description="Maintain cassette files.",
    )
    actions = parser.add_subparsers(dest="action", metavar="ACTION")
    upgrade = actions.add_parser(
        "upgrade",
        help="convert cassettes to the current format, in place",
        description=(
            "Rewrite cassettes of an older format in the current one, each file atomically "
            "and losslessly (the calls read back equal). Cassettes already current are left "
            "alone, so running it twice changes nothing. Older cassettes replay as they are; "
            "upgrading makes them smaller and line-diffable."
        ),
    )
    upgrade.add_argument(
        "paths",
        type=Path,
        nargs="*",
        default=[Path(default_dir)],
        metavar="PATH",
        help=f"cassette files or directories of them (default: {default_dir}/)",
    )
    upgrade.set_defaults(handler=run_upgrade)
    return parser


def _cassettes(paths: list[Path]) -> tuple[list[Path], list[str]]:
    """The JSON files named or found under ``paths``, and the paths that do not exist."""
    files: list[Path] = []
    missing: list[str] = []
    for path in paths:
        if path.is_dir():
            files += sorted(p for p in path.rglob("*.json") if not p.name.startswith("."))
        elif path.is_file():
            files.append(path)
        else:
            missing.append(str(path))
    return files, missing


def run_upgrade(args: argparse.Namespace) -> int:
    """Run ``rolecheck cassettes upgrade``; return the exit status."""
    from ..recording.files import atomic_write
    from ..recording.format import FORMAT_VERSION, Unreadable, upgraded
    from ..recording.paths import _display

    files, missing = _cassettes(list(args.paths))
    if missing:
        return error("cassettes", f"no such file or directory: {', '.join(missing)}")
    converted = current = 0
    failed: list[str] = []
    for path in files:
        shown = _display(path)
        try:
            text = upgraded(path)
        except (OSError, Unreadable) as exc:
            failed.append(str(exc) if isinstance(exc, Unreadable) else f"{shown}: {exc}")
            continue
        if text is None:
            current += 1
            continue
        size = path.stat().st_size
        data = text.encode("utf-8")
        try:
            atomic_write(path, data)
        except OSError as exc:
            failed.append(f"{shown}: cannot be written ({exc})")
            continue
        converted += 1
        print(f"upgraded {shown} to format {FORMAT_VERSION} ({size:,} -> {len(data):,} bytes)")
    print(
        f"rolecheck cassettes upgrade: {converted} upgraded, {current} already in format "
        f"{FORMAT_VERSION}, {len(failed)} not upgraded"
    )
    for message in failed:
        error("cassettes", message)
    return ExitCode.FAILED if failed else ExitCode.OK
