"""Tests of the statistics (pure numbers: distance matrices and distance vectors)."""

from __future__ import annotations

import itertools
import json
import math
from collections.abc import Sequence

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy import stats as sps

from pytest_rolecheck.core.decision import verdict_of
from pytest_rolecheck.core.stats import (
    MIN_CALLS_PER_ARM,
    Bound,
    Verdict,
    baseline_test,
    change_bound,
    cliffs_delta,
    decide,
    flip_test,
    pair_means,
    permutation_test,
    recommend_trials,
    smallest_certifiable,
    split_pairs,
    summarize,
    trial_change_bound,
    unseen_share_upper,
    validate_arm_sizes,
    validate_options,
)
from pytest_rolecheck.errors import RolecheckUsageError

# ---------------------------------------------------------------- helpers


def points_matrix(points: Sequence[float]) -> np.ndarray:
    """Absolute-difference distances between 1-D points (a metric)."""
    x = np.asarray(points, dtype=float)
    return np.asarray(np.abs(x[:, None] - x[None, :]), dtype=float)


def naive_u(d: np.ndarray, labels: np.ndarray) -> float:
    """Mann-Whitney U of cross pairs vs within pairs, from scipy, for one labelling."""
    n = d.shape[0]
    cross: list[float] = []
    within: list[float] = []
    for i, j in itertools.combinations(range(n), 2):
        (cross if labels[i] != labels[j] else within).append(d[i, j])
    return float(sps.mannwhitneyu(cross, within).statistic)


def brute_force_p(d: np.ndarray, n_a: int) -> float:
    """Permutation p-value by enumerating every relabelling with a plain loop."""
    n = d.shape[0]
    observed = np.array([1] * n_a + [0] * (n - n_a))
    u_obs = naive_u(d, observed)
    count = total = 0
    for subset in itertools.combinations(range(n), n_a):
        labels = np.zeros(n, dtype=int)
        labels[list(subset)] = 1
        total += 1
        count += naive_u(d, labels) >= u_obs - 1e-9
    return count / total


def random_matrix(rng: np.random.Generator, n: int, shift: float = 0.0, n_a: int = 0) -> np.ndarray:
    x = rng.standard_normal((n, 3))
    x[n_a:] += shift
    return np.asarray(np.sqrt(((x[:, None, :] - x[None, :, :]) ** 2).sum(-1)), dtype=float)


# ---------------------------------------------------------------- pair means


def test_pair_means_hand_computed() -> None:
    # A = points 0, 1, 2, 3 ; B = points 1, 2, 3, 4 (|x - y| distances).
    d = points_matrix([0, 1, 2, 3, 1, 2, 3, 4])
    e = pair_means(d, 4)
    # within A: pairs 1,2,3,1,2,1 -> 10/6 ; same for B.
    assert e.within_a == pytest.approx(10 / 6)
    assert e.within_b == pytest.approx(10 / 6)
    # cross: sum over a in 0..3, b in 1..4 of |a - b| = 24 -> 24/16 ... computed explicitly:
    cross = np.mean([abs(a - b) for a in range(4) for b in range(1, 5)])
    assert e.cross == pytest.approx(cross)
    assert e.floor == pytest.approx(10 / 6)
    wa, wb, cr = split_pairs(d, 4)
    assert len(wa) == len(wb) == 6
    assert len(cr) == 16


def test_identical_calls_have_zero_floor() -> None:
    d = np.zeros((8, 8))
    e = pair_means(d, 4)
    assert e.floor == 0.0


# ---------------------------------------------------------------- permutation test


def test_permutation_p_hand_computed_extreme_split() -> None:
    # Two tight clusters: every cross distance exceeds every within distance, so the observed
    # labelling has the largest possible U. Only it and its mirror (A <-> B) reach it:
    # p = 2 / C(8, 4) = 2 / 70.
    d = points_matrix([0.0, 0.1, 0.2, 0.3, 10.0, 10.1, 10.2, 10.3])
    res = permutation_test(d, 4)
    assert res.exact
    assert res.n_relabellings == 70
    n_cross, n_within = 16, 12
    assert res.statistic == n_cross * n_within
    assert res.p_value == pytest.approx(2 / 70)
    assert res.smallest_p == pytest.approx(2 / 70)


