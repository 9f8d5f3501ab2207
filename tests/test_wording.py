"""Verdict words and numbers: one formatter, one wording module, messages a user can act on."""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import _fake_api
import pytest
from _factories import make_response
from test_compare import fixed_response, noisy_arm

from pytest_rolecheck.core.stats import Bound, Decision
from pytest_rolecheck.errors import RolecheckAssertionError
from pytest_rolecheck.reporting import html as _html
from pytest_rolecheck.reporting.row import Row
from pytest_rolecheck.reporting.summary import SummaryReport
from pytest_rolecheck.running.session import Rolecheck
from pytest_rolecheck.settings import Settings
from pytest_rolecheck.verdicts import wording as _wording
from pytest_rolecheck.verdicts.compare import compare
from pytest_rolecheck.verdicts.numbers import fmt_change, fmt_p, fmt_share, fmt_value
from pytest_rolecheck.verdicts.wording import (
    assertion_message,
    counterpart,
    different_advice,
    expected_verdict,
    statistical_texts,
)

# The tests build rows in their JSON form (as a report file holds them).


def row_advice(row: dict[str, Any]) -> str | None:
    return _wording.row_advice(Row.from_json(row))


def row_headline(row: dict[str, Any]) -> str | None:
    return _wording.row_headline(Row.from_json(row))


def row_texts(row: dict[str, Any]) -> str | None:
    return _wording.row_texts(Row.from_json(row))


def render_html(rows: list[Any], images: list[Any]) -> str:
    return _html.render_html([Row.from_json(r) for r in rows], images)


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
    details = {"p_value": 0.2, "change": 78.6, "change_lower": 12.5, "change_upper": None}
    terminal = "\n".join(SummaryReport([_row()]).lines())
    page = render_html([_row(details=details)], [[]])
    assert "78.6 [∞]" in terminal
    assert "78.6 [∞]" in page
    assert "[—]" not in page
    assert "Bounds of the change: 12.5 .. <b>∞</b>" in page


# --------------------------------------------------------------------------- helpers named


@pytest.mark.parametrize(
    ("called", "other"),
    [
        ("assert_roles_equivalent", "assert_roles_differ"),
        ("assert_roles_differ", "assert_roles_equivalent"),
        ("assert_variants_equivalent", "assert_variants_differ"),
        ("assert_tool_calls_equivalent", "assert_tool_calls_differ"),
        ("assert_equivalent", "assert_different"),
        ("compare", "assert_different"),
        ("Rolecheck.compare", "assert_variants_differ"),
        ("compare_tool_calls", "assert_tool_calls_differ"),
    ],
)
def test_counterpart_names_the_helper_of_the_same_family(called: str, other: str) -> None:
    assert counterpart(called) == other


def test_unknown_entry_point_is_refused() -> None:
    with pytest.raises(ValueError, match="unknown rolecheck entry point"):
        counterpart("assert_everything")


# --------------------------------------------------------------------------- message shape


def _message(called: str, a: list[Any], b: list[Any], **options: Any) -> str:
    result = compare(a, b, labels=("developer", "system"), **options)
    assert result.verdict != expected_verdict(called)
    return assertion_message(result, called)


def test_message_plain_words_come_before_the_jargon_and_end_with_the_step() -> None:
    message = _message("assert_roles_equivalent", noisy_arm(1, 10), noisy_arm(2, 10, shift=2.0))
    head, _, rest = message.partition("Details:")
    # Plain words first: what was compared (labels, n calls each), the verdict.
    assert head.startswith(
        "assert_roles_equivalent failed: developer and system were not shown equivalent."
    )
    assert "Compared developer with system, 10 calls each" in head
    assert "Verdict: different" in head
    for jargon in ("Cliff", " U =", "SE", "p =", "bounds"):
        assert jargon not in head, jargon
    assert "Cliff's delta" in rest  # the numbers are still there, below
    last = message.splitlines()[-1]
    assert last.startswith("What to do: ")


def test_message_says_when_the_texts_differ_and_where_they_part() -> None:
    message = _message("assert_roles_equivalent", noisy_arm(1, 10), noisy_arm(2, 10, shift=2.0))
    head = message.partition("Details:")[0]
    assert "The texts differ." in head
    assert 'typical developer text: "' in head
    assert 'typical system text: "' in head
    assert "they part at token " in head


def test_message_says_when_only_the_probabilities_differ() -> None:
    a = [fixed_response()] * 4
    b = [fixed_response(logprob_shift=-0.5)] * 4
    message = _message("assert_roles_equivalent", a, b)
    head = message.partition("Details:")[0]
    assert "The texts are the same in every call" in head
    assert "token probabilities only" in head
    assert "The texts differ" not in head
    assert 'typical text of both: " Yes. Sure"' in head


