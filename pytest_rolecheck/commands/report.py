"""``rolecheck report``: the HTML report (and PNG plots) of a saved JSON report.

Only argparse is imported at module level: ``rolecheck --help`` stays fast.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

from ..cli import ExitCode, add_command, error


def add_parser(subparsers: Any) -> argparse.ArgumentParser:
    """Add ``rolecheck report`` to the ``rolecheck`` command."""
    parser = add_command(
        subparsers,
        "report",
        run,
        help="write the HTML report (with PNG plots) of a saved JSON report",
        description=(
            "Write one self-contained HTML file (plots embedded, no network needed to view "
            "it) and the plots as PNG files, from a JSON report written by "
            "`pytest --rolecheck-report=PATH.json` or `rolecheck compare --json PATH`. "
            "Needs matplotlib: pip install 'pytest-rolecheck[report]'."
        ),
    )
    parser.add_argument("report", type=Path, help="the JSON report")
    return parser


def _load_report(path: Path) -> tuple[list[dict[str, Any]], dict[str, Any] | None]:
    """The report's comparisons and its drift block (None without a drift check)."""
    from ..errors import RolecheckUsageError

    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise RolecheckUsageError(
            f"no report at {path}; write one with `pytest --rolecheck-report={path}` or "
            f"`rolecheck compare --json {path}`."
        ) from None
    except (OSError, UnicodeDecodeError) as exc:
        raise RolecheckUsageError(f"{path}: cannot be read ({exc}).") from None
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise RolecheckUsageError(
            f"{path}:{exc.lineno}:{exc.colno}: not valid JSON ({exc.msg}); pass the file that "
            "--rolecheck-report wrote."
        ) from None
    rows = data.get("comparisons") if isinstance(data, dict) else None
    if not isinstance(rows, list) or not all(isinstance(r, dict) for r in rows):
        raise RolecheckUsageError(
            f"{path} is not a rolecheck JSON report (expected an object with a 'comparisons' "
            "list); a cassette is not a report: run the tests with "
            "--rolecheck-report=PATH.json to get one."
        )
    drift = data.get("drift")
    return rows, drift if isinstance(drift, dict) else None


def run(args: argparse.Namespace) -> int:
    """Run ``rolecheck report`` with parsed arguments; return the exit status."""
    from ..reporting.html import write_html_report

    rows, drift = _load_report(args.report)
    try:
        path = write_html_report(rows, args.out, drift=drift)
    except OSError as exc:
        return error("report", f"cannot write to {args.out}: {exc}", ExitCode.FAILED)
    verdicts = ", ".join(f"{r.get('title', '?')}: {r.get('verdict', '?')}" for r in rows)
    print(f"rolecheck report: {len(rows)} comparison(s) ({verdicts or 'none'})")
    print(f"HTML report: {path}")
    print(f"PNG plots:   {path.parent / 'png'}")
    return ExitCode.OK
