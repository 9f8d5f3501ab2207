"""Tests of the tool-call outcome comparison (contingency decisions, canonicalisation)."""

from __future__ import annotations

import itertools
import json
import math
from typing import Any

import numpy as np
import pytest
from openai.types.chat import ChatCompletion

from pytest_rolecheck.core.contingency import difference_test
from pytest_rolecheck.errors import (
    NothingToCompareError,
    ResponseFormatError,
    RolecheckUsageError,
)
from pytest_rolecheck.verdicts.toolcalls import (
    TEXT_OUTCOME,
    _call_tuple,
    _compare_outcomes,
    _outcome_text,
    compare_tool_calls,
)

WEATHER_PARIS = ("get_weather", '{"location": "Paris", "unit": "c"}')
WEATHER_ROME = ("get_weather", '{"location": "Rome"}')
STOCK = ("get_stock_price", '{"symbol": "AAPL"}')


def tool_call_outcome(response: Any, *, names_only: bool = False, ordered: bool = False) -> str:
    """The outcome string compare_tool_calls counts for one response."""
    calls = _call_tuple(response, names_only=names_only, ordered=ordered, position="the response")
    return _outcome_text(calls)


def completion(*calls: tuple[str, Any], content: str | None = None) -> dict[str, Any]:
    """A chat.completion dict whose message makes the given (name, arguments) calls."""
    message: dict[str, Any] = {"role": "assistant", "content": content}
    if calls:
        message["tool_calls"] = [
            {"id": f"call_{i}", "type": "function", "function": {"name": n, "arguments": a}}
            for i, (n, a) in enumerate(calls)
        ]
    return {
        "id": "chatcmpl-1",
        "object": "chat.completion",
        "created": 0,
        "model": "test-model",
        "choices": [
            {
                "index": 0,
                "message": message,
                "finish_reason": "tool_calls" if calls else "stop",
                "logprobs": None,
            }
        ],
    }


def text(content: str = "It is sunny.") -> dict[str, Any]:
    return completion(content=content)


def arm(spec: list[tuple[int, dict[str, Any]]]) -> list[dict[str, Any]]:
    """[(count, response), ...] -> responses."""
    return [response for count, response in spec for _ in range(count)]


# -- outcome canonicalisation ------------------------------------------------------------


def test_no_tool_call_is_the_text_outcome() -> None:
    assert tool_call_outcome(text()) == TEXT_OUTCOME == "<text>"
    assert tool_call_outcome(completion(content=None)) == "<text>"


def test_single_call_outcome_is_canonical_json() -> None:
    outcome = tool_call_outcome(completion(WEATHER_PARIS))
    assert outcome == 'get_weather({"location":"Paris","unit":"c"})'


def test_argument_key_order_and_spacing_do_not_matter() -> None:
    a = completion(("f", '{"a": 1, "b": {"y": [1, 2], "x": "é"}}'))
    b = completion(("f", '{ "b" : {"x":"\\u00e9","y":[1,2]}, "a":1.0 }'))
    assert tool_call_outcome(a) == tool_call_outcome(b) == 'f({"a":1,"b":{"x":"é","y":[1,2]}})'
    result = compare_tool_calls([a] * 14, [b] * 14)
    assert result.verdict == "equivalent"
    assert result.deterministic
    assert result.outcomes == ('f({"a":1,"b":{"x":"é","y":[1,2]}})',)


def test_empty_arguments_are_an_empty_object() -> None:
    assert tool_call_outcome(completion(("now", ""))) == "now({})"
    assert tool_call_outcome(completion(("now", "{}"))) == "now({})"


@pytest.mark.parametrize("arguments", ['{"location": "Paris"', "location=Paris", "{'a': 1}", 42])
def test_invalid_json_is_its_own_outcome(arguments: Any) -> None:
    assert tool_call_outcome(completion(("get_weather", arguments))) == (
        "get_weather(invalid arguments)"
    )