@pytest.mark.parametrize(
    ("called", "named"),
    [
        ("assert_roles_equivalent", "assert_roles_differ(...)"),
        ("assert_variants_equivalent", "assert_variants_differ(...)"),
        ("assert_equivalent", "assert_different(...)"),
    ],
)
def test_next_step_after_an_equivalence_assertion_names_the_matching_differ(
    called: str, named: str
) -> None:
    # Regression: assert_roles_equivalent advised "assert it with assert_different(...)".
    message = _message(called, noisy_arm(1, 10), noisy_arm(2, 10, shift=2.0))
    last = message.splitlines()[-1]
    assert f"assert it with {named}" in last
    others = {"assert_roles_differ", "assert_variants_differ", "assert_different"} - {
        named.removesuffix("(...)")
    }
    assert not any(f"{o}(" in last for o in others)
    # The detail block may not contradict it with another helper's name.
    assert "assert_different(...);" not in message or called == "assert_equivalent"


def test_failed_differ_assertion_names_the_equivalence_helper() -> None:
    message = _message("assert_variants_differ", noisy_arm(1, 20), noisy_arm(2, 20))
    last = message.splitlines()[-1]
    assert "lower tolerance=" in last
    assert "assert_variants_equivalent" in last


def test_inconclusive_message_ends_with_the_trials_advice() -> None:
    result = compare(noisy_arm(1, 10), noisy_arm(2, 10))
    assert result.verdict == "inconclusive"
    message = assertion_message(result, "assert_roles_equivalent")
    assert message.splitlines()[-1] == f"What to do: {result.advice}"
    assert f"increase trials to ~{result.recommended_trials} per arm" in message


def test_tool_call_message_has_the_same_shape() -> None:
    from pytest_rolecheck.verdicts.toolcalls import compare_tool_calls

    weather = make_response([("x", -0.1, [])], tool_calls=[("get_weather", '{"city": "Paris"}')])
    plain = make_response([("Hi", -0.1, [])])
    result = compare_tool_calls([weather] * 6, [plain] * 6, labels=("api", "prompt"))
    message = assertion_message(result, "assert_tool_calls_equivalent")
    head = message.partition("Details:")[0]
    assert "Compared api with prompt, 6 calls each, by which tools they call" in head
    assert "Verdict: different" in head
    assert "prompt mostly: <text> (6 of 6)" in head
    assert message.splitlines()[-1].startswith(
        "What to do: if the change is intended, assert it with assert_tool_calls_differ(...)"
    )


# --------------------------------------------------------------------------- advice numbers


@dataclass(frozen=True)
class _Opts:
    labels: tuple[str, str] = ("A", "B")
    alpha: float = 0.05
    tolerance: float = 0.2
    metric: str = "js"
    design: str = "all-pairs"
    blind: str | None = None
    bounded: bool = True


@pytest.mark.parametrize("rec", [None, 40])
def test_advice_never_prints_a_non_number(rec: int | None) -> None:
    # Regression: "you would need margin= above unbounded" / "leave the upper bound at
    # unbounded": an infinite bound must not be quoted as a value to act on.
    opts = _Opts()
    bound = Bound(estimate=0.05, se=math.inf, lower=-math.inf, upper=math.inf, t_quantile=2.0, df=9)
    decision = Decision("inconclusive", False, False, rec)
    headline, advice, _ = statistical_texts(opts, decision, bound, 0.5, 10, 1.0)
    for word in ("unbounded", "∞", "inf", "nan", "—"):
        assert word not in advice, (word, advice)
    assert "do not bound the change from above" in advice
    assert "increase trials" in advice
    assert "∞" in headline  # the headline may state the bound, as the one formatter prints it


def test_tight_tolerance_advice_quotes_the_bound_to_widen_to() -> None:
    opts = _Opts()
    bound = Bound(estimate=0.05, se=0.1, lower=-0.1, upper=0.31, t_quantile=2.0, df=9)
    decision = Decision("inconclusive", False, False, None)
    _, advice, _ = statistical_texts(opts, decision, bound, 0.5, 10, 1.0)
    assert "widen it above 0.31 (tolerance=)" in advice


# --------------------------------------------------------------------------- report advice


def _logprob_row(verdict: str, asserted: str | None) -> dict[str, Any]:
    row = _row(verdict=verdict, change_upper=0.9)
    row["details"] = {
        "labels": ["developer", "system"],
        "tolerance": 0.2,
        "advice": different_advice() if verdict == "different" else "increase trials to ~40.",
    }
    if asserted is not None:
        row["asserted"] = asserted
    return row


