"""The prompt-set engine: exact and seeded p-values, BH, deterministic cases, calibration."""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest

from pytest_rolecheck.core.parse import ParsedCall, Position
from pytest_rolecheck.core.prompt_sets import (
    benjamini_hochberg,
    case_distances,
    compare_prompt_set,
)
from pytest_rolecheck.errors import RolecheckUsageError


def answers(a: list[int], b: list[int]) -> tuple[np.ndarray, int]:
    """A case whose calls are answer labels; distance 1 between different answers."""
    x = np.array(a + b)
    return (x[:, None] != x[None, :]).astype(float), len(a)


def brute_change(d: np.ndarray, in_a: tuple[int, ...]) -> float:
    """delta_c of one labelling, by plain loops (an independent reference)."""
    n = d.shape[0]
    b = [i for i in range(n) if i not in in_a]
    wa = [d[i, j] for i, j in itertools.combinations(in_a, 2)]
    wb = [d[i, j] for i, j in itertools.combinations(b, 2)]
    cross = [d[i, j] for i in in_a for j in b]
    return sum(cross) / len(cross) - min(sum(wa) / len(wa), sum(wb) / len(wb))


def random_set(rng: np.random.Generator, m: int, n: int, shift: float = 0.0) -> dict:
    """m cases of n + n sampled answers; B moves ``shift`` of the mass to a new answer."""
    cases = {}
    for c in range(m):
        p = rng.dirichlet(np.ones(3))
        q = np.append(p * (1 - shift), shift)
        a = rng.choice(4, size=n, p=np.append(p, 0)).tolist()
        b = rng.choice(4, size=n, p=q).tolist()
        cases[f"case-{c}"] = answers(a, b)
    return cases


# --------------------------------------------------------------------------- exactness


def test_exact_p_on_a_hand_example() -> None:
    # Case 1: A = x x, B = y y -> delta 1; its 6 labellings give delta 1 (twice) or -1/2.
    # Case 2: A = x y, B = x y -> delta -1/2, same null. Sum = 1/2; the 36 combinations
    # reach >= 1/2 in 2*2 (sum 2) + 2*4*2 (sum 1/2) = 20 cases: p = 20/36.
    res = compare_prompt_set(
        {"one": answers([0, 0], [1, 1]), "two": answers([0, 1], [0, 1])}, tolerance=0.5
    )
    assert res.exact
    assert res.n_relabellings == 36
    assert res.p_value == pytest.approx(20 / 36)
    assert res.change == pytest.approx((1 - 0.5) / 2)
    one, two = res.cases
    assert (one.deterministic, one.status, one.p_value, one.change) == (True, "changed", None, 1)
    assert two.p_value == pytest.approx(1.0)
    assert two.q_value == pytest.approx(1.0)
    assert two.status == "not flagged"
    assert res.seed is None  # nothing random was drawn


def test_exact_p_matches_brute_force_enumeration() -> None:
    rng = np.random.default_rng(3)
    cases = {
        f"c{k}": answers(rng.integers(0, 3, 2).tolist(), rng.integers(0, 3, 3).tolist())
        for k in range(3)
    }
    # Force non-determinism so every case has a within-case p-value.
    cases["c0"] = answers([0, 1], [1, 2, 2])
    res = compare_prompt_set(cases)
    assert res.exact
    nulls = []
    for d, n_a in cases.values():
        nulls.append([brute_change(d, s) for s in itertools.combinations(range(5), n_a)])
    observed = sum(brute_change(d, tuple(range(n_a))) for d, n_a in cases.values())
    sums = [sum(combo) for combo in itertools.product(*nulls)]
    assert res.n_relabellings == len(sums) == 1000
    assert res.p_value == pytest.approx(sum(s >= observed - 1e-9 for s in sums) / len(sums))
    first = res.cases[0]
    assert first.p_value == pytest.approx(
        sum(v >= first.change - 1e-9 for v in nulls[0]) / len(nulls[0])
    )


def test_monte_carlo_is_seeded_by_the_data_shape() -> None:
    cases = random_set(np.random.default_rng(5), 12, 5, shift=0.3)
    first = compare_prompt_set(cases, n_resamples=2_000)
    again = compare_prompt_set(dict(reversed(list(cases.items()))), n_resamples=2_000)
    assert not first.exact
    assert first.seed is not None
    assert first.n_relabellings == 2_000
    assert first.p_value == again.p_value  # same p forever, whatever the case order
    assert [c.case_id for c in again.cases] == list(reversed(cases))  # input order kept
    other = compare_prompt_set(cases, n_resamples=2_000, seed=first.seed + 1)
    assert other.p_value != first.p_value or other.seed != first.seed
    assert first.smallest_p == pytest.approx(1 / 2_001)


