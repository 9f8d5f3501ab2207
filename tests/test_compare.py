"""Tests of compare(), Comparison and the assert_* helpers."""

from __future__ import annotations

import json
from typing import Any

import numpy as np
import pytest
import scipy.stats as sps
from _factories import make_response, random_response

from pytest_rolecheck.core.distances import seed_distance
from pytest_rolecheck.core.parse import parse_response
from pytest_rolecheck.errors import (
    NothingToCompareError,
    RolecheckAssertionError,
    RolecheckUsageError,
)
from pytest_rolecheck.verdicts.assertions import assert_different, assert_equivalent
from pytest_rolecheck.verdicts.compare import Comparison, compare

# ---------------------------------------------------------------- helpers


def noisy_arm(
    seed: int, n: int, *, shift: float = 0.0, noise: float = 0.05
) -> list[dict[str, Any]]:
    """n calls of a toy noisy model; ``shift`` perturbs the model (an effect)."""
    rng = np.random.default_rng(seed)
    return [
        random_response(rng, n_tokens=8, top_k=8, vocab_size=40, noise=noise, shift=shift)
        for _ in range(n)
    ]


def fixed_response(
    tokens: tuple[str, ...] = (" Yes", ".", " Sure"),
    *,
    logprob_shift: float = 0.0,
    fingerprint: str | None = "fp_1",
) -> dict[str, Any]:
    """A deterministic response: each token at logprob -0.1, one alternative at -2.4."""
    spec = [
        (tok, -0.1 + logprob_shift, [(tok, -0.1 + logprob_shift), (" other", -2.4)])
        for tok in tokens
    ]
    return make_response(spec, system_fingerprint=fingerprint)


# ---------------------------------------------------------------- verdicts on noisy data


def test_same_model_is_equivalent() -> None:
    c = compare(noisy_arm(1, 20), noisy_arm(2, 20), labels=("developer", "system"))
    assert c.verdict == "equivalent"
    assert not c.deterministic
    assert c.change_upper is not None
    assert c.change_upper < c.tolerance == 0.2
    assert c.n_a == c.n_b == 20
    assert c.matrix.shape == (40, 40)
    assert c.p_value is not None
    assert 0 < c.p_value <= 1
    assert c.recommended_trials is None


def test_changed_model_is_different() -> None:
    c = compare(noisy_arm(1, 10), noisy_arm(2, 10, shift=2.0))
    assert c.verdict == "different"
    assert c.p_value is not None
    assert c.p_value <= 0.05
    assert c.change_lower is not None
    assert c.change > c.tolerance
    assert c.cliffs_delta > 0.5


def test_same_data_same_p_value_and_seed_changes_it_only_slightly() -> None:
    a, b = noisy_arm(3, 10), noisy_arm(4, 10, shift=0.3)
    first, again = compare(a, b), compare(a, b)
    assert first.p_value == again.p_value
    other = compare(a, b, seed=1)
    assert first.p_value is not None
    assert other.p_value is not None
    assert other.p_value == pytest.approx(first.p_value, abs=0.03)


def test_exact_enumeration_for_seven_calls() -> None:
    c = compare(noisy_arm(1, 7), noisy_arm(2, 7))
    assert "all 3,432 relabellings" in c.test
    c10 = compare(noisy_arm(1, 10), noisy_arm(2, 10))
    assert "9,999 random relabellings" in c10.test


def test_inconclusive_recommends_more_trials() -> None:
    # Same model, but a tolerance far below what 10 calls can certify.
    c = compare(noisy_arm(5, 10, noise=0.02), noisy_arm(6, 10, noise=0.02), tolerance=0.1)
    assert c.verdict == "inconclusive"
    assert c.recommended_trials is not None
    assert c.recommended_trials >= 29  # 1 - 0.05 ** (1/N) < 0.1 needs N >= 29
    assert "no tolerance below 0.259 can be certified" in c.advice
    assert f"increase trials to ~{c.recommended_trials} per arm (now 10)" in c.advice
    assert "not evidence of equivalence" in str(c)


