"""Tests for pytest_rolecheck.core.distances: metrics, registry, matrix, divergence, profiles."""

from __future__ import annotations

import itertools
import json
import math
from collections.abc import Iterator, Sequence
from typing import Any

import numpy as np
import pytest
from _factories import TokenSpec, make_call, make_response, random_response
from hypothesis import given, settings
from hypothesis import strategies as st

from pytest_rolecheck.core import distances as _distances
from pytest_rolecheck.core.distances import (
    TOK_L1_MIN_LOGPROB,
    available_metrics,
    compared_positions,
    distance_matrix,
    divergence_position,
    first_token_distance,
    get_metric,
    js_distance,
    position_profile,
    register_metric,
    seed_distance,
    tok_l1_distance,
    tv_distance,
)
from pytest_rolecheck.core.parse import ParsedCall, Position, parse_response
from pytest_rolecheck.errors import RolecheckUsageError

LN = math.log
L2 = math.log2
BUILTINS = ("js", "tv", "tok_l1", "first_token", "seed", "hamming", "edit", "js_edit")
EMPTY_VS_NONEMPTY = {
    "js": 1.0,
    "tv": 1.0,
    "tok_l1": 30.0,
    "first_token": 1.0,
    "seed": 9999.0,
    "hamming": 1.0,
    "edit": 1.0,
    "js_edit": 1.0,
}
BOUNDED = ("js", "tv", "first_token", "hamming", "edit", "js_edit")


def pos(token: str, dist: dict[str, float]) -> TokenSpec:
    """A position generating ``token`` whose top_logprobs are ``dist`` (probabilities)."""
    return (token, LN(dist[token]), [(t, LN(p)) for t, p in dist.items()])


def reference_matrix(calls: Sequence[ParsedCall], metric: str) -> np.ndarray:
    fn = get_metric(metric)
    out = np.zeros((len(calls), len(calls)))
    for i, j in itertools.combinations(range(len(calls)), 2):
        out[i, j] = out[j, i] = fn(calls[i], calls[j])
    return out


# --------------------------------------------------------------------------- hand-computed values


YES_NO_A = make_call([pos("Yes", {"Yes": 0.8, "No": 0.2})])
YES_NO_B = make_call([pos("Yes", {"Yes": 0.5, "No": 0.5})])


def test_js_by_hand_full_support() -> None:
    # p = (Yes .8, No .2), q = (.5, .5); both sum to 1, so no floor and no "other" mass.
    # m = (.65, .35)
    # KL(p||m) = .8·log2(.8/.65) + .2·log2(.2/.35)
    # KL(q||m) = .5·log2(.5/.65) + .5·log2(.5/.35)
    # JS = ½(KL(p||m) + KL(q||m)) = 0.0731040079318...
    expected = 0.5 * (0.8 * L2(0.8 / 0.65) + 0.2 * L2(0.2 / 0.35)) + 0.5 * (
        0.5 * L2(0.5 / 0.65) + 0.5 * L2(0.5 / 0.35)
    )
    assert expected == pytest.approx(0.07310400793180985, abs=1e-15)
    assert js_distance(YES_NO_A, YES_NO_B) == pytest.approx(expected, abs=1e-15)


def test_tv_and_tok_l1_by_hand_full_support() -> None:
    # TV = ½(|.8 − .5| + |.2 − .5|) = ½(.3 + .3) = 0.3
    assert tv_distance(YES_NO_A, YES_NO_B) == pytest.approx(0.3, abs=1e-15)
    # tok_l1 = ½(|ln .8 − ln .5| + |ln .2 − ln .5|) = ½(ln 1.6 + ln 2.5) = ½ ln 4 = ln 2
    assert tok_l1_distance(YES_NO_A, YES_NO_B) == pytest.approx(LN(2.0), abs=1e-15)


# Floors: A lists a .5, b .3 (leftover .2); B lists a .6, c .1 (leftover .3).
FLOOR_A = make_call([pos("a", {"a": 0.5, "b": 0.3})])
FLOOR_B = make_call([pos("a", {"a": 0.6, "c": 0.1})])


