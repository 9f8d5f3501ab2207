"""--rolecheck-prices / rolecheck_prices over the fake API: checked at start, cost per row
in the terminal, JSON and HTML, replays at $0 with their recorded cost, and the estimate
announced before a live run."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest
from test_plugin_cassettes import CONFTEST, FAKE_API, ROLE_TESTS

pytest_plugins = ["pytester"]

# USD per 1M tokens; the pattern must not win over the exact name.
PRICES = """\
fake-model: {input: 2.0, output: 8.0}
"fake-*": {input: 1000, output: 1000}
"""
INPUT, OUTPUT = 2.0, 8.0
# Calls of ROLE_TESTS: 12 at the default max_tokens (20), 20 at max_tokens=6.
CALLS, ANSWER_CAP = 32, 12 * 20 + 20 * 6


@pytest.fixture
def project(pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch) -> pytest.Pytester:
    for var in ("FAKE_API_DOWN", "FAKE_API_STATUS", "FAKE_API_NOISE", "OPENAI_BASE_URL"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    pytester.makepyfile(_fake_api=FAKE_API, test_roles=ROLE_TESTS)
    pytester.makeconftest(CONFTEST.format(factory="async_client"))
    pytester.makeini("[pytest]\nrolecheck_report = report.json\n")
    (pytester.path / "prices.yaml").write_text(PRICES, encoding="utf-8")
    return pytester


def _report(project: pytest.Pytester) -> dict[str, Any]:
    data: dict[str, Any] = json.loads((project.path / "report.json").read_text("utf-8"))
    return data


def _usd(prompt: int, completion: int) -> float:
    return (prompt * INPUT + completion * OUTPUT) / 1_000_000


def _shown(usd: float) -> str:
    from pytest_rolecheck.verdicts.numbers import fmt_usd

    return fmt_usd(usd)


def test_live_calls_cost_their_tokens_and_replays_cost_nothing_now(
    project: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    live = project.runpytest("--rolecheck-record-mode=once", "--rolecheck-prices=prices.yaml")
    live.assert_outcomes(passed=2)
    report = _report(project)
    rows = report["comparisons"]
    for row in rows:  # the exact price, not the pattern's
        assert row["models"]["fake-model"]["calls"] == row["calls"]
        assert row["cost"] == pytest.approx(_usd(row["prompt_tokens"], row["completion_tokens"]))
        assert row["no_price"] == []
    total = sum(row["cost"] for row in rows)
    assert report["totals"]["cost_usd"] == pytest.approx(total)
    assert report["totals"]["replayed_cost_usd"] == 0
    live.stdout.fnmatch_lines([f"cost ~{_shown(total)} live"])
    # the compact table has a cost column: each row's own
    live.stdout.fnmatch_lines([f"test_*~{_shown(row['cost'])}" for row in rows])

    monkeypatch.setenv("FAKE_API_DOWN", "1")  # a replay touches no server
    replay = project.runpytest("--rolecheck-prices=prices.yaml", "-v")
    replay.assert_outcomes(passed=2)
    replay.stdout.fnmatch_lines([f"replay cost $0 (recorded cost ~{_shown(total)})"])
    replay.stdout.fnmatch_lines([f"*replayed  $0 (~{_shown(rows[0]['cost'])} recorded)"])
    totals = _report(project)["totals"]
    assert totals["cost_usd"] == 0
    assert totals["replayed_cost_when_recorded_usd"] == pytest.approx(total)

    replay = project.runpytest("--rolecheck-report-dir=html")  # no table: no cost anywhere
    replay.assert_outcomes(passed=2)
    assert "cost ~" not in replay.stdout.str()
    assert "cost_usd" not in _report(project)["totals"]


def test_the_html_report_shows_each_cost(project: pytest.Pytester) -> None:
    pytest.importorskip("matplotlib")
    result = project.runpytest(
        "--rolecheck-record-mode=once", "--rolecheck-prices=prices.yaml", "--rolecheck-report-dir=h"
    )
    result.assert_outcomes(passed=2)
    page = (project.path / "h" / "rolecheck-report.html").read_text(encoding="utf-8")
    rows = _report(project)["comparisons"]
    assert f"cost ~{_shown(sum(row['cost'] for row in rows))} live" in page
    assert "<th>cost</th>" in page
    for row in rows:
        assert f"<td class='num'>~{_shown(row['cost'])}</td>" in page


def test_a_model_without_a_price_is_named_never_counted_as_zero(
    project: pytest.Pytester,
) -> None:
    (project.path / "prices.yaml").write_text("gpt-4.1*: {input: 2, output: 8}\n")
    result = project.runpytest("--rolecheck-record-mode=once", "--rolecheck-prices=prices.yaml")
    result.assert_outcomes(passed=2)
    result.stdout.fnmatch_lines(
        ["*no price for fake-model", "no price for fake-model: its calls are not counted"]
    )
    report = _report(project)
    assert [row["cost"] for row in report["comparisons"]] == [None, None]
    assert report["totals"]["no_price"] == ["fake-model"]
    assert "$0" not in result.stdout.str()


def test_a_live_run_announces_its_planned_calls_tokens_and_cost(
    project: pytest.Pytester,
) -> None:
    project.runpytest("--rolecheck-record-mode=once").assert_outcomes(passed=2)
    prompts = sum(row["prompt_tokens"] for row in _report(project)["comparisons"])
    tokens = prompts + ANSWER_CAP
    estimate = "(estimate: recorded prompts, answers at max_tokens)"

    from pytest_rolecheck.verdicts.numbers import fmt_rounded_count

    priced = project.runpytest("--rolecheck-record-mode=all", "--rolecheck-prices=prices.yaml")
    priced.assert_outcomes(passed=2)
    line = (
        f"rolecheck: planned: {CALLS} calls, ~{fmt_rounded_count(tokens)} tokens, "
        f"~{_shown(_usd(prompts, ANSWER_CAP))} {estimate}"
    )
    assert line in priced.stdout.str().splitlines()

    # without a price table: still the calls and tokens; a new test is said not counted
    project.makepyfile(test_new=ROLE_TESTS.replace("def test_", "def test_new_"))
    plain = project.runpytest("--rolecheck-record-mode=all")
    plain.assert_outcomes(passed=4)
    line = (
        f"rolecheck: planned: {CALLS} calls, ~{fmt_rounded_count(tokens)} tokens "
        f"+ 2 new tests not counted {estimate}"
    )
    assert line in plain.stdout.str().splitlines()
    assert "$" not in plain.stdout.str()


def test_a_drift_check_goes_live_and_is_announced_with_its_estimate(
    project: pytest.Pytester,
) -> None:
    project.runpytest("--rolecheck-record-mode=once").assert_outcomes(passed=2)
    drift = project.runpytest("--rolecheck-drift", "--rolecheck-prices=prices.yaml")
    drift.assert_outcomes(passed=2)
    drift.stdout.fnmatch_lines(
        [
            f"rolecheck: drift check, live: 2 tests, {CALLS} calls (as in their old cassettes)",
            f"rolecheck: planned: {CALLS} calls, ~* tokens, ~$0.0* (estimate: *)",
        ]
    )
    assert _report(project)["totals"]["cost_usd"] > 0


@pytest.mark.parametrize(
    ("args", "content", "message"),
    [
        (
            ["--rolecheck-prices=prices.txt"],
            None,
            "*--rolecheck-prices: invalid value 'prices.txt': expected the path of a price table "
            "file (.yaml, .yml, .json); for a name without that suffix, rename the file.",
        ),
        (
            ["--rolecheck-prices=nowhere.yaml"],
            None,
            "*no price table at */nowhere.yaml: check the path (--rolecheck-prices is relative "
            "to where pytest was started, the ini option rolecheck_prices to the rootdir).",
        ),
        (
            ["--rolecheck-prices=prices.yaml"],
            "fake-model: {input: 2, output: 8}\nother:\n  input: 1\n  ouput: 3\n",
            "*prices.yaml:4: unknown key 'ouput' for 'other'; allowed: input, output, "
            "cached_input; fix the price table: *",
        ),
        (
            ["-o", "rolecheck_prices=prices.yaml"],
            "fake-model: {input: -2, output: 8}\n",
            "*prices.yaml:1: input must be a number ≥ 0 (USD per 1M tokens), got '-2'; *",
        ),
    ],
    ids=["suffix", "missing", "unknown key", "negative via ini"],
)
def test_a_bad_price_table_is_a_usage_error_before_any_test(
    project: pytest.Pytester, args: list[str], content: str | None, message: str
) -> None:
    if content is not None:
        (project.path / "prices.yaml").write_text(content, encoding="utf-8")
    result = project.runpytest("--rolecheck-record-mode=once", *args)
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines([message])
    assert not (project.path / "cassettes").exists()


def test_relative_paths_ini_from_the_rootdir_command_line_from_where_pytest_started(
    project: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    table = project.path / "conf" / "prices.json"
    table.parent.mkdir()
    table.write_text('{\n  "fake-model": {"input": 2, "output": 8}\n}\n', encoding="utf-8")
    project.makeini(
        "[pytest]\nrolecheck_report = report.json\nrolecheck_prices = conf/prices.json\n"
    )
    sub = project.mkdir("sub")
    monkeypatch.chdir(sub)
    args = ("--rolecheck-record-mode=once", "--rootdir", str(project.path), str(project.path))
    project.runpytest(*args).assert_outcomes(passed=2)
    assert _report(project)["totals"]["cost_usd"] > 0

    typed = project.runpytest(*args, "--rolecheck-prices=conf/prices.json")
    assert typed.ret == pytest.ExitCode.USAGE_ERROR
    typed.stderr.fnmatch_lines([f"*no price table at {sub / 'conf' / 'prices.json'}:*"])
    project.runpytest(*args, "--rolecheck-prices=../conf/prices.json").assert_outcomes(passed=2)


def test_the_option_is_not_a_marker_keyword(project: pytest.Pytester) -> None:
    project.makepyfile(
        test_marker="import pytest\n\n@pytest.mark.rolecheck(prices='p.yaml')\n"
        "def test_x(rolecheck):\n    pass\n"
    )
    result = project.runpytest("test_marker.py")
    result.assert_outcomes(errors=1)
    assert re.search(r"unknown argument 'prices'", result.stdout.str())
    assert Path(project.path / "prices.yaml").exists()


@pytest.mark.e2e
def test_the_local_model_costs_and_plans_as_priced(pytester: pytest.Pytester) -> None:
    """The real server's usage, through xdist: each row's cost is its tokens at the table's
    price, and a re-record's estimate holds the prompts it then sends and caps the answers."""
    from test_e2e_local import INI, SMALL_TESTS, require_backend

    from pytest_rolecheck.verdicts.numbers import fmt_rounded_count

    require_backend()
    pytester.makeini(INI + "rolecheck_prices = prices.yaml\n")
    pytester.makepyfile(test_small=SMALL_TESTS)
    (pytester.path / "prices.yaml").write_text('"smollm2-*": {input: 0.1, output: 0.4}\n')
    args = ("-p", "no:cacheprovider", "--rolecheck-local")
    recorded = pytester.runpytest_subprocess(*args, "-n", "2", "--rolecheck-record-mode=once")
    recorded.assert_outcomes(passed=3)
    rows = _report(pytester)["comparisons"]
    for row in rows:
        (model, tokens), *others = row["models"].items()
        assert not others
        assert model.startswith("smollm2")
        assert tokens["prompt_tokens"] == row["prompt_tokens"] > 0
        assert row["cost"] == pytest.approx(
            (row["prompt_tokens"] * 0.1 + row["completion_tokens"] * 0.4) / 1e6
        )
    prompts = sum(row["prompt_tokens"] for row in rows)
    calls = sum(row["calls"] for row in rows)

    again = pytester.runpytest_subprocess(*args, "--rolecheck-record-mode=all")
    again.assert_outcomes(passed=3)
    planned = prompts + calls * 6  # rolecheck_max_tokens = 6
    again.stdout.fnmatch_lines(
        [f"rolecheck: planned: {calls} calls, ~{fmt_rounded_count(planned)} tokens, ~$0.0*"]
    )
    rerecorded = _report(pytester)["comparisons"]
    assert sum(row["prompt_tokens"] for row in rerecorded) == prompts  # the same requests
    assert sum(row["completion_tokens"] for row in rerecorded) <= calls * 6
