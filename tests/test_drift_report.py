"""A drift check's arm entry (``verdicts.drift``) and the run's report (``reporting.drift``)."""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from _factories import make_response, random_response

from pytest_rolecheck.commands import report as report_command
from pytest_rolecheck.reporting.drift import DriftReport
from pytest_rolecheck.reporting.html import write_html_report
from pytest_rolecheck.verdicts.compare import compare
from pytest_rolecheck.verdicts.drift import arm_drift, as_arm
from pytest_rolecheck.verdicts.toolcalls import compare_tool_calls


def _fixed(token: str) -> dict[str, Any]:
    return make_response([(token, -0.1, [(token, -0.1), (" other", -2.4)])], text=token)


def _noisy(seed: int, n: int, shift: float = 0.0) -> list[dict[str, Any]]:
    rng = np.random.default_rng(seed)
    return [
        random_response(rng, n_tokens=8, top_k=8, vocab_size=40, noise=0.05, shift=shift)
        for _ in range(n)
    ]


def _tool(name: str) -> dict[str, Any]:
    call = {"id": "c", "type": "function", "function": {"name": name, "arguments": "{}"}}
    return {
        "id": "chatcmpl-1",
        "object": "chat.completion",
        "created": 0,
        "model": "m",
        "choices": [
            {
                "index": 0,
                "message": {"role": "assistant", "content": None, "tool_calls": [call]},
                "finish_reason": "tool_calls",
                "logprobs": None,
            }
        ],
    }


def _entry(result: Any, arm: str = "t.py::test [A]") -> dict[str, Any]:
    return arm_drift(result, arm=arm, test="t.py::test", label="A")


def test_a_deterministic_arm_that_stayed_put_has_no_change_and_p_one() -> None:
    entry = _entry(compare([_fixed(" Yes")] * 4, [_fixed(" Yes")] * 4, labels=("recorded", "live")))
    assert (entry["change"], entry["p_value"]) == (0.0, 1.0)
    # exact: no jitter to bound against
    assert entry["change_lower"] == entry["change_upper"] == 0.0
    assert entry["deterministic"]
    assert entry["typical_recorded"] == entry["typical_live"]
    assert as_arm(entry).change_lower == 0.0


def test_a_deterministic_arm_that_moved_is_exact_with_p_zero() -> None:
    entry = _entry(compare([_fixed(" Yes")] * 4, [_fixed(" No")] * 4))
    assert entry["p_value"] == 0.0
    assert entry["change"] == entry["change_lower"] == entry["change_upper"] == 1.0
    assert (entry["typical_recorded"], entry["typical_live"]) == (" Yes", " No")


def test_a_noisy_arm_keeps_its_bounds_and_counts() -> None:
    result = compare(_noisy(1, 12), _noisy(2, 10, shift=2.0))
    entry = _entry(result)
    assert (entry["n_recorded"], entry["n_live"]) == (12, 10)
    assert entry["change_lower"] <= entry["change"] <= entry["change_upper"]
    assert entry["p_value"] == result.p_value
    assert entry["metric"] == "js"
    assert entry["kind"] == "logprobs"
    assert entry["tolerance"] == 0.2


def test_a_tool_call_arm_uses_the_outcome_distance() -> None:
    result = compare_tool_calls([_tool("search")] * 6, [_tool("lookup")] * 6)
    entry = _entry(result)
    assert entry["kind"] == "tool-calls"
    assert entry["change"] == 1.0
    assert entry["change_lower"] is not None
    assert "search" in entry["typical_recorded"]
    assert "lookup" in entry["typical_live"]


def test_a_prompt_set_arm_shows_its_most_moved_case() -> None:
    recorded = {f"q{c}": [_fixed(f" a{c}")] * 3 for c in range(6)}
    live = dict(recorded, q4=[_fixed(" moved")] * 3)
    entry = _entry(compare(recorded, live))
    assert (entry["n_recorded"], entry["n_live"]) == (18, 18)
    assert (entry["typical_recorded"], entry["typical_live"]) == (" a4", " moved")
    # every case keeps its own line, the moved one first
    assert entry["cases"][0]["id"] == "q4"
    assert [c["change"] for c in entry["cases"]] == [1.0] + [0.0] * 5
    assert entry["cases_moved"] == ["q4"]