def test_invalid_arguments_never_crash_a_comparison() -> None:
    broken = completion(("get_weather", '{"location": "Par'))
    result = compare_tool_calls([broken] * 10, [completion(WEATHER_ROME)] * 10)
    assert result.verdict == "different"
    assert "get_weather(invalid arguments)" in result.outcomes


def test_parallel_calls_are_unordered_by_default() -> None:
    ab = completion(WEATHER_PARIS, STOCK)
    ba = completion(STOCK, WEATHER_PARIS)
    assert (
        tool_call_outcome(ab)
        == tool_call_outcome(ba)
        == ('get_stock_price({"symbol":"AAPL"}) + get_weather({"location":"Paris","unit":"c"})')
    )
    assert tool_call_outcome(ab, ordered=True) != tool_call_outcome(ba, ordered=True)
    assert compare_tool_calls([ab] * 14, [ba] * 14).verdict == "equivalent"
    assert compare_tool_calls([ab] * 14, [ba] * 14, ordered=True).verdict == "different"


def test_names_only_ignores_arguments() -> None:
    a = [completion(WEATHER_PARIS)] * 14
    b = [completion(WEATHER_ROME)] * 14
    assert compare_tool_calls(a, b).verdict == "different"
    result = compare_tool_calls(a, b, names_only=True)
    assert result.verdict == "equivalent"
    assert result.outcomes == ("get_weather",)
    assert tool_call_outcome(completion(("f", "not json")), names_only=True) == "f"


def test_legacy_function_call_is_read() -> None:
    response = completion(content=None)
    response["choices"][0]["message"]["function_call"] = {
        "name": "get_weather",
        "arguments": '{"location":"Rome"}',
    }
    assert tool_call_outcome(response) == 'get_weather({"location":"Rome"})'


def test_custom_tool_calls_compare_their_text_input() -> None:
    response = completion(content=None)
    response["choices"][0]["message"]["tool_calls"] = [
        {"id": "c", "type": "custom", "custom": {"name": "sql", "input": "SELECT 1"}}
    ]
    assert tool_call_outcome(response) == 'sql({"input":"SELECT 1"})'


def test_sdk_objects_are_accepted() -> None:
    sdk = ChatCompletion.model_validate(completion(WEATHER_PARIS))
    assert tool_call_outcome(sdk) == tool_call_outcome(completion(WEATHER_PARIS))
    sdk_text = ChatCompletion.model_validate(text())
    result = compare_tool_calls([sdk] * 4, [sdk_text] * 4)
    assert result.counts == {
        'get_weather({"location":"Paris","unit":"c"})': (4, 0),
        "<text>": (0, 4),
    }


def test_malformed_responses_raise_a_clear_error() -> None:
    with pytest.raises(ResponseFormatError, match="no choices"):
        tool_call_outcome({"choices": []})
    with pytest.raises(ResponseFormatError, match=r"no choices\[0\]\.message"):
        tool_call_outcome({"choices": [{"index": 0}]})
    with pytest.raises(ResponseFormatError, match=r"response 2 of 'A'.*not a chat completion"):
        compare_tool_calls([text(), text(), "oops", text()], [text()] * 4)


# -- decisions ---------------------------------------------------------------------------


def test_all_calls_identical_in_both_arms() -> None:
    result = compare_tool_calls([completion(WEATHER_PARIS)] * 14, [completion(WEATHER_PARIS)] * 16)
    assert result.verdict == "equivalent"
    assert result.deterministic
    assert (result.tv, result.p_value) == (0.0, 1.0)
    assert result.test == "none"
    assert (result.n_a, result.n_b) == (14, 16)
    assert result.tv_upper == pytest.approx(1 - 0.05 ** (1 / 14))


