"""The run's summary: one :class:`~.row.Row` per comparison, as terminal lines or as JSON.

Rows travel from xdist workers to the controller as plain JSON inside
``report.user_properties``. The report object only yields lines; the plugin's
terminal hook writes them (syrupy style).
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any, Final

from ..recording.files import write_text_atomic
from .row import Row, Totals, short_test

USER_PROPERTY: Final = "rolecheck"
REPORT_FORMAT_VERSION: Final = 1

# The full table (-v, and the HTML's summary) and the compact default.
FULL_COLUMNS: Final[tuple[tuple[str, str], ...]] = (
    ("test", "test"),
    ("compared", "compared"),
    ("verdict", "verdict"),
    ("n", "n"),
    ("tolerance", "tolerance"),
    ("effect", "change [upper]"),
    ("p", "p"),
    ("calls", "calls"),
    ("tokens", "tokens"),
    ("source", "source"),
    ("cost", "cost"),
)
COMPACT_COLUMNS: Final[tuple[tuple[str, str], ...]] = (
    ("test", "test"),
    ("compared", "compared"),
    ("verdict", "verdict"),
    ("effect", "effect"),
    ("p", "p"),
    ("source", "source"),
    ("cost_now", "cost"),
)
# Columns given up first when the table is too wide, and the least they keep.
_SHRINKABLE: Final = ("test", "compared")
_MIN_SHRUNK: Final = 12
_GAP: Final = "  "


def as_rows(rows: Iterable[Row | Mapping[str, Any]]) -> list[Row]:
    """Rows from Row objects or their JSON form (a report file, ``Rolecheck.rows``)."""
    return [row if isinstance(row, Row) else Row.from_json(row) for row in rows]


class SummaryReport:
    """All comparison rows of a run, in the order the tests reported them."""

    def __init__(self, rows: Iterable[Row | Mapping[str, Any]] = ()) -> None:
        self.rows = as_rows(rows)

    def extend(self, rows: Iterable[Row | Mapping[str, Any]]) -> None:
        self.rows.extend(as_rows(rows))

    def __bool__(self) -> bool:
        return bool(self.rows)

    @property
    def totals(self) -> Totals:
        return Totals.of(self.rows)

    def columns(self, *, full: bool = True) -> tuple[tuple[str, str], ...]:
        """The table's (key, title) columns; the compact table drops a source all rows share.

        The cost column is there when a price table was given (``--rolecheck-prices``).
        """
        dropped = set() if any(row.priced for row in self.rows) else {"cost", "cost_now"}
        if not full and len({row.source for row in self.rows}) <= 1:
            dropped.add("source")  # the totals line says live/replayed
        if not any(row.source == "live" for row in self.rows):
            dropped.add("cost_now")  # every replay costs $0 now: the totals line says so
        return tuple(c for c in (FULL_COLUMNS if full else COMPACT_COLUMNS) if c[0] not in dropped)

    def table(self, *, full: bool = True) -> tuple[list[str], list[list[str]]]:
        columns = self.columns(full=full)
        header = [title for _, title in columns]
        body = []
        for row in self.rows:
            cells = row.cells()
            body.append([cells[key] for key, _ in columns])
        return header, body

    def lines(self, *, width: int | None = None, full: bool = True) -> Iterator[str]:
        """Yield the terminal summary: a table and the run's totals.

        ``full=False`` gives the compact table, shrunk to ``width`` columns by
        shortening the test ids and the compared labels in the middle.
        """
        header, body = self.table(full=full)
        columns = [key for key, _ in self.columns(full=full)]
        widths = [max(len(h), *(len(r[i]) for r in body)) for i, h in enumerate(header)]
        if width is not None and not full:
            widths = _fit(widths, columns, header, width)
            body = [
                [_shorten(k, c, w) for k, c, w in zip(columns, r, widths, strict=True)]
                for r in body
            ]
        yield _GAP.join(h.ljust(w) for h, w in zip(header, widths, strict=True)).rstrip()
        yield _GAP.join("-" * w for w in widths)
        for cells in body:
            yield _GAP.join(c.ljust(w) for c, w in zip(cells, widths, strict=True)).rstrip()
        totals = self.totals
        yield f"{totals.comparisons_text()};"
        yield totals.calls_text()
        cost = totals.cost_text()
        if cost is not None:
            yield cost
        for row in self.rows:  # a comparison by text: why (the server gave no logprobs)
            if row.details.get("no_logprobs"):
                from ..verdicts.wording.logprobs import summary_line

                yield summary_line(short_test(row.nodeid), str(row.details["no_logprobs"]))

    def to_json(self, drift: Mapping[str, Any] | None = None) -> dict[str, Any]:
        """The JSON report; a drift check adds its ``drift`` block."""
        report = {
            "rolecheck_report": REPORT_FORMAT_VERSION,
            "totals": self.totals.to_json(),
            "comparisons": [row.to_json() for row in self.rows],
        }
        if drift is not None:
            report["drift"] = drift
        return report

    def write_json(self, path: Path, drift: Mapping[str, Any] | None = None) -> None:
        """Write the JSON report atomically (a reader never sees half a file)."""
        text = json.dumps(self.to_json(drift), indent=2, allow_nan=True)
        write_text_atomic(path, text + "\n")


def _fit(
    widths: Sequence[int], columns: Sequence[str], header: Sequence[str], width: int
) -> list[int]:
    """Column widths that fit ``width``, taken one by one from the widest shrinkable column."""
    out = list(widths)
    excess = sum(out) + len(_GAP) * (len(out) - 1) - width
    floors = {
        i: max(_MIN_SHRUNK, len(header[i])) for i, key in enumerate(columns) if key in _SHRINKABLE
    }
    while excess > 0:
        spare = [i for i, floor in floors.items() if out[i] > floor]
        if not spare:
            break  # the numbers alone are wider than the terminal
        out[max(spare, key=lambda i: out[i])] -= 1
        excess -= 1
    return out


def _shorten(column: str, text: str, width: int) -> str:
    """``text`` in ``width`` characters, keeping what tells the rows apart."""
    if len(text) <= width:
        return text
    if column == "test" and "::" in text:
        # The test's name (and its parameters) before its module's.
        return _middle(text.split("::", 1)[1], width)
    prefix, _, pair = text.rpartition(": ")
    first, sep, second = pair.partition(" vs ")
    if column == "compared" and sep:
        prefix = f"{prefix}: " if prefix else ""
        room = width - len(prefix) - len(sep)
        if room >= 6:
            # Each label keeps its start, the longer one gives up more.
            keep_first = max(min(len(first), room - min(len(second), room // 2)), 3)
            return prefix + _end(first, keep_first) + sep + _end(second, room - keep_first)
    return _middle(text, width)


def _end(text: str, width: int) -> str:
    return text if len(text) <= width else text[: width - 1] + "…"


def _middle(text: str, width: int) -> str:
    """``text`` shortened to ``width`` in the middle (both ends of an id tell the most)."""
    if len(text) <= width:
        return text
    head = width // 2
    tail = width - 1 - head
    return text[:head] + "…" + (text[-tail:] if tail else "")
