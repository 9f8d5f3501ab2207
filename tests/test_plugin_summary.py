"""The run's summary over the fake API: terminal, JSON and HTML agree; 80 columns; progress."""

from __future__ import annotations

import html
import json
import re
from pathlib import Path

import pytest
from test_plugin_cassettes import CONFTEST, FAKE_API, MESSAGES, ROLE_TESTS

# Imported once, here: a module first imported inside an in-process run is dropped after
# it, and compare() cached by pytest_rolecheck would then meet a second ParsedCall class.
import pytest_rolecheck.core.divergence
import pytest_rolecheck.verdicts.compare  # noqa: F401
from pytest_rolecheck.reporting.row import Row, Totals

pytest_plugins = ["pytester"]

# Two asserts, calls run and compared by hand, and calls run and not compared.
SUITE = (
    ROLE_TESTS
    + """
from pytest_rolecheck import compare

def test_compared_by_hand(rolecheck):
    mine = rolecheck.run(rolecheck.variant(MESSAGES, label="mine"), n=5, model="fake-model")
    theirs = rolecheck.run(rolecheck.variant(MESSAGES[1:], label="theirs"), n=5, model="fake-model")
    compare(mine, theirs, labels=("mine", "theirs"))

def test_calls_only(rolecheck):
    rolecheck.run(rolecheck.variant(MESSAGES), n=3, model="fake-model")
"""
)

LONG_NAMES = (
    MESSAGES
    + """
from pytest_rolecheck import assert_roles_differ

def test_a_rather_long_test_name_that_says_what_the_roles_of_the_prompt_must_change(rolecheck):
    a = rolecheck.variant(MESSAGES, label="developer prompt, the long first version")
    b = rolecheck.variant(MESSAGES[1:], label="the user message alone, without a system prompt")
    rolecheck.assert_variants_differ(a, b, model="fake-model", trials=4)
"""
)