def test_large_cases_use_random_labellings_per_case() -> None:
    # 10 + 10 calls: C(20, 10) = 184,756 labellings, above max_exact.
    rng = np.random.default_rng(2)
    cases = {
        f"c{k}": answers(rng.integers(0, 2, 10).tolist(), rng.integers(0, 2, 10).tolist())
        for k in range(3)
    }
    res = compare_prompt_set(cases, n_resamples=500)
    assert all(not c.exact for c in res.cases)
    assert all(c.p_value is not None and c.p_value >= 1 / 501 for c in res.cases)


# --------------------------------------------------------------------------- BH, deterministic


def test_benjamini_hochberg_against_a_hand_calculation() -> None:
    # Sorted 0.01, 0.03, 0.04, 0.2 -> m p / j = 0.04, 0.06, 0.0533, 0.2 -> running min
    # from the largest: 0.04, 0.0533, 0.0533, 0.2 (back in input order below).
    q = benjamini_hochberg([0.01, 0.04, 0.03, 0.2])
    np.testing.assert_allclose(q, [0.04, 0.16 / 3, 0.16 / 3, 0.2])
    assert benjamini_hochberg([]).size == 0
    with pytest.raises(RolecheckUsageError, match=r"\[0, 1\]"):
        benjamini_hochberg([0.5, 1.5])


def test_deterministic_cases_need_no_statistics() -> None:
    same = answers([0, 0, 0], [0, 0, 0])
    moved = answers([0, 0, 0], [1, 1, 1])
    res = compare_prompt_set({"same": same, "moved": moved, "noisy": answers([0, 1], [0, 1])})
    by_id = {c.case_id: c for c in res.cases}
    assert by_id["same"].status == "no change"
    assert by_id["same"].change == 0.0
    assert by_id["moved"].status == "changed"
    assert by_id["moved"].change == 1.0
    assert by_id["same"].q_value is None
    assert by_id["noisy"].q_value == by_id["noisy"].p_value  # the only statistical case


def test_identical_deterministic_set_certifies_only_with_enough_cases() -> None:
    # Nothing moved anywhere, yet 10 cases cannot exclude a change confined to a fifth of
    # the prompts: the unseen-case guard is 1 - 0.05 ** (1/10) = 0.259 > 0.2.
    ten = compare_prompt_set({f"c{k}": answers([0] * 3, [0] * 3) for k in range(10)})
    assert ten.verdict == "inconclusive"
    assert ten.bound.upper == pytest.approx(1 - 0.05**0.1)
    assert ten.recommended_cases == 14
    twenty = compare_prompt_set({f"c{k}": answers([0] * 3, [0] * 3) for k in range(20)})
    assert twenty.verdict == "equivalent"
    assert twenty.bound.upper == pytest.approx(1 - 0.05**0.05)


def test_every_case_moved_completely_is_different() -> None:
    res = compare_prompt_set({f"c{k}": answers([0, 1] * 2, [2] * 4) for k in range(6)})
    assert res.verdict == "different"
    assert res.p_value <= 0.05
    assert res.bound.effect_lower > 0.2
    assert all(c.status == "changed" for c in res.cases)


def test_few_cases_cannot_show_a_population_change_above_the_tolerance() -> None:
    # Six cases that each moved by exactly 1/3 (A answers x/y, B answers z/w): the t bound
    # alone (zero spread) would call it different; for the population of prompts six values
    # in [0, 1] averaging 1/3 do not exclude a mean of 0.2, so the exact bound keeps it open.
    res = compare_prompt_set({f"c{k}": answers([0, 1] * 2, [2, 3] * 2) for k in range(6)})
    assert res.change == pytest.approx(1 / 3)
    assert res.bound.se == pytest.approx(0.0, abs=1e-12)
    assert res.p_value <= 0.05
    assert res.bound.effect_lower < 0.2
    assert res.verdict == "inconclusive"
    assert (
        compare_prompt_set(
            {f"c{k}": answers([0, 1] * 2, [2, 3] * 2) for k in range(6)}, bounded=False
        ).verdict
        == "different"
    )


def test_unbounded_metric_has_no_guard_and_blind_metric_never_certifies() -> None:
    cases = {f"c{k}": answers([0] * 3, [0] * 3) for k in range(10)}
    assert compare_prompt_set(cases, bounded=False).verdict == "equivalent"
    assert math.isnan(compare_prompt_set(cases, bounded=False).guard)
    assert compare_prompt_set(cases, bounded=False, can_certify=False).verdict == "inconclusive"


# --------------------------------------------------------------------------- the statistic


