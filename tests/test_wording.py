"""Verdict words and numbers: one formatter, one wording module, messages a user can act on."""

from __future__ import annotations

import math

import pytest

from pytest_rolecheck.reporting.html import render_html
from pytest_rolecheck.reporting.summary import SummaryReport
from pytest_rolecheck.verdicts.numbers import fmt_change, fmt_p, fmt_share, fmt_value

# --------------------------------------------------------------------------- numbers


@pytest.mark.parametrize(
    ("value", "text"),
    [
        (math.inf, "∞"),
        (-math.inf, "-∞"),
        (None, "—"),
        (math.nan, "—"),
        (0.0, "0"),
        (0.123456, "0.123"),
        (78.6, "78.6"),
        (20, "20"),
    ],
)
def test_fmt_value(value: float | None, text: str) -> None:
    assert fmt_value(value) == text


def test_fmt_p_keeps_small_values_comparable_with_alpha() -> None:
    assert fmt_p(0.0004) == "0.0004"
    assert fmt_p(0.0501) == "0.0501"
    assert fmt_p(1.0) == "1"
    assert fmt_p(None) == "—"


def test_fmt_share() -> None:
    assert fmt_share(0.95) == "95%"
    assert fmt_share(0.975) == "97.5%"


def _row(**extra: object) -> dict[str, object]:
    row: dict[str, object] = {
        "nodeid": "tests/test_x.py::test_a",
        "kind": "logprobs",
        "title": "developer vs system",
        "verdict": "inconclusive",
        "n_a": 4,
        "n_b": 4,
        "p_value": 0.2,
        "change": 78.6,
        "change_upper": None,  # an infinite bound, as the JSON report stores it
        "tolerance": 0.2,
        "deterministic": False,
        "calls": 8,
        "source": "replayed",
        "details": {},
    }
    row.update(extra)
    return row


def test_infinite_upper_bound_prints_the_same_in_terminal_and_html() -> None:
    # Regression: the terminal printed "78.6 [∞]" and the HTML "78.6 [—]".
    assert fmt_change(78.6, None) == fmt_change(78.6, math.inf) == "78.6 [∞]"
    terminal = "\n".join(SummaryReport([_row()]).lines())
    page = render_html([_row()], [[]])
    assert "78.6 [∞]" in terminal
    assert "78.6 [∞]" in page
    assert "[—]" not in page