def test_floor_construction_by_hand() -> None:
    # Union {a, b, c}.
    # A misses c: floor_A = min(k-th .3, leftover .2 / 1) = .2; other_A = .2 − .2 = 0
    #   p = (a .5, b .3, c .2, other 0)
    # B misses b: floor_B = min(k-th .1, leftover .3 / 1) = .1; other_B = .3 − .1 = .2
    #   q = (a .6, b .1, c .1, other .2)
    # TV = ½(.1 + .2 + .1 + .2) = 0.3
    assert tv_distance(FLOOR_A, FLOOR_B) == pytest.approx(0.3, abs=1e-15)
    # tok_l1 over the union tokens only: (ln(.6/.5) + ln(.3/.1) + ln(.2/.1)) / 3 = ln(7.2) / 3
    assert tok_l1_distance(FLOOR_A, FLOOR_B) == pytest.approx(LN(7.2) / 3, abs=1e-15)
    # m = (.55, .2, .15, .1)
    # KL(p||m) = .5·log2(.5/.55) + .3·log2(.3/.2) + .2·log2(.2/.15)          (other: 0·log 0 = 0)
    # KL(q||m) = .6·log2(.6/.55) + .1·log2(.1/.2) + .1·log2(.1/.15) + .2·log2(.2/.1)
    expected = 0.5 * (0.5 * L2(0.5 / 0.55) + 0.3 * L2(0.3 / 0.2) + 0.2 * L2(0.2 / 0.15)) + 0.5 * (
        0.6 * L2(0.6 / 0.55) + 0.1 * L2(0.1 / 0.2) + 0.1 * L2(0.1 / 0.15) + 0.2 * L2(0.2 / 0.1)
    )
    assert expected == pytest.approx(0.15328338368767389, abs=1e-15)
    assert js_distance(FLOOR_A, FLOOR_B) == pytest.approx(expected, abs=1e-15)


def test_floor_is_capped_by_the_kth_probability() -> None:
    # A lists x .5, w .1 (leftover .4); B lists x .5, y .3 (leftover .2).
    # A misses y: floor_A = min(.1, .4 / 1) = .1 (k-th cap), other_A = .4 − .1 = .3
    # B misses w: floor_B = min(.3, .2 / 1) = .2 (leftover cap), other_B = 0
    # p = (w .1, x .5, y .1, other .3); q = (w .2, x .5, y .3, other 0)
    # TV = ½(.1 + 0 + .2 + .3) = 0.3
    a = make_call([pos("x", {"x": 0.5, "w": 0.1})])
    b = make_call([pos("x", {"x": 0.5, "y": 0.3})])
    assert tv_distance(a, b) == pytest.approx(0.3, abs=1e-15)


def test_leftover_is_split_over_several_missing_tokens() -> None:
    # A lists only x .9 (leftover .1); B lists x .1, y .5, z .4.
    # A misses y and z: floor_A = min(.9, .1 / 2) = .05, other_A = .1 − 2·.05 = 0
    # p = (x .9, y .05, z .05, other 0); q = (x .1, y .5, z .4, other 0)
    # TV = ½(.8 + .45 + .35) = 0.8
    a = make_call([pos("x", {"x": 0.9})])
    b = make_call([pos("x", {"x": 0.1, "y": 0.5, "z": 0.4})])
    assert tv_distance(a, b) == pytest.approx(0.8, abs=1e-15)


def test_listed_mass_above_one_is_rescaled() -> None:
    # Rounded server values summing to 1.25: each side is rescaled to 1 -> identical to (.8, .2).
    a = make_call([pos("Yes", {"Yes": 1.0, "No": 0.25})])
    assert tv_distance(a, YES_NO_B) == pytest.approx(0.3, abs=1e-12)


def test_first_token_is_js_at_position_zero_only() -> None:
    a = make_call([pos("Yes", {"Yes": 0.8, "No": 0.2}), pos("!", {"!": 0.9, ".": 0.1})])
    b = make_call([pos("Yes", {"Yes": 0.5, "No": 0.5}), pos("!", {"!": 0.1, ".": 0.9})])
    assert first_token_distance(a, b) == pytest.approx(0.07310400793180985, abs=1e-15)
    assert js_distance(a, b) > first_token_distance(a, b)