@pytest.mark.parametrize("seed", [0, 1, 2, 3])
def test_permutation_p_matches_brute_force(seed: int) -> None:
    rng = np.random.default_rng(seed)
    # 4 + 5 calls; distances rounded to create ties (average ranks must match scipy's).
    d = np.round(random_matrix(rng, 9, shift=0.8, n_a=4), 1)
    res = permutation_test(d, 4)
    assert res.exact
    assert res.statistic == pytest.approx(naive_u(d, np.array([1] * 4 + [0] * 5)))
    assert res.p_value == pytest.approx(brute_force_p(d, 4))


def test_monte_carlo_p_close_to_exact_and_reproducible() -> None:
    rng = np.random.default_rng(5)
    d = random_matrix(rng, 12, shift=0.6, n_a=6)
    exact = permutation_test(d, 6)  # C(12, 6) = 924 <= 10^4
    assert exact.exact
    mc = permutation_test(d, 6, max_exact=0, seed=3)
    assert not mc.exact
    assert mc.n_relabellings == 9_999
    # Monte Carlo standard error at p ~ 0.1 is ~0.003.
    assert mc.p_value == pytest.approx(exact.p_value, abs=0.015)
    assert permutation_test(d, 6, max_exact=0, seed=3).p_value == mc.p_value
    assert mc.p_value >= 1 / 10_000


def test_monte_carlo_p_formula_counts_the_observed_labelling() -> None:
    d = points_matrix([0.0, 0.1, 0.2, 0.3, 0.4, 9.0, 9.1, 9.2, 9.3, 9.4])
    res = permutation_test(d, 5, max_exact=0, n_resamples=99, seed=0)
    # Random relabellings almost never reproduce the perfect split: p = (1 + k) / (1 + 99).
    assert res.p_value == pytest.approx((1 + round(res.p_value * 100 - 1)) / 100)
    assert res.p_value <= 0.05


def test_exact_threshold_switches_at_ten_thousand() -> None:
    rng = np.random.default_rng(0)
    assert permutation_test(random_matrix(rng, 14), 7).exact  # 3,432
    assert not permutation_test(random_matrix(rng, 16), 8).exact  # 12,870
    assert not permutation_test(random_matrix(rng, 20), 10).exact  # 184,756


@settings(max_examples=25, deadline=None)
@given(seed=st.integers(0, 10_000), power=st.sampled_from([0.5, 2.0, 3.0]))
def test_p_value_invariant_to_monotone_transform(seed: int, power: float) -> None:
    rng = np.random.default_rng(seed)
    d = random_matrix(rng, 10, shift=0.3, n_a=5)
    assert permutation_test(d, 5).p_value == permutation_test(d**power, 5).p_value


@settings(max_examples=25, deadline=None)
@given(seed=st.integers(0, 10_000))
def test_p_value_invariant_to_order_within_arms(seed: int) -> None:
    rng = np.random.default_rng(seed)
    d = random_matrix(rng, 10, shift=0.3, n_a=5)
    order = np.concatenate([rng.permutation(5), 5 + rng.permutation(5)])
    res = permutation_test(d, 5)
    shuffled = permutation_test(d[np.ix_(order, order)], 5)
    assert shuffled.p_value == res.p_value
    assert shuffled.statistic == res.statistic
    assert 0 < res.p_value <= 1


def test_p_values_roughly_uniform_under_no_effect() -> None:
    """Calibration smoke test: exchangeable calls, 5 + 5 (exact), 300 replications."""
    rng = np.random.default_rng(12345)
    ps = np.array([permutation_test(random_matrix(rng, 10), 5).p_value for _ in range(300)])
    # Size at alpha = 0.05 is at most 0.05 by construction (exact test); allow Monte Carlo error.
    assert np.mean(ps <= 0.05) <= 0.09
    assert 0.38 <= np.mean(ps <= 0.5) <= 0.62
    # And the test has power when the arms differ.
    shifted = [permutation_test(random_matrix(rng, 10, 3.0, 5), 5).p_value for _ in range(20)]
    assert np.mean(np.array(shifted) <= 0.05) >= 0.9


def test_textbook_mwu_on_pairs_is_not_what_we_compute() -> None:
    # With pairs sharing calls, scipy's MWU p-value on pairs differs from the permutation p.
    rng = np.random.default_rng(1)
    d = random_matrix(rng, 10, shift=0.4, n_a=5)
    wa, wb, cr = split_pairs(d, 5)
    textbook = sps.mannwhitneyu(cr, np.concatenate([wa, wb]), alternative="greater").pvalue
    assert permutation_test(d, 5).p_value != pytest.approx(textbook, abs=1e-6)


