"""Direct replay (no vcrpy) answers and refuses exactly as the vcrpy path does."""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx2
import openai
import pytest
from test_cassette import BASE_URL, NODEID, Server, record, request_body

from pytest_rolecheck.errors import (
    CassetteCorruptError,
    CassetteError,
    CassetteExhaustedError,
    CassetteMismatchError,
    CassetteNotFoundError,
)
from pytest_rolecheck.recording import direct
from pytest_rolecheck.recording.cassette import CassetteSession
from pytest_rolecheck.recording.format import CALL_INDEX_HEADER
from pytest_rolecheck.recording.paths import cassette_path
from pytest_rolecheck.running.default_client import close_default_clients, make_client

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture
def path(tmp_path: Path) -> Path:
    return cassette_path(tmp_path / "cassettes", NODEID)


@pytest.fixture(autouse=True)
def _fresh_default_clients() -> Iterator[None]:
    yield
    close_default_clients()


def via_vcrpy(path: Path, index: int, body: dict[str, Any], base_url: str = BASE_URL) -> Any:
    """Call ``index`` replayed by vcrpy, without check_request: (response or explained error)."""
    server = Server()
    http = httpx2.Client(transport=httpx2.MockTransport(server.respond))
    client = openai.OpenAI(api_key="sk-none", base_url=base_url, http_client=http)
    with CassetteSession(path, "none", nodeid=NODEID) as session:
        assert not session.direct
        try:
            return client.chat.completions.create(
                **body, extra_headers={CALL_INDEX_HEADER: str(index)}
            )
        except Exception as exc:
            return session.explain(exc)
        finally:
            assert server.seen == []


def via_direct(
    path: Path, calls: list[tuple[int, dict[str, Any]]], base_url: str = BASE_URL
) -> list[Any]:
    """Calls replayed by the default client's transport: responses, or the explained error."""
    client = make_client(base_url=base_url, live=False)
    out: list[Any] = []
    with CassetteSession(path, "none", nodeid=NODEID, direct=True) as session:
        assert session.direct

        async def run() -> None:
            for index, body in calls:
                headers = {CALL_INDEX_HEADER: str(index)}
                try:
                    out.append(await client.chat.completions.create(**body, extra_headers=headers))
                except Exception as exc:
                    out.append(session.explain(exc))

        with session.serving():
            asyncio.run(run())
    return out


def test_direct_replay_gives_the_recorded_completions(path: Path) -> None:
    recorded = record(path, Server(), n=3)
    replayed = via_direct(path, [(i, request_body(i)) for i in range(3)])
    by_vcrpy = [via_vcrpy(path, i, request_body(i)) for i in range(3)]
    assert [r.model_dump() for r in replayed] == [r.model_dump() for r in by_vcrpy]
    # the cassette makes id and created steady; everything else is what was recorded
    steady = {"id", "created"}
    assert [r.model_dump(exclude=steady) for r in replayed] == [
        r.model_dump(exclude=steady) for r in recorded
    ]


ERRORS: dict[str, tuple[type[CassetteError], Callable[[Path], tuple[int, dict[str, Any]]]]] = {
    "mismatch": (CassetteMismatchError, lambda path: (0, request_body(0, role="developer"))),
    "exhausted": (CassetteExhaustedError, lambda path: (3, request_body(3))),
    "not found": (CassetteNotFoundError, lambda path: (path.unlink(), (0, request_body(0)))[1]),
    "corrupt": (
        CassetteCorruptError,
        lambda path: (path.write_text('{"rolecheck_cassette": 1,\n "x": [,]}'), (0, {}))[1],
    ),
}


@pytest.mark.parametrize("kind", list(ERRORS))
def test_direct_replay_refuses_with_the_vcrpy_paths_error(path: Path, kind: str) -> None:
    record(path, Server(), n=3)
    error_type, make = ERRORS[kind]
    index, body = make(path)
    body = body or request_body(index)
    (direct_error,) = via_direct(path, [(index, body)])
    vcrpy_error = via_vcrpy(path, index, body)
    assert type(direct_error) is error_type
    assert type(vcrpy_error) is error_type
    assert str(direct_error) == str(vcrpy_error)


def test_direct_replay_refuses_another_path_as_vcrpy_does(path: Path) -> None:
    record(path, Server(), n=1)
    elsewhere = "https://gw.test/openai/v2"
    (direct_error,) = via_direct(path, [(0, request_body(0))], base_url=elsewhere)
    vcrpy_error = via_vcrpy(path, 0, request_body(0), base_url=elsewhere)
    assert isinstance(direct_error, CassetteMismatchError)
    assert "the paths differ" in str(direct_error)
    assert str(direct_error) == str(vcrpy_error)


def test_direct_replay_plays_each_recording_once(path: Path) -> None:
    record(path, Server(), n=2)
    first, again = via_direct(path, [(1, request_body(1)), (1, request_body(1))])
    assert first.choices[0].message.content == "system:v1-1"
    assert isinstance(again, CassetteError)
    assert "call #2 of" in str(again)
    assert "was sent twice" in str(again)