def test_comparison_stops_at_the_first_divergence_inclusive() -> None:
    shared = pos("The", {"The": 0.9, "A": 0.1})
    # b's generated " dog" is not its top token (0.4): a sampled divergence, not a greedy one
    a = make_call([shared, pos(" cat", {" cat": 0.6, " dog": 0.4}), pos(" sat", {" sat": 1.0})])
    b = make_call([shared, pos(" dog", {" cat": 0.6, " dog": 0.4}), pos(" ran", {" ran": 1.0})])
    assert divergence_position(a, b) == 1
    assert compared_positions(a, b) == 2
    assert position_profile(a, b, "tv").tolist() == [0.0, 0.0]
    assert tv_distance(a, b) == 0.0  # same distributions, different draws


def test_positions_combine_as_the_chance_to_part_not_a_mean() -> None:
    # A change at position k counts fully, not diluted by 1/(k + 1) (issue 10).
    same = pos("The", {"The": 0.9, "A": 0.1})
    a = make_call([same, same, same, pos("x", {"x": 0.7, "y": 0.3})])
    b = make_call([same, same, same, pos("x", {"x": 0.5, "y": 0.5})])
    assert position_profile(a, b, "tv").tolist() == pytest.approx([0, 0, 0, 0.2], abs=1e-15)
    assert tv_distance(a, b) == pytest.approx(0.2, abs=1e-15)
    c = make_call([pos("x", {"x": 0.7, "y": 0.3}), pos("x", {"x": 0.7, "y": 0.3})])
    d = make_call([pos("x", {"x": 0.5, "y": 0.5}), pos("x", {"x": 0.5, "y": 0.5})])
    assert tv_distance(c, d) == pytest.approx(1 - 0.8 * 0.8, abs=1e-15)


def test_a_greedy_flip_counts_fully() -> None:
    # Both calls took their own top token and still parted: greedy decoding changes the
    # answer with certainty, however close the two distributions are.
    a = make_call([pos("Paris", {"Paris": 0.51, "Le": 0.49})])
    b = make_call([pos("Le", {"Le": 0.51, "Paris": 0.49})])
    assert js_distance(a, b) == tv_distance(a, b) == first_token_distance(a, b) == 1.0
    assert float(distance_matrix([a, b], "js")[0, 1]) == 1.0
    assert float(distance_matrix([a, b], "first_token")[0, 1]) == 1.0


def test_floating_point_noise_is_exactly_zero() -> None:
    # Issue 10, item 2: jitter of 1e-9 nats gave js ~3e-17 bits, treated as real.
    a = make_call([("x", -0.1, [("x", -0.1), ("y", -2.4)])] * 3)
    b = make_call([("x", -0.1 - 1e-9, [("x", -0.1 - 1e-9), ("y", -2.4 + 1e-9)])] * 3)
    for metric in ("js", "tv", "first_token"):
        assert float(distance_matrix([a, b], metric)[0, 1]) == 0.0
    assert js_distance(a, b) == tv_distance(a, b) == 0.0


def test_no_divergence_compares_the_shorter_call() -> None:
    head = [pos("a", {"a": 0.8, "b": 0.2}), pos("b", {"b": 0.5, "c": 0.5})]
    short = make_call(head)
    long = make_call([*head, pos("z", {"z": 0.1, "y": 0.9})], finish_reason="length")
    assert divergence_position(short, long) is None
    assert compared_positions(short, long) == 2
    assert js_distance(short, long) == 0.0
    assert len(position_profile(short, long)) == 2


def test_profile_combines_into_the_distance() -> None:
    rng = np.random.default_rng(7)
    a, b = (parse_response(random_response(rng, n_tokens=12, noise=1.0)) for _ in range(2))
    tok = position_profile(a, b, "tok_l1")
    assert float(np.mean(tok)) == pytest.approx(tok_l1_distance(a, b), abs=1e-15)
    for metric, fn in (("js", js_distance), ("tv", tv_distance)):
        profile = position_profile(a, b, metric)
        assert profile.shape == (compared_positions(a, b),)
        parted = 1.0 - float(np.prod(1.0 - profile))
        assert fn(a, b) in (pytest.approx(parted, abs=1e-12), 1.0)


