"""Options, ini keys and markers: validation and precedence (pytester)."""

from __future__ import annotations

from pathlib import Path

import pytest

from pytest_rolecheck import cli
from pytest_rolecheck.settings import MARKER_KEYS, PYTEST_OPTIONS

pytest_plugins = ["pytester"]

SHOW_SETTINGS = """
import json
from pytest_rolecheck import plugin

def test_show(request, rolecheck):
    s = rolecheck.settings
    print("SETTINGS=" + json.dumps({
        "record_mode": s.record_mode, "model": s.model, "trials": s.trials, "alpha": s.alpha,
        "tolerance": s.tolerance, "concurrency": s.concurrency, "metric": s.metric,
        "design": s.design,
        "local": s.local, "temperature": s.temperature, "max_tokens": s.max_tokens,
    }))
"""


def _settings(result: pytest.RunResult) -> dict[str, object]:
    import json

    for line in result.outlines:
        if "SETTINGS=" in line:
            value: dict[str, object] = json.loads(line.split("SETTINGS=", 1)[1])
            return value
    raise AssertionError("no SETTINGS line in output:\n" + result.stdout.str())


BAD_VALUES = {
    "record_mode": ("sometimes", "none, once, all, rewrite"),
    "concurrency": ("0", "whole number ≥ 1"),
    "trials": ("3", "whole number ≥ 4"),
    "alpha": ("1.5", "(0, 1)"),
    "tolerance": ("-1", "(0, ∞)"),
    "design": ("pairs", "all-pairs, seed"),
    "max_tokens": ("many", "whole number ≥ 1"),
    "top_logprobs": ("50", "whole number in [1, 20]"),
    "temperature": ("3", "[0, 2]"),
    "timeout": ("inf", "(0, 86400]"),
}


@pytest.mark.parametrize("name", sorted(BAD_VALUES))
def test_bad_cli_value_is_a_usage_error(pytester: pytest.Pytester, name: str) -> None:
    value, allowed = BAD_VALUES[name]
    pytester.makepyfile("def test_x(): pass")
    result = pytester.runpytest(f"--rolecheck-{name.replace('_', '-')}={value}")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines([f"*--rolecheck-{name.replace('_', '-')}*{value}*"])
    assert allowed in result.stderr.str()


@pytest.mark.parametrize("name", sorted(BAD_VALUES))
def test_bad_ini_value_is_a_usage_error(pytester: pytest.Pytester, name: str) -> None:
    value, allowed = BAD_VALUES[name]
    pytester.makeini(f"[pytest]\nrolecheck_{name} = {value}\n")
    pytester.makepyfile("def test_x(): pass")
    result = pytester.runpytest()
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines([f"*rolecheck_{name}*{value}*"])
    assert allowed in result.stderr.str()


def test_unknown_metric_is_a_usage_error(pytester: pytest.Pytester) -> None:
    pytester.makepyfile("def test_x(): pass")
    result = pytester.runpytest("--rolecheck-metric=cosine")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(["*--rolecheck-metric*cosine*js*tv*"])