def test_small_real_difference_within_the_tolerance_is_equivalent_with_a_note() -> None:
    # Quiet arms (one near-tie differs) and 30 calls: the permutation test sees the tiny
    # shift, the bound shows it is far below the tolerance.
    c = compare(noisy_arm(1, 30, noise=0.02), noisy_arm(2, 30, noise=0.02, shift=0.05))
    assert c.verdict == "equivalent"
    assert not c.difference_detected


def test_max_excess_tv_is_the_former_name_of_tolerance() -> None:
    a, b = noisy_arm(1, 20), noisy_arm(2, 20)
    loose = compare(a, b, metric="tv", max_excess_tv=0.5)
    assert loose.tolerance == 0.5
    assert loose.verdict == compare(a, b, metric="tv", tolerance=0.5).verdict == "equivalent"
    assert "tolerance 0.5" in str(loose)
    with pytest.raises(RolecheckUsageError, match="not both"):
        compare(a, b, metric="tv", max_excess_tv=0.5, tolerance=0.5)


# ---------------------------------------------------------------- deterministic backends


def test_deterministic_identical_outputs() -> None:
    arm = [fixed_response() for _ in range(4)]
    c = compare(arm, [fixed_response() for _ in range(4)])
    assert c.deterministic
    assert c.verdict == "equivalent"
    assert c.p_value is None
    assert c.change == 0.0
    assert c.change_upper is None
    assert "every call of both arms gives the same output" in str(c)


def test_deterministic_different_token_reports_position() -> None:
    a = [fixed_response() for _ in range(4)]
    b = [fixed_response((" Yes", ".", " No")) for _ in range(4)]
    c = compare(a, b)
    assert c.deterministic
    assert c.verdict == "different"
    assert "deterministic backend: outputs different at position 2" in c.headline
    assert "' Sure' vs ' No'" in c.headline


def test_deterministic_same_tokens_different_logprobs() -> None:
    a = [fixed_response() for _ in range(4)]
    b = [fixed_response(logprob_shift=-0.05) for _ in range(4)]
    c = compare(a, b, metric="tok_l1", tolerance=0.01)
    assert c.verdict == "different"
    assert "at position 0: same token ' Yes', different logprobs" in c.headline


def test_deterministic_difference_below_tolerance_is_equivalent() -> None:
    a = [fixed_response() for _ in range(4)]
    b = [fixed_response(logprob_shift=-1e-9) for _ in range(4)]
    assert compare(a, b).verdict == "equivalent"


def test_deterministic_shortcut_honours_the_tolerance() -> None:
    # Issue 10, item 3: a TV change of ~0.005 with tolerance 0.01 was "different".
    a = [fixed_response() for _ in range(4)]
    b = [fixed_response(logprob_shift=-0.005) for _ in range(4)]
    c = compare(a, b, metric="tv", tolerance=0.02)
    assert c.deterministic
    assert 0 < c.change < 0.02
    assert c.verdict == "equivalent"
    assert compare(a, b, metric="tv", tolerance=0.005).verdict == "different"


def test_one_rewritten_answer_in_five_is_not_certified() -> None:
    # Issue 10, item 1: B answers differently in 1 call of 5 (q = 0.2); the old pooled
    # ratio called such changes equivalent.
    a = [fixed_response() for _ in range(10)]
    b = [fixed_response() for _ in range(8)] + [fixed_response((" No", ".", " Sure"))] * 2
    c = compare(a, b)
    assert not c.deterministic
    assert c.change == pytest.approx(0.2)
    assert c.change_upper is not None
    assert c.change_upper >= 0.3
    assert c.verdict == "inconclusive"


# ---------------------------------------------------------------- seed design


def test_seed_design_reproduces_per_trial_distances() -> None:
    a, b = noisy_arm(1, 11, noise=0.3), noisy_arm(2, 10, noise=0.3)
    c = compare(a, b, design="seed", metric="seed")
    assert c.design == "seed"
    assert (c.n_a, c.n_b) == (10, 10)
    base = parse_response(a[0])
    expected_a = [seed_distance(base, parse_response(r)) for r in a[1:]]
    expected_b = [seed_distance(base, parse_response(r)) for r in b]
    assert c.trial_distances_a == pytest.approx(expected_a)
    assert c.trial_distances_b == pytest.approx(expected_b)
    assert c.summary_a.mean == pytest.approx(np.mean(expected_a))
    assert c.summary_a.std == pytest.approx(np.std(expected_a))  # ddof=0, like the forum
    assert c.floor == pytest.approx(np.mean(expected_a))
    assert c.change == pytest.approx(np.mean(expected_b) - np.mean(expected_a))
    assert "A trials: [" in str(c)
    assert c.matrix.shape == (20, 20)