def test_profile_rejects_metrics_without_a_per_position_form() -> None:
    with pytest.raises(RolecheckUsageError, match=r"no per-position form.*js, tok_l1, tv"):
        position_profile(YES_NO_A, YES_NO_B, "seed")


def test_tok_l1_clips_probability_zero() -> None:
    # -9999 ("probability 0") vs ln .5 would be ~9998 nats; clipped at -30 it is 30 − ln 2.
    a = make_call([("x", LN(0.5), [("x", LN(0.5)), ("y", -9999.0)])])
    b = make_call([("x", LN(0.5), [("x", LN(0.5)), ("y", LN(0.5))])])
    assert tok_l1_distance(a, b) == pytest.approx((-TOK_L1_MIN_LOGPROB + LN(0.5)) / 2)


def _rounded_top(top: float) -> tuple[ParsedCall, ParsedCall]:
    """Two calls that list the same x, y and one different tail token each."""
    a = make_call([("x", top, [("x", top), ("y", -17.0), ("z", -18.0)])])
    b = make_call([("x", top, [("x", top), ("y", -17.0), ("w", -18.0)])])
    return a, b


def test_tok_l1_floor_survives_listed_mass_rounding_to_one() -> None:
    # Top logprob -1e-7: unlisted mass 1e-7 - e^-17 - e^-18 > e^-18, so the floor is the
    # k-th probability e^-18 and the missing z / w match the other side exactly: 0.
    assert tok_l1_distance(*_rounded_top(-1e-7)) == pytest.approx(0.0, abs=1e-12)
    # Top logprob 0 (the same numbers rounded): listed mass 1 + e^-17 + e^-18 > 1, so it
    # is rescaled and the unlisted mass is 0. The floor is then half the k-th
    # probability: z and w each differ by ln 2, x and y by 0, over 4 tokens: ln 2 / 2.
    # (Without the bound the floor was 0, clipped at -30: (12 + 12) / 4 = 6 nats.)
    a, b = _rounded_top(0.0)
    assert tok_l1_distance(a, b) == pytest.approx(LN(2.0) / 2, abs=1e-9)
    matrix = distance_matrix([a, b], "tok_l1")  # the vectorised path agrees
    assert matrix[0, 1] == pytest.approx(LN(2.0) / 2, abs=1e-9)
    # js and tv weigh the floor by its mass (~1.5e-8): the rounding barely moves them.
    for top in (-1e-7, 0.0):
        assert js_distance(*_rounded_top(top)) < 1e-7
        assert tv_distance(*_rounded_top(top)) < 1e-7


def test_tok_l1_floor_is_at_least_half_the_kth_probability() -> None:
    # A lists a .5, b .45 (unlisted .05), B lists a .5, c .45. A's plain floor for c is
    # min(k-th .45, .05 / 1) = .05, below half the k-th (.225), so tok_l1 uses .225
    # (js/tv keep .05). Per token: a 0, b |ln .45 - ln .225| = ln 2, c the same:
    # tok_l1 = 2 ln 2 / 3 (with the plain floor it was 2 ln 9 / 3).
    a = make_call([pos("a", {"a": 0.5, "b": 0.45})])
    b = make_call([pos("a", {"a": 0.5, "c": 0.45})])
    assert tok_l1_distance(a, b) == pytest.approx(2 * LN(2.0) / 3, abs=1e-12)
    assert distance_matrix([a, b], "tok_l1")[0, 1] == pytest.approx(2 * LN(2.0) / 3, abs=1e-12)
    # TV with the plain floor .05: p = (a .5, b .45, c .05, other 0), q mirrored:
    # ½(0 + .4 + .4 + 0) = 0.4.
    assert tv_distance(a, b) == pytest.approx(0.4, abs=1e-12)


# --------------------------------------------------------------------------- the seed metric


def forum_compute_trial_logprob_diff(baseline_tokens: Any, trial_tokens: Any) -> Any:
    """The forum's function, verbatim apart from formatting."""
    differences = []
    num_tokens = min(len(baseline_tokens), len(trial_tokens))
    for i in range(num_tokens):
        baseline_tok = baseline_tokens[i]
        trial_tok = trial_tokens[i]
        baseline_candidates = baseline_tok["top_logprobs"]
        trial_candidates = trial_tok["top_logprobs"]
        num_candidates = min(len(baseline_candidates), len(trial_candidates))
        for j in range(num_candidates):
            base_lp = baseline_candidates[j]["logprob"]
            trial_lp = trial_candidates[j]["logprob"]
            differences.append(abs(base_lp - trial_lp))
    return np.mean(differences) if differences else np.nan


