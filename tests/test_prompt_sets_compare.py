"""compare()/compare_tool_calls() over prompt sets: mappings {case_id: [responses]}."""

from __future__ import annotations

import json
from typing import Any

import numpy as np
import pytest
from _factories import make_response

from pytest_rolecheck.core.verdict import Verdict
from pytest_rolecheck.errors import RolecheckAssertionError, RolecheckUsageError
from pytest_rolecheck.reporting.html import write_html_report
from pytest_rolecheck.reporting.row import Row
from pytest_rolecheck.verdicts.assertions import assert_different, assert_equivalent
from pytest_rolecheck.verdicts.compare import compare
from pytest_rolecheck.verdicts.prompt_sets import PromptSetComparison
from pytest_rolecheck.verdicts.toolcalls import compare_tool_calls
from pytest_rolecheck.verdicts.wording import assertion_message

Arm = dict[str, list[dict[str, Any]]]


def _response(case: int, answer: int) -> dict[str, Any]:
    """One answer of a case: its own peaked first token, so two answers are far apart."""
    token = f" c{case}a{answer}"
    return make_response(
        [
            (token, -0.01, [(token, -0.01), (" other", -4.6)]),
            (" end", -0.01, [(" end", -0.01), (" x", -4.6)]),
        ]
    )


def _arm(rng: np.random.Generator, m: int, k: int = 5, moved: range | tuple[int, ...] = ()) -> Arm:
    """``m`` cases, ``k`` calls each; case ``c`` gives its second answer with a small,
    case-dependent probability (every fourth case is deterministic); a moved case answers
    with a new text every time (a wording change that rewrites the answer)."""
    out: Arm = {}
    for c in range(m):
        p = (c % 4) * 0.03
        out[f"q{c:02d}"] = [
            _response(c, 9 if c in moved else int(rng.random() < p)) for _ in range(k)
        ]
    return out


@pytest.fixture(scope="module")
def moved_quarter() -> PromptSetComparison:
    rng = np.random.default_rng(3)
    return compare(_arm(rng, 40), _arm(rng, 40, moved=range(0, 40, 4)), labels=("old", "new"))


def test_a_a_set_is_equivalent_with_enough_cases() -> None:
    rng = np.random.default_rng(1)
    r = compare(_arm(rng, 40), _arm(rng, 40), labels=("developer", "system"))
    assert isinstance(r, PromptSetComparison)
    assert r.verdict is Verdict.EQUIVALENT
    assert r.change_upper < r.tolerance
    assert (r.n_cases, r.trials_a, r.trials_b, r.n_a, r.n_b) == (40, 5, 5, 200, 200)
    assert r.changed == ()
    assert r.kind == "logprobs"
    assert r.metric == "js"


def test_too_few_cases_cannot_certify_and_say_how_many() -> None:
    rng = np.random.default_rng(1)
    r = compare(_arm(rng, 8), _arm(rng, 8))
    assert r.verdict is Verdict.INCONCLUSIVE
    assert "use at least 14 cases" in r.advice


def test_a_wording_change_everywhere_is_different() -> None:
    rng = np.random.default_rng(2)
    r = compare(_arm(rng, 20), _arm(rng, 20, moved=range(20)))
    assert r.verdict is Verdict.DIFFERENT
    assert r.change_lower > r.tolerance
    assert r.p_value <= r.alpha
    assert set(r.changed) == set(a_ids := [c.id for c in r.cases])
    assert len(a_ids) == 20
    assert {c.status for c in r.cases} == {"changed"}


def test_a_change_in_a_quarter_of_the_cases_is_flagged_per_case(
    moved_quarter: PromptSetComparison,
) -> None:
    r = moved_quarter
    assert set(r.changed) == {f"q{c:02d}" for c in range(0, 40, 4)}
    for case in r.cases:
        if case.id in r.changed:
            assert case.typical_text_a != case.typical_text_b
            assert case.typical_text_b.startswith(f" c{int(case.id[1:])}a9")
    # largest change first
    changes = {c.id: c.change for c in r.cases}
    assert [changes[i] for i in r.changed] == sorted((changes[i] for i in r.changed), reverse=True)
    # the moved cases here are the deterministic ones: decided without statistics
    assert all(c.deterministic and c.q_value is None for c in r.cases if c.id in r.changed)


def test_q_values_flag_a_noisy_case_that_moved() -> None:
    rng = np.random.default_rng(5)
    a, b = _arm(rng, 20, k=8), _arm(rng, 20, k=8)
    # q03 varies in A (two answers); B always gives a new one
    a["q03"] = [_response(3, 0)] * 6 + [_response(3, 1)] * 2
    b["q03"] = [_response(3, 7)] * 8
    r = compare(a, b)
    case = next(c for c in r.cases if c.id == "q03")
    assert not case.deterministic
    assert case.q_value is not None
    assert case.p_value is not None
    assert case.p_value <= case.q_value <= r.alpha
    assert r.changed == ("q03",)


def test_the_same_data_give_the_same_p_forever() -> None:
    rng = np.random.default_rng(4)
    a, b = _arm(rng, 20, k=6), _arm(rng, 20, k=6, moved=(1, 2))
    first = compare(a, b)
    assert not first.exact
    assert first.seed == 0
    assert compare(a, b).to_dict() == first.to_dict()
    # the order of the cases does not change a number
    again = compare(dict(reversed(a.items())), dict(reversed(b.items())))
    assert (again.p_value, again.change_upper) == (first.p_value, first.change_upper)