@pytest.fixture
def project(pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch) -> pytest.Pytester:
    for var in ("FAKE_API_DOWN", "FAKE_API_STATUS", "FAKE_API_NOISE", "OPENAI_BASE_URL"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    pytester.makepyfile(_fake_api=FAKE_API)
    pytester.makeconftest(CONFTEST.format(factory="async_client"))
    pytester.makeini("[pytest]\nrolecheck_report = report.json\n")
    return pytester


def _section(stdout: str) -> list[str]:
    """The lines of the rolecheck summary section."""
    lines = stdout.splitlines()
    start = next(i for i, line in enumerate(lines) if re.fullmatch(r"=+ rolecheck =+", line))
    end = next(i for i in range(start + 1, len(lines)) if lines[i].startswith("="))
    return [line for line in lines[start + 1 : end] if line]


def _html_summary(page: str) -> tuple[str, list[list[str]]]:
    head = html.unescape(re.search(r"<p class='meta'>(.*?)</p>", page).group(1))  # type: ignore[union-attr]
    table = page.split("<h1>", 1)[1].split("</table>", 1)[0]
    rows = [
        [html.unescape(re.sub(r"<[^>]+>", "", cell)) for cell in re.findall(r"<td.*?</td>", tr)]
        for tr in re.findall(r"<tr><td>.*?</tr>", table)
    ]
    return head, rows


def test_terminal_json_and_html_agree_on_counts_and_numbers(project: pytest.Pytester) -> None:
    pytest.importorskip("matplotlib.figure")
    pytest.importorskip("matplotlib.backends.backend_agg")
    project.makepyfile(test_suite=SUITE)
    result = project.runpytest("--rolecheck-record-mode=once", "--rolecheck-report-dir=html", "-v")
    result.assert_outcomes(passed=4)
    report = json.loads((project.path / "report.json").read_text())
    rows = [Row.from_json(row) for row in report["comparisons"]]
    # 3 comparisons (2 asserts + 1 by hand) and 1 row of calls that compared nothing
    assert [row.kind for row in rows] == ["logprobs", "logprobs", "logprobs", "calls"]
    totals = report["totals"]
    assert totals["comparisons"] == 3
    assert totals == Totals.of(rows).to_json()
    assert totals["calls"] == sum(row.calls for row in rows) == 12 + 20 + 10 + 3

    section = _section(result.stdout.str())
    head = f"{totals['comparisons']} comparisons: " + ", ".join(
        f"{count} {verdict}" for verdict, count in totals["verdicts"].items()
    )
    calls = (
        f"{totals['calls']} calls ({totals['live_calls']} live, {totals['replayed_calls']} "
        f"replayed), {totals['tokens']} tokens"
    )
    assert section[-2:] == [f"{head};", calls]
    body = section[2:-2]
    assert len(body) == len(rows)
    page = (project.path / "html" / "rolecheck-report.html").read_text(encoding="utf-8")
    html_head, html_rows = _html_summary(page)
    assert html_head.startswith(f"{head}; {calls}.")
    assert len(html_rows) == len(rows)
    for row, line, cells in zip(rows, body, html_rows, strict=True):
        shown = row.cells()
        # every number of the full terminal table is the JSON row's, formatted once (no
        # price table in this run: no cost column)
        priced = ("cost", "cost_now")
        assert line.split() == " ".join(v for k, v in shown.items() if k not in priced).split()
        assert cells[1:] == [
            shown["test"],
            shown["compared"],
            row.verdict.upper(),
            shown["n"],
            shown["effect"],
            shown["p"],
        ]
        # ... and the JSON numbers are the comparison's own
        if row.kind == "logprobs":
            assert row.p_value == row.details["p_value"]
            assert row.change_upper == row.details["change_upper"]


def test_compare_by_hand_is_listed_as_compare(project: pytest.Pytester) -> None:
    project.makepyfile(test_suite=SUITE)
    args = ("--rolecheck-record-mode=once", "-k", "by_hand or calls_only", "-v")
    result = project.runpytest(*args)
    result.assert_outcomes(passed=2)
    result.stdout.fnmatch_lines(
        [
            "*test_compared_by_hand*compare(): mine vs theirs*10*live",
            "*test_calls_only*calls, no comparison*3*live",
        ]
    )
    by_hand, calls_only = json.loads((project.path / "report.json").read_text())["comparisons"]
    assert by_hand["by_hand"] is True
    assert by_hand["title"] == "mine vs theirs"
    assert by_hand["verdict"] in ("different", "equivalent", "inconclusive")
    assert by_hand["calls"] == 10
    assert calls_only["kind"] == "calls"
    assert calls_only["calls"] == 3


def test_default_summary_fits_80_columns(
    project: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("COLUMNS", "80")
    project.makepyfile(test_suite=SUITE, test_long=LONG_NAMES)
    result = project.runpytest("--rolecheck-record-mode=once")
    result.assert_outcomes(passed=5)
    section = _section(result.stdout.str())
    assert section[0].split() == ["test", "compared", "verdict", "effect", "p"]  # all live
    too_wide = [line for line in section if len(line) > 80]
    assert not too_wide, "\n".join(too_wide)
    assert len(section) == 2 + 5 + 2  # header, rule, one line per row, totals
    # shortened sensibly: the test's name before its module, each label's start kept
    assert any(
        re.match(r"test_a_\S*…\S*_change +devel\S*… vs the u\S*", line) for line in section
    ), "\n".join(section)
    # -v: the full table, as wide as it takes
    full = _section(project.runpytest("-v").stdout.str())
    assert full[0].split()[:5] == ["test", "compared", "verdict", "n", "tolerance"]
    assert any(
        "test_long.py::test_a_rather_long_test_name_that_says_what_the_roles_of_the_prompt" in line
        for line in full
    )


def test_live_run_announces_its_calls_and_shows_progress_replay_does_not(
    project: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    project.makepyfile(test_roles=ROLE_TESTS)
    recorded = project.runpytest("--rolecheck-record-mode=once")
    recorded.assert_outcomes(passed=2)
    out = recorded.stdout.str()
    announced = "rolecheck: recording live (mode once): 2 tests, calls counted as they run"
    assert announced in out.splitlines()
    assert len(announced) <= 80
    # one line at the end of each batch (and one every 10 s of a long one)
    recorded.stdout.fnmatch_lines(["rolecheck: calls 12/12  tokens *  * s"])
    recorded.stdout.fnmatch_lines(["rolecheck: calls 20/20  tokens *  * s"])

    rewritten = project.runpytest("--rolecheck-record-mode=all")
    rewritten.assert_outcomes(passed=2)
    rewritten.stdout.fnmatch_lines(
        ["rolecheck: recording live (mode all): 2 tests, 32 calls (as in their old cassettes)"]
    )
    project.makepyfile(test_more=ROLE_TESTS)  # two new tests beside two re-recorded ones
    mixed = project.runpytest("--rolecheck-record-mode=all")
    mixed.assert_outcomes(passed=4)
    mixed.stdout.fnmatch_lines(
        ["rolecheck: recording live (mode all): 4 tests, 32 calls known + those of 2 new"]
    )

    monkeypatch.setenv("FAKE_API_DOWN", "1")
    for args in ((), ("--rolecheck-record-mode=once",)):
        replayed = project.runpytest(*args)
        replayed.assert_outcomes(passed=4)
        assert "recording live" not in replayed.stdout.str()
        assert "rolecheck: calls" not in replayed.stdout.str()


def test_tests_that_do_not_use_rolecheck_are_not_announced(project: pytest.Pytester) -> None:
    project.makepyfile(test_plain="def test_plain():\n    assert True\n")
    result = project.runpytest("--rolecheck-record-mode=all")
    result.assert_outcomes(passed=1)
    assert "recording live" not in result.stdout.str()
    assert not (Path(project.path) / "cassettes").exists()


def test_compact_table_shows_the_source_only_when_rows_differ() -> None:
    from pytest_rolecheck.reporting.summary import SummaryReport

    def row(source: str) -> dict[str, object]:
        return {
            "nodeid": "t.py::t",
            "kind": "logprobs",
            "title": "a vs b",
            "verdict": "different",
            "source": source,
        }

    same = SummaryReport([row("replayed"), row("replayed")])
    assert "source" not in next(same.lines(width=80, full=False))
    assert "source" in next(same.lines(full=True))
    mixed = SummaryReport([row("live"), row("replayed")])
    assert next(mixed.lines(width=80, full=False)).split()[-1] == "source"
