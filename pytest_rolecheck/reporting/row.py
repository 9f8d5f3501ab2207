"""The report Row: one comparison (or the calls of a test that compared nothing).

Built in one place (:meth:`Row.of_result`, :meth:`Row.of_calls`), it travels
from xdist workers to the controller as plain JSON (``report.user_properties``)
and is read by the terminal summary, the JSON report, the HTML report and the
plots. The display cells and the run's totals are computed here once, so the
terminal and the HTML cannot disagree on a number or a count.
"""

from __future__ import annotations

import dataclasses
from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Final, Literal

from ..verdicts.numbers import fmt_change, fmt_p, fmt_value

if TYPE_CHECKING:
    from ..core.cost import PriceTable, Tokens

Kind = Literal["logprobs", "tool-calls", "calls"]
KINDS: Final[tuple[str, ...]] = ("logprobs", "tool-calls", "calls")
VERDICT_ORDER: Final = ("different", "inconclusive", "equivalent")
NO_VERDICT: Final = "—"
CALLS_TITLE: Final = "calls, no comparison"
# What a comparison made with the pure functions inside a test is shown as.
BY_HAND: Final[Mapping[str, str]] = {"logprobs": "compare()", "tool-calls": "compare_tool_calls()"}


@dataclass(frozen=True, slots=True)
class Row:
    """One line of the run's report; ``to_json``/``from_json`` round-trip exactly."""

    nodeid: str | None
    kind: Kind
    title: str
    verdict: str
    n_a: int | None = None
    n_b: int | None = None
    p_value: float | None = None
    floor: float | None = None
    change: float | None = None
    change_upper: float | None = None
    tolerance: float | None = None
    tv: float | None = None
    tv_upper: float | None = None
    deterministic: bool | None = None
    calls: int = 0
    prompt_tokens: int = 0
    completion_tokens: int = 0
    source: str = ""
    # Made with compare()/compare_tool_calls() by hand, not by a rolecheck assert.
    by_hand: bool = False
    # The assert_* helper that checked this comparison (None: no assertion): the report
    # advises only when that assertion failed.
    asserted: str | None = None
    details: Mapping[str, Any] = field(default_factory=dict)
    insight: Mapping[str, Any] | None = None
    # Calls and tokens per model requested, and their cost at the --rolecheck-prices table
    # (replayed calls: what they cost when recorded); None: no table, or a model in no_price.
    models: Mapping[str, Mapping[str, int]] = field(default_factory=dict)
    cost: float | None = None
    no_price: tuple[str, ...] = ()

    # ------------------------------------------------------------------ build
    @classmethod
    def of_result(
        cls,
        result: Any,
        *,
        nodeid: str | None,
        usage: tuple[int, int, int],
        source: str,
        by_hand: bool = False,
        insight: Mapping[str, Any] | None = None,
        models: Mapping[str, Tokens] | None = None,
        prices: PriceTable | None = None,
    ) -> Row:
        """The row of a ``Comparison``, ``ToolCallComparison`` or ``PromptSetComparison``.

        ``usage`` is (calls, prompt tokens, completion tokens).
        """
        from ..core.jsonish import to_plain

        details = to_plain(result.to_dict())
        tools = details.get("kind") == "tool-calls" or "outcomes" in details
        kind: Kind = "tool-calls" if tools else "logprobs"
        labels = result.labels
        # A prompt set is one row; its cases stay in the details (JSON, HTML table).
        cases = f" ({len(details['cases'])} cases)" if _is_set(details) else ""
        return cls(
            nodeid=nodeid,
            kind=kind,
            title=f"{labels[0]} vs {labels[1]}{cases}",
            verdict=str(result.verdict),
            n_a=result.n_a,
            n_b=result.n_b,
            **{name: details.get(name) for name in _FROM_DETAILS},
            calls=usage[0],
            prompt_tokens=usage[1],
            completion_tokens=usage[2],
            source=source,
            by_hand=by_hand,
            details=details,
            insight=insight,
            **_spend(models, prices),
        )

    @classmethod
    def of_calls(
        cls,
        *,
        nodeid: str | None,
        usage: tuple[int, int, int],
        source: str,
        models: Mapping[str, Tokens] | None = None,
        prices: PriceTable | None = None,
    ) -> Row:
        """The row of a test that ran calls but compared nothing (they still cost)."""
        return cls(
            nodeid=nodeid,
            kind="calls",
            title=CALLS_TITLE,
            verdict=NO_VERDICT,
            n_a=usage[0],
            n_b=0,
            calls=usage[0],
            prompt_tokens=usage[1],
            completion_tokens=usage[2],
            source=source,
            **_spend(models, prices),
        )

    def with_insight(self, insight: Mapping[str, Any] | None) -> Row:
        return dataclasses.replace(self, insight=insight)

    # ------------------------------------------------------------------- JSON
    def to_json(self) -> dict[str, Any]:
        """The row as plain JSON (the JSON report's and the xdist transport's form)."""
        out = {f.name: getattr(self, f.name) for f in dataclasses.fields(self)}
        out["details"] = dict(self.details)
        if self.insight is None:
            del out["insight"]
        return out

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Row:
        """Read a row back; tolerant of rows from older reports (missing keys)."""
        known = {f.name for f in dataclasses.fields(cls)}
        values = {k: v for k, v in data.items() if k in known}
        kind = values.get("kind")
        values["kind"] = kind if kind in KINDS else "logprobs"
        values["nodeid"] = values.get("nodeid")
        values["title"] = str(values.get("title") or "")
        values["verdict"] = str(values.get("verdict") or NO_VERDICT)
        for name in ("calls", "prompt_tokens", "completion_tokens"):
            values[name] = int(values.get(name) or 0)
        values["details"] = dict(values.get("details") or {})
        insight = values.get("insight")
        values["insight"] = insight if isinstance(insight, Mapping) else None
        values["source"] = str(values.get("source") or "")
        values["by_hand"] = bool(values.get("by_hand"))
        asserted = values.get("asserted")
        values["asserted"] = asserted if isinstance(asserted, str) else None
        models = values.get("models")
        values["models"] = dict(models) if isinstance(models, Mapping) else {}
        cost = values.get("cost")
        number = isinstance(cost, int | float) and not isinstance(cost, bool)
        values["cost"] = float(cost) if number and isinstance(cost, int | float) else None
        values["no_price"] = tuple(str(m) for m in values.get("no_price") or ())
        return cls(**values)

    # ---------------------------------------------------------------- display
    @property
    def is_comparison(self) -> bool:
        return self.kind != "calls"

    @property
    def tokens(self) -> int:
        return self.prompt_tokens + self.completion_tokens

    @property
    def compared(self) -> str:
        """What was compared, saying how when it was done by hand."""
        return f"{BY_HAND[self.kind]}: {self.title}" if self.by_hand else self.title

    @property
    def is_set(self) -> bool:
        """A prompt-set comparison: ``details["cases"]`` holds the per-case breakdown."""
        return _is_set(self.details)

    @property
    def labels(self) -> tuple[str, str]:
        labels = self.details.get("labels")
        if isinstance(labels, list | tuple) and len(labels) == 2:
            return str(labels[0]), str(labels[1])
        first, sep, second = self.title.partition(" vs ")
        return (first, second) if sep else ("A", "B")

    def cells(self) -> dict[str, str]:
        """Every column of the summary tables, formatted once for terminal and HTML."""
        from ..verdicts.wording.cost import cost_cell

        if self.kind == "calls":
            tolerance = effect = NO_VERDICT
        else:
            tolerance = fmt_value(self.tolerance)
            if self.kind == "tool-calls" and not self.is_set:
                effect = "TV " + fmt_change(self.tv, self.tv_upper)
            else:
                effect = fmt_change(
                    self.change,
                    self.change_upper,
                    # An exact change (every within-arm distance 0) has no bounds to show.
                    exact=bool(self.details.get("exact", self.deterministic)) and not self.is_set,
                )
        return {
            "test": short_test(self.nodeid),
            "compared": self.compared,
            "verdict": self.verdict,
            "n": f"{self.n_a}+{self.n_b}",
            "tolerance": tolerance,
            "effect": effect,
            "p": fmt_p(self.p_value),
            "calls": str(self.calls),
            "tokens": str(self.tokens),
            "source": self.source,
            "cost": self.cost_text,
            # The compact table's: what the calls cost this run (a replay's recorded cost is
            # in the full table and the totals line; the test ids keep their room).
            "cost_now": cost_cell(
                self.cost, self.no_price, replayed=self.source == "replayed", now=True
            ),
        }

    @property
    def priced(self) -> bool:
        """Whether a price table was given (a cost, or a model it has no price for)."""
        return self.cost is not None or bool(self.no_price)

    @property
    def cost_text(self) -> str:
        from ..verdicts.wording.cost import cost_cell

        return cost_cell(self.cost, self.no_price, replayed=self.source == "replayed")