def test_an_unbounded_side_round_trips_through_json_as_null() -> None:
    entry = dict(_entry(compare(_noisy(1, 6), _noisy(2, 6))), change_upper=None)
    back = as_arm(json.loads(json.dumps(entry)))
    assert back.change_upper == float("inf")


def _report(*entries: dict[str, Any]) -> DriftReport:
    return DriftReport(entries, alpha=0.05)


def test_the_report_pages_only_for_a_change_beyond_the_tolerance() -> None:
    stayed = _entry(compare([_fixed(" Yes")] * 4, [_fixed(" Yes")] * 4), "t.py::a [A]")
    moved = _entry(compare([_fixed(" Yes")] * 4, [_fixed(" No")] * 4), "t.py::b [A]")
    quiet = _report(stayed)
    assert not quiet.drifted
    assert quiet.targets() == ()
    report = _report(stayed, moved)
    assert report.drifted
    assert report.targets() == ("t.py::test",)
    lines = list(report.lines(save_dir="live", promote="cp -R live/. cassettes/", rewrite="RW"))
    assert lines[0].endswith("1 drifted")
    assert "  t.py::b [A]" in lines
    assert "  t.py::a [A]" not in lines
    assert "no drift: 1 arm" in lines
    assert any("`cp -R live/. cassettes/`, or re-record: `RW`" in line for line in lines)


def test_the_json_block_has_the_counts_and_each_arm_status() -> None:
    moved = _entry(compare([_fixed(" Yes")] * 4, [_fixed(" No")] * 4))
    block = json.loads(json.dumps(_report(moved).to_json()))
    assert (block["drifted"], block["n_arms"], block["n_drifted"]) == (True, 1, 1)
    assert block["arms"][0]["status"] == "drifted"
    assert block["arms"][0]["adjusted_p"] == 0.0
    assert block["rule"].startswith("an arm drifted when its Holm-adjusted p ≤ 0.05")


def test_an_empty_report_says_so_with_the_same_json_keys() -> None:
    empty, full = _report(), _report(_entry(compare([_fixed(" a")] * 4, [_fixed(" a")] * 4)))
    assert list(empty.lines(save_dir=None, promote=None, rewrite="")) == [
        "drift check: no test ran a comparison, nothing to compare with its recording"
    ]
    assert not empty.drifted
    assert empty.to_json().keys() == full.to_json().keys()
    assert empty.to_json()["n_arms"] == 0


def test_the_html_report_lists_drifted_arms_first(tmp_path: Path) -> None:
    pytest.importorskip("matplotlib")
    stayed = _entry(compare([_fixed(" Yes")] * 4, [_fixed(" Yes")] * 4), "t.py::a [A]")
    moved = _entry(compare([_fixed(" Yes")] * 4, [_fixed(" No")] * 4), "t.py::b [A]")
    page = write_html_report([], tmp_path, drift=_report(stayed, moved).to_json())
    html = page.read_text(encoding="utf-8")
    assert "<h2>Drift check</h2>" in html
    assert html.index("t.py::b [A]") < html.index("t.py::a [A]")
    assert "<td>drifted</td>" in html
    assert "<td>no drift</td>" in html


def test_rolecheck_report_keeps_the_drift_block_of_a_json_report(tmp_path: Path) -> None:
    pytest.importorskip("matplotlib")
    moved = _entry(compare([_fixed(" Yes")] * 4, [_fixed(" No")] * 4), "t.py::b [A]")
    report = tmp_path / "report.json"
    report.write_text(json.dumps({"comparisons": [], "drift": _report(moved).to_json()}))
    args = argparse.Namespace(report=report, out=tmp_path / "html")
    assert report_command.run(args) == 0
    assert "t.py::b [A]" in (tmp_path / "html" / "rolecheck-report.html").read_text("utf-8")
