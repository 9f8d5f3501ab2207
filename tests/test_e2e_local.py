"""End to end against the real local model behind the real llama.cpp server.

No mocks: these tests record live from SmolLM2-135M-Instruct on 127.0.0.1,
then replay offline with sockets blocked and compare the numbers. They skip
when the local backend is not installed, except under CI (``CI=true``), where a
missing backend is a failure.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from pytest_rolecheck.running.local import LocalServer, backend_status

pytestmark = pytest.mark.e2e
pytest_plugins = ["pytester"]

ROOT = Path(__file__).resolve().parents[1]
PLANTED_KEY = "sk-test-PLANTEDE2EKEY0123456789abcdef"

SMALL_TESTS = """
from pytest_rolecheck import Variant

MESSAGES = [
    {"role": "system", "content": "You are a helpful AI assistant"},
    {"role": "user", "content": "Name a colour."},
]

def test_roles(rolecheck):
    # llama-server renders developer as system: one prompt, bit-identical answers
    result = rolecheck.assert_roles_equivalent(MESSAGES, roles=("developer", "system"))
    assert result.deterministic

def test_instruction_in_the_user_turn(rolecheck):
    rolecheck.assert_roles_differ(MESSAGES, roles=("user-prefixed", "system"))

def test_sampled(rolecheck):
    # temperature 1: every call carries its own seed, so the calls really differ
    v = Variant.from_messages(MESSAGES, label="system")
    result = rolecheck.compare(v, v, temperature=1.0)
    assert not result.deterministic
"""

INI = """[pytest]
rolecheck_trials = 4
rolecheck_max_tokens = 6
rolecheck_top_logprobs = 5
rolecheck_report = report.json
"""


def require_backend() -> None:
    installed, reason = backend_status()
    if installed:
        return
    if os.environ.get("CI") == "true":
        pytest.fail(f"CI=true and the local backend is missing: {reason}")
    pytest.skip(f"local backend not installed: {reason}")


@pytest.fixture(scope="module")
def server() -> Iterator[LocalServer]:
    require_backend()
    with LocalServer() as running:
        yield running


def _rows(path: Path) -> list[dict[str, object]]:
    rows: list[dict[str, object]] = json.loads((path / "report.json").read_text())["comparisons"]
    return rows


def _numbers(rows: list[dict[str, object]]) -> list[tuple[object, ...]]:
    return [
        (
            r["title"],
            r["verdict"],
            r["p_value"],
            r["floor"],
            r["change"],
            r["change_upper"],
            json.dumps(r["details"]["matrix"]),  # type: ignore[index]
        )
        for r in rows
    ]


def test_record_with_local_backend_then_replay_offline(pytester: pytest.Pytester) -> None:
    """--rolecheck-local starts the server for the live run and stops it at the end."""
    require_backend()
    pytester.makeini(INI)
    pytester.makepyfile(test_small=SMALL_TESTS)
    recorded = pytester.runpytest_subprocess("--rolecheck-local", "--rolecheck-record-mode=once")
    recorded.assert_outcomes(passed=3)
    first = _rows(pytester.path)
    assert {r["source"] for r in first} == {"live"}
    assert [r["verdict"] for r in first][:2] == ["equivalent", "different"]

    # The server is gone with the session; sockets are blocked; everything replays.
    replayed = pytester.runpytest_subprocess(
        "--rolecheck-local", "--disable-socket", "--allow-unix-socket"
    )
    replayed.assert_outcomes(passed=3)
    second = _rows(pytester.path)
    assert {r["source"] for r in second} == {"replayed"}
    assert _numbers(first) == _numbers(second)

    # Plain pytest, as in CI: the cassettes say they came from the local model.
    plain = pytester.runpytest_subprocess("--disable-socket", "--allow-unix-socket")
    plain.assert_outcomes(passed=3)
    assert _numbers(first) == _numbers(_rows(pytester.path))


def test_tool_comparison_where_the_model_never_calls_a_tool_is_refused(
    pytester: pytest.Pytester,
) -> None:
    """The README's tool snippet on the bundled model, which never calls a tool."""
    require_backend()
    pytester.makeini(INI)
    pytester.makepyfile(
        test_tools="""
from pytest_rolecheck import Variant

TOOLS = [{"type": "function", "function": {"name": "get_weather", "description": "Weather",
          "parameters": {"type": "object", "properties": {"city": {"type": "string"}}}}}]
MESSAGES = [{"role": "user", "content": "What is the weather in Paris?"}]

def test_tools(rolecheck):
    via_api = Variant.from_messages(MESSAGES, tools=TOOLS, tool_choice="auto")
    rolecheck.assert_tool_calls_equivalent(
        via_api, via_api.tools_in_system_prompt(keep_api_tools=True), max_tokens=8
    )
"""
    )
    result = pytester.runpytest_subprocess("--rolecheck-local", "--rolecheck-record-mode=once")
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(
        ["*NothingToCompareError: no call of * made a tool call (4+4 calls, all answered in text)*"]
    )
    assert "bundled SmolLM2 model never calls one" in result.stdout.str()


