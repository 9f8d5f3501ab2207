"""Tests of the divergence insight (the data behind the per-position plots)."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
from _factories import make_call, random_response

from pytest_rolecheck.core.divergence import display_token, divergence_insight
from pytest_rolecheck.core.parse import parse_response
from pytest_rolecheck.errors import RolecheckUsageError

LN = math.log

# Two-token completions. Position 0 is the same everywhere; at position 1 arm A
# prefers " yes" (0.8 / 0.2), arm B " no" (0.2 / 0.8).
POS0 = ("Answer", LN(0.9), [("Answer", LN(0.9)), ("Reply", LN(0.1))])
A1 = (" yes", LN(0.8), [(" yes", LN(0.8)), (" no", LN(0.2))])
B1 = (" no", LN(0.8), [(" no", LN(0.8)), (" yes", LN(0.2))])


def _js_two_point(p: float, q: float) -> float:
    """JS divergence in bits between (p, 1-p) and (q, 1-q), computed by hand."""
    m = ((p + q) / 2, (2 - p - q) / 2)
    kl_p = p * math.log2(p / m[0]) + (1 - p) * math.log2((1 - p) / m[1])
    kl_q = q * math.log2(q / m[0]) + (1 - q) * math.log2((1 - q) / m[1])
    return 0.5 * (kl_p + kl_q)


def test_hand_computed_divergence_and_alternatives() -> None:
    calls_a = [make_call([POS0, A1]) for _ in range(4)]
    calls_b = [make_call([POS0, B1]) for _ in range(4)]
    insight = divergence_insight(calls_a, calls_b, labels=("developer", "system"))

    assert insight["divergence"] == 1
    assert insight["labels"] == ["developer", "system"]
    assert insight["profile"][0] == pytest.approx(0.0, abs=1e-12)
    # JS((0.8, 0.2), (0.2, 0.8)) = 0.8 log2 1.6 + 0.2 log2 0.4 = 0.278072 bits
    assert insight["profile"][1] == pytest.approx(0.2780719, abs=1e-6)
    assert insight["profile"][1] == pytest.approx(_js_two_point(0.8, 0.2), abs=1e-12)

    focus = insight["focus"]
    assert focus["position"] == 1
    assert focus["reason"] == "first divergence"
    assert (focus["token_a"], focus["token_b"]) == (" yes", " no")
    assert [(x["token"], round(x["probability"], 6)) for x in focus["alternatives_a"]] == [
        (" yes", 0.8),
        (" no", 0.2),
    ]
    assert [x["generated"] for x in focus["alternatives_b"]] == [True, False]
    union = {row["token"]: (row["a"], row["b"]) for row in focus["union"]}
    assert union[" yes"] == pytest.approx((0.8, 0.2))
    assert union[" no"] == pytest.approx((0.2, 0.8))


def test_tokens_and_texts_of_the_representatives() -> None:
    calls_a = [make_call([POS0, A1]) for _ in range(3)]
    calls_b = [make_call([POS0, B1]) for _ in range(3)]
    insight = divergence_insight(calls_a, calls_b)
    reps = insight["representatives"]
    assert reps["a"]["tokens"] == ["Answer", " yes"]
    assert reps["b"]["tokens"] == ["Answer", " no"]
    assert reps["a"]["text"] == "Answer yes"


def test_representative_is_the_medoid_not_an_outlier() -> None:
    outlier = make_call([("Other", LN(0.6), [("Other", LN(0.6)), ("Answer", LN(0.4))]), A1])
    calls_a = [outlier, make_call([POS0, A1]), make_call([POS0, A1]), make_call([POS0, A1])]
    calls_b = [make_call([POS0, B1]) for _ in range(4)]
    insight = divergence_insight(calls_a, calls_b)
    assert insight["representatives"]["a"]["index"] == 1  # first of the identical calls
    assert insight["divergence"] == 1


def test_identical_arms_have_no_divergence() -> None:
    calls = [make_call([POS0, A1]) for _ in range(4)]
    insight = divergence_insight(calls, calls)
    assert insight["divergence"] is None
    assert insight["profile"] == [0.0, 0.0]
    assert insight["focus"]["reason"] == "identical"
    assert insight["focus"]["position"] == 0
    assert insight["mean_profiles"]["cross"]["diverged_share"] == [0.0, 0.0]


def test_same_tokens_different_logprobs_focus_on_largest_difference() -> None:
    shifted = (" yes", LN(0.55), [(" yes", LN(0.55)), (" no", LN(0.45))])
    calls_a = [make_call([POS0, A1]) for _ in range(4)]
    calls_b = [make_call([POS0, shifted]) for _ in range(4)]
    insight = divergence_insight(calls_a, calls_b)
    assert insight["divergence"] is None
    assert insight["focus"]["reason"] == "largest difference"
    assert insight["focus"]["position"] == 1
    assert insight["focus"]["value"] == pytest.approx(_js_two_point(0.8, 0.55), abs=1e-12)


def test_mean_profiles_and_divergence_shares() -> None:
    calls_a = [make_call([POS0, A1]) for _ in range(4)]
    calls_b = [make_call([POS0, B1]) for _ in range(4)]
    means = divergence_insight(calls_a, calls_b)["mean_profiles"]
    assert means["within_a"]["mean"] == [0.0, 0.0]
    assert means["within_a"]["pairs"] == [6, 6]  # C(4, 2) pairs, all share the prefix
    assert means["cross"]["pairs"] == [16, 16]
    assert means["cross"]["mean"][1] == pytest.approx(_js_two_point(0.8, 0.2), abs=1e-12)
    # every cross pair diverges at position 1, none at 0
    assert means["cross"]["diverged_share"] == [0.0, 1.0]


def test_pairs_are_capped_for_large_arms() -> None:
    rng = np.random.default_rng(3)
    calls = [parse_response(random_response(rng, n_tokens=4, top_k=5)) for _ in range(24)]
    insight = divergence_insight(calls[:12], calls[12:])
    assert insight["mean_profiles"]["cross"]["pairs"][0] == 60  # 144 pairs, capped
    assert insight["mean_profiles"]["within_a"]["pairs"][0] == 60  # 66 pairs, capped


def test_calls_without_tokens_have_no_focus() -> None:
    empty = [make_call([], text="") for _ in range(4)]
    insight = divergence_insight(empty, empty)
    assert insight["focus"] is None
    assert insight["profile"] == []


def test_result_is_strict_json_and_metric_falls_back_to_js() -> None:
    rng = np.random.default_rng(0)
    a = [parse_response(random_response(rng, n_tokens=6)) for _ in range(5)]
    b = [parse_response(random_response(rng, n_tokens=6, shift=0.5)) for _ in range(5)]
    insight = divergence_insight(a, b, metric="seed")
    assert insight["metric"] == "js"
    assert insight["unit"] == "bits"
    round_trip = json.loads(json.dumps(insight, allow_nan=False))
    assert round_trip == insight
    tv = divergence_insight(a, b, metric="tv")
    assert tv["metric"] == "tv"
    assert all(0.0 <= x <= 1.0 for x in tv["profile"])


def test_seeded_pair_choice_is_reproducible() -> None:
    rng = np.random.default_rng(5)
    calls = [parse_response(random_response(rng, n_tokens=5)) for _ in range(26)]
    first = divergence_insight(calls[:13], calls[13:], seed=1)
    again = divergence_insight(calls[:13], calls[13:], seed=1)
    assert first == again


@pytest.mark.parametrize(
    ("calls_a", "top", "message"),
    [
        ([], 5, "calls_a is empty"),
        (["not a call"], 5, "not a ParsedCall"),
        (None, 0, "top must be"),
    ],
)
def test_bad_input(calls_a: list[object] | None, top: int, message: str) -> None:
    good = [make_call([POS0, A1])]
    with pytest.raises(RolecheckUsageError, match=message):
        divergence_insight(good if calls_a is None else calls_a, good, top=top)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("token", "shown"),
    [(" the", "␣the"), ("\n", "\\n"), ("a\tb", "a\\tb"), ("", "∅"), ("\x01", "\\x01"), ("é", "é")],
)
def test_display_token(token: str, shown: str) -> None:
    assert display_token(token) == shown