def test_seed_design_never_certifies_equivalence() -> None:
    # Two arms equally far from one baseline call can still differ from each other.
    c = compare(noisy_arm(1, 21, noise=0.02), noisy_arm(2, 20, noise=0.02), design="seed")
    assert c.verdict == "inconclusive"
    assert "seed design cannot certify equivalence" in c.headline


def test_seed_design_with_explicit_baseline() -> None:
    a, b = noisy_arm(1, 10), noisy_arm(2, 10)
    c = compare(a, b, design="seed", baseline=noisy_arm(9, 1)[0])
    assert (c.n_a, c.n_b) == (10, 10)
    assert c.baseline is not None


def test_seed_design_needs_five_responses_without_baseline() -> None:
    with pytest.raises(RolecheckUsageError, match="leaving 3 trial"):
        compare(noisy_arm(1, 4), noisy_arm(2, 4), design="seed")


def test_seed_design_all_tied_short_circuit() -> None:
    base = fixed_response((" Yes", ".", " Sure"))
    trials = [fixed_response((" No", ".", " Sure")) for _ in range(4)]
    c = compare(
        trials,
        [fixed_response((" No", ".", " Sure")) for _ in range(4)],
        design="seed",
        baseline=base,
    )
    assert c.verdict == "inconclusive"
    assert c.p_value == 1.0
    assert "cannot tell the arms apart" in c.headline
    assert "design='all-pairs'" in c.advice


def test_seed_design_all_tied_message_states_the_two_sided_p() -> None:
    # The test used is two-sided: on all-tied data it gives p = 1, not 0.58 (0.579 is the
    # one-sided exact p for 5 + 5 ties); the message must say what this test gives.
    base = fixed_response((" Yes", ".", " Sure"))
    trials = [fixed_response((" No", ".", " Sure")) for _ in range(5)]
    c = compare(trials, trials, design="seed", baseline=base)
    assert c.trial_distances_a is not None
    assert c.trial_distances_b is not None
    tied = sps.mannwhitneyu(c.trial_distances_b, c.trial_distances_a, alternative="two-sided")
    assert tied.pvalue == 1.0
    assert "two-sided test gives p = 1" in c.headline
    assert "0.58" not in str(c)


def test_seed_design_deterministic_a_with_varying_b_uses_statistics() -> None:
    # A's trials all equal the baseline, B's calls differ from each other: the change is not
    # known exactly, so no deterministic shortcut.
    a = [fixed_response() for _ in range(5)]
    b = [
        fixed_response((" Yes", ".", " Sure")),
        fixed_response((" Yes", ".", " No")),
        fixed_response((" Yes", "!", " Sure")),
        fixed_response((" Yes", "!", " No")),
    ]
    c = compare(a, b, design="seed")
    assert not c.deterministic
    assert c.verdict != "equivalent"
    d = compare(a[:4], [fixed_response((" Yes", ".", " No"))] * 4)
    assert d.deterministic
    assert "every call within an arm is identical" in d.headline


def test_seed_design_alpha_below_smallest_reachable_p_warns() -> None:
    # 4 + 4 trials, no ties: the two-sided exact minimum is 2 / C(8, 4) = 2/70 = 0.0286.
    a = noisy_arm(1, 5, noise=0.3)
    b = noisy_arm(2, 4, shift=2.0, noise=0.3)
    low = compare(a, b, design="seed", metric="seed", alpha=0.01)
    assert any("smallest p-value" in w and "0.0286" in w for w in low.warnings)
    assert low.verdict != "different"
    ok = compare(a, b, design="seed", metric="seed", alpha=0.05)
    assert not any("smallest p-value" in w for w in ok.warnings)


def test_margin_is_refused_with_what_to_use_instead() -> None:
    with pytest.raises(RolecheckUsageError, match="Pass an absolute tolerance= instead"):
        compare(noisy_arm(1, 5), noisy_arm(2, 5), margin=0.5)


