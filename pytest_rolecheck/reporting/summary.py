"""The run's summary: one row per comparison, as terminal lines or as JSON.

Rows are plain dicts (built by :meth:`Rolecheck._add_row`) so they travel from
xdist workers to the controller inside ``report.user_properties``. The report
object only yields lines; the plugin's terminal hook writes them (syrupy style).
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..core.verdict import Verdict
from ..recording.files import write_text_atomic
from ..verdicts.numbers import fmt_change
from ..verdicts.numbers import fmt_p as _p
from ..verdicts.numbers import fmt_value as _num

USER_PROPERTY = "rolecheck"
REPORT_FORMAT_VERSION = 1

_VERDICT_ORDER = (Verdict.DIFFERENT, Verdict.INCONCLUSIVE, Verdict.EQUIVALENT)


def _short_test(nodeid: str | None) -> str:
    if not nodeid:
        return "(outside pytest)"
    # Drop the directories of the module only: parametrize ids may contain "/".
    module, sep, rest = nodeid.partition("::")
    return module.rsplit("/", 1)[-1] + sep + rest


@dataclass
class SummaryReport:
    """All comparison rows of a run, in the order the tests reported them."""

    rows: list[dict[str, Any]] = field(default_factory=list)

    def extend(self, rows: Iterable[Mapping[str, Any]]) -> None:
        self.rows.extend(dict(row) for row in rows)

    def __bool__(self) -> bool:
        return bool(self.rows)

    def table(self) -> tuple[list[str], list[list[str]]]:
        header = [
            "test",
            "compared",
            "verdict",
            "n",
            "tolerance",
            "change [upper]",
            "p",
            "calls",
            "tokens",
            "source",
        ]
        body: list[list[str]] = []
        for row in self.rows:
            tolerance = _num(row.get("tolerance"))
            if row.get("kind") == "calls":
                tolerance = change = "—"
            elif row.get("kind") == "tool-calls":
                change = "TV " + fmt_change(row.get("tv"), row.get("tv_upper"))
            elif row.get("deterministic"):
                change = fmt_change(row.get("change"), None, exact=True)
            else:
                change = fmt_change(row.get("change"), row.get("change_upper"))
            tokens = int(row.get("prompt_tokens") or 0) + int(row.get("completion_tokens") or 0)
            body.append(
                [
                    _short_test(row.get("nodeid")),
                    str(row.get("title", "")),
                    str(row.get("verdict", "")),
                    f"{row.get('n_a')}+{row.get('n_b')}",
                    tolerance,
                    change,
                    _p(row.get("p_value")),
                    str(row.get("calls", 0)),
                    str(tokens),
                    str(row.get("source", "")),
                ]
            )
        return header, body

    def lines(self) -> Iterator[str]:
        """Yield the terminal summary, a table and a one-line tally."""
        header, body = self.table()
        widths = [
            max(len(h), *(len(r[i]) for r in body)) if body else len(h)
            for i, h in enumerate(header)
        ]
        yield "  ".join(h.ljust(w) for h, w in zip(header, widths, strict=True)).rstrip()
        yield "  ".join("-" * w for w in widths)
        for row in body:
            yield "  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)).rstrip()
        compared = [row for row in self.rows if row.get("kind") != "calls"]
        tally = Counter(str(row.get("verdict")) for row in compared)
        parts = [f"{tally[v]} {v}" for v in _VERDICT_ORDER if tally[v]]
        calls = sum(int(row.get("calls") or 0) for row in self.rows)
        live = sum(int(row.get("calls") or 0) for row in self.rows if row.get("source") == "live")
        tokens = sum(
            int(row.get("prompt_tokens") or 0) + int(row.get("completion_tokens") or 0)
            for row in self.rows
        )
        yield (
            f"{len(compared)} comparison{'s' if len(compared) != 1 else ''}: "
            f"{', '.join(parts) or 'none'}; {calls} calls ({live} live, {calls - live} replayed), "
            f"{tokens} tokens"
        )

    def to_json(self) -> dict[str, Any]:
        return {"rolecheck_report": REPORT_FORMAT_VERSION, "comparisons": self.rows}

    def write_json(self, path: Path) -> None:
        """Write the JSON report atomically (a reader never sees half a file)."""
        write_text_atomic(path, json.dumps(self.to_json(), indent=2, allow_nan=True) + "\n")


def load_report(path: Path) -> list[dict[str, Any]]:
    """Read the rows of a JSON report written by ``--rolecheck-report``."""
    data = json.loads(path.read_text(encoding="utf-8"))
    if not isinstance(data, dict) or "comparisons" not in data:
        raise ValueError(f"{path} is not a rolecheck JSON report (no 'comparisons' key)")
    rows: Sequence[dict[str, Any]] = data["comparisons"]
    return list(rows)