def test_planted_api_key_never_reaches_a_cassette(
    pytester: pytest.Pytester, server: LocalServer
) -> None:
    """A real client with a real-looking key records against the real server."""
    pytester.makeini(INI)
    pytester.makeconftest(
        f"""
import openai, pytest

@pytest.fixture(scope="session")
def rolecheck_client():
    return openai.AsyncOpenAI(base_url={server.base_url!r}, api_key={PLANTED_KEY!r})
"""
    )
    pytester.makepyfile(test_small=SMALL_TESTS)
    result = pytester.runpytest_subprocess(
        "--rolecheck-record-mode=once", f"--rolecheck-model={server.model}"
    )
    result.assert_outcomes(passed=3)
    cassettes = list((pytester.path / "cassettes").rglob("*.json"))
    assert len(cassettes) == 3
    for path in cassettes:
        text = path.read_text()
        assert PLANTED_KEY not in text
        assert "PLANTEDE2EKEY" not in text
        assert "authorization" not in text.lower()


def _server_pids(tag: str) -> set[int]:
    """Pids of running local servers whose environment carries ``tag``."""
    pids = set()
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            cmdline = (proc / "cmdline").read_bytes()
            environ = (proc / "environ").read_bytes()
        except OSError:
            continue
        if b"pytest_rolecheck.running.llama_server" in cmdline and tag.encode() in environ:
            pids.add(int(proc.name))
    return pids