def test_seed_design_deterministic() -> None:
    a = [fixed_response() for _ in range(5)]
    c = compare(a, [fixed_response() for _ in range(4)], design="seed")
    assert c.deterministic
    assert c.verdict == "equivalent"


# ---------------------------------------------------------------- descriptives and warnings


def test_fingerprint_difference_warns() -> None:
    a = [fixed_response(fingerprint="fp_a") for _ in range(4)]
    b = [fixed_response(fingerprint="fp_b") for _ in range(4)]
    c = compare(a, b)
    assert c.fingerprints_a == ("fp_a",)
    assert c.fingerprints_b == ("fp_b",)
    assert any("system_fingerprint differs" in w for w in c.warnings)
    assert "fp_a" in str(c)


def test_flips_are_counted_per_arm() -> None:
    a = [fixed_response() for _ in range(9)] + [fixed_response((" No", ".", " Sure"))]
    b = [fixed_response() for _ in range(10)]
    c = compare(a, b)
    assert (c.flips.changed_a, c.flips.changed_b) == (1, 0)
    assert "A 1/10, B 0/10" in str(c)


def test_accepts_parsed_calls_and_sdk_objects() -> None:
    chat = pytest.importorskip("openai.types.chat")
    a, b = noisy_arm(1, 5), noisy_arm(2, 5)
    parsed = compare([parse_response(r) for r in a], [parse_response(r) for r in b])
    objects = compare(
        [chat.ChatCompletion.model_validate(r) for r in a],
        [chat.ChatCompletion.model_validate(r) for r in b],
    )
    plain = compare(a, b)
    assert parsed.p_value == objects.p_value == plain.p_value
    np.testing.assert_array_equal(parsed.matrix, plain.matrix)


# ---------------------------------------------------------------- report and export


def test_str_report_reads_verdict_first_then_numbers_then_advice() -> None:
    c = compare(noisy_arm(1, 10), noisy_arm(2, 10, shift=2.0), labels=("developer", "system"))
    text = str(c)
    lines = text.splitlines()
    assert lines[0] == "rolecheck: developer vs system -> DIFFERENT"
    for needle in ("difference test  p =", "within arms", "cross mean", "change", "Cliff's delta"):
        assert needle in text
    assert "tolerance 0.2" in text
    assert "within-arm distances" in text
    assert lines[-1].startswith("  next: ")
    assert text.index("DIFFERENT") < text.index("within arms") < text.index("next:")


def test_to_dict_is_json_serialisable() -> None:
    # Issue 10, item 8: a statistical result (numpy bools inside) must survive json.dumps.
    c = compare(noisy_arm(1, 6, noise=0.3), noisy_arm(2, 6, noise=0.3, shift=1.0))
    assert not c.deterministic
    data = c.to_dict()
    text = json.dumps(data, allow_nan=False)
    back = json.loads(text)
    assert back["verdict"] == c.verdict
    assert back["matrix"] == c.matrix.tolist()
    assert back["labels"] == ["A", "B"]
    assert back["summary_a"]["mean"] == pytest.approx(c.summary_a.mean)
    assert back["tolerance"] == 0.2
    assert isinstance(back["equivalence_shown"], bool)
    assert len(back["texts_a"]) == 6
    assert "calls_a" not in back
    assert type(data["verdict"]) is str  # plain data: report rows cross to xdist workers


def test_matrix_is_read_only() -> None:
    c = compare(noisy_arm(1, 4), noisy_arm(2, 4))
    with pytest.raises(ValueError, match="read-only"):
        c.matrix[0, 1] = 1.0


# ---------------------------------------------------------------- validation


def test_unknown_metric_lists_available() -> None:
    with pytest.raises(RolecheckUsageError, match="available: auto, js, tv"):
        compare(noisy_arm(1, 4), noisy_arm(2, 4), metric="cosine")


def test_max_excess_tv_requires_tv() -> None:
    with pytest.raises(RolecheckUsageError, match="former name of tolerance= for metric='tv'"):
        compare(noisy_arm(1, 4), noisy_arm(2, 4), max_excess_tv=0.05)


def test_baseline_requires_seed_design() -> None:
    with pytest.raises(RolecheckUsageError, match="only used by design='seed'"):
        compare(noisy_arm(1, 4), noisy_arm(2, 4), baseline=noisy_arm(3, 1)[0])