def test_all_agree_does_not_certify_below_what_the_calls_can_see() -> None:
    # Issue 10, item 5: 4 equal outcomes per arm were "equivalent" at tolerance 0.2. With
    # sampling an unseen outcome can have a rate p with (1 - p)^4 >= alpha, i.e. up to
    # 1 - 0.05^(1/4) = 0.527 (the smaller arm decides).
    result = compare_tool_calls(
        [completion(WEATHER_PARIS)] * 4, [completion(WEATHER_PARIS)] * 7, tolerance=0.2
    )
    assert result.verdict == "inconclusive"
    assert result.tv_upper == pytest.approx(1 - 0.05 ** (1 / 4))
    assert "cannot exclude an outcome never seen at a rate up to 0.527" in result.advice
    report = str(result)
    assert "every call agreed" in report
    assert "TV <=" not in report
    assert result.to_dict()["tv_upper"] == result.tv_upper


def test_all_agree_certifies_from_the_first_n_that_can() -> None:
    # n = 14 is the first n with 1 - 0.05^(1/n) < 0.2 (n > ln 0.05 / ln 0.8 = 13.4).
    result = compare_tool_calls(
        [completion(WEATHER_PARIS)] * 14, [completion(WEATHER_PARIS)] * 14, tolerance=0.2
    )
    assert result.verdict == "equivalent"
    assert result.tv_upper == pytest.approx(1 - 0.05 ** (1 / 14))
    assert result.warnings == ()
    short = compare_tool_calls(
        [completion(WEATHER_PARIS)] * 13, [completion(WEATHER_PARIS)] * 13, tolerance=0.2
    )
    assert short.verdict == "inconclusive"
    assert short.recommended_trials == 14


def test_p_value_equal_to_alpha_is_different() -> None:
    # Like the core engine: "different" when p <= alpha, the boundary included.
    a = arm([(5, completion(WEATHER_PARIS))])
    b = arm([(1, completion(WEATHER_PARIS)), (4, text())])
    p = compare_tool_calls(a, b, tolerance=0.05).p_value
    # Fisher's exact test on [[5, 0], [1, 4]]: x = 5 or x = 1 Paris calls in A,
    # C(6, 5) C(4, 0) + C(6, 1) C(4, 4) = 12 of C(10, 5) = 252 tables.
    assert p == pytest.approx(12 / 252)
    at_alpha = compare_tool_calls(a, b, alpha=p, tolerance=0.05)
    assert at_alpha.verdict == "different"
    assert "<= alpha" in at_alpha.advice


def test_one_arm_never_calls_a_tool_deterministic() -> None:
    result = compare_tool_calls([completion(WEATHER_PARIS)] * 4, [text()] * 4)
    assert result.verdict == "different"
    assert result.deterministic
    assert result.tv == result.tv_upper == 1.0
    # Fisher's exact test on [[4, 0], [0, 4]]: the two most extreme of C(8, 4) = 70 tables.
    assert result.p_value == pytest.approx(2 / 70)
    assert result.test == "fisher-exact"


def test_one_arm_never_calls_a_tool_with_noise() -> None:
    a = arm([(10, completion(WEATHER_PARIS))])
    b = arm([(8, text()), (2, completion(WEATHER_PARIS))])
    result = compare_tool_calls(a, b, labels=("api", "prompt"))
    assert result.verdict == "different"
    assert not result.deterministic
    assert result.tv == pytest.approx(0.8)
    # Fisher's exact test on [[10, 0], [2, 8]], hand-computed with hypergeometric terms:
    # P(x) = C(12, x) C(8, 10 - x) / C(20, 10); the tables at least as unlikely as the
    # observed one are x = 10 and x = 2, each C(12, 10) = C(12, 2) = 66 tables out of
    # C(20, 10) = 184756: p = 132 / 184756.
    assert result.p_value == pytest.approx(132 / 184756)
    assert result.counts[TEXT_OUTCOME] == (0, 8)


def test_clear_difference_between_two_functions() -> None:
    a = arm([(30, completion(WEATHER_PARIS)), (10, completion(STOCK))])
    b = arm([(6, completion(WEATHER_PARIS)), (34, completion(STOCK))])
    result = compare_tool_calls(a, b)
    assert result.verdict == "different"
    assert result.p_value < 1e-3
    assert result.tv == pytest.approx(0.6)