# ---------------------------------------------------------------- change bounds


def naive_change(d: np.ndarray, a: list[int], b: list[int]) -> tuple[float, float]:
    """``cross - within_a`` and ``cross - within_b`` by explicit loops."""
    wa = np.mean([d[i, j] for i in a for j in a if i < j])
    wb = np.mean([d[i, j] for i in b for j in b if i < j])
    cross = np.mean([d[i, j] for i in a for j in b])
    return float(cross - wa), float(cross - wb)


@pytest.mark.parametrize(("n_a", "n_b", "seed"), [(4, 4, 0), (5, 7, 1), (10, 10, 2)])
def test_change_jackknife_matches_naive_two_sample_loop(n_a: int, n_b: int, seed: int) -> None:
    rng = np.random.default_rng(seed)
    d = random_matrix(rng, n_a + n_b, shift=0.5, n_a=n_a)
    a, b = list(range(n_a)), list(range(n_a, n_a + n_b))
    d_a, d_b = naive_change(d, a, b)
    comp = 0 if d_a >= d_b else 1
    reps_a = [naive_change(d, [i for i in a if i != k], b)[comp] for k in a]
    reps_b = [naive_change(d, a, [j for j in b if j != k])[comp] for k in b]

    def part(reps: list[float]) -> float:
        r = np.array(reps)
        return float((r.size - 1) / r.size * np.sum((r - r.mean()) ** 2))

    se = math.sqrt(part(reps_a) + part(reps_b))
    res = change_bound(d, n_a, bounded=False)
    assert res.estimate == pytest.approx(max(d_a, d_b))
    assert res.se == pytest.approx(se)
    tq = sps.t.ppf(0.95, min(n_a, n_b) - 1)
    assert res.upper >= max(d_a, d_b) + tq * se - 1e-12
    assert res.df == min(n_a, n_b) - 1


def test_change_is_linear_in_a_mixture_and_not_inflated_by_it() -> None:
    # Quiet A; 2 of B's 10 calls are a different answer (distance 1 from everything else).
    n = 10
    d = np.zeros((2 * n, 2 * n))
    other = [2 * n - 2, 2 * n - 1]
    for k in other:
        d[k, :] = d[:, k] = 1.0
        d[k, k] = 0.0
    d[other[0], other[1]] = d[other[1], other[0]] = 0.0
    res = change_bound(d, n)
    assert res.estimate == pytest.approx(0.2)  # the share of rewritten answers
    # 2 changed calls out of 10 cannot show the change is below the default tolerance 0.3
    assert res.upper > 0.3


def test_quiet_arms_cannot_certify_below_what_n_calls_can_see() -> None:
    # Every call identical but one tiny jitter: nothing seen, yet 10 calls cannot exclude a
    # change that shows in a quarter of the calls.
    d = np.zeros((20, 20))
    d[0, 1] = d[1, 0] = 1e-3
    res = change_bound(d, 10)
    assert res.upper == pytest.approx(1 - 0.05 ** (1 / 10), abs=2e-3)
    assert smallest_certifiable(10, 0.05) == pytest.approx(1 - 0.05**0.1)
    assert unseen_share_upper(0.0, 20, 0.05) == pytest.approx(1 - 0.05 ** (1 / 20))


def spread_mixture(n: int, q_calls: int, within: float, rng: np.random.Generator) -> np.ndarray:
    """Sampled-text-like distances: ``within`` +- jitter between any two calls, except
    ``q_calls`` of B's calls rewritten into a text at distance 1 from every other call."""
    m = 2 * n
    d = within + rng.uniform(-0.05, 0.05, size=(m, m))
    d = np.triu(d, 1) + np.triu(d, 1).T
    for k in range(m - q_calls, m):
        d[k, :] = d[:, k] = 1.0
        d[k, k] = 0.0
    return d