@pytest.mark.parametrize(
    ("options", "match"),
    [
        ({"alpha": 1.0}, "strictly between 0 and 1"),
        ({"tolerance": 0}, "largest change that still counts"),
        ({"tolerance": 1.5}, r"must be in \(0, 1\]"),
        ({"design": "paired"}, "allowed values: 'all-pairs', 'seed'"),
        ({"seed": -1}, "whole number >= 0"),
        ({"labels": ("A", "A")}, "two different non-empty strings"),
        ({"metric": 3}, "neither a metric name nor a callable"),
    ],
)
def test_invalid_options(options: dict[str, Any], match: str) -> None:
    with pytest.raises(RolecheckUsageError, match=match):
        compare(noisy_arm(1, 4), noisy_arm(2, 4), **options)


def test_alpha_below_smallest_reachable_p_warns() -> None:
    # 4 + 4 calls: the smallest permutation p-value is 2 / C(8, 4) = 0.029.
    c = compare(noisy_arm(1, 4), noisy_arm(2, 4), alpha=0.01)
    assert any("below the smallest p-value" in w and "0.0286" in w for w in c.warnings)
    assert not any(
        "smallest p-value" in w for w in compare(noisy_arm(1, 4), noisy_arm(2, 4)).warnings
    )


def test_too_few_calls() -> None:
    with pytest.raises(RolecheckUsageError, match="arm 'B' has 3 call"):
        compare(noisy_arm(1, 4), noisy_arm(2, 3))


def test_single_response_instead_of_list() -> None:
    with pytest.raises(RolecheckUsageError, match="wrap it in a list"):
        compare(noisy_arm(1, 1)[0], noisy_arm(2, 4))


def test_custom_metric_callable() -> None:
    def length_gap(a: Any, b: Any) -> float:
        return float(abs(len(a.text) - len(b.text)))

    c = compare(noisy_arm(1, 4), noisy_arm(2, 4), metric=length_gap)
    assert c.metric == "length_gap"
    assert isinstance(c, Comparison)


# ---------------------------------------------------------------- assertions


def test_assert_equivalent_returns_the_comparison() -> None:
    c = assert_equivalent(noisy_arm(1, 20), noisy_arm(2, 20))
    assert isinstance(c, Comparison)
    assert c.verdict == "equivalent"


@pytest.mark.parametrize("metric", ["tok_l1", "seed"])
def test_assert_equivalent_refuses_metrics_blind_to_swaps(metric: str) -> None:
    # Issue 10, item 4: a Yes/No swap looks identical to `seed`, a near-tie swap is a
    # fraction of a nat to `tok_l1`; neither may certify equivalence.
    yes = [make_response([(" Yes", -0.1, [(" Yes", -0.1), (" No", -2.4)])])] * 4
    no = [make_response([(" No", -0.1, [(" No", -0.1), (" Yes", -2.4)])])] * 4
    with pytest.raises(RolecheckUsageError, match="cannot pass with metric"):
        assert_equivalent(yes, no, metric=metric)
    assert compare(yes, no, metric=metric, tolerance=5.0).verdict != "equivalent"
    assert compare(yes, no).verdict == "different"


def test_assert_equivalent_raises_with_report_and_next_step() -> None:
    with pytest.raises(RolecheckAssertionError) as info:
        assert_equivalent(noisy_arm(1, 10), noisy_arm(2, 10, shift=2.0), labels=("dev", "sys"))
    assert isinstance(info.value, AssertionError)
    message = str(info.value)
    assert message.startswith("assert_equivalent failed: dev and sys were not shown equivalent")
    assert "rolecheck: dev vs sys -> DIFFERENT" in message
    assert "What to do: if the change is intended, assert it with assert_different(" in message


def test_assert_different_returns_and_raises() -> None:
    c = assert_different(noisy_arm(1, 10), noisy_arm(2, 10, shift=2.0))
    assert c.verdict == "different"
    with pytest.raises(RolecheckAssertionError, match="assert_different failed") as info:
        assert_different(noisy_arm(1, 20), noisy_arm(2, 20))
    assert "lower tolerance=" in str(info.value)