def _is_set(details: Mapping[str, Any]) -> bool:
    return isinstance(details.get("cases"), list | tuple)


def _spend(models: Mapping[str, Tokens] | None, prices: PriceTable | None) -> dict[str, Any]:
    """The row's per-model tokens and, with a price table, their cost."""
    models = models or {}
    fields: dict[str, Any] = {"models": {m: t.to_json() for m, t in sorted(models.items())}}
    if prices is not None:  # a row without calls costs $0 (not "no price")
        from ..core.cost import priced

        cost = priced(prices, models)
        fields.update(cost=cost.complete, no_price=cost.no_price)
    return fields


_FROM_DETAILS: Final = (
    "p_value",
    "floor",
    "change",
    "change_upper",
    "tolerance",
    "tv",
    "tv_upper",
    "deterministic",
)


@dataclass(frozen=True, slots=True)
class Totals:
    """The run's counts, the same for the terminal, the JSON and the HTML."""

    comparisons: int
    verdicts: Mapping[str, int]
    calls: int
    live_calls: int
    tokens: int
    priced: bool = False  # a price table was given
    # None: no row of that source has a complete cost (never a false $0).
    live_cost: float | None = None
    # What the replayed calls cost when they were recorded, at the same prices.
    recorded_cost: float | None = None
    no_price: tuple[str, ...] = ()

    @classmethod
    def of(cls, rows: Iterable[Row]) -> Totals:
        rows = list(rows)
        compared = [row for row in rows if row.is_comparison]
        tally = Counter(row.verdict for row in compared)
        return cls(
            comparisons=len(compared),
            verdicts={v: tally[v] for v in VERDICT_ORDER if tally[v]},
            calls=sum(row.calls for row in rows),
            live_calls=sum(row.calls for row in rows if row.source == "live"),
            tokens=sum(row.tokens for row in rows),
            priced=any(row.priced for row in rows),
            live_cost=_sum_costs(row for row in rows if row.source == "live"),
            recorded_cost=_sum_costs(row for row in rows if row.source != "live"),
            no_price=tuple(sorted({m for row in rows for m in row.no_price})),
        )

    def to_json(self) -> dict[str, Any]:
        return {
            "comparisons": self.comparisons,
            "verdicts": dict(self.verdicts),
            "calls": self.calls,
            "live_calls": self.live_calls,
            "replayed_calls": self.calls - self.live_calls,
            "tokens": self.tokens,
            **(
                {
                    "cost_usd": self.live_cost or 0.0,
                    "replayed_cost_usd": 0.0,
                    "replayed_cost_when_recorded_usd": self.recorded_cost,
                    "no_price": list(self.no_price),
                }
                if self.priced
                else {}
            ),
        }

    def comparisons_text(self) -> str:
        parts = ", ".join(f"{count} {verdict}" for verdict, count in self.verdicts.items())
        plural = "s" if self.comparisons != 1 else ""
        return f"{self.comparisons} comparison{plural}: {parts or 'none'}"

    def calls_text(self) -> str:
        replayed = self.calls - self.live_calls
        return (
            f"{self.calls} calls ({self.live_calls} live, {replayed} replayed), "
            f"{self.tokens} tokens"
        )

    def cost_text(self) -> str | None:
        """The run's cost in one line; ``None`` without a price table."""
        if not self.priced:
            return None
        from ..verdicts.wording.cost import totals_text

        return totals_text(
            live=(self.live_calls, self.live_cost),
            replayed=(self.calls - self.live_calls, self.recorded_cost),
            no_price=self.no_price,
        )


def _sum_costs(rows: Iterable[Row]) -> float | None:
    costs = [row.cost for row in rows if row.cost is not None]
    from ..core.cost import settled

    return settled(sum(costs)) if costs else None


def short_test(nodeid: str | None) -> str:
    """The test id without the directories of its module (parametrize ids may hold "/")."""
    if not nodeid:
        return "(outside pytest)"
    module, sep, rest = nodeid.partition("::")
    return module.rsplit("/", 1)[-1] + sep + rest