def test_html_shows_no_advice_for_a_passing_assertion() -> None:
    # Regression: a passing assert_variants_differ got "if the change is intended, assert it
    # with assert_different(...)" in the HTML.
    row = _logprob_row("different", "assert_variants_differ")
    assert row_advice(row) is None
    assert "Next:" not in render_html([row], [[]])


def test_html_advice_of_a_failed_assertion_names_the_matching_helper() -> None:
    row = _logprob_row("different", "assert_roles_equivalent")
    advice = row_advice(row)
    assert advice is not None
    assert "assert it with assert_roles_differ(...)" in advice
    assert "assert_roles_differ(...)" in render_html([row], [[]])


def test_html_advice_for_inconclusive_and_unasserted_rows() -> None:
    assert row_advice(_logprob_row("inconclusive", "assert_roles_equivalent")) == (
        "increase trials to ~40."
    )
    advice = row_advice(_logprob_row("different", None))
    assert advice is not None
    assert "assert_variants_differ(...)" in advice
    assert row_advice(_logprob_row("equivalent", None)) is None


# --------------------------------------------------------------------------- the fixture's path


def _checker(tmp_path: Path) -> Rolecheck:
    settings = Settings(record_mode="all", model="gpt-x", trials=4, max_tokens=6, top_logprobs=5)
    return Rolecheck(
        settings, client_provider=_fake_api.async_client, cassette_file=tmp_path / "c.json"
    )


MESSAGES = [
    {"role": "system", "content": "You are a helpful AI assistant"},
    {"role": "user", "content": "Produce two stanza rock lyrics"},
]


def test_rolecheck_assertions_name_what_was_called(tmp_path: Path) -> None:
    checker = _checker(tmp_path)
    try:
        with pytest.raises(RolecheckAssertionError) as info:
            checker.assert_roles_equivalent(MESSAGES)
        message = str(info.value)
        assert message.startswith("assert_roles_equivalent failed:")
        assert message.splitlines()[-1].startswith(
            "What to do: if the change is intended, assert it with assert_roles_differ(...)"
        )
        assert checker.rows[-1]["asserted"] == "assert_roles_equivalent"
        passed = checker.assert_roles_differ(MESSAGES)
        assert passed.verdict == "different"
        assert checker.rows[-1]["asserted"] == "assert_roles_differ"
        assert row_advice(checker.rows[-1]) is None
    finally:
        checker.finish(save=False)


def test_tool_call_rows_get_a_plain_headline() -> None:
    row = _row(kind="tool-calls", verdict="different", tv=0.8, tv_upper=0.97)
    row["details"] = {"labels": ["api", "prompt"], "tolerance": 0.2}
    assert row_headline(row) == (
        "Tool calls of api and prompt: they behave differently: the change is larger than the "
        "tolerance 0.2."
    )
    assert "Tool calls of api and prompt: they behave differently" in render_html([row], [[]])


def test_message_when_one_text_stops_where_the_other_goes_on() -> None:
    a = [fixed_response((" Yes", "."))] * 4
    b = [fixed_response((" Yes", ".", " Sure"))] * 4
    # js compares up to the first divergence: a text that only goes on is no change to it,
    # and the message must still say that the texts differ.
    message = _message("assert_different", a, b)
    head = message.partition("Details:")[0]
    assert "The texts differ." in head
    assert "developer's text stops after 2 tokens where system's goes on to 3" in head


def test_texts_compared_without_tokens_are_not_counted_in_tokens() -> None:
    insight = {
        "representatives": {
            "a": {"text": "Cats purr.", "tokens": []},
            "b": {"text": "Dogs bark.", "tokens": []},
        },
        "divergence": None,
    }
    lines = _wording.text_lines(insight, ["Cats purr."], ["Dogs bark."], ("a", "b"))
    assert lines[0] == "The texts differ."
    assert not any("tokens" in line for line in lines)


def test_html_says_whether_the_texts_differ_like_the_message() -> None:
    from pytest_rolecheck.core.divergence import divergence_insight
    from pytest_rolecheck.core.jsonish import to_plain

    for a, b, answer in (
        (noisy_arm(1, 6), noisy_arm(2, 6, shift=2.0), "The texts differ."),
        ([fixed_response()] * 4, [fixed_response(logprob_shift=-0.5)] * 4, "The texts are the"),
    ):
        result = compare(a, b, labels=("developer", "system"))
        row = _row(verdict=result.verdict, details=to_plain(result.to_dict()))
        row["insight"] = to_plain(
            divergence_insight(result.calls_a, result.calls_b, labels=result.labels)
        )
        words = row_texts(row)
        assert words is not None
        assert words.startswith(answer)
        failing = (
            "assert_variants_equivalent"
            if result.verdict == "different"
            else "assert_variants_differ"
        )
        assert answer in assertion_message(result, failing)
        assert render_html([row], [[]]).count(answer) >= 1
