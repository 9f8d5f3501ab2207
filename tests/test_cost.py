"""Cost: the pure arithmetic (core.cost), the price file's errors, the numbers and the rows."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from pytest_rolecheck.core.cost import (
    Price,
    PriceTable,
    Tokens,
    cost_of,
    plan,
    planned_tokens,
    priced,
)
from pytest_rolecheck.errors import RolecheckUsageError
from pytest_rolecheck.prices import load_prices
from pytest_rolecheck.reporting.row import Row, Totals
from pytest_rolecheck.running.progress import Usage
from pytest_rolecheck.verdicts.numbers import fmt_count, fmt_rounded_count, fmt_usd

TABLE = PriceTable(
    exact={"gpt-4.1": Price(2.0, 8.0, 0.5)},
    patterns={"gpt-4.1*": Price(3.0, 9.0), "gpt-4.1-mini*": Price(0.4, 1.6)},
)


@pytest.mark.parametrize(
    ("model", "price"),
    [
        ("gpt-4.1", Price(2.0, 8.0, 0.5)),  # exact wins over gpt-4.1*
        ("gpt-4.1-mini-2025-04-14", Price(0.4, 1.6)),  # the longest pattern
        ("gpt-4.1-2025-04-14", Price(3.0, 9.0)),
        ("gpt-4o", None),
        ("GPT-4.1", None),  # names are case-sensitive, as the APIs' are
    ],
)
def test_exact_name_wins_then_the_longest_pattern(model: str, price: Price | None) -> None:
    assert TABLE.price_for(model) == price


def test_cached_prompt_tokens_cost_the_cached_price_else_the_input_price() -> None:
    tokens = Tokens(calls=1, prompt=1000, completion=100, cached=400)
    assert cost_of(Price(2.0, 8.0, 0.5), tokens) == pytest.approx((600 * 2 + 400 * 0.5 + 800) / 1e6)
    assert cost_of(Price(2.0, 8.0), tokens) == pytest.approx((1000 * 2 + 800) / 1e6)


def test_a_model_without_a_price_is_named_and_the_cost_is_not_complete() -> None:
    spent = {"gpt-4.1": Tokens(2, 1000, 100), "claude-x": Tokens(1, 10, 10)}
    cost = priced(TABLE, spent)
    assert cost.no_price == ("claude-x",)
    assert cost.usd == pytest.approx((2000 + 800) / 1e6)  # the priced part
    assert cost.complete is None  # never a false total
    assert priced(TABLE, {"gpt-4.1": Tokens(1, 1000, 0)}).complete == pytest.approx(0.002)


def test_a_planned_call_counts_its_recorded_prompt_and_its_answer_cap() -> None:
    request = {"model": "m", "messages": [{"role": "user", "content": "x" * 400}], "max_tokens": 20}
    measured = planned_tokens(request, {"prompt_tokens": 37, "completion_tokens": 5})
    assert measured == (Tokens(1, 37, 20), True)
    guessed, known = planned_tokens(request, None)  # chars/4 of the prompt's JSON
    assert not known
    assert 100 < guessed.prompt < 130
    assert guessed.completion == 20
    # n choices each up to the cap; the Responses API's cap; no cap: the recorded answer
    assert planned_tokens({**request, "n": 3}, {"prompt_tokens": 1})[0].completion == 60
    responses = {"input": "hi", "max_output_tokens": 7}
    assert planned_tokens(responses, {"input_tokens": 3})[0] == Tokens(1, 3, 7)
    assert planned_tokens({"messages": []}, {"completion_tokens": 9})[0].completion == 9


def test_a_plan_sums_calls_per_model() -> None:
    request = {"messages": [], "max_tokens": 10}
    planned = plan([("a", request, {"prompt_tokens": 5}), ("a", request, None), ("b", request, {})])
    assert planned.calls == 3
    assert planned.by_model["a"].calls == 2
    assert planned.measured_prompts == 1
    assert planned.tokens == sum(t.total for t in planned.by_model.values())


def test_usage_counts_tokens_per_requested_model_and_cached_ones() -> None:
    usage = Usage()
    chat = SimpleNamespace(
        model="gpt-4.1-2025-04-14",
        usage=SimpleNamespace(
            prompt_tokens=100,
            completion_tokens=10,
            prompt_tokens_details=SimpleNamespace(cached_tokens=64),
        ),
    )
    responses = SimpleNamespace(
        model="served",
        usage=SimpleNamespace(
            input_tokens=50,
            output_tokens=5,
            input_tokens_details=SimpleNamespace(cached_tokens=0),
        ),
    )
    usage.add(chat, "gpt-4.1")
    first = usage.take()
    usage.add(responses, None)  # no model requested: the response's
    usage.add(chat, "gpt-4.1")
    assert first == {"gpt-4.1": Tokens(1, 100, 10, 64)}
    assert usage.take() == {"gpt-4.1": Tokens(1, 100, 10, 64), "served": Tokens(1, 50, 5, 0)}
    assert usage.take() == {}
    assert (usage.calls, usage.prompt_tokens, usage.completion_tokens) == (3, 250, 25)


@pytest.mark.parametrize(
    ("value", "shown"),
    [
        (0, "$0"),
        (0.42, "$0.42"),
        (1234.5, "$1,234.50"),
        (0.0031, "$0.0031"),
        (1.234e-5, "$0.000012"),
    ],
)
def test_dollars_are_shown_to_the_cent_and_small_sums_are_not_zero(
    value: float, shown: str
) -> None:
    assert fmt_usd(value) == shown


def test_counts() -> None:
    assert fmt_count(1240) == "1,240"
    assert [fmt_rounded_count(n) for n in (950, 1240, 310_400, 12_345_678)] == [
        "950",
        "1.2k",
        "310k",
        "12M",
    ]


# --------------------------------------------------------------------------- the file


@pytest.mark.parametrize(
    ("name", "text", "message"),
    [
        ("p.yaml", "", "p.yaml:1: expected a mapping of model names to prices"),
        ("p.yaml", "- gpt-4.1\n", "p.yaml:1: expected a mapping of model names to prices"),
        ("p.yaml", "a: {input: 1, output: 2\n", "p.yaml:2:1: not valid YAML/JSON"),
        ("p.yaml", "*x: {input: 1, output: 2}\n", "a name starting with * must be quoted"),
        (
            "p.yaml",
            "a: {input: 1, output: 2}\n4: {input: 1, output: 2}\n",
            "p.yaml:2: a model name",
        ),
        ("p.yaml", "a: 3\n", "p.yaml:1: the prices of 'a' must be a mapping"),
        ("p.yaml", "a:\n  input: 1\n", "p.yaml:1: 'a' has no output price"),
        ("p.yaml", "a:\n  input: 1\n  output: x\n", "p.yaml:3: output must be a number ≥ 0"),
        ("p.yaml", "a:\n  input: 1\n  output: '2'\n", "p.yaml:3: output must be a number ≥ 0"),
        ("p.yaml", "a: {input: 1, output: .inf}\n", "p.yaml:1: output must be a number ≥ 0"),
        (
            "p.yaml",
            "a: {input: 1, output: 2}\n\na: {input: 1, output: 2}\n",
            "p.yaml:3: 'a' is already priced at line 1",
        ),
        (
            "p.json",
            '{\n  "a": {"input": 1, "output": 2},\n  "b": {"input": 1, "cache": 2}\n}\n',
            "p.json:3: unknown key 'cache' for 'b'; allowed: input, output, cached_input",
        ),
        ("p.toml", "", "p.toml: a price table is a .yaml, .yml, .json file"),
    ],
)
def test_a_bad_price_file_names_its_line_and_the_fix(
    tmp_path: Path, name: str, text: str, message: str
) -> None:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    with pytest.raises(RolecheckUsageError) as caught:
        load_prices(path)
    assert message in str(caught.value)
    assert str(caught.value).endswith("(README: Cost estimates).")


def test_a_price_file_in_json_or_yaml(tmp_path: Path) -> None:
    path = tmp_path / "prices.json"
    path.write_text(
        '{"gpt-4.1": {"input": 2, "output": 8, "cached_input": 0.5},\n'
        ' "gpt-4.1*": {"input": 3, "output": 9}}',
        encoding="utf-8",
    )
    table = load_prices(path)
    assert table.exact == {"gpt-4.1": Price(2.0, 8.0, 0.5)}
    assert table.patterns == {"gpt-4.1*": Price(3.0, 9.0)}


# --------------------------------------------------------------------------- rows


def _row(source: str, **spend: Any) -> Row:
    return Row.of_calls(nodeid="t.py::x", usage=(1, 1000, 100), source=source, **spend)


def test_rows_carry_their_cost_through_json_and_the_totals_say_what_replays_cost() -> None:
    models = {"gpt-4.1": Tokens(1, 1000, 100)}
    live, replayed = (
        _row("live", models=models, prices=TABLE),
        _row("replayed", models=models, prices=TABLE),
    )
    assert Row.from_json(live.to_json()) == live
    assert live.cost == pytest.approx(0.0028)
    assert live.cells()["cost"] == "~$0.0028"
    assert replayed.cells()["cost"] == "$0 (~$0.0028 recorded)"
    totals = Totals.of([live, replayed])
    assert totals.cost_text() == "cost ~$0.0028 live; replay cost $0 (recorded cost ~$0.0028)"
    assert totals.to_json()["replayed_cost_when_recorded_usd"] == pytest.approx(0.0028)
    # an older report's row: no table, no cost line
    old = Row.from_json({k: v for k, v in live.to_json().items() if k not in ("cost", "models")})
    assert not old.priced
    assert Totals.of([old]).cost_text() is None
    unpriced = _row("live", models={"other": Tokens(1, 5, 5)}, prices=TABLE)
    assert unpriced.cells()["cost"] == "no price for other"
    assert Totals.of([unpriced]).cost_text() == "no price for other: its calls are not counted"


def test_the_compact_table_shows_a_cost_column_only_for_a_run_that_went_live() -> None:
    from pytest_rolecheck.reporting.summary import SummaryReport

    models = {"gpt-4.1": Tokens(1, 1000, 100)}
    live, replayed = (_row(s, models=models, prices=TABLE) for s in ("live", "replayed"))
    assert replayed.cells()["cost_now"] == "$0"
    keys = [key for key, _ in SummaryReport([live, replayed]).columns(full=False)]
    assert keys[-1] == "cost_now"
    assert "cost_now" not in [key for key, _ in SummaryReport([replayed]).columns(full=False)]
    assert [key for key, _ in SummaryReport([replayed]).columns(full=True)][-1] == "cost"
    unpriced = _row("live", models=models)
    assert "cost" not in [key for key, _ in SummaryReport([unpriced]).columns(full=True)]


def test_a_cost_carries_no_float_noise_into_the_reports() -> None:
    from pytest_rolecheck.core.cost import settled

    # 0.1 + 0.2 style noise from summing per-token prices stays out of the JSON
    assert settled(0.00045120000000000007) == 0.0004512
    assert settled(0.1 + 0.2) == 0.3