def test_seed_by_hand_two_tokens_two_candidates() -> None:
    baseline = make_call(
        [(" Yes", -0.1, [(" Yes", -0.1), (" No", -2.4)]), ("!", -0.5, [("!", -0.5), (".", -1.0)])]
    )
    trial = make_call(
        [(" No", -0.2, [(" No", -0.2), (" Yes", -1.8)]), ("!", -0.7, [("!", -0.7), (".", -0.9)])]
    )
    # rank 0 vs rank 0, rank 1 vs rank 1, whatever the tokens:
    # |-0.1 − -0.2| = .1, |-2.4 − -1.8| = .6, |-0.5 − -0.7| = .2, |-1.0 − -0.9| = .1
    # mean = (.1 + .6 + .2 + .1) / 4 = 0.25
    assert seed_distance(baseline, trial) == pytest.approx(0.25, abs=1e-15)


def test_seed_reproduces_the_forum_function_exactly() -> None:
    rng = np.random.default_rng(2024)
    responses = [
        random_response(rng, n_tokens=int(rng.integers(3, 20)), top_k=int(rng.integers(1, 20)))
        for _ in range(8)
    ]
    # Servers may list fewer candidates at some positions: zip to the shorter list, like the forum.
    responses[3]["choices"][0]["logprobs"]["content"][1]["top_logprobs"].pop()
    baseline = responses[0]["choices"][0]["logprobs"]["content"]
    for response in responses[1:]:
        trial = response["choices"][0]["logprobs"]["content"]
        forum = float(forum_compute_trial_logprob_diff(baseline, trial))
        ours = seed_distance(parse_response(responses[0]), parse_response(response))
        assert ours == forum  # same list, same order, same np.mean: bit for bit


def test_seed_is_rank_aligned_so_it_cannot_see_a_yes_no_swap() -> None:
    yes = make_call([pos("Yes", {"Yes": 0.9, "No": 0.1})])
    no = make_call([pos("No", {"No": 0.9, "Yes": 0.1})])
    assert seed_distance(yes, no) == 0.0
    # js and tv match tokens by identity, and both calls took their top token: the answer
    # flipped, distance 1 (the per-position JS is .9·log2(1.8) + .1·log2(.2)).
    assert position_profile(yes, no, "js")[0] == pytest.approx(
        0.9 * L2(1.8) + 0.1 * L2(0.2), abs=1e-15
    )
    assert js_distance(yes, no) == tv_distance(yes, no) == 1.0


def test_seed_keeps_comparing_after_a_flip_js_does_not() -> None:
    head = pos("A", {"A": 0.55, "B": 0.45})
    flipped = pos("B", {"A": 0.55, "B": 0.45})  # B drawn from the same distribution
    tail_a = [pos("x", {"x": 0.99, "y": 0.01})] * 5
    tail_b = [pos("u", {"u": 0.4, "v": 0.35, "w": 0.25})] * 5
    a, b = make_call([head, *tail_a]), make_call([flipped, *tail_b])
    # js stops at the divergence: identical distributions there, a sampled token -> 0
    assert compared_positions(a, b) == 1
    assert js_distance(a, b) == 0.0
    # seed compares unrelated continuations by rank and is dominated by them
    assert seed_distance(a, b) > 1.0


def test_seed_without_stored_order_uses_sorted_alternatives() -> None:
    hand = Position("a", "a", -0.1, (("a", "a", -0.1), ("b", "b", -2.0)))
    other = Position("a", "a", -0.3, (("a", "a", -0.3), ("b", "b", -1.5)))
    a = ParsedCall(text="a", positions=(hand,))
    b = ParsedCall(text="a", positions=(other,))
    # (|-0.1 + 0.3| + |-2.0 + 1.5|) / 2 = (.2 + .5) / 2 = .35
    assert seed_distance(a, b) == pytest.approx(0.35, abs=1e-15)


