"""Suite-level drift decision (pure numbers): Holm over the arms, then the minimum effect."""

from __future__ import annotations

import math

import numpy as np
import pytest

from pytest_rolecheck.core.drift import (
    BELOW_MARGIN,
    DRIFTED,
    NO_DRIFT,
    ArmDrift,
    decide_drift,
    holm_adjust,
)
from pytest_rolecheck.errors import RolecheckUsageError


def _arm(arm: str, p: float, lower: float = 0.0, tolerance: float = 0.2) -> ArmDrift:
    return ArmDrift(
        arm=arm,
        p_value=p,
        change=lower + 0.05,
        change_lower=lower,
        change_upper=lower + 0.1,
        tolerance=tolerance,
    )


def test_holm_matches_a_hand_calculation() -> None:
    # m = 4, sorted p: .01 .02 .03 .04 -> 4*.01=.04, 3*.02=.06, 2*.03=.06, 1*.04=.04 -> running
    # max .04 .06 .06 .06; returned in input order.
    adjusted = holm_adjust([0.03, 0.01, 0.04, 0.02])
    np.testing.assert_allclose(adjusted, [0.06, 0.04, 0.06, 0.06])


def test_holm_caps_at_one_and_accepts_an_empty_family() -> None:
    np.testing.assert_allclose(holm_adjust([0.5, 0.9]), [1.0, 1.0])
    assert holm_adjust([]).shape == (0,)


def test_statuses_follow_holm_and_the_margin() -> None:
    decision = decide_drift(
        [
            _arm("big", 0.001, lower=0.3),  # 3 * .001 = .003 <= .05, lower .3 > .2
            _arm("jitter", 0.01, lower=0.05),  # 2 * .01 = .02 <= .05, lower .05 <= .2
            _arm("quiet", 0.04, lower=0.5),  # 1 * .04 = .04, but the step-down max keeps .04
        ],
        alpha=0.05,
    )
    by_arm = {a.result.arm: a for a in decision.arms}
    assert [a.result.arm for a in decision.arms] == ["big", "jitter", "quiet"]
    assert by_arm["big"].status == DRIFTED
    assert by_arm["jitter"].status == BELOW_MARGIN
    assert by_arm["quiet"].status == DRIFTED  # .04 <= .05: Holm rejects all three
    assert math.isclose(by_arm["jitter"].adjusted_p, 0.02)
    assert decision.drifted
    assert (decision.n_drifted, decision.n_below_margin, decision.n_no_drift) == (2, 1, 0)
    assert [a.result.arm for a in decision.with_status(DRIFTED)] == ["big", "quiet"]


def test_a_raw_p_below_alpha_is_no_drift_after_holm() -> None:
    # .03 alone would be "significant"; among 3 arms Holm needs .05/3 for the smallest.
    decision = decide_drift([_arm("a", 0.03, 0.5), _arm("b", 0.5), _arm("c", 0.9)])
    assert [a.status for a in decision.arms] == [NO_DRIFT] * 3
    assert not decision.drifted


def test_lower_bound_at_the_tolerance_is_not_drift() -> None:
    # Strictly above: a change exactly at the margin is still equivalent by definition.
    at = decide_drift([_arm("a", 0.0, lower=0.2, tolerance=0.2)])
    above = decide_drift([_arm("a", 0.0, lower=0.2001, tolerance=0.2)])
    assert at.arms[0].status == BELOW_MARGIN
    assert not at.drifted
    assert above.arms[0].status == DRIFTED


def test_to_dict_is_json_ready() -> None:
    d = decide_drift([_arm("a", 0.0, lower=0.3)], alpha=0.01).to_dict()
    assert d["drifted"] is True
    assert d["alpha"] == 0.01
    assert d["n_arms"] == 1
    assert d["arms"][0]["status"] == DRIFTED
    assert d["arms"][0]["adjusted_p"] == 0.0


@pytest.mark.parametrize(
    ("arms", "alpha", "match"),
    [
        ([_arm("a", 1.5)], 0.05, "not in"),
        ([_arm("a", float("nan"))], 0.05, "not in"),
        ([_arm("a", 0.1), _arm("a", 0.2)], 0.05, "appears twice"),
        ([_arm("a", 0.1, tolerance=0.0)], 0.05, "tolerance"),
        ([_arm("a", 0.1, tolerance=float("inf"))], 0.05, "tolerance"),
        ([ArmDrift("a", 0.1, 0.0, 0.2, 0.3, 0.2)], 0.05, "enclose"),
        ([ArmDrift("a", 0.1, float("nan"), 0.0, 0.3, 0.2)], 0.05, "NaN"),
        ([ArmDrift("a", 0.1, 0.0, 0.0, 0.3, "0.2")], 0.05, "number"),  # type: ignore[arg-type]
        (["a"], 0.05, "ArmDrift"),
        ([_arm("a", 0.1)], 1.0, "alpha"),
    ],
)
def test_bad_input_is_refused_with_the_reason(
    arms: list[ArmDrift], alpha: float, match: str
) -> None:
    with pytest.raises(RolecheckUsageError, match=match):
        decide_drift(arms, alpha=alpha)


def test_holm_refuses_a_matrix() -> None:
    with pytest.raises(RolecheckUsageError, match="one-dimensional"):
        holm_adjust([[0.1, 0.2]])


def _page_rate(true_p: list[float], n_null: int, nights: int, seed: int) -> float:
    """Share of nights on which an unchanged arm is named "drifted"."""
    rng = np.random.default_rng(seed)
    false_pages = 0
    for _ in range(nights):
        arms = [_arm(f"true{i}", p, lower=0.5) for i, p in enumerate(true_p)]
        # Unchanged arms: exact null p-values, and a lower bound that would pass the margin,
        # so that only the multiplicity control can keep them quiet.
        arms += [_arm(f"null{i}", float(p), lower=0.5) for i, p in enumerate(rng.random(n_null))]
        decision = decide_drift(arms, alpha=0.05)
        false_pages += any(
            a.status == DRIFTED for a in decision.arms if a.result.arm.startswith("null")
        )
    return false_pages / nights


def test_mini_calibration_family_wise_error_stays_at_alpha() -> None:
    # 1500 nights, se ~ 0.0056 at 0.05: 0.068 is ~3 se above alpha. Per-arm testing pages on
    # ~92% of quiet nights with 50 arms; BH names an unchanged arm on ~1/3 of the nights when
    # 10 arms truly drifted. Only a family-wise rule passes both.
    assert _page_rate([], n_null=50, nights=1500, seed=1) <= 0.068
    assert _page_rate([0.0] * 10, n_null=40, nights=1500, seed=2) <= 0.068


def test_mini_calibration_margin_keeps_jitter_nights_quiet() -> None:
    # Every arm "detectably" noisier (p tiny) but the lower bound under the tolerance: reported,
    # never paged. A rule on significance alone pages every night here.
    rng = np.random.default_rng(3)
    for _ in range(50):
        lowers = rng.uniform(-0.1, 0.2, size=50)
        decision = decide_drift([_arm(f"a{i}", 1e-4, float(lo)) for i, lo in enumerate(lowers)])
        assert not decision.drifted
        assert decision.n_below_margin == 50