def test_a_detectable_change_below_the_tolerance_is_not_different() -> None:
    # Issue 10, item 2: bit-identical arm vs float jitter is not a behaviour change.
    a = [fixed_response() for _ in range(10)]
    rng = np.random.default_rng(0)
    b = [fixed_response(logprob_shift=float(x)) for x in rng.uniform(-1e-8, -1e-9, 10)]
    c = compare(a, b)
    assert c.verdict == "equivalent"
    assert c.change == 0.0


def test_assert_inconclusive_message_recommends_trials() -> None:
    with pytest.raises(RolecheckAssertionError, match="increase trials to ~"):
        assert_equivalent(noisy_arm(5, 10, noise=0.02), noisy_arm(6, 10, noise=0.02), tolerance=0.1)


def test_assertion_traceback_hides_internals(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(
        test_hidden="""
        from pytest_rolecheck.verdicts.assertions import assert_different
        from _factories import make_response

        def call(tok):
            return make_response([(tok, -0.1, [(tok, -0.1), (" x", -2.4)])])

        def test_it():
            assert_different([call(" a")] * 4, [call(" a")] * 4)
        """
    )
    pytester.syspathinsert(str(__import__("pathlib").Path(__file__).parent))
    result = pytester.runpytest("-q")
    result.assert_outcomes(failed=1)
    out = result.stdout.str()
    assert "assert_different failed" in out
    assert "result = compare(" not in out  # our frames are hidden


@pytest.mark.parametrize("design", ["all-pairs", "seed"])
@pytest.mark.parametrize("check", [compare, assert_equivalent, assert_different])
def test_zero_tokens_in_every_call_is_refused_not_equivalent(check: Any, design: str) -> None:
    # Empty answers make every distance 0: "equivalent / deterministic" would mean nothing.
    empty = [make_response([], text="") for _ in range(5)]
    with pytest.raises(NothingToCompareError) as excinfo:
        check(empty, empty[:4], labels=("developer", "system"), design=design)
    message = str(excinfo.value)
    assert "no call of 'developer' or 'system' produced a token" in message
    assert "5+4 calls, 0 tokens" in message
    assert "max_tokens" in message
    assert not isinstance(excinfo.value, AssertionError)  # a refusal, not a verdict


def test_tool_call_answers_without_tokens_point_to_the_tool_call_asserts() -> None:
    calls = [make_response([], tool_calls=[("f", "{}")]) for _ in range(4)]
    expected = r"8 answered with tool calls.*assert_tool_calls"
    with pytest.raises(NothingToCompareError, match=expected):
        compare(calls, calls)


def test_tokens_in_one_arm_only_still_get_a_verdict() -> None:
    empty = [make_response([], text="") for _ in range(4)]
    full = [make_response([("Hi", -0.1, [("Hi", -0.1), ("Yo", -2.4)])]) for _ in range(4)]
    assert compare(empty, full).verdict == "different"


def test_seed_design_does_not_call_float_jitter_different() -> None:
    # Issue 10, item 6: the seed design under near-deterministic jitter was "different"
    # in 16% of A/A runs at n = 4-5.
    a = [fixed_response() for _ in range(5)]
    rng = np.random.default_rng(3)
    b = [fixed_response(logprob_shift=float(x)) for x in rng.uniform(-1e-8, 1e-8, 4)]
    c = compare(a, b, design="seed")
    assert c.verdict != "different"


def test_sampled_multimodal_same_distribution_is_equivalent() -> None:
    # Issue 10, item 7: sampled outputs from one distribution (three equally likely
    # answers) differ call to call; the distributions do not, so the change is exactly 0.
    def sampled(token: str) -> dict[str, Any]:
        alts = [(" A", -1.0986), (" B", -1.0986), (" C", -1.0986)]
        return make_response([(token, dict(alts)[token], alts)])

    rng = np.random.default_rng(1)
    a = [sampled(str(t)) for t in rng.choice([" A", " B", " C"], 20)]
    b = [sampled(str(t)) for t in rng.choice([" A", " B", " C"], 20)]
    c = compare(a, b)
    assert len({r.text for r in c.calls_a}) > 1
    assert c.deterministic
    assert c.change == 0.0
    assert c.verdict == "equivalent"