def test_seed_without_any_candidates_is_zero_not_nan() -> None:
    # The forum returns NaN here; a call with no top_logprobs has nothing to compare.
    response = make_response([("a", -0.1, [])])
    a = parse_response(response)
    b = parse_response(make_response([("b", -0.7, [])]))
    assert seed_distance(a, b) == 0.0
    assert distance_matrix([a, b], "seed")[0, 1] == 0.0


# --------------------------------------------------------------------------- edge cases


EMPTY = parse_response(make_response([], text=""))
ONE = make_call([pos("a", {"a": 0.7, "b": 0.3})])


@pytest.mark.parametrize("metric", BUILTINS)
def test_edge_cases(metric: str) -> None:
    fn = get_metric(metric)
    assert fn(EMPTY, EMPTY) == 0.0
    assert fn(EMPTY, ONE) == EMPTY_VS_NONEMPTY[metric]
    assert fn(ONE, EMPTY) == EMPTY_VS_NONEMPTY[metric]
    twin = make_call([pos("a", {"a": 0.7, "b": 0.3})])
    assert fn(ONE, twin) == 0.0
    matrix = distance_matrix([EMPTY, ONE, twin, EMPTY], metric)
    expected = np.array(
        [
            [0.0, EMPTY_VS_NONEMPTY[metric], EMPTY_VS_NONEMPTY[metric], 0.0],
            [EMPTY_VS_NONEMPTY[metric], 0.0, 0.0, EMPTY_VS_NONEMPTY[metric]],
            [EMPTY_VS_NONEMPTY[metric], 0.0, 0.0, EMPTY_VS_NONEMPTY[metric]],
            [0.0, EMPTY_VS_NONEMPTY[metric], EMPTY_VS_NONEMPTY[metric], 0.0],
        ]
    )
    assert np.array_equal(matrix, expected)


def test_identical_long_calls_are_exactly_zero_in_the_matrix() -> None:
    rng = np.random.default_rng(3)
    response = random_response(rng, n_tokens=20, top_k=20)
    calls = [parse_response(json.loads(json.dumps(response))) for _ in range(4)]
    for metric in BUILTINS:
        assert not distance_matrix(calls, metric).any(), metric
        assert get_metric(metric)(calls[0], calls[1]) == 0.0


def test_degenerate_inputs() -> None:
    assert distance_matrix([]).shape == (0, 0)
    assert distance_matrix([ONE]).tolist() == [[0.0]]


def test_hand_built_positions_need_not_list_the_generated_token() -> None:
    # The distances count the generated token even if a hand-built Position omits it.
    bare = ParsedCall(text="a", positions=(Position("a", "a", LN(0.7), (("b", "b", LN(0.3)),)),))
    assert js_distance(bare, ONE) == 0.0
    assert distance_matrix([bare, ONE]).tolist() == [[0.0, 0.0], [0.0, 0.0]]


# --------------------------------------------------------------------------- matrix vs reference


@pytest.mark.parametrize("metric", BUILTINS)
def test_matrix_matches_reference_on_random_calls(metric: str) -> None:
    rng = np.random.default_rng(11)
    calls = [
        parse_response(
            random_response(
                rng,
                n_tokens=int(rng.integers(0, 9)),
                top_k=int(rng.integers(1, 6)),
                vocab_size=8,
                noise=float(rng.choice([0.0, 0.3, 2.0])),
                temperature=1.0,
            )
        )
        for _ in range(14)
    ]
    matrix = distance_matrix(calls, metric)
    assert np.allclose(matrix, reference_matrix(calls, metric), rtol=0, atol=1e-12)
    assert np.array_equal(matrix, matrix.T)
    assert not np.diag(matrix).any()


# --------------------------------------------------------------------------- properties

_TOKENS = ["a", "b", "c"]
_LOGPROB = st.one_of(
    st.floats(min_value=-40.0, max_value=0.0),
    st.sampled_from([-math.inf, -9999.0, -1e-300, 0.0, 1e-9, 5.0, math.nan, -1e6]),
)


@st.composite
def responses(draw: st.DrawFn, max_len: int = 4) -> dict[str, Any]:
    tokens: list[TokenSpec] = []
    for _ in range(draw(st.integers(0, max_len))):
        alts = draw(st.lists(st.tuples(st.sampled_from(_TOKENS), _LOGPROB), max_size=4))
        tokens.append((draw(st.sampled_from(_TOKENS)), draw(_LOGPROB), alts))
    return make_response(tokens, with_bytes=draw(st.booleans()))


