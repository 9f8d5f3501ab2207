"""Tests of ``rolecheck diff``: two recordings, two JSON reports, or a path vs git HEAD.

The cassettes are shipped ones copied to a temporary directory and edited the way a
re-record changes them (one answer, one probability, one request); the reports come
from ``rolecheck compare`` replaying a shipped cassette. Everything runs in-process
through ``cli.main``, offline.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from pytest_rolecheck import cli
from pytest_rolecheck.recording.encoding import unpack_body

ROOT = Path(__file__).resolve().parents[1]
SHIPPED = ROOT / "cassettes" / "examples" / "test_seed_experiment"
PAIRS = SHIPPED / "test_developer_vs_system_all_pairs.json"  # 40 calls, temperature 0
USER = SHIPPED / "test_instruction_in_the_user_message_differs.json"
REPLAYED = ROOT / "cassettes" / "cli" / "seed-experiment.json"
CALLS = 8  # the first calls of a shipped cassette are enough, and read fast


def diff(capsys: pytest.CaptureFixture[str], *args: str | Path) -> tuple[int, str, str]:
    capsys.readouterr()
    code = cli.main(["diff", *map(str, args)])
    out, err = capsys.readouterr()
    return code, out, err


@pytest.fixture(scope="module")
def shipped(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """The first 8 calls of three shipped cassettes."""
    root = tmp_path_factory.mktemp("shipped")

    def first_calls(data: dict[str, Any]) -> None:
        del data["interactions"][CALLS:]

    return {p.stem: edited(p, root / p.name, first_calls) for p in (PAIRS, USER, REPLAYED)}


@pytest.fixture
def pairs(shipped: dict[str, Path]) -> Path:
    return shipped[PAIRS.stem]


def edited(src: Path, dst: Path, edit: Callable[[dict[str, Any]], None]) -> Path:
    """A copy of the cassette (or report) ``src`` at ``dst``, changed by ``edit``.

    A cassette's token tables are unpacked first, so ``edit`` sees the responses as sent
    (format 2 reads a body without tables as it is).
    """
    data = json.loads(src.read_text(encoding="utf-8"))
    for item in data.get("interactions", []):
        item["response"]["body"] = unpack_body(item["response"]["body"])
    edit(data)
    dst.parent.mkdir(parents=True, exist_ok=True)
    dst.write_text(json.dumps(data, indent=1), encoding="utf-8")
    return dst


def choice(data: dict[str, Any], index: int) -> dict[str, Any]:
    found: dict[str, Any] = data["interactions"][index]["response"]["body"]["json"]["choices"][0]
    return found


def another_token(data: dict[str, Any], index: int = 5, position: int = 3) -> None:
    """Call ``index`` now says " the" at ``position`` (the shipped calls say " a")."""
    tokens = choice(data, index)["logprobs"]["content"]
    tokens[position]["token"], tokens[position]["bytes"] = " the", list(b" the")
    choice(data, index)["message"]["content"] = "".join(t["token"] for t in tokens)


def other_logprob(data: dict[str, Any], index: int = 7) -> None:
    choice(data, index)["logprobs"]["content"][2]["logprob"] -= 0.01


# --------------------------------------------------------------------------- cassettes


def test_identical_cassettes_exit_0(
    capsys: pytest.CaptureFixture[str], pairs: Path, tmp_path: Path
) -> None:
    copy = shutil.copy(pairs, tmp_path / "copy.json")
    code, out, _ = diff(capsys, pairs, copy)
    assert code == 0
    assert "identical files" in out
    assert out.rstrip().endswith("no change in behaviour: 1 cassette compared")


def test_the_same_calls_written_otherwise_are_the_same(
    capsys: pytest.CaptureFixture[str], pairs: Path, tmp_path: Path
) -> None:
    # Another recording of the same deterministic calls: other bytes, the same calls.
    new = tmp_path / "new.json"
    new.write_text(json.dumps(json.loads(pairs.read_text(encoding="utf-8"))), encoding="utf-8")
    code, out, _ = diff(capsys, pairs, new)
    assert code == 0
    assert "same (8 calls)" in out


def test_a_changed_text_names_the_call_and_the_first_diverging_token(
    capsys: pytest.CaptureFixture[str], pairs: Path, tmp_path: Path
) -> None:
    new = edited(pairs, tmp_path / "new.json", another_token)
    code, out, _ = diff(capsys, pairs, new, "--json", tmp_path / "diff.json")
    assert code == 1
    assert "1 of 8 calls changed (texts 1)" in out
    assert 'call #6: text changed from token 3: "␣a" → "␣the"' in out
    assert "    old: The sound of a cat's roar" in out
    assert "    new: The sound of the cat's roar" in out
    assert "behaviour changed in 1 of 1 cassette: 1 call with another text" in out
    data = json.loads((tmp_path / "diff.json").read_text(encoding="utf-8"))
    assert data["behaviour_changed"] is True
    [call] = data["cassettes"][0]["changed"]
    assert call | {"old_text": None, "new_text": None} == {
        "call": 6,
        "status": "text",
        "position": 3,
        "old": " a",
        "new": " the",
        "old_text": None,
        "new_text": None,
        "offset": len("The sound of "),
    }
    assert diff(capsys, pairs, new, "--exit-zero")[0] == 0


def test_calls_changed_the_same_way_are_one_entry(
    capsys: pytest.CaptureFixture[str], pairs: Path, tmp_path: Path
) -> None:
    def two_calls(data: dict[str, Any]) -> None:
        another_token(data, 2)
        another_token(data, 4)

    code, out, _ = diff(capsys, pairs, edited(pairs, tmp_path / "new.json", two_calls))
    assert code == 1
    assert 'calls #3, #5: text changed from token 3: "␣a" → "␣the"' in out
    assert out.count("    old: ") == 1


def test_a_request_answered_otherwise_has_drifted(
    capsys: pytest.CaptureFixture[str], pairs: Path, shipped: dict[str, Path], tmp_path: Path
) -> None:
    # The developer arm (calls #1, #3, ...) now answers as the shipped recording of the
    # instruction in the user's message does: another near-tie winner at token 3.
    user = json.loads(shipped[USER.stem].read_text(encoding="utf-8"))

    def answered_otherwise(data: dict[str, Any]) -> None:
        for index in range(0, CALLS, 2):
            data["interactions"][index]["response"] = user["interactions"][0]["response"]

    new = edited(pairs, tmp_path / "new.json", answered_otherwise)
    code, out, _ = diff(capsys, pairs, new, "--json", tmp_path / "diff.json")
    assert code == 1
    assert 'calls #1, #3, #5, #7: text changed from token 3: "␣a" → "␣the"' in out
    assert (
        "each request, old vs new calls (js, the drift check's rule, Holm over 2 requests)" in out
    )
    assert "calls #1, #3, #5, … (4 old, 4 new): drifted: change 1 (exact), tolerance 0.2" in out
    assert "calls #2, #4, #6, … (4 old, 4 new): no drift: change 0 (exact)" in out
    assert out.rstrip().endswith("4 calls with another text; 1 of 2 requests drifted")
    requests = json.loads((tmp_path / "diff.json").read_text(encoding="utf-8"))["cassettes"][0][
        "requests"
    ]
    assert [(r["calls"], r["status"]) for r in requests] == [
        ([1, 3, 5, 7], "drifted"),
        ([2, 4, 6, 8], "no drift"),
    ]


def test_other_probabilities_alone_are_shown_but_exit_0(
    capsys: pytest.CaptureFixture[str], pairs: Path, tmp_path: Path
) -> None:
    code, out, _ = diff(capsys, pairs, edited(pairs, tmp_path / "new.json", other_logprob))
    assert code == 0
    assert "same text, other probabilities: #8 (earliest at token 2" in out
    assert "no change in behaviour: 1 cassette compared (1 call with other probabilities" in out


def test_a_shorter_answer_ends_where_it_parts(
    capsys: pytest.CaptureFixture[str], pairs: Path, tmp_path: Path
) -> None:
    def shorter(data: dict[str, Any]) -> None:
        tokens = choice(data, 0)["logprobs"]["content"]
        del tokens[5:]
        choice(data, 0)["message"]["content"] = "".join(t["token"] for t in tokens)

    code, out, _ = diff(capsys, pairs, edited(pairs, tmp_path / "new.json", shorter))
    assert code == 1
    assert "call #1: text changed the new answer ends at token 5" in out


def test_another_request_and_a_missing_call(
    capsys: pytest.CaptureFixture[str], pairs: Path, tmp_path: Path
) -> None:
    def changed(data: dict[str, Any]) -> None:
        data["interactions"][0]["request"]["body"]["json"]["max_tokens"] = 21
        del data["interactions"][-1]

    code, out, _ = diff(capsys, pairs, edited(pairs, tmp_path / "new.json", changed))
    assert code == 1
    assert "another request is sent (the test changed): #1" in out
    assert "calls no longer made: #8" in out


def test_directories_match_cassettes_by_relative_path(
    capsys: pytest.CaptureFixture[str], pairs: Path, shipped: dict[str, Path], tmp_path: Path
) -> None:
    old, new = tmp_path / "old", tmp_path / "new"
    for side in (old, new):
        (side / "t").mkdir(parents=True)
        shutil.copy(pairs, side / "t" / pairs.name)
    shutil.copy(shipped[USER.stem], old / "t" / USER.name)  # removed in new
    shutil.copy(shipped[REPLAYED.stem], new / "added.json")
    edited(pairs, new / "t" / pairs.name, another_token)
    code, out, _ = diff(capsys, old, new)
    assert code == 1
    assert f"t/{pairs.name}: 1 of 8 calls changed" in out
    assert f"t/{USER.name}: removed (8 calls no longer recorded)" in out
    assert "added.json: new cassette (8 calls)" in out
    assert "behaviour changed in 3 of 3 cassettes" in out


# --------------------------------------------------------------------------- reports


@pytest.fixture(scope="module")
def report(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("report") / "report.json"
    args = ["compare", "--local", "--cassette", str(REPLAYED), "--json", str(path)]
    assert cli.main(args) == 0
    return path


def test_reports_show_a_verdict_flip_and_the_change(
    capsys: pytest.CaptureFixture[str], report: Path, tmp_path: Path
) -> None:
    def flipped(data: dict[str, Any]) -> None:
        row = data["comparisons"][0]
        row.update(verdict="different", change=0.42, change_upper=0.51, p_value=0.001)
        row["deterministic"] = False

    new = edited(report, tmp_path / "new.json", flipped)
    code, out, _ = diff(capsys, report, new)
    assert code == 1
    assert "developer vs system: verdict equivalent → different" in out
    assert "  old: change 0 (exact), tolerance 0.2, p —, 20+20 calls" in out
    assert "  new: change 0.42 [0.51], tolerance 0.2, p 0.001, 20+20 calls" in out
    assert "behaviour changed: 1 comparison, 1 changed verdict" in out


def test_same_reports_exit_0_and_json_alone_goes_to_stdout(
    capsys: pytest.CaptureFixture[str], report: Path
) -> None:
    code, out, _ = diff(capsys, report, report, "--json", "-")
    assert code == 0
    data = json.loads(out)
    assert data["behaviour_changed"] is False
    assert data["comparisons"][0]["status"] == "same"
    assert data["comparisons"][0]["old"]["verdict"] == "equivalent"


# --------------------------------------------------------------------------- git HEAD


def git(cwd: Path, *args: str) -> None:
    subprocess.run(
        ["git", "-c", "user.name=t", "-c", "user.email=t@example.com", *args],
        cwd=cwd,
        check=True,
        capture_output=True,
    )


def test_one_path_is_compared_with_git_head(
    capsys: pytest.CaptureFixture[str], pairs: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    cassettes = tmp_path / "cassettes"
    cassettes.mkdir()
    shutil.copy(pairs, cassettes / "pairs.json")
    git(tmp_path, "init", "-q")
    git(tmp_path, "add", ".")
    git(tmp_path, "commit", "-qm", "recorded")
    monkeypatch.chdir(tmp_path)
    code, out, _ = diff(capsys, "cassettes")
    assert (code, out.splitlines()[:2]) == (
        0,
        ["old: cassettes (git HEAD)", "new: cassettes (working tree)"],
    )
    edited(pairs, cassettes / "pairs.json", another_token)
    code, out, _ = diff(capsys, "cassettes/pairs.json")
    assert code == 1
    assert 'call #6: text changed from token 3: "␣a" → "␣the"' in out
    code, out, _ = diff(capsys, "cassettes")
    assert code == 1
    assert "pairs.json: 1 of 8 calls changed" in out
    shutil.copy(pairs, cassettes / "new.json")
    code, _, err = diff(capsys, "cassettes/new.json")
    assert code == 2
    assert "cassettes/new.json is not in git HEAD (a new file)" in err
    assert "rolecheck diff OLD cassettes/new.json" in err


def test_against_compares_with_another_revision(
    capsys: pytest.CaptureFixture[str], pairs: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # In a pull request's CI the working tree is the commit: compare with the base branch.
    shutil.copy(pairs, tmp_path / "pairs.json")
    git(tmp_path, "init", "-q")
    git(tmp_path, "add", ".")
    git(tmp_path, "commit", "-qm", "recorded")
    edited(pairs, tmp_path / "pairs.json", another_token)
    git(tmp_path, "commit", "-qam", "re-recorded")
    monkeypatch.chdir(tmp_path)
    assert diff(capsys, "pairs.json")[0] == 0
    code, out, _ = diff(capsys, "pairs.json", "--against", "HEAD~1")
    assert code == 1
    assert out.startswith("old: pairs.json (git HEAD~1)\nnew: pairs.json (working tree)\n")
    assert "pairs.json: 1 of 8 calls changed (texts 1)" in out
    code, _, err = diff(capsys, "pairs.json", "--against", "main-that-is-not")
    assert code == 2
    assert "git knows no commit 'main-that-is-not'" in err
    code, _, err = diff(capsys, "pairs.json", "pairs.json", "--against", "HEAD~1")
    assert code == 2
    assert "with two paths, drop it" in err


def test_one_path_outside_git_is_a_usage_error(
    capsys: pytest.CaptureFixture[str], pairs: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("GIT_CEILING_DIRECTORIES", str(tmp_path.parent))
    path = shutil.copy(pairs, tmp_path / "pairs.json")
    code, _, err = diff(capsys, path)
    assert code == 2
    assert "with its version in git HEAD: not a git repository" in err
    assert "rolecheck diff OLD NEW" in err


# --------------------------------------------------------------------------- usage errors


def test_a_cassette_vs_a_report_is_a_usage_error(
    capsys: pytest.CaptureFixture[str], pairs: Path, report: Path
) -> None:
    code, _, err = diff(capsys, pairs, report)
    assert code == 2
    assert "is a cassette but" in err
    assert "is a JSON report; compare like with like" in err


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ('{"rolecheck_cassette": 1, "interactions": [}', "new.json:1:44: Expecting value"),
        ('{"rolecheck_cassette": 1, "interactions": 3}', '"interactions" must be a list'),
        ('{"something": "else"}', "neither a rolecheck cassette nor a JSON report"),
    ],
)
def test_unreadable_files_are_usage_errors(
    capsys: pytest.CaptureFixture[str], pairs: Path, tmp_path: Path, content: str, message: str
) -> None:
    bad = tmp_path / "new.json"
    bad.write_text(content, encoding="utf-8")
    code, _, err = diff(capsys, pairs, bad)
    assert code == 2
    assert message in err


def test_an_unwritable_json_path_fails(
    capsys: pytest.CaptureFixture[str], pairs: Path, tmp_path: Path
) -> None:
    code, out, err = diff(capsys, pairs, pairs, "--json", tmp_path)
    assert code == 1
    assert "identical files" in out
    assert f"cannot write the JSON to {tmp_path}" in err


def test_missing_paths_are_usage_errors(
    capsys: pytest.CaptureFixture[str], pairs: Path, tmp_path: Path
) -> None:
    code, _, err = diff(capsys, pairs, tmp_path / "nothing.json")
    assert code == 2
    assert "no file or directory at" in err
    code, _, err = diff(capsys, tmp_path, PAIRS)
    assert code == 2
    assert "is a directory but" in err


# --------------------------------------------------------------------------- the docs

_EXAMPLE = re.compile(
    r"^<!-- diff example -->\n```text\n\$ rolecheck (.*?)\n(.*?)^```", re.M | re.S
)


def test_the_docs_example_is_what_the_command_prints(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    docs = ROOT / "docs" / "reports.md"
    text = docs.read_text(encoding="utf-8")
    example = _EXAMPLE.search(text)
    assert example is not None, "docs/reports.md lost its <!-- diff example --> block"
    argv = example.group(1).split()
    rev = argv[argv.index("--against") + 1]
    known = subprocess.run(
        ["git", "rev-parse", "--verify", "--quiet", f"{rev}^{{commit}}"],
        cwd=ROOT,
        check=False,
        capture_output=True,
    )
    if known.returncode != 0:
        pytest.skip(f"{rev} is not in this checkout (a shallow clone, or no git)")
    monkeypatch.chdir(ROOT)
    code, out, _ = diff(capsys, *argv[1:])
    assert code == 1
    if out != example.group(2) and os.environ.get("ROLECHECK_UPDATE_DOCS") == "1":
        docs.write_text(text.replace(example.group(2), out), encoding="utf-8")
        return
    assert out == example.group(2), (
        "docs/reports.md's rolecheck diff example is stale; refresh it with "
        "ROLECHECK_UPDATE_DOCS=1 python -m pytest tests/test_cli_diff.py"
    )
