"""Tests of the ``rolecheck`` compare / plan / report commands.

Every command and its main failure modes run as a subprocess (``python -m
pytest_rolecheck.cli``); further variations call ``cli.main([...])`` in-process,
which is the same code path without the ~2 s start-up of a fresh interpreter.
Everything is offline: cassettes are recorded in-process from the fake
OpenAI-compatible API (``_fake_api``, through an ``httpx2.MockTransport``) and
the commands replay them (``--record-mode none``).
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import _fake_api
import numpy as np
import pytest

from pytest_rolecheck import cli
from pytest_rolecheck.commands.compare import ProgressDisplay, _fix_command, _variants
from pytest_rolecheck.commands.plan import Pilot, format_plan
from pytest_rolecheck.core.planner import _simulate, plan_trials
from pytest_rolecheck.core.stats import change_bound, decide, permutation_test
from pytest_rolecheck.errors import RolecheckUsageError
from pytest_rolecheck.running.session import Rolecheck
from pytest_rolecheck.settings import COMMANDS, OPTIONS_BY_NAME, Settings
from pytest_rolecheck.variants import Variant

FAKE_URL = "http://fake-api.test/v1"
TRIALS = 4
MAX_TOKENS = 5
TOP = 5
REQUEST_FLAGS = [
    "--model",
    "gpt-x",
    "--base-url",
    FAKE_URL,
    "--trials",
    str(TRIALS),
    "--max-tokens",
    str(MAX_TOKENS),
    "--top-logprobs",
    str(TOP),
]


def rolecheck(*args: str | Path, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("OPENAI_")}
    env["PYTHONUTF8"] = "1"
    return subprocess.run(
        [sys.executable, "-m", "pytest_rolecheck.cli", *map(str, args)],
        capture_output=True,
        text=True,
        env=env,
        cwd=cwd,
        timeout=120,
        check=False,
    )


def main(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch, *args: str | Path
) -> tuple[int, str, str]:
    """Run the command in-process; return (exit status, stdout, stderr)."""
    for name in list(os.environ):
        if name.startswith("OPENAI_"):
            monkeypatch.delenv(name)
    capsys.readouterr()
    code = cli.main([str(a) for a in args])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def record(path: Path, a: Variant, b: Variant, *, trials: int, design: str = "all-pairs") -> Any:
    """Record a comparison from the fake API into ``path`` (as the CLI would request it)."""
    settings = Settings(
        record_mode="all", model="gpt-x", trials=trials, max_tokens=MAX_TOKENS, top_logprobs=TOP
    )
    checker = Rolecheck(settings, client_provider=_fake_api.async_client, cassette_file=path)
    result = checker.compare(a, b, trials=trials, design=design)
    checker.finish(save=True)
    return result


def seed_variants() -> tuple[Variant, Variant]:
    none = argparse.Namespace(
        variant_a=None, variant_b=None, roles=None, instruction=None, prompt=None
    )
    a, b = _variants(none)
    return a, b


@pytest.fixture(scope="module")
def cassettes(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Path]]:
    root = tmp_path_factory.mktemp("cassettes")
    a, b = seed_variants()
    paths = {
        "roles": root / "roles.json",
        "seed": root / "seed.json",
        "aa": root / "aa.json",
        "deterministic": root / "deterministic.json",
    }
    record(paths["roles"], a, b, trials=TRIALS)
    record(paths["seed"], a, b, trials=TRIALS, design="seed")
    saved = os.environ.get("FAKE_API_NOISE")
    try:
        os.environ["FAKE_API_NOISE"] = "0.3"
        record(paths["aa"], a, a, trials=10)
        os.environ["FAKE_API_NOISE"] = "0"
        record(paths["deterministic"], a, a, trials=5)
    finally:
        if saved is None:
            os.environ.pop("FAKE_API_NOISE", None)
        else:
            os.environ["FAKE_API_NOISE"] = saved
    return paths


@pytest.fixture(scope="module")
def compare_run(
    cassettes: dict[str, Path], tmp_path_factory: pytest.TempPathFactory
) -> tuple[subprocess.CompletedProcess[str], Path]:
    out = tmp_path_factory.mktemp("compare")
    proc = rolecheck(
        "compare",
        *REQUEST_FLAGS,
        "--cassette",
        cassettes["roles"],
        "--record-mode",
        "none",
        "--json",
        out / "report.json",
        "--html",
        out / "html",
    )
    return proc, out


# --------------------------------------------------------------------------- command line


def test_help_lists_every_command() -> None:
    proc = rolecheck("--help")
    assert proc.returncode == 0
    for command in ("serve", "compare", "plan", "report", "diff", "cassettes"):
        assert command in proc.stdout


def test_every_option_of_every_command_comes_from_the_option_table() -> None:
    # A flag added by hand would get its own parser and its own error wording.
    parser = cli.build_parser()
    subparsers = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    for command, groups in COMMANDS.items():
        names = {name for group in groups.values() for name in group}
        options = [
            action
            for action in subparsers.choices[command]._actions
            if action.option_strings and action.dest != "help"
        ]
        assert {action.dest for action in options} == names, command
        for action in options:
            spec = OPTIONS_BY_NAME[action.dest]
            assert spec.flag or getattr(action.type, "__name__", None) == spec.name, action.dest


def test_no_command_is_a_usage_error() -> None:
    proc = rolecheck()
    assert proc.returncode == 2
    assert "COMMAND" in proc.stderr


def test_plan_help_explains_how_to_choose_the_tolerance() -> None:
    proc = rolecheck("plan", "--help")
    assert proc.returncode == 0
    assert "choosing the tolerance" in proc.stdout
    assert "Never derive it" in proc.stdout


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["compare", "--trials", "2"], "invalid value '2': expected a whole number ≥ 4"),
        (["compare", "--design", "pairs"], "expected one of all-pairs, seed"),
        (["compare", "--temperature", "hot"], "expected a number"),
        (["compare", "--roles", "developer"], "expected 2 arguments"),
        (["compare", "--variant-a", "a.yaml"], "--variant-a and --variant-b go together"),
        (["compare", "--roles", "system", "system"], "compares a role with itself"),
        (["compare", "--record-mode", "none"], "--record-mode needs --cassette"),
        (["compare", "--tolerance", "inf"], "expected a number in (0, ∞)"),
        (["plan"], "the following arguments are required: pilot"),
        (["plan", "x.json", "--power", "1.5"], "expected a number in (0, 1)"),
        (["report", "x.json"], "the following arguments are required: --out"),
        (["frobnicate"], "invalid choice: 'frobnicate'"),
    ],
)
def test_bad_flags_exit_2(args: list[str], message: str) -> None:
    proc = rolecheck(*args)
    assert proc.returncode == 2, proc.stderr
    assert message in proc.stderr


# --------------------------------------------------------------------------- compare


def test_compare_replays_and_prints_the_table_and_verdict(
    compare_run: tuple[subprocess.CompletedProcess[str], Path],
) -> None:
    proc, _ = compare_run
    assert proc.returncode == 0, proc.stderr
    out = proc.stdout
    assert out.startswith("rolecheck compare: developer vs system on gpt-x (4 calls per arm")
    assert "replaying" in out.splitlines()[0]
    assert "Per-call mean js distance (bits)" in out
    assert "within developer" in out
    assert "across arms" in out
    assert "rolecheck: developer vs system -> DIFFERENT" in out
    assert "cassette:" in out
    assert "(replayed)" in out
    # not a terminal: only the final progress line, on stderr
    assert "rolecheck: calls 8/8  tokens" in proc.stderr
    assert "\r" not in proc.stderr


def test_compare_writes_json_and_html(
    compare_run: tuple[subprocess.CompletedProcess[str], Path],
) -> None:
    proc, out = compare_run
    assert proc.returncode == 0, proc.stderr
    data = json.loads((out / "report.json").read_text(encoding="utf-8"))
    assert data["rolecheck_report"] == 1
    (row,) = data["comparisons"]
    assert row["verdict"] == "different"
    assert row["source"] == "replayed"
    assert row["insight"]["labels"] == ["developer", "system"]
    page = (out / "html" / "rolecheck-report.html").read_text(encoding="utf-8")
    assert page.count('<img src="data:image/png;base64,') == 3
    assert "DIFFERENT" in page


def test_compare_seed_design_prints_per_trial_distances(
    cassettes: dict[str, Path], capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    code, out, err = main(
        capsys,
        monkeypatch,
        "compare",
        *REQUEST_FLAGS,
        "--design",
        "seed",
        "--cassette",
        cassettes["seed"],
        "--record-mode",
        "none",
    )
    assert code == 0, err
    lines = out.splitlines()
    start = lines.index("Per-trial js distance to the baseline call (bits):")
    assert lines[start + 1].split() == ["trial", "developer", "system"]
    assert [line.split()[0] for line in lines[start + 2 : start + 10]] == [
        "1", "2", "3", "4", "mean", "std", "min", "max",
    ]  # fmt: skip
    assert "+ 1 baseline" in lines[0]


def test_compare_expect_sets_the_exit_status(
    cassettes: dict[str, Path], capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    common = [*REQUEST_FLAGS, "--cassette", cassettes["roles"], "--record-mode", "none"]
    code, _, err = main(capsys, monkeypatch, "compare", *common, "--expect", "equivalent")
    assert code == 1
    assert "verdict 'different', expected 'equivalent'. What to do: " in err
    assert "pass --expect different" in err
    code, _, err = main(capsys, monkeypatch, "compare", *common, "--expect", "different")
    assert code == 0, err


def test_compare_missing_cassette_in_replay_mode(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    flags = [*REQUEST_FLAGS, "--cassette", tmp_path / "none.json", "--record-mode", "none"]
    code, _, err = main(capsys, monkeypatch, "compare", *flags)
    assert code == 1
    assert "no cassette at" in err
    # The fix re-runs this very command (a pytest command cannot), pasteable as is.
    words = [str(w) for w in flags[:-2]]
    assert f"`rolecheck compare {shlex.join(words)} --record-mode once`" in err
    assert "`pytest " not in err


def test_compare_changed_request_does_not_replay(
    cassettes: dict[str, Path], capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    flags = [*REQUEST_FLAGS, "--cassette", cassettes["roles"], "--record-mode", "none"]
    code, _, err = main(capsys, monkeypatch, "compare", *flags, "--prompt", "Something else")
    assert code == 1
    words = [str(w) for w in (*flags[:-2], "--prompt", "Something else")]
    assert f"`rolecheck compare {shlex.join(words)} --record-mode rewrite`" in err
    assert "`pytest " not in err


def test_compare_live_without_a_key_says_what_to_set(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    code, _, err = main(capsys, monkeypatch, "compare", *REQUEST_FLAGS)
    assert code == 1
    assert "OPENAI_API_KEY is not set" in err


def test_compare_bad_variant_file_names_file_key_and_expectation(tmp_path: Path) -> None:
    good = tmp_path / "a.yaml"
    good.write_text("messages:\n  - {role: system, content: hi}\n", encoding="utf-8")
    bad = tmp_path / "b.yaml"
    bad.write_text("messages:\n  - {role: sytem, content: hi}\n", encoding="utf-8")
    proc = rolecheck("compare", "--variant-a", good, "--variant-b", bad)
    assert proc.returncode == 2
    assert f"{bad}: key 'messages[0].role': expected one of system" in proc.stderr
    assert "got str 'sytem'" in proc.stderr


def test_compare_unknown_metric_fails_before_any_call(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    code, out, err = main(capsys, monkeypatch, "compare", *REQUEST_FLAGS, "--metric", "nope")
    assert code == 2
    assert "argument --metric: invalid value 'nope': expected one of auto, js, tv" in err
    assert out == ""  # nothing started


def test_compare_tolerance_beyond_a_bounded_metric_fails_before_any_call(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    # The option alone allows 2 (tok_l1 measures in nats); js moves a share of mass.
    code, out, err = main(capsys, monkeypatch, "compare", *REQUEST_FLAGS, "--tolerance", "2")
    assert code == cli.ExitCode.USAGE
    assert "tolerance=2.0 is not allowed with metric='auto'" in err
    assert out == ""  # nothing started


def test_compare_missing_variant_file(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    good = tmp_path / "a.yaml"
    good.write_text("messages:\n  - {role: system, content: hi}\n", encoding="utf-8")
    code, _, err = main(
        capsys, monkeypatch, "compare", "--variant-a", good, "--variant-b", tmp_path / "gone.yaml"
    )
    assert code == 2
    assert "no variant file at" in err


def test_compare_variant_files_replay_the_same_requests(
    cassettes: dict[str, Path],
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    a, b = seed_variants()
    for name, variant in (("a.yaml", a), ("b.yaml", b)):
        messages = variant.request()["messages"]
        doc = {"label": variant.label, "messages": messages}
        (tmp_path / name).write_text(json.dumps(doc), encoding="utf-8")
    code, out, err = main(
        capsys,
        monkeypatch,
        "compare",
        *REQUEST_FLAGS,
        "--variant-a",
        tmp_path / "a.yaml",
        "--variant-b",
        tmp_path / "b.yaml",
        "--cassette",
        cassettes["roles"],
        "--record-mode",
        "none",
    )
    assert code == 0, err
    assert "developer vs system -> DIFFERENT" in out


def test_progress_display_on_a_terminal() -> None:
    class Usage:
        total_tokens = 1234

    class Progress:
        total, done, elapsed, usage = 21, 7, 3.25, Usage()

    class Terminal:
        def __init__(self) -> None:
            self.text = ""

        def isatty(self) -> bool:
            return True

        def write(self, text: str) -> None:
            self.text += text

        def flush(self) -> None:
            pass

    stream = Terminal()
    with ProgressDisplay(Progress(), stream=stream, interval=0.01) as display:  # type: ignore[arg-type]
        assert display.line() == "rolecheck: calls 7/21  tokens 1,234  3.2 s"
        import time

        time.sleep(0.1)
    assert "\rrolecheck: calls 7/21  tokens 1,234  3.2 s" in stream.text
    assert stream.text.endswith("rolecheck: calls 7/21  tokens 1,234  3.2 s\n")


# --------------------------------------------------------------------------- plan


def test_plan_from_an_aa_cassette(
    cassettes: dict[str, Path], capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    args = [
        "plan",
        cassettes["aa"],
        "--effect",
        "0.5",
        "--replications",
        "30",
        "--max-trials",
        "20",
    ]
    proc = rolecheck(*args)
    assert proc.returncode == 0, proc.stderr
    out = proc.stdout
    assert "pilot: cassette" in out
    assert "20 calls" in out
    assert "noise floor (mean distance between two pilot calls):" in out
    assert "90% bootstrap interval at 20 calls" in out
    assert "to certify equivalence at tolerance 0.2 with 80% power:" in out
    assert "to detect a change of 0.5 with 80% power at alpha 0.05:" in out
    code, again, _ = main(capsys, monkeypatch, *args)
    assert code == 0
    assert again == out  # seeded: the same plan every time


def test_plan_from_a_deterministic_pilot(cassettes: dict[str, Path]) -> None:
    proc = rolecheck("plan", cassettes["deterministic"])
    assert proc.returncode == 0, proc.stderr
    assert "deterministic backend" in proc.stdout
    assert "minimum of 4 trials per arm" in proc.stdout


@pytest.fixture(scope="module")
def roles_pilot(
    cassettes: dict[str, Path], tmp_path_factory: pytest.TempPathFactory
) -> dict[str, Path]:
    """A developer-vs-system cassette and its JSON report with 8 calls per arm.

    A pilot needs 8 distinct calls (two arms of 4); the shared cassettes hold 4 per arm.
    """
    root = tmp_path_factory.mktemp("roles-pilot")
    a, b = seed_variants()
    cassette = root / "roles8.json"
    record(cassette, a, b, trials=8)
    flags = [*REQUEST_FLAGS]
    flags[flags.index("--trials") + 1] = "8"
    proc = rolecheck(
        "compare",
        *flags,
        "--cassette",
        cassette,
        "--record-mode",
        "none",
        "--json",
        root / "report.json",
    )
    assert proc.returncode in (0, 1), proc.stderr
    return {"cassette": cassette, "report": root / "report.json"}


def test_plan_from_a_report(
    roles_pilot: dict[str, Path],
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    args = ["plan", roles_pilot["report"], "--replications", "20", "--max-trials", "10"]
    code, stdout, err = main(capsys, monkeypatch, *args)
    assert code == 0, err
    assert "report" in stdout
    assert "8 calls of arm 'developer'" in stdout
    assert "pass --arm all" in stdout


def test_plan_cassette_with_two_requests_uses_group_1(
    roles_pilot: dict[str, Path],
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    args = ["plan", roles_pilot["cassette"], "--replications", "20", "--max-trials", "8"]
    code, out, err = main(capsys, monkeypatch, *args)
    assert code == 0, err
    assert "holds 2 different requests" in out
    assert "instruction role developer" in out
    assert "if the groups are the cases of an A/A prompt-set run, pass --cases" in out


def test_plan_pilot_too_small_to_split(
    cassettes: dict[str, Path], capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    # 4 calls per request group: two arms of 4 distinct calls cannot be drawn from them
    code, _, err = main(capsys, monkeypatch, "plan", cassettes["roles"])
    assert code == 2
    assert "the pilot has 4 call(s); at least 8 are needed" in err
    assert "Record a larger A/A run" in err


@pytest.mark.parametrize(
    ("make", "args", "message"),
    [
        (None, [], "no pilot file at"),
        ("{not json", [], "not valid JSON"),
        ('{"hello": 1}', [], "neither a rolecheck cassette"),
        ('{"rolecheck_cassette": 1, "interactions": []}', [], "no successful chat completion"),
        ('{"comparisons": []}', [], "has no comparisons"),
    ],
)
def test_plan_bad_pilot_exit_2(
    tmp_path: Path,
    make: str | None,
    args: list[str],
    message: str,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    path = tmp_path / "pilot.json"
    if make is not None:
        path.write_text(make, encoding="utf-8")
    code, _, err = main(capsys, monkeypatch, "plan", path, *args)
    assert code == 2
    assert message in err


def test_plan_missing_pilot_by_subprocess(tmp_path: Path) -> None:
    proc = rolecheck("plan", tmp_path / "nope.json")
    assert proc.returncode == 2
    assert "no pilot file at" in proc.stderr


def test_plan_unknown_arm(
    cassettes: dict[str, Path], capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    code, _, err = main(capsys, monkeypatch, "plan", cassettes["roles"], "--arm", "5")
    assert code == 2
    assert "--arm 5: expected all or a request group number from 1 to 2" in err


def _pilot(noise: float, n: int = 16, seed: int = 0) -> np.ndarray:
    """A synthetic A/A pilot: calls as noisy points, distances between them."""
    rng = np.random.default_rng(seed)
    points = rng.normal(0.0, noise, size=(n, 3))
    return np.linalg.norm(points[:, None, :] - points[None, :, :], axis=-1)


def test_plan_needs_more_trials_for_a_tighter_tolerance() -> None:
    d = _pilot(1.0)
    wide = plan_trials(d, tolerance=1.0, bounded=False, replications=60, max_trials=60)
    tight = plan_trials(d, tolerance=0.5, bounded=False, replications=60, max_trials=60)
    assert wide.n_equivalence is not None
    assert tight.n_equivalence is not None
    assert wide.n_equivalence < tight.n_equivalence
    again = plan_trials(d, tolerance=0.5, bounded=False, replications=60, max_trials=60)
    assert again == tight  # seeded


def test_plan_needs_fewer_trials_for_a_larger_effect() -> None:
    d = _pilot(1.0)
    # both above the tolerance 0.5: at or below it a change is meant to pass as equivalent
    small = plan_trials(d, tolerance=0.5, effect=1.0, bounded=False, replications=60, max_trials=60)
    large = plan_trials(d, tolerance=0.5, effect=2.0, bounded=False, replications=60, max_trials=60)
    assert small.n_detect is not None
    assert large.n_detect is not None
    assert large.n_detect <= small.n_detect
    assert large.n_detect >= 4
    assert small.rows[0].p_detect is not None
    assert large.rows[0].p_detect is not None
    assert small.rows[0].p_detect < large.rows[0].p_detect


def test_plan_scales_with_the_tolerance() -> None:
    d = _pilot(1.0)
    # x4 is exact in binary floating point: distances and tolerance scaled alike, same shares
    big = plan_trials(d * 4.0, tolerance=2.0, bounded=False, replications=40, max_trials=40)
    small = plan_trials(d, tolerance=0.5, bounded=False, replications=40, max_trials=40)
    assert [r.p_equivalent for r in big.rows] == [r.p_equivalent for r in small.rows]


def test_plan_deterministic_and_unreachable() -> None:
    zero = plan_trials(np.zeros((8, 8)), effect=1.0)
    assert zero.deterministic
    assert zero.n_equivalence == 4
    assert zero.n_detect == 4
    capped = plan_trials(_pilot(1.0), tolerance=0.01, bounded=False, replications=20, max_trials=6)
    assert capped.n_equivalence is None
    assert [r.n for r in capped.rows] == [4, 5, 6]


def test_plan_of_a_sampled_pilot_with_floor_0_does_not_claim_identical_outputs() -> None:
    # Issue 15: a temperature-1 A/A pilot, 20 distinct texts, js floor exactly 0.
    zero = plan_trials(np.zeros((20, 20)))
    pilot = Pilot(matrix=np.zeros((20, 20)), metric="js", source="cassette x", distinct_texts=20)
    out = "\n".join(format_plan(pilot, zero))
    assert "exactly the same output" not in out
    assert "deterministic" not in out
    assert "the 20 pilot calls wrote 20 different texts" in out
    assert "--metric auto" in out
    same = Pilot(matrix=np.zeros((20, 20)), metric="js", source="cassette x")
    assert "every pilot call gave exactly the same output" in "\n".join(format_plan(same, zero))


def test_plan_rejects_bad_arguments() -> None:
    with pytest.raises(RolecheckUsageError, match="--tolerance"):
        plan_trials(_pilot(1.0), tolerance=0.0)
    with pytest.raises(RolecheckUsageError, match="at least 8 calls"):
        plan_trials(np.zeros((7, 7)))


def _heavy_pilot(n: int = 20, seed: int = 1) -> np.ndarray:
    """A pilot where 15% of the calls are 4x as noisy (flips, as real backends show)."""
    rng = np.random.default_rng(seed)
    scale = np.where(rng.random(n) < 0.15, 4.0, 1.0)
    points = rng.normal(size=(n, 3)) * scale[:, None]
    return np.linalg.norm(points[:, None, :] - points[None, :, :], axis=-1)


def test_plan_detects_only_what_assert_different_accepts() -> None:
    d = _pilot(1.0, n=24)
    # 0.2 is below the tolerance: p <= alpha often, yet the verdict is never `different`.
    small = plan_trials(d, tolerance=0.5, effect=0.2, bounded=False, replications=40, max_trials=12)
    assert small.n_detect is None
    last = max((r for r in small.rows if not r.extrapolated), key=lambda r: r.n)
    assert last.p_detect is not None
    assert last.p_detect < 0.5
    lines = "\n".join(format_plan(Pilot(d, "js", "test"), small))
    assert "is not above the tolerance 0.5: it is meant to pass as equivalent" in lines
    assert "to detect a change" not in lines
    large = plan_trials(d, tolerance=0.5, effect=2.0, bounded=False, replications=40, max_trials=12)
    assert large.n_detect is not None


def test_plan_verdict_share_matches_the_engine_run_by_run() -> None:
    d = _pilot(1.0, n=16)
    floor = float(d[np.triu_indices(16, 1)].mean())
    weights = d.sum(axis=1) / 15 / floor
    n, reps, effect = 5, 30, 1.5
    draws = _simulate(
        d,
        weights,
        floor,
        n,
        tolerance=0.5,
        effect=effect,
        alpha=0.05,
        bounded=False,
        relative=False,
        replications=reps,
        seed=3,
    )
    rng = np.random.default_rng([3, n])
    expected = []
    for r in range(reps):
        sub = d[np.ix_(idx := rng.permutation(16)[: 2 * n], idx)]
        move = effect * rng.choice(weights, size=n)
        sub = sub.copy()
        sub[:n, n:] += move[None, :]
        sub[n:, :n] += move[:, None]
        p = permutation_test(sub, n, seed=3 + r, max_exact=1000, n_resamples=199).p_value
        bound = change_bound(sub, n, bounded=False)
        verdict = decide(p_value=p, alpha=0.05, bound=bound, tolerance=0.5, n=n).verdict
        expected.append(verdict == "different")
    assert draws.different is not None
    assert draws.different.tolist() == expected
    assert 0 < sum(expected) < reps


def test_plan_predictions_are_monotone() -> None:
    # This pilot made the old table drop from 0.79 at 10 trials to 0.62 at 11 (calls
    # resampled with replacement beyond the pilot's 20 calls).
    plan = plan_trials(
        _heavy_pilot(), tolerance=2.0, bounded=False, replications=100, max_trials=30
    )
    shares = [r.p_equivalent for r in plan.rows]
    assert shares == sorted(shares)
    assert plan.n_equivalence is not None
    assert plan.rows[-1].p_equivalent >= 0.8
    detect = plan_trials(
        _heavy_pilot(), tolerance=0.5, effect=2.0, bounded=False, replications=60, max_trials=30
    )
    found = [r.p_detect for r in detect.rows]
    assert found == sorted(found)


def test_plan_rows_beyond_the_pilot_are_extrapolated() -> None:
    d = _heavy_pilot()
    plan = plan_trials(d, tolerance=2.0, bounded=False, replications=60, max_trials=40)
    assert plan.pilot_calls == 20
    assert [r.n for r in plan.rows if not r.extrapolated] == [r.n for r in plan.rows if r.n <= 10]
    assert any(r.extrapolated for r in plan.rows)
    assert all(r.n > 10 for r in plan.rows if r.extrapolated)
    assert plan.beta is not None
    assert 0.5 <= plan.beta <= 1.0
    assert plan.n_equivalence is not None
    assert plan.n_equivalence > 10
    text = "\n".join(format_plan(Pilot(d, "js", "test"), plan))
    assert "extrapolated beyond the 20-call pilot" in text
    assert f"an A/A pilot of {2 * plan.n_equivalence} calls" in text
    marked = [line for line in text.splitlines() if line.endswith("  extrapolated")]
    assert len(marked) == sum(r.extrapolated for r in plan.rows)


# --------------------------------------------------------------------------- report


def test_report_from_a_json_report(
    compare_run: tuple[subprocess.CompletedProcess[str], Path], tmp_path: Path
) -> None:
    _, out = compare_run
    proc = rolecheck("report", out / "report.json", "--out", tmp_path / "html")
    assert proc.returncode == 0, proc.stderr
    assert "1 comparison(s) (developer vs system: different)" in proc.stdout
    page = (tmp_path / "html" / "rolecheck-report.html").read_text(encoding="utf-8")
    assert page.count('<img src="data:image/png;base64,') == 3
    assert len(list((tmp_path / "html" / "png").glob("*.png"))) == 3


def test_report_missing_file(tmp_path: Path) -> None:
    proc = rolecheck("report", tmp_path / "missing.json", "--out", tmp_path / "out")
    assert proc.returncode == 2
    assert "no report at" in proc.stderr
    assert "--rolecheck-report=" in proc.stderr
    assert not (tmp_path / "out").exists()


def test_report_of_a_cassette_is_refused(
    cassettes: dict[str, Path],
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    code, _, err = main(capsys, monkeypatch, "report", cassettes["roles"], "--out", tmp_path)
    assert code == 2
    assert "is not a rolecheck JSON report" in err


def test_report_invalid_json(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "r.json"
    path.write_text('{"comparisons": [', encoding="utf-8")
    code, _, err = main(capsys, monkeypatch, "report", path, "--out", tmp_path / "out")
    assert code == 2
    assert "r.json:1:" in err
    assert "not valid JSON" in err


def test_compare_fix_command_repeats_the_command_with_the_fix_applied() -> None:
    typed = ["compare", "--local", "--record-mode", "none", "--cassette", "my run.json"]
    flags = ["--rolecheck-base-url=http://h/v1", "--rolecheck-local", "-p", "xdist"]
    assert _fix_command(typed, "rewrite", flags) == (
        "rolecheck compare --local --cassette 'my run.json' --base-url=http://h/v1 "
        "--record-mode rewrite"
    )
    assert _fix_command(["compare", "--record-mode=none"], None, ["--rolecheck-model=m"]) == (
        "rolecheck compare --model=m"
    )


def test_plan_extrapolates_with_the_engines_exact_lower_bound() -> None:
    # A pilot like sampled answers under a text metric: two calls differ by ~0.7. Moving B
    # by 0.5 in absolute units pushes the distances past 1, where the exact lower bound the
    # engine uses never shows it above the tolerance: no row, simulated or extrapolated,
    # may say "different" (the first extrapolated row used to jump to 1).
    rng = np.random.default_rng(1)
    x = 0.7 + rng.uniform(-0.05, 0.05, size=(24, 24))
    d = np.triu(x, 1) + np.triu(x, 1).T
    absolute = plan_trials(d, effect=0.5, replications=40, max_trials=20)
    assert any(r.extrapolated for r in absolute.rows)
    assert all(r.p_detect == 0.0 for r in absolute.rows)
    # As a share of answers that moved (the engine's unit for text metrics) it shows on the
    # simulated rows already.
    relative = plan_trials(d, effect=0.5, relative=True, replications=40, max_trials=20)
    assert relative.n_detect is not None
    assert relative.n_detect <= 12