def _parsed(response: dict[str, Any]) -> ParsedCall:
    return parse_response(json.loads(json.dumps(response, allow_nan=True)))


@settings(max_examples=200, deadline=None)
@given(ra=responses(), rb=responses())
def test_metric_properties_on_adversarial_inputs(ra: dict[str, Any], rb: dict[str, Any]) -> None:
    a, b = _parsed(ra), _parsed(rb)
    a_again = _parsed(ra)
    for metric in BUILTINS:
        fn = get_metric(metric)
        d = fn(a, b)
        assert math.isfinite(d)
        assert d >= 0.0
        assert d == fn(b, a), metric  # symmetric bit for bit
        assert fn(a, a_again) == 0.0, metric  # identity -> exactly 0
        if metric in BOUNDED:
            assert d <= 1.0
        if metric == "tok_l1":
            assert d <= -TOK_L1_MIN_LOGPROB
    for metric in ("js", "tv", "tok_l1"):
        profile = position_profile(a, b, metric)
        assert np.isfinite(profile).all()


@settings(max_examples=60, deadline=None)
@given(rs=st.lists(responses(), min_size=2, max_size=6))
def test_matrix_matches_reference_on_adversarial_inputs(rs: list[dict[str, Any]]) -> None:
    calls = [_parsed(r) for r in rs]
    for metric in BUILTINS:
        matrix = distance_matrix(calls, metric)
        assert np.isfinite(matrix).all()
        assert np.array_equal(matrix, matrix.T)
        assert not np.diag(matrix).any()
        assert np.allclose(matrix, reference_matrix(calls, metric), rtol=0, atol=1e-9), metric


def _split_duplicates(response: dict[str, Any], weight: float) -> dict[str, Any]:
    """Split every listed alternative into two entries whose probabilities add up."""
    out = json.loads(json.dumps(response))
    for entry in out["choices"][0]["logprobs"]["content"]:
        split = []
        for alt in entry["top_logprobs"]:
            split.append({**alt, "logprob": alt["logprob"] + LN(weight)})
            split.append({**alt, "logprob": alt["logprob"] + LN(1.0 - weight)})
        entry["top_logprobs"] = split
    return dict(out)


@settings(max_examples=100, deadline=None)
@given(
    seed=st.integers(0, 2**32 - 1),
    weight=st.floats(min_value=0.05, max_value=0.95),
    data=st.data(),
)
def test_invariant_to_alternative_order_and_merged_duplicates(
    seed: int, weight: float, data: Any
) -> None:
    rng = np.random.default_rng(seed)
    ra, rb = (
        random_response(rng, n_tokens=4, top_k=4, vocab_size=6, noise=1.0, temperature=1.0)
        for _ in range(2)
    )
    shuffled = json.loads(json.dumps(ra))
    for entry in shuffled["choices"][0]["logprobs"]["content"]:
        entry["top_logprobs"] = data.draw(st.permutations(entry["top_logprobs"]))
    a, b = parse_response(ra), parse_response(rb)
    a_shuffled = parse_response(shuffled)
    a_split = parse_response(_split_duplicates(ra, weight))
    for metric in ("js", "tv", "tok_l1", "first_token"):
        fn = get_metric(metric)
        assert fn(a_shuffled, b) == fn(a, b)
        assert fn(a_split, b) == pytest.approx(fn(a, b), abs=1e-9)
        assert fn(a, a_split) == pytest.approx(0.0, abs=1e-9)


# --------------------------------------------------------------------------- registry


@pytest.fixture
def registry() -> Iterator[None]:
    saved = dict(_distances._REGISTRY)
    yield
    _distances._REGISTRY.clear()
    _distances._REGISTRY.update(saved)


def _text_flip(a: ParsedCall, b: ParsedCall) -> float:
    return float(a.text != b.text)


def test_builtins_are_registered_after_auto() -> None:
    assert available_metrics()[: len(BUILTINS) + 1] == ("auto", *BUILTINS)
    assert get_metric("js") is js_distance
    assert _distances.DEFAULT_METRIC == "auto"
    assert set(BOUNDED) == set(_distances.BOUNDED_METRICS)