def test_defaults(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(SHOW_SETTINGS)
    result = pytester.runpytest("-s")
    result.assert_outcomes(passed=1)
    assert _settings(result) == {
        "record_mode": "none",
        "model": None,
        "trials": 20,
        "alpha": 0.05,
        "tolerance": None,
        "concurrency": 8,
        "metric": "auto",
        "design": "all-pairs",
        "local": False,
        "temperature": 0.0,
        "max_tokens": 20,
    }


def test_precedence_marker_over_cli_over_ini(pytester: pytest.Pytester) -> None:
    pytester.makeini(
        "[pytest]\nrolecheck_trials = 6\nrolecheck_alpha = 0.01\nrolecheck_tolerance = 0.2\n"
        "rolecheck_model = ini-model\nrolecheck_local = true\n"
    )
    pytester.makepyfile(
        SHOW_SETTINGS.replace(
            "def test_show", "import pytest\n@pytest.mark.rolecheck(trials=12)\ndef test_show"
        )
    )
    result = pytester.runpytest("-s", "--rolecheck-trials=8", "--rolecheck-alpha=0.1")
    result.assert_outcomes(passed=1)
    settings = _settings(result)
    assert settings["trials"] == 12  # marker beats CLI
    assert settings["alpha"] == 0.1  # CLI beats ini
    assert settings["tolerance"] == 0.2  # ini beats default
    assert settings["model"] == "ini-model"
    assert settings["local"] is True  # an absent --rolecheck-local switch keeps the ini value


def test_class_marker_applies_and_closest_marker_wins(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(
        """
        import pytest

        pytestmark = pytest.mark.rolecheck(trials=5, tolerance=0.25)

        @pytest.mark.rolecheck(trials=7)
        def test_x(rolecheck):
            assert rolecheck.settings.trials == 7
            assert rolecheck.settings.tolerance == 0.25
        """
    )
    pytester.runpytest().assert_outcomes(passed=1)


def test_marker_unknown_argument_errors_the_test(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(
        """
        import pytest

        @pytest.mark.rolecheck(trails=7)
        def test_x(rolecheck):
            pass

        def test_other():
            pass
        """
    )
    result = pytester.runpytest()
    result.assert_outcomes(passed=1, errors=1)
    result.stdout.fnmatch_lines(["*unknown argument 'trails'*allowed: model, *trials*"])


def test_marker_bad_value_errors_the_test(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(
        """
        import pytest

        @pytest.mark.rolecheck(alpha=2)
        def test_x(rolecheck):
            pass
        """
    )
    result = pytester.runpytest()
    result.assert_outcomes(errors=1)
    result.stdout.fnmatch_lines(["*rolecheck(alpha=...)*invalid value '2'*"])


def test_marker_is_registered(pytester: pytest.Pytester) -> None:
    result = pytester.runpytest("--markers")
    result.stdout.fnmatch_lines(["@pytest.mark.rolecheck(**options)*"])


def test_every_option_is_in_help(pytester: pytest.Pytester) -> None:
    result = pytester.runpytest("--help")
    text = result.stdout.str()
    assert "pytest-rolecheck" in text
    for spec in PYTEST_OPTIONS:
        assert spec.ini_name in text
        assert spec.cli_name in text


def test_plugin_import_is_light(pytester: pytest.Pytester) -> None:
    # Collection must not pay for numpy, scipy, openai or vcrpy.
    pytester.makepyfile(
        """
        import sys

        def test_modules():
            heavy = {"numpy", "scipy", "openai", "vcr", "httpx2"}
            loaded = heavy & set(sys.modules)
            assert not loaded, loaded
        """
    )
    result = pytester.runpytest_subprocess("-p", "no:randomly")
    result.assert_outcomes(passed=1)


# ------------------------------------------------------------- one rule, two front ends
# Each option family once: a value typed to pytest and to `rolecheck` is refused with the
# same words. The comments name the value the two parsers used to disagree on.
SAME_ERROR = {
    # accepted by both, then every live call overflowed the socket timeout
    "seconds": ("timeout", ["serve", "--timeout"], "inf"),
    # `rolecheck compare` accepted alpha=1, refused later by the statistics
    "share": ("alpha", ["compare", "--alpha"], "1"),
    # `rolecheck compare` accepted any number of alternatives; OpenAI allows 20
    "bounded int": ("top_logprobs", ["compare", "--top-logprobs"], "21"),
    "minimum calls": ("trials", ["compare", "--trials"], "3"),
    "choice": ("design", ["compare", "--design"], "pairs"),
    "record mode": ("record_mode", ["compare", "--record-mode"], "sometimes"),
    # pytest said "--rolecheck-metric / rolecheck_metric: unknown metric", the CLI
    # "unknown metric" after argparse had accepted it
    "metric": ("metric", ["compare", "--metric"], "cosine"),
    "positive number": ("tolerance", ["plan", "pilot.json", "--tolerance"], "nan"),
}


def _invalid_value(text: str) -> str:
    return text[text.index("invalid value") :].strip().rstrip(".")


@pytest.mark.parametrize("family", sorted(SAME_ERROR))
def test_a_bad_value_gets_the_same_words_in_pytest_and_rolecheck(
    pytester: pytest.Pytester, capsys: pytest.CaptureFixture[str], family: str
) -> None:
    name, argv, value = SAME_ERROR[family]
    pytester.makepyfile("def test_x(): pass")
    result = pytester.runpytest(f"--rolecheck-{name.replace('_', '-')}={value}")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    pytest_words = _invalid_value(result.stderr.str())
    capsys.readouterr()
    assert cli.main([*argv, value]) == cli.ExitCode.USAGE
    err = capsys.readouterr().err
    assert f"argument {argv[-1]}: " in err
    assert _invalid_value(err) == pytest_words
    assert pytest_words.startswith(f"invalid value '{value}': expected ")


@pytest.mark.parametrize(
    ("name", "value", "argv", "parsed"),
    [
        # pytest accepted upper case, argparse's choices= refused it
        ("design", "SEED", ["compare", "--design", "SEED"], "seed"),
        # a tolerance in nats (tok_l1) above 1: refused by pytest and `compare`, accepted
        # by `plan` and by the statistics
        ("tolerance", "2", ["compare", "--metric", "tok_l1", "--tolerance", "2"], 2.0),
    ],
)
def test_a_good_value_is_accepted_by_both(
    pytester: pytest.Pytester, name: str, value: str, argv: list[str], parsed: object
) -> None:
    pytester.makepyfile(SHOW_SETTINGS)
    result = pytester.runpytest("-s", "--rolecheck-metric=tok_l1", f"--rolecheck-{name}={value}")
    result.assert_outcomes(passed=1)
    assert _settings(result)[name] == parsed
    assert getattr(cli.build_parser().parse_args(argv), name) == parsed


def test_a_tolerance_above_1_with_a_bounded_metric_fails_at_start(
    pytester: pytest.Pytester,
) -> None:
    # Not in every test: the comparison's own rule, checked once.
    pytester.makepyfile("def test_x(): pass")
    result = pytester.runpytest("--rolecheck-tolerance=2")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(
        ["*--rolecheck-tolerance*tolerance=2.0 is not allowed with metric='auto'*(0, 1]*"]
    )


def test_marker_help_names_every_marker_keyword(pytester: pytest.Pytester) -> None:
    result = pytester.runpytest("--markers")
    line = next(line for line in result.outlines if "@pytest.mark.rolecheck(" in line)
    for key in MARKER_KEYS:
        assert key in line


def test_readme_option_table_matches_the_option_table() -> None:
    # The README's table is written for readers; this keeps its names and marker column true.
    readme = (Path(__file__).resolve().parents[1] / "README.md").read_text(encoding="utf-8")
    rows = [
        [cell.strip().strip("`") for cell in line.strip("|").split("|")]
        for line in readme.splitlines()
        if line.startswith("| `--rolecheck-")
    ]
    documented = {row[0]: (row[1], row[3] == "yes") for row in rows}
    assert documented == {spec.cli_name: (spec.ini_name, spec.marker) for spec in PYTEST_OPTIONS}