def test_inconclusive_small_sample() -> None:
    a = arm([(2, completion(WEATHER_PARIS)), (2, text())])
    b = arm([(3, completion(WEATHER_PARIS)), (1, text())])
    result = compare_tool_calls(a, b, tolerance=0.2)
    assert result.verdict == "inconclusive"
    assert result.p_value == pytest.approx(1.0)
    assert result.tv == pytest.approx(0.25)
    assert result.tv_upper >= result.tolerance
    # Above the tolerance: trials until the lower bound would clear it (a rough estimate).
    assert result.recommended_trials is not None
    assert result.recommended_trials > 4
    assert "is above the tolerance 0.2, but its lower bound" in result.advice


def test_inconclusive_recommends_a_number_of_trials() -> None:
    a = arm([(7, completion(WEATHER_PARIS)), (3, text())])
    b = arm([(7, completion(WEATHER_PARIS)), (3, text())])
    result = compare_tool_calls(a, b)
    assert result.verdict == "inconclusive"
    assert result.tv == 0.0
    assert result.recommended_trials is not None
    assert result.recommended_trials > 10
    assert f"about {result.recommended_trials} trials per arm" in result.advice
    assert "names_only=True" in result.advice


def test_large_identical_distributions_are_equivalent() -> None:
    a = arm([(140, completion(WEATHER_PARIS)), (60, text())])
    b = arm([(145, completion(WEATHER_PARIS)), (55, text())])
    result = compare_tool_calls(a, b)
    assert result.verdict == "equivalent"
    assert not result.deterministic
    assert result.tv == pytest.approx(0.025)
    assert result.tv < result.tv_upper < 0.2


def test_detectable_but_tolerable_difference_is_equivalent_with_a_warning() -> None:
    outcomes_a = [("f()",)] * 1000 + [()] * 1000
    outcomes_b = [("f()",)] * 1150 + [()] * 850
    result = _compare_outcomes(
        outcomes_a,
        outcomes_b,
        alpha=0.05,
        tolerance=0.2,
        names_only=False,
        ordered=False,
        seed=0,
        labels=("A", "B"),
    )
    assert result.verdict == "equivalent"
    assert result.p_value < 1e-4
    assert any("statistically detectable" in w for w in result.warnings)


def test_many_unique_arguments_warn_about_names_only() -> None:
    a = [completion(("search", json.dumps({"q": f"a{i}"}))) for i in range(14)]
    b = [completion(("search", json.dumps({"q": f"b{i}"}))) for i in range(14)]
    result = compare_tool_calls(a, b)
    assert any("names_only=True" in w for w in result.warnings)
    assert compare_tool_calls(a, b, names_only=True).verdict == "equivalent"


# -- difference test ---------------------------------------------------------------------


def _brute_force_chi2_p(counts_a: list[int], counts_b: list[int]) -> float:
    """Exact permutation p-value by enumerating every relabelling of the pooled calls."""
    pooled = [k for k, c in enumerate(np.add(counts_a, counts_b)) for _ in range(c)]
    n_a, n = sum(counts_a), len(pooled)
    cols = np.bincount(pooled, minlength=len(counts_a))

    def chi2(row: np.ndarray) -> float:
        exp_a, exp_b = cols * n_a / n, cols * (n - n_a) / n
        return float(((row - exp_a) ** 2 / exp_a + (cols - row - exp_b) ** 2 / exp_b).sum())

    observed = chi2(np.array(counts_a))
    hits = total = 0
    for chosen in itertools.combinations(range(n), n_a):
        row = np.bincount([pooled[i] for i in chosen], minlength=len(counts_a))
        hits += chi2(row) >= observed - 1e-9
        total += 1
    return hits / total