def test_change_grows_linearly_in_the_share_of_answers_changed() -> None:
    # A answers x half the time and z otherwise; in B a share q of the calls answer y.
    def change(k: int) -> float:
        a = [0, 2] * 10
        b = [1] * k + [0, 2] * ((20 - k) // 2)
        return compare_prompt_set({"c": answers(a, b), "d": answers(a, b)}).change

    base = change(0)
    steps = [change(k) - base for k in (2, 4, 8)]
    # cross = q * d(A, y) + (1 - q) * d(A, A) = 0.5 + 0.5 q while within_a (< within_b)
    # stays put: the change grows by exactly q * (1 - 0.5).
    np.testing.assert_allclose(steps, [0.1 * 0.5, 0.2 * 0.5, 0.4 * 0.5], rtol=1e-9)
    energy_like = [s**2 for s in steps]  # what a q**2 statistic would show
    assert steps[2] / steps[0] == pytest.approx(4) != pytest.approx(energy_like[2] / energy_like[0])


def test_bounds_bracket_the_estimate() -> None:
    res = compare_prompt_set(random_set(np.random.default_rng(9), 15, 4, shift=0.2))
    b = res.bound
    assert b.effect_lower <= b.estimate <= b.upper
    assert b.df == 14
    assert res.n_cases == 15
    assert res.n_calls == 120


# --------------------------------------------------------------------------- validation


@pytest.mark.parametrize(
    ("cases", "match"),
    [
        ([answers([0, 0], [0, 0])], "mapping"),
        ({"only": answers([0, 0], [0, 1])}, "at least 2 cases"),
        ({"a": answers([0], [0, 1]), "b": answers([0, 0], [0, 1])}, "at least 2 calls per arm"),
        ({"a": (np.ones((4, 4)), 2), "b": answers([0, 0], [0, 1])}, "zero diagonal"),
        ({"a": (-np.eye(4), 2), "b": answers([0, 0], [0, 1])}, "negative"),
        ({"a": (np.zeros((4, 3)), 2), "b": answers([0, 0], [0, 1])}, "square"),
        ({"a": np.zeros((4, 4)), "b": answers([0, 0], [0, 1])}, "pair"),
        ({"": answers([0, 0], [0, 1]), "b": answers([0, 0], [0, 1])}, "non-empty"),
    ],
)
def test_invalid_cases_are_refused(cases: object, match: str) -> None:
    with pytest.raises(RolecheckUsageError, match=match):
        compare_prompt_set(cases)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("options", "match"),
    [
        ({"alpha": 1.5}, "alpha"),
        ({"tolerance": 0}, "tolerance"),
        ({"n_resamples": 0}, "n_resamples"),
        ({"max_exact": -1}, "max_exact"),
        ({"seed": -3}, "seed"),
    ],
)
def test_invalid_options_are_refused(options: dict, match: str) -> None:
    cases = {"a": answers([0, 0], [0, 1]), "b": answers([0, 1], [0, 1])}
    with pytest.raises(RolecheckUsageError, match=match):
        compare_prompt_set(cases, **options)


def _call(token: str) -> ParsedCall:
    pos = Position(token=token, key=token, logprob=0.0, alternatives=((token, token, 0.0),))
    return ParsedCall(text=token, positions=(pos,), finish_reason="stop")


def test_case_distances_builds_matrices_and_names_missing_cases() -> None:
    a = {"x": [_call("a"), _call("a")], "y": [_call("a"), _call("b")]}
    b = {"x": [_call("b"), _call("b")], "y": [_call("a"), _call("b")]}
    built = case_distances(a, b)
    assert list(built) == ["x", "y"]
    d, n_a = built["x"]
    assert n_a == 2
    assert d[0, 2] == 1.0
    assert d[0, 1] == 0.0
    with pytest.raises(RolecheckUsageError, match=r"only in B: 'z'.*Run every case"):
        case_distances(a, {**b, "z": []})


# --------------------------------------------------------------------------- calibration


def test_mini_calibration_aa_and_power() -> None:
    # 200 A/A sets of 10 cases x 4 + 4 sampled answers: the permutation p-value is exact,
    # so P(p <= 0.05) stays near 0.05; a rule that ignored the labels or the strata would
    # drift. The same engine must also see a real change (a constant verdict cannot pass).
    rng = np.random.default_rng(11)
    low_p = different = flagged = 0
    for _ in range(200):
        res = compare_prompt_set(random_set(rng, 10, 4), tolerance=0.01, n_resamples=499)
        low_p += res.p_value <= 0.05
        different += res.verdict == "different"
        flagged += any(c.status == "changed" for c in res.cases)
    assert low_p <= 20  # 10% at most; the expected count is 10 (binomial sd 3.1)
    assert different <= 20
    assert flagged <= 20
    power = sum(
        compare_prompt_set(random_set(rng, 10, 4, shift=0.9), n_resamples=499).verdict
        == "different"
        for _ in range(30)
    )
    assert power >= 24
