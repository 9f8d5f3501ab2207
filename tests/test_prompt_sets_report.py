"""A prompt set compared inside a test: one summary row, the cases in JSON and HTML."""

from __future__ import annotations

import json

import pytest
from test_plugin_cassettes import CONFTEST, FAKE_API

# Imported once, here: a module first imported inside an in-process run is dropped after
# it, and compare() cached by pytest_rolecheck would then meet a second ParsedCall class.
import pytest_rolecheck.verdicts.compare  # noqa: F401

pytest_plugins = ["pytester"]

SUITE = """
from pytest_rolecheck import compare

def test_set_by_hand(rolecheck):
    mine, theirs = {}, {}
    for i in range(4):
        user = {"role": "user", "content": f"Write a short poem about topic {i}"}
        system = {"role": "system", "content": "You are a helpful AI assistant"}
        mine[f"topic-{i}"] = rolecheck.run(
            rolecheck.variant([system, user], label="mine"), n=3, model="fake-model"
        )
        theirs[f"topic-{i}"] = rolecheck.run(
            rolecheck.variant([user], label="theirs"), n=3, model="fake-model"
        )
    result = compare(mine, theirs, labels=("mine", "theirs"))
    assert result.n_cases == 4
"""


@pytest.fixture
def project(pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch) -> pytest.Pytester:
    for var in ("FAKE_API_DOWN", "FAKE_API_STATUS", "FAKE_API_NOISE", "OPENAI_BASE_URL"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    pytester.makepyfile(_fake_api=FAKE_API)
    pytester.makeconftest(CONFTEST.format(factory="async_client"))
    pytester.makeini("[pytest]\nrolecheck_report = report.json\n")
    return pytester


def test_a_set_is_one_row_with_its_cases(project: pytest.Pytester) -> None:
    pytest.importorskip("matplotlib")
    project.makepyfile(test_suite=SUITE)
    result = project.runpytest("--rolecheck-record-mode=once", "--rolecheck-report-dir=html", "-v")
    result.assert_outcomes(passed=1)
    result.stdout.fnmatch_lines(["*test_set_by_hand*compare(): mine vs theirs (4 cases)*24*live"])
    (row,) = json.loads((project.path / "report.json").read_text())["comparisons"]
    assert row["title"] == "mine vs theirs (4 cases)"
    assert row["by_hand"] is True
    assert (row["n_a"], row["n_b"], row["calls"]) == (12, 12, 24)
    assert [c["id"] for c in row["details"]["cases"]] == [f"topic-{i}" for i in range(4)]
    page = (project.path / "html" / "rolecheck-report.html").read_text(encoding="utf-8")
    assert page.count("<tr class='case'>") == 4
    assert "Per case, largest change first" in page