@pytest.mark.parametrize(
    ("a_ids", "b_ids", "message"),
    [
        (("x", "y", "z"), ("x", "y"), r"missing from 'B': 'z'"),
        (("x", "y"), ("x", "y", "w"), r"missing from 'A': 'w'"),
    ],
)
def test_case_ids_must_match(a_ids: tuple[str, ...], b_ids: tuple[str, ...], message: str) -> None:
    calls = [_response(0, 0)] * 4
    with pytest.raises(RolecheckUsageError, match=message):
        compare(dict.fromkeys(a_ids, calls), dict.fromkeys(b_ids, calls))


def test_mixed_and_bad_inputs_are_refused() -> None:
    calls = [_response(0, 0)] * 4
    with pytest.raises(RolecheckUsageError, match="only the first arm is a mapping"):
        compare({"x": calls, "y": calls}, calls)
    with pytest.raises(RolecheckUsageError, match="case ids must be non-empty strings"):
        compare({1: calls, 2: calls}, {1: calls, 2: calls})  # type: ignore[dict-item]
    with pytest.raises(RolecheckUsageError, match="design='seed' is not available"):
        compare({"x": calls, "y": calls}, {"x": calls, "y": calls}, design="seed")
    with pytest.raises(RolecheckUsageError, match="at least 2 cases"):
        compare({"x": calls}, {"x": calls})


def test_to_dict_is_plain_json(moved_quarter: PromptSetComparison) -> None:
    d = moved_quarter.to_dict()
    assert json.loads(json.dumps(d)) == d
    assert d["kind"] == "logprobs"
    assert d["verdict"] == str(moved_quarter.verdict)
    assert d["n_cases"] == 40
    assert len(d["cases"]) == 40
    first = d["cases"][0]
    assert set(first) == {
        "id",
        "status",
        "change",
        "p_value",
        "q_value",
        "deterministic",
        "typical_text_a",
        "typical_text_b",
        "n_a",
        "n_b",
    }
    assert d["changed"] == list(moved_quarter.changed)


def test_report_lists_every_case(moved_quarter: PromptSetComparison) -> None:
    text = str(moved_quarter)
    assert text.startswith(f"verdict: {moved_quarter.verdict}")
    assert all(f"  {c.id}: " in text for c in moved_quarter.cases)
    assert "stratified permutation test over 40 cases" in text


def test_assertion_messages_name_the_cases_that_moved(
    moved_quarter: PromptSetComparison,
) -> None:
    rng = np.random.default_rng(2)
    a, b = _arm(rng, 20), _arm(rng, 20, moved=range(20))
    with pytest.raises(RolecheckAssertionError) as info:
        assert_equivalent(a, b, labels=("old", "new"))
    message = str(info.value)
    assert message.startswith("assert_equivalent failed: old and new were not shown equivalent")
    assert "Compared old with new over 20 cases, 5 calls each per case (metric js)." in message
    assert "Verdict: different" in message
    assert "Cases that moved (20 of 20, largest change first):" in message
    assert "new typically:" in message
    assert "c0a9" in message
    assert "... and 15 more" in message
    assert message.splitlines()[-1].startswith("What to do: if the change is intended, assert it")
    assert isinstance(assert_different(a, b), PromptSetComparison)
    # the words come from one place, whatever made the comparison
    assert assertion_message(moved_quarter, "assert_roles_equivalent").startswith(
        "assert_roles_equivalent failed"
    )


def _tool_response(name: str) -> dict[str, Any]:
    return make_response([], tool_calls=[(name, '{"city":"Paris"}')], logprobs=False)


def test_tool_call_sets() -> None:
    same = {f"t{c}": [_tool_response(f"fn{c}")] * 5 for c in range(20)}
    moved = {f"t{c}": [_tool_response("other" if c < 10 else f"fn{c}")] * 5 for c in range(20)}
    r = compare_tool_calls(same, moved, labels=("api", "prompt"))
    assert isinstance(r, PromptSetComparison)
    assert r.kind == "tool-calls"
    assert r.to_dict()["kind"] == "tool-calls"
    assert r.verdict is Verdict.DIFFERENT
    assert set(r.changed) == {f"t{c}" for c in range(10)}
    moved_case = next(c for c in r.cases if c.id == "t0")
    assert moved_case.typical_text_b.startswith("other(")
    assert compare_tool_calls(same, same).verdict is Verdict.EQUIVALENT
    with pytest.raises(RolecheckUsageError, match="missing from 'B'"):
        compare_tool_calls(same, {"t0": same["t0"], "t1": same["t1"]})


def test_one_summary_row_and_an_html_per_case_table(
    moved_quarter: PromptSetComparison, tmp_path: Any
) -> None:
    pytest.importorskip("matplotlib")
    row = Row.of_result(
        moved_quarter, nodeid="t.py::test_set", usage=(400, 0, 0), source="replayed"
    )
    assert row.is_set
    assert row.title == "old vs new (40 cases)"
    cells = row.cells()
    assert cells["n"] == "200+200"
    assert cells["effect"].startswith(f"{moved_quarter.change:.3g}")
    assert Row.from_json(json.loads(json.dumps(row.to_json()))) == row
    page = write_html_report([row], tmp_path).read_text(encoding="utf-8")
    assert page.count("<tr class='case'>") == 40
    assert "old vs new (40 cases)" in page
    moved = page.index(f"<td class='mono'>{moved_quarter.changed[0]}</td>")
    quiet = page.index("<td>not flagged</td>") if "not flagged" in page else len(page)
    assert moved < quiet  # sorted by change, moved cases first
    assert "c0a9" in page  # a moved case's typical text