def test_unknown_metric_lists_the_available_ones() -> None:
    with pytest.raises(RolecheckUsageError) as info:
        get_metric("kl")
    message = str(info.value)
    assert "unknown metric 'kl'" in message
    assert "auto, js, tv, tok_l1, first_token, seed, hamming, edit, js_edit" in message
    assert "register_metric" in message
    with pytest.raises(RolecheckUsageError, match="unknown metric"):
        distance_matrix([ONE, ONE], "kl")


@pytest.mark.usefixtures("registry")
def test_custom_metric_registration_and_matrix() -> None:
    register_metric("text_flip", _text_flip)
    assert available_metrics()[-1] == "text_flip"
    assert get_metric("text_flip") is _text_flip
    calls = [make_call([("x", -0.1, [])]), make_call([("y", -0.1, [])]), make_call([])]
    expected = [[0.0, 1.0, 1.0], [1.0, 0.0, 1.0], [1.0, 1.0, 0.0]]
    assert distance_matrix(calls, "text_flip").tolist() == expected
    assert distance_matrix(calls, _text_flip).tolist() == expected  # a bare callable works too


@pytest.mark.usefixtures("registry")
def test_overwrite_protection() -> None:
    register_metric("mine", _text_flip)
    with pytest.raises(RolecheckUsageError, match="already registered; pass overwrite=True"):
        register_metric("mine", _text_flip)
    with pytest.raises(RolecheckUsageError, match="already registered"):
        register_metric("js", _text_flip)
    assert get_metric("js") is js_distance
    # An explicit overwrite of a built-in takes effect (no vectorised shortcut for it) ...
    register_metric("js", _text_flip, overwrite=True)
    calls = [make_call([("x", -0.1, [])]), make_call([("y", -0.2, [])])]
    assert distance_matrix(calls, "js")[0, 1] == 1.0


@pytest.mark.usefixtures("registry")
@pytest.mark.parametrize("name", ["", "  ", " js", 3, None])
def test_bad_metric_names_are_refused(name: Any) -> None:
    with pytest.raises(RolecheckUsageError, match="metric name must be a non-empty string"):
        register_metric(name, _text_flip)


@pytest.mark.usefixtures("registry")
def test_bad_metric_functions_are_refused() -> None:
    with pytest.raises(RolecheckUsageError, match="needs a callable"):
        register_metric("x", "js")  # type: ignore[arg-type]
    with pytest.raises(RolecheckUsageError, match="a registered name or a function"):
        distance_matrix([ONE, ONE], 42)  # type: ignore[arg-type]


@pytest.mark.parametrize("value", [math.nan, math.inf, -0.5, "0.1", None, True])
def test_user_metric_values_are_checked(value: Any) -> None:
    def bad(a: ParsedCall, b: ParsedCall) -> float:
        return value  # type: ignore[no-any-return]

    with pytest.raises(RolecheckUsageError, match=r"metric bad returned .* for calls 0 and 1"):
        distance_matrix([ONE, ONE], bad)


def test_non_parsed_calls_are_refused_with_the_fix() -> None:
    with pytest.raises(RolecheckUsageError, match=r"calls\[1\] is a dict.*parse_response"):
        distance_matrix([ONE, make_response([])])  # type: ignore[list-item]


@pytest.mark.parametrize("metric", ["js", "tv", "tok_l1", "first_token", "seed"])
def test_matrix_is_exactly_symmetric_under_reordering(metric: str) -> None:
    # Bit-identical calls must tie exactly whatever their order: rank tests rely on it.
    rng = np.random.default_rng(7)
    calls = [parse_response(random_response(rng, n_tokens=8, top_k=5)) for _ in range(6)]
    calls += [calls[0]] * 3  # exact copies
    forward = distance_matrix(calls, metric)
    backward = distance_matrix(calls[::-1], metric)[::-1, ::-1]
    assert np.array_equal(forward, backward)
    assert np.array_equal(forward, forward.T)
    odd = forward[1, [0, 6, 7, 8]]  # one call against four identical copies
    assert len(set(odd.tolist())) == 1