def test_calls_outside_a_serving_session_pass_through(path: Path) -> None:
    """The shared replay client sends what no session serves to the real transport."""
    record(path, Server(), n=1)
    client = make_client(base_url="http://127.0.0.1:9/v1", live=False)  # nothing listens
    with pytest.raises(openai.APIConnectionError):
        asyncio.run(client.with_options(timeout=5).chat.completions.create(**request_body(0)))


def test_the_switch_sends_replays_through_vcrpy(
    path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    record(path, Server(), n=1)
    monkeypatch.setattr(direct, "ENABLED", False)
    assert not CassetteSession(path, "none", nodeid=NODEID, direct=True).direct
    assert not CassetteSession(path, "rewrite", nodeid=NODEID, direct=True).direct  # live


# --------------------------------------------------------------------------- the plugin

DEFAULT_CLIENT_TEST = """
from pytest_rolecheck import assert_roles_equivalent

MESSAGES = [
    {"role": "system", "content": "You are a helpful AI assistant"},
    {"role": "user",
     "content": "Produce two stanza rock song lyrics for 'Rockin with my Kitty Cat'"},
]


def test_developer_vs_system_all_pairs():
    assert_roles_equivalent(MESSAGES, roles=("developer", "system"))
"""

USER_CLIENT_CONFTEST = """
import openai
import pytest


@pytest.fixture
def rolecheck_client():
    return openai.AsyncOpenAI(api_key="none", base_url="http://127.0.0.1:9/v1", max_retries=0)
"""


@pytest.mark.parametrize("own_client", [False, True], ids=["default client", "rolecheck_client"])
def test_the_plugin_replays_directly_only_through_its_own_client(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch, own_client: bool
) -> None:
    shipped = ROOT / "cassettes" / "examples" / "test_seed_experiment"
    pytester.makeini(
        "[pytest]\nrolecheck_local = true\nrolecheck_cassette_dir = cassettes\n"
        "rolecheck_trials = 20\nrolecheck_max_tokens = 20\nrolecheck_top_logprobs = 20\n"
    )
    pytester.makepyfile(test_roles=DEFAULT_CLIENT_TEST)
    if own_client:
        pytester.makeconftest(USER_CLIENT_CONFTEST)
    target = pytester.path / "cassettes" / "test_roles"
    target.mkdir(parents=True)
    name = "test_developer_vs_system_all_pairs.json"
    shutil.copyfile(shipped / name, target / name)
    played: list[int] = []
    real_play = CassetteSession.play

    def counted(self: CassetteSession, *args: Any) -> Any:
        played.append(1)
        return real_play(self, *args)

    monkeypatch.setattr(CassetteSession, "play", counted)
    result = pytester.runpytest("-p", "no:randomly")
    result.assert_outcomes(passed=1)
    assert len(played) == (0 if own_client else 40)


# --------------------------------------------------------------------------- shipped cassettes

DRIVER = """
import atexit
import sys
from pytest_rolecheck.recording import cassette, direct
direct.ENABLED = sys.argv[1] == "direct"
played = []
play = cassette.CassetteSession.play
cassette.CassetteSession.play = lambda self, *a: played.append(1) or play(self, *a)
atexit.register(lambda: print(f"direct replays: {len(played)}", file=sys.stderr))
if sys.argv[2] == "pytest":
    import pytest
    sys.exit(pytest.main(sys.argv[3:]))
from pytest_rolecheck.cli import main
sys.exit(main(sys.argv[3:]))
"""

CLI_RUNS = {
    "seed-experiment": ["--local"],
    "seed-experiment-seed-design": ["--local", "--design", "seed", "--metric", "seed"],
    "aa-pilot": [
        "--local",
        "--variant-a",
        "docs/variants/developer.yaml",
        "--variant-b",
        "docs/variants/developer.yaml",
        "--temperature",
        "1",
        "--trials",
        "20",
    ],
}


def _replay(tmp_path: Path, way: str, tool: str, args: list[str]) -> dict[str, Any]:
    out = tmp_path / f"{way}.json"
    flag = f"--rolecheck-report={out}" if tool == "pytest" else f"--json={out}"
    completed = subprocess.run(
        [sys.executable, "-c", DRIVER, way, tool, *args, flag],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=600,
        env={**os.environ, "OPENAI_API_KEY": "", "OPENAI_BASE_URL": ""},
    )
    assert completed.returncode == 0, completed.stdout[-3000:] + completed.stderr[-3000:]
    played = int(completed.stderr.rsplit("direct replays: ", 1)[1].split()[0])
    assert (played > 0) == (way == "direct"), completed.stderr[-3000:]
    report: dict[str, Any] = json.loads(out.read_text(encoding="utf-8"))
    return report


@pytest.mark.parametrize("run", ["examples", *CLI_RUNS])
def test_shipped_cassettes_give_the_same_report_both_ways(tmp_path: Path, run: str) -> None:
    """Every verdict and number of the shipped cassettes, direct and through vcrpy."""
    if run == "examples":
        tool, args = "pytest", ["examples", "-q", "-p", "no:cacheprovider", "-p", "no:randomly"]
    else:
        tool = "compare"
        args = ["compare", *CLI_RUNS[run], "--cassette", f"cassettes/cli/{run}.json"]
    reports = {way: _replay(tmp_path, way, tool, args) for way in ("direct", "vcrpy")}
    assert reports["direct"] == reports["vcrpy"]
    assert reports["direct"]["comparisons"]