def test_xdist_workers_share_one_server(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    """-n 2 records through one server started by the controller, stopped at the end."""
    require_backend()
    if not Path("/proc/self/environ").exists():
        pytest.skip("needs /proc to see the server processes")
    tag = f"ROLECHECK_E2E_TAG={os.getpid()}-{id(pytester)}"
    monkeypatch.setenv("ROLECHECK_E2E_TAG", tag.split("=", 1)[1])
    pytester.makeini(INI)
    pytester.makepyfile(test_small=SMALL_TESTS)
    seen: set[int] = set()
    done = threading.Event()

    def watch() -> None:
        while not done.is_set():
            seen.update(_server_pids(tag))
            time.sleep(0.1)

    watcher = threading.Thread(target=watch, daemon=True)
    watcher.start()
    try:
        result = pytester.runpytest_subprocess(
            "-n", "2", "--rolecheck-local", "--rolecheck-record-mode=once"
        )
    finally:
        done.set()
        watcher.join()
    result.assert_outcomes(passed=3)
    rows = _rows(pytester.path)
    assert {r["source"] for r in rows} == {"live"}
    assert len(seen) == 1, f"expected one server process, saw {sorted(seen)}"
    assert not _server_pids(tag), "the server outlived the run"


def test_ctrl_c_leaves_no_server_behind(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    """SIGINT to a recording run (-n 2): pytest stops, and so does the shared server."""
    require_backend()
    if not Path("/proc/self/environ").exists():
        pytest.skip("needs /proc to see the server processes")
    tag = f"ROLECHECK_E2E_TAG=ctrl-c-{os.getpid()}-{id(pytester)}"
    monkeypatch.setenv("ROLECHECK_E2E_TAG", tag.split("=", 1)[1])
    pytester.makeini(INI.replace("rolecheck_trials = 4", "rolecheck_trials = 200"))
    pytester.makepyfile(test_small=SMALL_TESTS)
    process = subprocess.Popen(
        [
            *(sys.executable, "-m", "pytest", "-n", "2", "--rolecheck-local"),
            *("--rolecheck-record-mode=once", "-p", "no:cacheprovider"),
        ],
        cwd=pytester.path,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 120
        while not _server_pids(tag):
            assert process.poll() is None, "the run ended before its server started"
            assert time.monotonic() < deadline, "no server started within 120 s"
            time.sleep(0.1)
        time.sleep(1.0)  # calls in flight
        process.send_signal(signal.SIGINT)
        process.wait(timeout=60)
        deadline = time.monotonic() + 10
        while _server_pids(tag) and time.monotonic() < deadline:
            time.sleep(0.1)
        assert not _server_pids(tag), "the server outlived the interrupted run"
        assert not list((pytester.path / "cassettes").rglob("*.json"))  # nothing half-written
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()


def test_fix_commands_name_the_test_as_seen_from_the_invocation_directory() -> None:
    """`pytest examples` from the repository root: the rewrite command must work from there."""
    completed = subprocess.run(
        [
            sys.executable,
            "-m",
            "pytest",
            "examples",
            "-p",
            "no:cacheprovider",
            "--rolecheck-max-tokens=21",  # the recorded requests used 20: stale
            "-k",
            "test_developer_vs_system_all_pairs",
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert completed.returncode == 1, completed.stdout + completed.stderr
    assert (
        "--rolecheck-record-mode=rewrite "
        "'examples/test_seed_experiment.py::test_developer_vs_system_all_pairs'"
    ) in completed.stdout


def test_local_server_fixture_serves_a_user_client(pytester: pytest.Pytester) -> None:
    """The rolecheck_local_server fixture starts the shared server for a custom client."""
    require_backend()
    pytester.makeini(INI)
    pytester.makeconftest(
        """
import openai, pytest

@pytest.fixture(scope="session")
def rolecheck_client(rolecheck_local_server):
    return openai.AsyncOpenAI(base_url=rolecheck_local_server.base_url, api_key="unused")
"""
    )
    pytester.makepyfile(
        test_fixture="""
def test_run(rolecheck, rolecheck_local_server):
    assert rolecheck_local_server.base_url.startswith("http://127.0.0.1:")
    responses = rolecheck.run(
        [{"role": "user", "content": "Say yes."}], n=2, model=rolecheck_local_server.model
    )
    assert len(responses) == 2
    assert responses[0].choices[0].logprobs is not None
"""
    )
    result = pytester.runpytest_subprocess("--rolecheck-record-mode=once")
    result.assert_outcomes(passed=1)


def test_example_suite_replays_offline_with_network_blocked(tmp_path: Path) -> None:
    """The README's main job: the shipped examples, from the committed cassettes.

    Also renders the HTML report of the examples and checks its content.
    """
    pytest.importorskip("matplotlib")
    report = tmp_path / "examples.json"
    completed = subprocess.run(
        [
            sys.executable,
            "-m",
            "pytest",
            "examples",
            "-p",
            "no:cacheprovider",
            "--disable-socket",
            "--allow-unix-socket",
            f"--rolecheck-report={report}",
            f"--rolecheck-report-dir={tmp_path / 'html'}",
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=600,
        env={**os.environ, "OPENAI_API_KEY": "", "OPENAI_BASE_URL": ""},
    )
    assert completed.returncode == 0, completed.stdout + completed.stderr
    assert "0 live" in completed.stdout
    rows = json.loads(report.read_text())["comparisons"]
    assert rows, "the example suite made no comparisons"
    assert {r["source"] for r in rows} == {"replayed"}
    verdicts = {r["nodeid"].rsplit("::", 1)[-1]: r["verdict"] for r in rows}
    assert verdicts["test_control_instruction_wording_differs"] == "different"
    assert verdicts["test_developer_vs_system_all_pairs"] == "equivalent"
    assert verdicts["test_instruction_in_the_user_message_differs"] == "different"
    assert verdicts["test_sampled_same_prompt_is_equivalent"] == "equivalent"
    assert verdicts["test_tools_via_api_vs_described_in_system_prompt"] == "different"

    # The HTML report of the shipped examples: every comparison, its verdict, its plots.
    html = (tmp_path / "html" / "rolecheck-report.html").read_text()
    for row in rows:
        assert row["title"] in html
    assert html.count("equivalent") >= 2
    assert html.count("different") >= 3
    images = html.count('src="data:image/png;base64,')
    # distances + divergence per logprob comparison; a comparison by text has no token
    # positions to draw, only its distances
    by_text = sum(bool(r["details"].get("no_logprobs")) for r in rows)
    assert by_text == 2  # the Responses-API examples
    assert images >= 2 * len(rows) - by_text, images
    assert "<script" not in html  # self-contained, nothing to fetch or run
