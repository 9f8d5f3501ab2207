"""``rolecheck plan --cases``: cases x trials per case for a prompt set, from an A/A pilot.

Pilots are recorded in-process from the fake API (``_fake_api``) as A/A runs of a
prompt set (the same set in both arms), like ``tests/test_cli.py`` records its
single-prompt pilots; one test plans from the shipped example's cassette.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import _fake_api
import numpy as np
import pytest

from pytest_rolecheck import PromptSet, cli
from pytest_rolecheck.core.set_planner import fewest_certifying_cases, plan_cases
from pytest_rolecheck.errors import RolecheckUsageError
from pytest_rolecheck.running.session import Rolecheck
from pytest_rolecheck.settings import Settings

ROOT = Path(__file__).resolve().parents[1]
EXAMPLE = (
    ROOT
    / "cassettes"
    / "examples"
    / "test_prompt_sets"
    / "test_sampled_set_is_equivalent_to_itself.json"
)
PROMPTS = PromptSet.from_prompts(
    {
        "rock": "Rock lyrics",
        "moon": "A moon poem",
        "cat": "A cat joke",
        "sun": "Sunny?",
        "rain": "Rain, why?",
        "star": "Name a star",
    },
    instruction="You are a helpful AI assistant",
)
FAST = ["--replications", "20"]


def _record(path: Path, a: PromptSet, b: PromptSet, *, trials: int, noise: str) -> None:
    saved = os.environ.get("FAKE_API_NOISE")
    os.environ["FAKE_API_NOISE"] = noise
    try:
        settings = Settings(record_mode="all", model="gpt-x", max_tokens=5, top_logprobs=5)
        checker = Rolecheck(settings, client_provider=_fake_api.async_client, cassette_file=path)
        checker.compare(a, b, trials=trials)
        checker.finish(save=True)
    finally:
        if saved is None:
            os.environ.pop("FAKE_API_NOISE", None)
        else:
            os.environ["FAKE_API_NOISE"] = saved


@pytest.fixture(scope="module")
def pilots(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("set-pilots")
    paths = {name: root / f"{name}.json" for name in ("aa", "deterministic", "ab")}
    _record(paths["aa"], PROMPTS, PROMPTS, trials=4, noise="0.5")
    _record(paths["deterministic"], PROMPTS, PROMPTS, trials=3, noise="0")
    other = PROMPTS.with_instruction("You are a creative English language output AI")
    _record(paths["ab"], PROMPTS, other, trials=2, noise="0.5")
    return paths


def main(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch, *args: str | Path
) -> tuple[int, str, str]:
    for name in list(os.environ):
        if name.startswith("OPENAI_"):
            monkeypatch.delenv(name)
    capsys.readouterr()
    code = cli.main([str(a) for a in args])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def test_set_plan_is_a_table_and_an_answer_and_is_seeded(
    pilots: dict[str, Path], capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    args = ["plan", pilots["aa"], "--cases", *FAST]
    code, out, err = main(capsys, monkeypatch, *args)
    assert code == 0, err
    assert "6 cases (one per distinct request" in out
    assert "8 calls each" in out
    assert "up to 4 trials per case" in out
    header = next(line for line in out.splitlines() if line.strip().startswith("cases"))
    assert header.split() == ["cases", "t=3", "t=4", "t=5", "t=8", "t=10"]
    row_100 = next(line for line in out.splitlines() if line.strip().startswith("100 "))
    # 8 calls per case simulate 3 and 4 trials; 5, 8, 10 would reuse calls
    assert row_100.split()[-3:] == ["-", "-", "-"]
    assert "fewer than 14 cases never certify" in out
    assert "to certify equivalence at tolerance 0.2 with 80% power:" in out
    assert "note:" not in out
    _, again, _ = main(capsys, monkeypatch, *args)
    assert again == out
    _, other_seed, _ = main(capsys, monkeypatch, *args, "--seed", "7")
    assert other_seed != out


def test_set_plan_of_a_deterministic_pilot_is_the_guard(
    pilots: dict[str, Path], capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    code, out, err = main(capsys, monkeypatch, "plan", pilots["deterministic"], "--cases")
    assert code == 0, err
    assert "deterministic cases" in out
    assert "to certify equivalence at tolerance 0.2: 14 cases x 2 trials per case" in out
    code, out, _ = main(
        capsys, monkeypatch, "plan", pilots["deterministic"], "--cases", "--tolerance", "0.1"
    )
    assert "29 cases x 2 trials per case" in out


def test_fewest_certifying_cases_is_the_guard_boundary() -> None:
    for tolerance in (0.05, 0.1, 0.2, 0.3):
        m = fewest_certifying_cases(tolerance, 0.05)
        assert 1 - 0.05 ** (1 / m) < tolerance <= 1 - 0.05 ** (1 / (m - 1))
    assert fewest_certifying_cases(0.2, 0.05) == 14
    assert fewest_certifying_cases(1.5, 0.05) == 2  # any set certifies a tolerance above 1


@pytest.mark.parametrize(
    ("edit", "message"),
    [
        (lambda rows: rows[:6], "the set pilot has 1 case(s); at least 2 are needed"),
        (lambda rows: rows[:-3], "a case of the set pilot has 3 call(s); the smallest plan"),
    ],
)
def test_too_small_set_pilots_are_refused(
    pilots: dict[str, Path],
    tmp_path: Path,
    edit: object,
    message: str,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    data = json.loads(pilots["deterministic"].read_text(encoding="utf-8"))
    by_case = sorted(data["interactions"], key=lambda i: json.dumps(i["request"]["body"]))
    data["interactions"] = edit(by_case)  # type: ignore[operator]
    small = tmp_path / "small.json"
    small.write_text(json.dumps(data), encoding="utf-8")
    code, _, err = main(capsys, monkeypatch, "plan", small, "--cases")
    assert code == 2
    assert message in err
    assert "Record an A/A run" in err


def test_an_ab_cassette_is_named_as_such(
    pilots: dict[str, Path], capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    code, _, err = main(capsys, monkeypatch, "plan", pilots["ab"], "--cases")
    assert code == 2
    assert "12 of the 12 requests end with the same message as another one" in err
    assert "Plan from an A/A run of the set" in err


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["--arm", "1"], "--arm does not apply with --cases"),
        (["--effect", "0.5"], "--effect is not available with --cases"),
        (["--max-trials", "50"], "the grid is 3, 4, 5, 8, 10 trials per case"),
    ],
)
def test_set_plan_refuses_single_prompt_options(
    pilots: dict[str, Path],
    extra: list[str],
    message: str,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    code, _, err = main(capsys, monkeypatch, "plan", pilots["aa"], "--cases", *extra)
    assert code == 2
    assert message in err


def test_a_report_is_no_set_pilot(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    report = tmp_path / "report.json"
    report.write_text('{"comparisons": []}', encoding="utf-8")
    code, _, err = main(capsys, monkeypatch, "plan", report, "--cases")
    assert code == 2
    assert "keeps no per-case distances" in err


def test_set_plan_shares_follow_the_noise() -> None:
    """Quiet cases certify with fewer calls than noisy ones; the guard caps small sets."""
    rng = np.random.default_rng(0)

    def case(noise: float) -> np.ndarray:
        points = rng.normal(0.0, noise, size=(10, 3))
        d = np.abs(points[:, None, :] - points[None, :, :]).sum(axis=2) / 10
        return np.asarray(np.clip(d, 0, 1))

    quiet = plan_cases([case(0.05) for _ in range(12)], replications=40, trials=(3, 5))
    noisy = plan_cases([case(0.8) for _ in range(12)], replications=40, trials=(3, 5))
    assert quiet.answer is not None
    assert quiet.answer.cases >= 14  # the unseen-case guard
    p_quiet = {(c.cases, c.trials): c.p_equivalent for c in quiet.cells}
    p_noisy = {(c.cases, c.trials): c.p_equivalent for c in noisy.cells}
    assert all(p_quiet[(10, t)] == 0.0 for t in (3, 5))  # 10 cases never certify 0.2
    assert sum(p_quiet.values()) > sum(p_noisy.values())  # type: ignore[arg-type]
    with pytest.raises(RolecheckUsageError, match="--power"):
        plan_cases([case(0.1), case(0.1)], power=1.5)


def test_set_plan_of_the_shipped_example(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    code, out, err = main(capsys, monkeypatch, "plan", EXAMPLE, "--cases", *FAST)
    assert code == 0, err
    assert "20 cases (one per distinct request" in out
    assert "20 calls each" in out
    answer = next(line for line in out.splitlines() if line.startswith("to certify"))
    assert "cases x" in answer
    assert "trials per case" in answer


def test_one_relabelling_gives_the_engines_equivalence_verdict() -> None:
    """The plan runs the engine with a single relabelling: equivalence never needs the p-value."""
    from pytest_rolecheck.core.prompt_sets import compare_prompt_set

    rng = np.random.default_rng(3)
    for noise in (0.02, 0.1, 0.3):
        cases = {}
        for k in range(16):
            points = rng.normal(0.0, noise * (1 + k % 3), size=(8, 2))
            d = np.clip(np.abs(points[:, None, :] - points[None, :, :]).sum(axis=2), 0, 1)
            cases[f"c{k}"] = (d, 4)
        full = compare_prompt_set(cases)
        quick = compare_prompt_set(cases, seed=0, max_exact=0, n_resamples=1)
        assert quick.equivalence_shown == full.equivalence_shown
        assert quick.bound.upper == full.bound.upper