@pytest.mark.parametrize(
    ("counts_a", "counts_b"),
    [([3, 1, 0], [0, 2, 3]), ([2, 2, 1], [1, 1, 3]), ([4, 0, 0, 1], [1, 2, 1, 1])],
)
def test_exact_chi2_matches_brute_force_permutations(
    counts_a: list[int], counts_b: list[int]
) -> None:
    p, test = difference_test(np.array(counts_a), np.array(counts_b), np.random.default_rng(0))
    assert test == "exact-chi2"
    assert p == pytest.approx(_brute_force_chi2_p(counts_a, counts_b), rel=1e-9)


def test_large_tables_use_a_seeded_monte_carlo_test() -> None:
    counts_a = np.array([30] * 8)
    counts_b = np.array([25, 35, 30, 30, 28, 32, 30, 30])
    p1, test = difference_test(counts_a, counts_b, np.random.default_rng(3))
    p2, _ = difference_test(counts_a, counts_b, np.random.default_rng(3))
    assert test == "permutation-chi2"
    assert p1 == p2
    assert 0.5 < p1 <= 1.0  # near-identical arms
    shifted = np.array([60, 10, 60, 10, 30, 30, 30, 10])
    p3, _ = difference_test(counts_a, shifted, np.random.default_rng(3))
    assert p3 == pytest.approx(1 / 10001)  # no sampled table as extreme: (1 + 0) / (1 + B)


def test_same_seed_same_result_and_seed_changes_only_the_bound() -> None:
    a = arm([(6, completion(WEATHER_PARIS)), (4, text())])
    b = arm([(4, completion(WEATHER_PARIS)), (6, text())])
    assert compare_tool_calls(a, b, seed=1) == compare_tool_calls(a, b, seed=1)
    other = compare_tool_calls(a, b, seed=2)
    assert other.p_value == compare_tool_calls(a, b, seed=1).p_value
    assert other.tv_upper == pytest.approx(compare_tool_calls(a, b, seed=1).tv_upper, abs=0.03)


def test_tv_upper_bound_keeps_the_equivalence_error_below_alpha() -> None:
    # At the tolerance boundary (true TV = 0.2, one arm never shows the other outcome)
    # an upper bound that undercovers would declare equivalence too often.
    rng = np.random.default_rng(2024)
    n, reps, wrong = 60, 300, 0
    for rep in range(reps):
        hits_b = int(rng.binomial(n, 0.2))
        outcomes_a: list[tuple[str, ...]] = [("f()",)] * n
        outcomes_b: list[tuple[str, ...]] = [("f()",)] * (n - hits_b) + [()] * hits_b
        result = _compare_outcomes(
            outcomes_a,
            outcomes_b,
            alpha=0.05,
            tolerance=0.2,
            names_only=False,
            ordered=False,
            seed=rep,
            labels=("A", "B"),
        )
        wrong += result.verdict == "equivalent"
    # Binomial(300, 0.05) exceeds 25 with probability < 0.5 %.
    assert wrong / reps <= 25 / 300


# -- validation --------------------------------------------------------------------------


def test_needs_four_responses_per_arm() -> None:
    with pytest.raises(RolecheckUsageError, match=r"arm 'B' has 3 responses.*at least 4 per arm"):
        compare_tool_calls([text()] * 4, [text()] * 3)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"alpha": 0}, "alpha=0 is not allowed"),
        ({"alpha": 1.5}, "alpha=1.5 is not allowed"),
        ({"tolerance": 0}, "tolerance is the largest"),
        ({"tolerance": 1.2}, "tolerance is the largest"),
        ({"seed": -1}, "seed=-1 is not allowed"),
        ({"labels": ("A", "A")}, "two different non-empty strings"),
        ({"labels": ("A",)}, "two different non-empty strings"),
    ],
)
def test_argument_validation(kwargs: dict[str, Any], message: str) -> None:
    with pytest.raises(RolecheckUsageError, match=message):
        compare_tool_calls([text()] * 4, [text()] * 4, **kwargs)


def test_a_single_response_is_not_an_arm() -> None:
    with pytest.raises(RolecheckUsageError, match="must be a list of chat completions"):
        compare_tool_calls(text(), [text()] * 4)  # type: ignore[arg-type]