@pytest.mark.parametrize(("n", "seed"), [(5, 0), (10, 1), (20, 2)])
def test_relative_change_is_the_absolute_one_over_the_room(n: int, seed: int) -> None:
    rng = np.random.default_rng(seed)
    d = spread_mixture(n, n // 5, 0.7, rng)
    a, b = list(range(n)), list(range(n, 2 * n))
    wa = np.mean([d[i, j] for i in a for j in a if i < j])
    wb = np.mean([d[i, j] for i in b for j in b if i < j])
    d_a, d_b = naive_change(d, a, b)
    rel = change_bound(d, n, bounded=False, relative=True)
    assert rel.estimate == pytest.approx(max(d_a / (1 - wa), d_b / (1 - wb)))
    # Jackknife replicates of the ratio: the dropped call leaves the denominator too.
    comp = 0 if d_a / (1 - wa) >= d_b / (1 - wb) else 1

    def ratio(aa: list[int], bb: list[int]) -> float:
        own = aa if comp == 0 else bb
        w = np.mean([d[i, j] for i in own for j in own if i < j])
        return naive_change(d, aa, bb)[comp] / (1 - w)

    reps_a = np.array([ratio([i for i in a if i != k], b) for k in a])
    reps_b = np.array([ratio(a, [j for j in b if j != k]) for k in b])
    var = sum((r.size - 1) / r.size * np.sum((r - r.mean()) ** 2) for r in (reps_a, reps_b))
    assert rel.se == pytest.approx(math.sqrt(var))


def test_relative_change_reads_the_share_of_answers_rewritten() -> None:
    # Two calls of an arm differ in 70% of their characters: rewriting 4 of B's 20 answers
    # into unrelated text moves the absolute change by only ~0.2 * 0.3, the relative one by
    # the share rewritten.
    rng = np.random.default_rng(3)
    d = spread_mixture(20, 4, 0.7, rng)
    absolute = change_bound(d, 20)
    relative = change_bound(d, 20, relative=True)
    assert absolute.estimate == pytest.approx(0.2 * 0.3, abs=0.02)
    assert relative.estimate == pytest.approx(0.2, abs=0.05)
    # All of B rewritten: the relative change is above any tolerance; the absolute one is not.
    whole = spread_mixture(20, 20, 0.7, rng)
    assert change_bound(whole, 20, relative=True).effect_lower > 0.5
    assert change_bound(whole, 20).effect_lower < 0.35


def test_relative_guard_needs_the_calls_that_could_see_a_rare_rewrite() -> None:
    # A/A with sampled-text spread: the relative upper bound cannot go below what n calls
    # that moved nowhere can exclude (1 - alpha ** (1/n)), as for the absolute change.
    for n in (10, 20):
        d = spread_mixture(n, 0, 0.7, np.random.default_rng(n))
        res = change_bound(d, n, relative=True)
        assert res.upper >= smallest_certifiable(n, 0.05) - 1e-12
    assert (
        change_bound(spread_mixture(20, 0, 0.7, np.random.default_rng(5)), 20, relative=True).upper
        < 0.2
    )


def test_relative_change_without_room_stays_finite() -> None:
    # Every call at distance 1 from every other: no room for a change to show (compare()
    # then refuses to certify), and no division by zero.
    d = np.ones((10, 10)) - np.eye(10)
    res = change_bound(d, 5, relative=True)
    assert all(math.isfinite(x) for x in (res.estimate, res.se, res.lower, res.upper))


def test_trial_change_bound_is_a_difference_of_means() -> None:
    d_a = np.array([0.40, 0.51, 0.51, 0.36, 0.45, 0.21, 0.43, 0.54, 0.40, 0.44])
    d_b = np.array([0.44, 0.49, 0.93, 0.26, 0.46, 0.39, 0.54, 0.39, 0.49, 0.49])
    res = trial_change_bound(d_a, d_b, bounded=False)
    est = d_b.mean() - d_a.mean()
    se = math.sqrt(d_a.var(ddof=1) / 10 + d_b.var(ddof=1) / 10)
    tq = sps.t.ppf(0.95, 9)
    assert res.estimate == pytest.approx(est)
    assert res.se == pytest.approx(se)
    assert res.upper == pytest.approx(est + tq * se)
    assert res.lower == pytest.approx(est - tq * se)
    t2 = sps.t.ppf(0.975, 9)
    assert res.effect_lower == pytest.approx(max(est - t2 * se, -(est + t2 * se)))


# ---------------------------------------------------------------- seed design test


def test_baseline_test_matches_scipy_two_sided() -> None:
    d_a = [0.40, 0.51, 0.52, 0.36, 0.45, 0.21, 0.43, 0.54, 0.39, 0.44]
    d_b = [0.44, 0.49, 2.03, 0.26, 0.46, 0.38, 0.55, 0.37, 0.48, 0.50]
    res = baseline_test(d_a, d_b)
    expected = sps.mannwhitneyu(d_b, d_a, method="auto")
    assert res.p_value == pytest.approx(expected.pvalue)
    assert res.statistic == pytest.approx(expected.statistic)
    assert res.method == "asymptotic"
    small = baseline_test(d_a[:5], d_b[:5])
    assert small.method == "exact"


def test_baseline_test_all_tied_short_circuits() -> None:
    # scipy's one-sided exact method reports p ~ 0.58 for 5 + 5 ties: not evidence of anything.
    assert sps.mannwhitneyu([1.0] * 5, [1.0] * 5, alternative="greater", method="exact").pvalue == (
        pytest.approx(0.579, abs=1e-3)
    )
    res = baseline_test([0.3] * 5, [0.3] * 5)
    assert res.method == "all-tied"
    assert res.p_value == 1.0
    assert res.smallest_p == 1.0


def test_baseline_test_smallest_reachable_p() -> None:
    # No ties, 4 + 4 (exact): the two fully separated labellings of C(8, 4) = 70: 2/70.
    res = baseline_test([0.1, 0.5, 0.3, 0.7], [0.2, 0.4, 0.6, 0.8])
    assert res.method == "exact"
    assert res.smallest_p == pytest.approx(2 / 70)
    # 5 + 4: 2 / C(9, 4) = 2/126.
    res = baseline_test([0.1, 0.5, 0.3, 0.7, 0.9], [0.2, 0.4, 0.6, 0.8])
    assert res.smallest_p == pytest.approx(2 / 126)
    # With ties the asymptotic test (tie-corrected) is used; its minimum is the p-value of
    # the separated arrangement of the same pooled values, whichever arm is low.
    d_a, d_b = [0.1, 0.1, 0.3, 0.2, 0.2], [0.3, 0.2, 0.1, 0.1]
    res = baseline_test(d_a, d_b)
    pooled = sorted(d_a + d_b)
    expected = min(
        sps.mannwhitneyu(pooled[:4], pooled[4:]).pvalue,
        sps.mannwhitneyu(pooled[:5], pooled[5:]).pvalue,
    )
    assert res.method == "asymptotic"
    assert res.smallest_p == pytest.approx(expected)
    assert res.smallest_p <= res.p_value


# ---------------------------------------------------------------- descriptives


def test_cliffs_delta_hand_computed() -> None:
    assert cliffs_delta([3, 4], [1, 2]) == 1.0
    assert cliffs_delta([1, 2], [3, 4]) == -1.0
    # pairs (x, y): (1,2) <, (2,2) =, (3,2) > -> (1 - 1) / 3
    assert cliffs_delta([1, 2, 3], [2]) == 0.0
    # x = [2, 3] vs y = [1, 2, 2]: greater 1+1+1 (3>all) ... count: 2>1, 3>1, 3>2, 3>2 = 4; less 0
    assert cliffs_delta([2, 3], [1, 2, 2]) == pytest.approx(4 / 6)


@settings(max_examples=30, deadline=None)
@given(
    x=st.lists(st.integers(0, 5), min_size=1, max_size=12),
    y=st.lists(st.integers(0, 5), min_size=1, max_size=12),
)
def test_cliffs_delta_equals_rescaled_u(x: list[int], y: list[int]) -> None:
    u = sps.mannwhitneyu(x, y).statistic
    assert cliffs_delta(x, y) == pytest.approx(2 * u / (len(x) * len(y)) - 1)


def test_summarize_uses_population_std() -> None:
    s = summarize([1.0, 2.0, 3.0, 4.0])
    assert (s.mean, s.min, s.max, s.n) == (2.5, 1.0, 4.0, 4)
    assert s.std == pytest.approx(np.std([1, 2, 3, 4]))  # ddof=0, as the seed printed


def test_flip_test_counts_and_fisher() -> None:
    a = ["Yes"] * 9 + ["No"]
    b = ["Yes"] * 4 + ["No"] * 6  # 6 differ from A's modal "Yes"
    res = flip_test(a, b)
    assert (res.changed_a, res.changed_b) == (1, 6)
    assert res.share_a == 0.1
    assert res.share_b == 0.6
    assert res.p_value == pytest.approx(sps.fisher_exact([[1, 9], [6, 4]]).pvalue)


def test_flip_test_counts_every_rewritten_answer() -> None:
    # Issue 10, item 8: every B text differs from every A text, and each arm is constant.
    # Counted against its own modal text each arm showed "0 flips, p = 1".
    same = flip_test(["x"] * 10, ["y"] * 10)
    assert (same.changed_a, same.changed_b) == (0, 10)
    assert same.p_value < 1e-4


# ---------------------------------------------------------------- decision rules


def bound(est: float, se: float, n: int = 10) -> Bound:
    tq = float(sps.t.ppf(0.95, n - 1))
    t2 = float(sps.t.ppf(0.975, n - 1))
    return Bound(
        estimate=est,
        se=se,
        lower=est - tq * se,
        upper=est + tq * se,
        t_quantile=tq,
        df=n - 1,
        effect_lower=est - t2 * se,
    )


def test_decide_equivalent_even_when_a_small_difference_is_significant() -> None:
    d = decide(p_value=0.01, alpha=0.05, bound=bound(0.05, 0.05), tolerance=0.3, n=10)
    assert d.verdict == "equivalent"
    assert not d.difference_detected
    assert d.equivalence_shown
    assert d.recommended_trials is None


def test_decide_different_needs_significance_and_a_change_beyond_the_tolerance() -> None:
    d = decide(p_value=0.01, alpha=0.05, bound=bound(0.9, 0.1), tolerance=0.3, n=10)
    assert d.verdict == "different"
    # Significant but not shown larger than the tolerance: not "different" (issue item 2).
    small = decide(p_value=0.001, alpha=0.05, bound=bound(0.25, 0.05), tolerance=0.3, n=10)
    assert small.verdict == "inconclusive"
    # Large but not significant: not "different" either.
    ns = decide(p_value=0.2, alpha=0.05, bound=bound(0.9, 0.1), tolerance=0.3, n=10)
    assert ns.verdict == "inconclusive"


def test_decide_non_significant_is_never_equivalence() -> None:
    d = decide(p_value=0.6, alpha=0.05, bound=bound(0.1, 0.2), tolerance=0.3, n=10)
    assert d.verdict == "inconclusive"
    assert d.recommended_trials is not None
    assert d.recommended_trials > 10


def test_decide_bound_exactly_at_the_tolerance_is_not_equivalent() -> None:
    b = Bound(estimate=0.1, se=0.1, lower=-0.1, upper=0.3, t_quantile=2.0, df=9)
    assert decide(p_value=0.5, alpha=0.05, bound=b, tolerance=0.3, n=10).verdict == "inconclusive"


def test_decide_two_sided_needs_the_lower_bound_too() -> None:
    b = bound(-0.25, 0.01)
    assert decide(p_value=0.5, alpha=0.05, bound=b, tolerance=0.3, n=10).verdict == "equivalent"
    two = decide(
        p_value=0.5, alpha=0.05, bound=bound(-0.28, 0.05), tolerance=0.3, n=10, two_sided=True
    )
    assert two.verdict == "inconclusive"


def test_decide_refuses_equivalence_for_a_metric_that_cannot_see_every_change() -> None:
    d = decide(
        p_value=0.5, alpha=0.05, bound=bound(0.0, 0.01), tolerance=0.3, n=10, can_certify=False
    )
    assert d.verdict == "inconclusive"


def test_recommend_trials_is_the_smallest_n_that_clears_the_tolerance() -> None:
    est, se, n, tol = 0.05, 0.2, 10, 0.3
    rec = recommend_trials(bound(est, se, n), tol, n, alpha=0.05, bounded=False)
    assert rec is not None

    def upper(m: int) -> float:
        return est + float(sps.t.ppf(0.95, m - 1)) * se * math.sqrt(n / m)

    assert upper(rec) < tol
    assert upper(rec - 1) >= tol
    # A metric in [0, 1] also needs 1 - alpha ** (1/N) below the room left.
    quiet = recommend_trials(bound(0.0, 0.0), 0.1, 10, alpha=0.05, bounded=True)
    assert quiet is not None
    assert 1 - 0.05 ** (1 / quiet) < 0.1 <= 1 - 0.05 ** (1 / (quiet - 1))


def test_recommend_trials_only_where_trials_help() -> None:
    # The estimate sits at the tolerance: more trials would not settle it.
    assert recommend_trials(bound(0.3, 0.1), 0.3, 10, alpha=0.05, bounded=True) is None
    assert recommend_trials(bound(0.2, math.inf), 0.3, 10, alpha=0.05, bounded=True) is None
    # Beyond the tolerance: the N at which the lower bound would clear it.
    est, se, n = 0.8, 0.6, 10
    rec = recommend_trials(bound(est, se, n), 0.3, n, alpha=0.05, bounded=True)
    assert rec is not None
    assert est - sps.t.ppf(0.95, rec - 1) * se * math.sqrt(n / rec) > 0.3


# ---------------------------------------------------------------- validation


@pytest.mark.parametrize(("n_a", "n_b"), [(3, 10), (10, 3), (0, 4)])
def test_too_few_calls_are_refused_with_the_reason(n_a: int, n_b: int) -> None:
    with pytest.raises(RolecheckUsageError, match="at least 4 per arm") as info:
        validate_arm_sizes(n_a, n_b, ("dev", "sys"))
    message = str(info.value)
    assert "never reach p <= 0.05" in message
    assert "jackknife" in message
    assert "trials" in message
    assert MIN_CALLS_PER_ARM == 4


def test_matrix_functions_refuse_small_arms() -> None:
    with pytest.raises(RolecheckUsageError, match="at least 4"):
        permutation_test(np.zeros((7, 7)), 3)


@pytest.mark.parametrize("alpha", [0, 1, 1.5, -0.1, float("nan"), True, "0.05"])
def test_bad_alpha(alpha: object) -> None:
    with pytest.raises(RolecheckUsageError, match="strictly between 0 and 1"):
        validate_options(alpha=alpha, tolerance=0.3, design="all-pairs")  # type: ignore[arg-type]


@pytest.mark.parametrize("tolerance", [0, -1, float("inf"), float("nan"), None, True])
def test_bad_tolerance(tolerance: object) -> None:
    with pytest.raises(RolecheckUsageError, match="largest change that still counts"):
        validate_options(alpha=0.05, tolerance=tolerance, design="all-pairs")  # type: ignore[arg-type]


def test_unknown_design_lists_allowed_values() -> None:
    with pytest.raises(RolecheckUsageError, match="'all-pairs', 'seed'"):
        validate_options(alpha=0.05, tolerance=0.3, design="pairs")


@pytest.mark.parametrize(
    ("matrix", "match"),
    [
        (np.zeros((8, 7)), "square"),
        (np.full((8, 8), -1.0) - np.diag(np.full(8, -1.0)), "negative"),
        (np.where(np.eye(8) == 1, 0.0, np.nan), "NaN"),
        (np.triu(np.ones((8, 8)), 1), "symmetric"),
    ],
)
def test_bad_matrices(matrix: np.ndarray, match: str) -> None:
    with pytest.raises(RolecheckUsageError, match=match):
        pair_means(matrix, 4)


# ---------------------------------------------------------------- verdict names and rule


def test_verdicts_are_their_strings() -> None:
    assert [str(v) for v in Verdict] == ["equivalent", "different", "inconclusive"]
    assert Verdict.DIFFERENT == "different"
    assert repr(Verdict.EQUIVALENT) == "'equivalent'"  # messages print verdicts with !r
    assert json.dumps({"verdict": Verdict.INCONCLUSIVE}) == '{"verdict": "inconclusive"}'
    assert {"different": 1}[Verdict.DIFFERENT] == 1  # report rows read back from JSON


@pytest.mark.parametrize(
    ("p_value", "lower", "upper", "can_certify", "expected"),
    [
        (0.01, 0.3, 0.5, True, "different"),
        (0.2, 0.3, 0.5, True, "inconclusive"),  # not significant
        (0.01, 0.2, 0.5, True, "inconclusive"),  # lower bound at the tolerance: not above it
        (0.5, 0.0, 0.1, True, "equivalent"),
        (0.5, 0.0, 0.1, False, "inconclusive"),  # the metric cannot certify
        (0.5, 0.0, 0.2, True, "inconclusive"),  # upper bound at the tolerance: not below it
        (0.0, 0.1, 0.1, True, "equivalent"),  # an exact change below the tolerance
    ],
)
def test_verdict_rule(
    p_value: float, lower: float, upper: float, can_certify: bool, expected: str
) -> None:
    got = verdict_of(
        p_value=p_value,
        alpha=0.05,
        lower=lower,
        upper=upper,
        tolerance=0.2,
        can_certify=can_certify,
    )
    assert got == expected