# -- report ------------------------------------------------------------------------------


def test_report_lists_counts_side_by_side() -> None:
    a = arm([(10, completion(WEATHER_PARIS))])
    b = arm([(8, text()), (2, completion(WEATHER_PARIS))])
    report = str(compare_tool_calls(a, b, labels=("tools-via-api", "tools-in-prompt")))
    lines = report.splitlines()
    assert lines[0] == "tool calls: different (tools-via-api vs tools-in-prompt)"
    assert lines[1].split() == ["outcome", "tools-via-api", "tools-in-prompt"]
    assert lines[2].split() == ['get_weather({"location":"Paris","unit":"c"})', "10", "2"]
    assert lines[3].split() == ["<text>", "0", "8"]
    assert lines[4].split() == ["total", "10", "10"]
    assert "TV distance 0.8," in report
    assert "fisher-exact" in report


def test_report_shortens_long_outcomes() -> None:
    long_call = completion(("f", json.dumps({"text": "x" * 200})))
    report = str(compare_tool_calls([long_call] * 4, [long_call] * 4))
    assert max(len(line) for line in report.splitlines()) < 120
    assert "…" in report


def test_to_dict_is_json() -> None:
    a = arm([(3, completion(WEATHER_PARIS)), (2, text())])
    b = arm([(1, completion(WEATHER_PARIS)), (4, text())])
    data = compare_tool_calls(a, b).to_dict()
    assert json.loads(json.dumps(data)) == data
    assert data["kind"] == "tool-calls"
    assert type(data["verdict"]) is str  # plain data: report rows cross to xdist workers
    assert {row["outcome"]: (row["count_a"], row["count_b"]) for row in data["outcomes"]} == {
        'get_weather({"location":"Paris","unit":"c"})': (3, 1),
        "<text>": (2, 4),
    }
    assert math.isfinite(data["tv_upper"])


def test_report_shows_the_table_and_advice_names_each_arms_outcome() -> None:
    result = compare_tool_calls([completion(WEATHER_PARIS)] * 4, [text()] * 4)
    assert "<text>" in str(result)
    assert "every call in 'A' gave" in result.advice


def test_assertion_message_shows_the_table_and_names_the_matching_helper() -> None:
    from pytest_rolecheck.verdicts.wording import assertion_message

    result = compare_tool_calls([completion(WEATHER_PARIS)] * 4, [text()] * 4)
    message = assertion_message(result, "assert_tool_calls_equivalent")
    assert "assert_tool_calls_equivalent failed: A and B were not shown equivalent" in message
    assert "B mostly: <text> (4 of 4)" in message
    assert "A mostly: get_weather(" in message
    assert message.splitlines()[-1].startswith(
        "What to do: if the change is intended, assert it with assert_tool_calls_differ("
    )


def test_identical_arms_are_not_different() -> None:
    same = [completion(WEATHER_PARIS)] * 4
    assert compare_tool_calls(same, same).verdict != "different"
    assert compare_tool_calls(same * 4, same * 4).verdict == "equivalent"


def test_no_tool_call_in_either_arm_is_refused_not_equivalent() -> None:
    check = compare_tool_calls
    # All text in both arms is "TV 0" by arithmetic: it proves nothing about tools.
    with pytest.raises(NothingToCompareError) as excinfo:
        check([text()] * 5, [text("Rain.")] * 4, labels=("api", "prompt"))
    message = str(excinfo.value)
    assert "no call of 'api' or 'prompt' made a tool call (5+4 calls" in message
    assert "bundled SmolLM2 model never calls one" in message
    assert "tool_choice='required'" in message
    assert not isinstance(excinfo.value, AssertionError)  # a refusal, not a verdict


def test_tool_calls_in_one_arm_only_still_get_a_verdict() -> None:
    result = compare_tool_calls([text()] * 4, [completion(WEATHER_PARIS)] * 4)
    assert result.verdict == "different"
