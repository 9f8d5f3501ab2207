"""The plugin end to end over a fake HTTP API: record, replay, errors, xdist, secrets.

The fake API runs on an ``httpx2.MockTransport`` (unit-level HTTP); the tests
against a real model behind a real server are in ``test_e2e_local.py``.
"""

from __future__ import annotations

import json
import os
import re
import shlex
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

pytest_plugins = ["pytester"]

FAKE_API = (Path(__file__).parent / "_fake_api.py").read_text(encoding="utf-8")

CONFTEST = """
import pytest
import _fake_api

@pytest.fixture(scope="session")
def rolecheck_client():
    return _fake_api.{factory}()
"""

MESSAGES = """
MESSAGES = [
    {"role": "system", "content": "You are a helpful AI assistant"},
    {"role": "user", "content": "Produce two stanza rock lyrics for 'Rockin with my Kitty Cat'"},
]
"""

ROLE_TESTS = (
    MESSAGES
    + """
from pytest_rolecheck import assert_roles_differ

def test_roles_differ():
    assert_roles_differ(MESSAGES, roles=("developer", "system"), model="fake-model", trials=6)

def test_same_variant_equivalent(rolecheck):
    v = rolecheck.variant(MESSAGES, label="helpful")
    rolecheck.assert_variants_equivalent(
        v, v, model="fake-model", trials=10, max_tokens=6, tolerance=0.3
    )
"""
)


@pytest.fixture
def project(pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch) -> pytest.Pytester:
    for var in (
        "FAKE_API_DOWN",
        "FAKE_API_STATUS",
        "FAKE_API_NO_LOGPROBS",
        "FAKE_API_NOISE",
        "FAKE_API_SERVED_MODEL",
        "OPENAI_BASE_URL",
    ):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    pytester.makepyfile(_fake_api=FAKE_API)
    pytester.makeconftest(CONFTEST.format(factory="async_client"))
    pytester.makeini("[pytest]\nrolecheck_report = report.json\n")
    return pytester


def _report(pytester: pytest.Pytester) -> list[dict[str, object]]:
    data = json.loads((pytester.path / "report.json").read_text())
    rows: list[dict[str, object]] = data["comparisons"]
    return rows


def _cassette(pytester: pytest.Pytester, module: str, test: str) -> Path:
    return pytester.path / "cassettes" / module / f"{test}.json"


def _numbers(row: dict[str, object]) -> tuple[object, ...]:
    details = row["details"]
    assert isinstance(details, dict)
    return (
        row["verdict"],
        row["p_value"],
        row["floor"],
        row["change"],
        row["change_upper"],
        json.dumps(details.get("matrix")),
    )


def test_record_once_then_replay_offline_gives_identical_numbers(
    project: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    project.makepyfile(test_roles=ROLE_TESTS)
    recorded = project.runpytest("--rolecheck-record-mode=once", "-v")
    recorded.assert_outcomes(passed=2)
    recorded.stdout.fnmatch_lines(["*rolecheck*", "*developer vs system*different*live*"])
    first = _report(project)
    assert _cassette(project, "test_roles", "test_roles_differ").is_file()
    assert _cassette(project, "test_roles", "test_same_variant_equivalent").is_file()

    monkeypatch.setenv("FAKE_API_DOWN", "1")  # any live call would now fail
    replayed = project.runpytest("-v")  # default mode none: replay only
    replayed.assert_outcomes(passed=2)
    replayed.stdout.fnmatch_lines(["*developer vs system*different*replayed*"])
    second = _report(project)
    assert [_numbers(r) for r in first] == [_numbers(r) for r in second]
    assert [r["source"] for r in second] == ["replayed", "replayed"]


def test_summary_lists_calls_and_tokens(project: pytest.Pytester) -> None:
    project.makepyfile(test_roles=ROLE_TESTS)
    result = project.runpytest("--rolecheck-record-mode=once", "-v")
    result.stdout.fnmatch_lines(
        [
            "*test*compared*verdict*n*tolerance*change*p*calls*tokens*source*",
            "*2 comparisons: *1 different*1 equivalent*;",
            "32 calls (32 live, 0 replayed), * tokens",
        ]
    )
    rows = _report(project)
    assert rows[0]["calls"] == 12
    assert isinstance(rows[0]["completion_tokens"], int)
    assert rows[0]["completion_tokens"] > 0


def test_missing_cassette_in_none_mode_says_how_to_record(project: pytest.Pytester) -> None:
    project.makepyfile(test_roles=ROLE_TESTS)
    result = project.runpytest("-k", "test_roles_differ")
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(
        [
            "*cassette directory cassettes does not exist: nothing was recorded there yet*"
            "--rolecheck-record-mode=once*test_roles_differ*"
        ]
    )
    assert "Traceback" not in result.stdout.str()
    assert not (project.path / "cassettes").exists()
    project.runpytest("--rolecheck-record-mode=once", "-k", "equivalent").assert_outcomes(passed=1)
    result = project.runpytest("-k", "test_roles_differ")
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(
        ["*no cassette at*test_roles_differ.json*--rolecheck-record-mode=once*test_roles_differ*"]
    )


def test_stale_cassette_shows_what_changed_and_the_rewrite_command(
    project: pytest.Pytester,
) -> None:
    project.makepyfile(test_roles=ROLE_TESTS)
    project.runpytest("--rolecheck-record-mode=once").assert_outcomes(passed=2)
    cassette = _cassette(project, "test_roles", "test_roles_differ")
    before = cassette.read_bytes()
    project.makepyfile(test_roles=ROLE_TESTS.replace("helpful AI assistant", "creative AI"))
    result = project.runpytest("-k", "test_roles_differ")
    result.assert_outcomes(failed=1)
    text = result.stdout.str()
    assert "--rolecheck-record-mode=rewrite" in text
    assert "creative AI" in text  # the diff shows both sides
    assert "helpful AI assistant" in text
    assert cassette.read_bytes() == before


def test_more_calls_than_recorded(project: pytest.Pytester) -> None:
    project.makepyfile(test_roles=ROLE_TESTS)
    project.runpytest("--rolecheck-record-mode=once").assert_outcomes(passed=2)
    project.makepyfile(test_roles=ROLE_TESTS.replace("trials=6)", "trials=7)", 1))
    result = project.runpytest("-k", "test_roles_differ")
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(
        ["*recorded 12 calls*requested call #13*--rolecheck-record-mode=rewrite*"]
    )


def test_corrupt_cassette_names_file_and_line(project: pytest.Pytester) -> None:
    project.makepyfile(test_roles=ROLE_TESTS)
    project.runpytest("--rolecheck-record-mode=once").assert_outcomes(passed=2)
    cassette = _cassette(project, "test_roles", "test_roles_differ")
    cassette.write_text('{\n  "rolecheck_cassette": 1,\n  "interactions": [\n  oops\n')
    result = project.runpytest("-k", "test_roles_differ")
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(["*test_roles_differ.json:4:*--rolecheck-record-mode=rewrite*"])


def test_rewrite_replaces_and_keeps_old_cassette_when_calls_fail(
    project: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    project.makepyfile(test_roles=ROLE_TESTS)
    project.runpytest("--rolecheck-record-mode=once").assert_outcomes(passed=2)
    cassette = _cassette(project, "test_roles", "test_roles_differ")
    before = cassette.read_bytes()
    monkeypatch.setenv("FAKE_API_STATUS", "500")
    failed = project.runpytest("--rolecheck-record-mode=rewrite", "-k", "test_roles_differ")
    failed.assert_outcomes(failed=1)
    failed.stdout.fnmatch_lines(["*HTTP 500*fake failure 500*"])
    assert cassette.read_bytes() == before  # old cassette kept, nothing half-written
    assert not list(cassette.parent.glob("*.tmp"))
    monkeypatch.delenv("FAKE_API_STATUS")
    monkeypatch.setenv("FAKE_API_NOISE", "0.06")
    project.runpytest("--rolecheck-record-mode=rewrite", "-k", "test_roles_differ").assert_outcomes(
        passed=1
    )
    assert cassette.read_bytes() != before


@pytest.mark.parametrize("mode", ["all", "rewrite"])
def test_live_modes_record_every_call(
    project: pytest.Pytester, monkeypatch: pytest.MonkeyPatch, mode: str
) -> None:
    project.makepyfile(test_roles=ROLE_TESTS)
    project.runpytest("--rolecheck-record-mode=once").assert_outcomes(passed=2)
    result = project.runpytest(f"--rolecheck-record-mode={mode}")
    result.assert_outcomes(passed=2)
    assert {r["source"] for r in _report(project)} == {"live"}
    monkeypatch.setenv("FAKE_API_DOWN", "1")
    project.runpytest().assert_outcomes(passed=2)


def test_failed_verdict_keeps_cassette_and_replays_the_same_failure(
    project: pytest.Pytester,
) -> None:
    project.makepyfile(
        test_verdict=MESSAGES
        + """
from pytest_rolecheck import assert_roles_equivalent

def test_claims_equivalence():
    assert_roles_equivalent(MESSAGES, roles=("developer", "system"), model="fake-model", trials=5)
"""
    )
    first = project.runpytest("--rolecheck-record-mode=once")
    first.assert_outcomes(failed=1)
    first.stdout.fnmatch_lines(
        [
            "*RolecheckAssertionError: assert_roles_equivalent failed:*not shown equivalent*",
            "*Verdict: different*",
            "*What to do: if the change is intended, assert it with assert_roles_differ(...)*",
        ]
    )
    assert _cassette(project, "test_verdict", "test_claims_equivalence").is_file()
    second = project.runpytest()
    second.assert_outcomes(failed=1)
    second.stdout.fnmatch_lines(["*assert_roles_equivalent failed*", "*Verdict: different*"])


@pytest.mark.parametrize(
    ("ending", "outcome"),
    [
        ("pytest.skip('not today')", "skipped"),
        ("pytest.xfail('known')", "xfailed"),
        ("pytest.fail('by hand')", "failed"),
        ("raise RuntimeError('user code failed after the calls')", "failed"),
    ],
)
def test_outcome_after_completed_calls_keeps_the_cassette(
    project: pytest.Pytester, monkeypatch: pytest.MonkeyPatch, ending: str, outcome: str
) -> None:
    # Otherwise CI asks to record it, recording pays for the calls and saves nothing, forever.
    project.makepyfile(
        test_after=MESSAGES
        + f"""
import pytest

def test_after(rolecheck):
    rolecheck.run(rolecheck.variant(MESSAGES), n=4, model="fake-model")
    {ending}
"""
    )
    project.runpytest("--rolecheck-record-mode=once").assert_outcomes(**{outcome: 1})
    cassette = _cassette(project, "test_after", "test_after")
    assert len(json.loads(cassette.read_text())["interactions"]) == 4
    monkeypatch.setenv("FAKE_API_DOWN", "1")
    project.runpytest().assert_outcomes(**{outcome: 1})  # replays, the same ending


def test_calls_cut_short_write_nothing_even_if_the_test_catches_it(
    project: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    project.makepyfile(
        test_caught=MESSAGES
        + """
import pytest
from pytest_rolecheck import BackendError

def test_caught(rolecheck):
    rolecheck.run(rolecheck.variant(MESSAGES), n=2, model="fake-model")
    with pytest.raises(BackendError):
        rolecheck.run(rolecheck.variant(MESSAGES), n=2, model="fake-model", max_tokens=99)
"""
    )
    project.makeconftest(
        CONFTEST.format(factory="async_client")
        + """
_handler = _fake_api.handler

def _fails_long_answers(request):
    import json, httpx2
    if json.loads(request.content).get("max_tokens") == 99:
        return httpx2.Response(500, json={"error": {"message": "fake failure"}})
    return _handler(request)

_fake_api.handler = _fails_long_answers
"""
    )
    project.runpytest("--rolecheck-record-mode=once").assert_outcomes(passed=1)
    assert not _cassette(project, "test_caught", "test_caught").exists()


def test_no_logprobs_says_which_option(
    project: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("FAKE_API_NO_LOGPROBS", "1")
    project.makepyfile(test_roles=ROLE_TESTS)
    result = project.runpytest(
        "--rolecheck-record-mode=once", "--rolecheck-logprobs=true", "-k", "test_roles_differ"
    )
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(["*NoLogprobsError*no token logprobs*logprobs=true requires*"])
    result.stdout.fnmatch_lines(["*default, auto, then asks without them*"])


def test_secrets_and_private_headers_never_reach_the_cassette(project: pytest.Pytester) -> None:
    project.makepyfile(test_roles=ROLE_TESTS)
    project.runpytest("--rolecheck-record-mode=once").assert_outcomes(passed=2)
    for path in (project.path / "cassettes").rglob("*.json"):
        text = path.read_text()
        for secret in (
            "sk-test-PLANTEDKEY",
            "SECRETORG",
            "proj_SECRET",
            "req_SECRET123",
            "SECRETCOOKIE",
            "authorization",
            "x-stainless",
            "user-agent",
        ):
            assert secret.lower() not in text.lower(), (path, secret)


def test_echoed_gateway_key_reaches_no_file_and_live_equals_replayed(
    project: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    # imported here, once: two inner runs would each import (and break) matplotlib
    pytest.importorskip("matplotlib.figure")
    pytest.importorskip("matplotlib.backends.backend_agg")
    project.makeconftest(CONFTEST.format(factory="gateway_client"))
    project.makepyfile(test_roles=ROLE_TESTS)
    outputs = {}
    for run, args in (("live", ["--rolecheck-record-mode=once"]), ("replayed", [])):
        result = project.runpytest(*args, "--rolecheck-report-dir=html")
        result.assert_outcomes(passed=2)
        data = json.loads((project.path / "report.json").read_text())
        del data["totals"]  # its live and replayed counts differ, as they should
        report = json.dumps(data).replace(f'"{run}"', '"SOURCE"')
        html = (project.path / "html" / "rolecheck-report.html").read_text()
        html = re.sub(r"\(\d+ live, \d+ replayed\)", "(SOURCE)", html)
        outputs[run] = (report, html.replace(f">{run}<", ">SOURCE<"))
        monkeypatch.setenv("FAKE_API_DOWN", "1")  # the second run must replay
    written = [p.read_text() for p in (project.path / "cassettes").rglob("*.json")]
    for text in (*outputs["live"], *outputs["replayed"], *written):
        assert "PLANTEDGATEWAY" not in text
        assert "PLANTEDKEY" not in text
    assert "fp_<redacted>" in outputs["live"][0]
    assert outputs["live"] == outputs["replayed"]


def test_cassette_bodies_are_json_trees(project: pytest.Pytester) -> None:
    project.makepyfile(test_roles=ROLE_TESTS)
    project.runpytest("--rolecheck-record-mode=once").assert_outcomes(passed=2)
    data = json.loads(_cassette(project, "test_roles", "test_roles_differ").read_text())
    interactions = data["interactions"]
    assert len(interactions) == 12
    first = json.dumps(interactions[0])
    assert '"top_logprobs"' in first  # not an escaped string
    assert '\\"top_logprobs\\"' not in first


def test_sync_client_records_and_replays(
    project: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    project.makeconftest(CONFTEST.format(factory="sync_client"))
    project.makepyfile(test_roles=ROLE_TESTS)
    project.runpytest("--rolecheck-record-mode=once").assert_outcomes(passed=2)
    monkeypatch.setenv("FAKE_API_DOWN", "1")
    project.runpytest().assert_outcomes(passed=2)


def test_run_and_compare_by_hand(project: pytest.Pytester) -> None:
    project.makepyfile(
        test_manual=MESSAGES
        + """
from pytest_rolecheck import compare

def test_manual(rolecheck):
    system = rolecheck.variant(MESSAGES, label="system")
    developer = system.with_role("developer")
    a = rolecheck.run(system, n=5, model="fake-model")
    b = rolecheck.run(developer, n=5, model="fake-model")
    assert len(a) == len(b) == 5
    result = compare(a, b)
    assert result.verdict == "different"
    assert rolecheck.calls == 10
"""
    )
    project.runpytest("--rolecheck-record-mode=once").assert_outcomes(passed=1)
    project.runpytest().assert_outcomes(passed=1)


def test_xdist_record_and_replay_keep_every_cassette_intact(
    project: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    tests = MESSAGES + "from pytest_rolecheck import assert_roles_differ\n"
    for i in range(4):
        tests += f"""
def test_roles_{i}():
    assert_roles_differ(MESSAGES, model="fake-model-{i}", trials=4)
"""
    project.makepyfile(test_many=tests)
    env_path = os.pathsep.join([str(project.path), os.environ.get("PYTHONPATH", "")])
    monkeypatch.setenv("PYTHONPATH", env_path)
    recorded = project.runpytest_subprocess("-n", "2", "--rolecheck-record-mode=once")
    recorded.assert_outcomes(passed=4)
    recorded.stdout.fnmatch_lines(["*4 comparisons: 4 different*", "32 calls (32 live*"])
    for i in range(4):
        data = json.loads(_cassette(project, "test_many", f"test_roles_{i}").read_text())
        assert len(data["interactions"]) == 8
    monkeypatch.setenv("FAKE_API_DOWN", "1")
    replayed = project.runpytest_subprocess("-n", "2")
    replayed.assert_outcomes(passed=4)
    replayed.stdout.fnmatch_lines(
        ["*4 comparisons: 4 different*", "32 calls (0 live, 32 replayed)*"]
    )
    assert len(_report(project)) == 4


class _CountingServer:
    """A loopback OpenAI-compatible server that answers after a delay and records
    the most requests it ever had in flight at once (across every client process)."""

    def __init__(self, delay: float) -> None:
        import http.server

        import _fake_api

        lock = threading.Lock()
        state = {"now": 0, "max": 0, "served": 0}
        self.state = state

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = json.loads(self.rfile.read(int(self.headers["content-length"])))
                with lock:
                    state["now"] += 1
                    state["max"] = max(state["max"], state["now"])
                time.sleep(delay)
                with lock:
                    state["now"] -= 1
                    state["served"] += 1
                index = int(self.headers.get("x-rolecheck-call", "0"))
                payload = json.dumps(_fake_api.completion(body, index)).encode()
                self.send_response(200)
                self.send_header("content-type", "application/json")
                self.send_header("content-length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)

            def log_message(self, *args: object) -> None:
                pass

        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.port = self.httpd.server_address[1]
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


def test_xdist_workers_share_one_concurrency_budget(
    project: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Per-worker budgets would put up to 2 x 2 calls in flight: a rate-limited
    # provider answers that with 429s.
    server = _CountingServer(delay=0.3)
    project.makeconftest(
        f"""
import openai
import pytest

@pytest.fixture(scope="session")
def rolecheck_client():
    return openai.AsyncOpenAI(
        api_key="sk-test-budget", base_url="http://127.0.0.1:{server.port}/v1", max_retries=0
    )
"""
    )
    tests = MESSAGES + "from pytest_rolecheck import assert_roles_differ\n"
    for i in range(4):
        tests += f"""
def test_roles_{i}():
    assert_roles_differ(MESSAGES, model="fake-model-{i}", trials=4)
"""
    project.makepyfile(test_budget=tests)
    env_path = os.pathsep.join([str(project.path), os.environ.get("PYTHONPATH", "")])
    monkeypatch.setenv("PYTHONPATH", env_path)
    try:
        result = project.runpytest_subprocess(
            "-n", "2", "--rolecheck-record-mode=once", "--rolecheck-concurrency=2"
        )
    finally:
        server.close()
    result.assert_outcomes(passed=4)
    assert server.state["served"] == 32
    assert server.state["max"] == 2, server.state


def test_coexists_with_pytest_recording(
    project: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    pytest.importorskip("pytest_recording")
    # A vcr_config meant for pytest-recording must not leak into our cassettes.
    project.makeconftest(
        CONFTEST.format(factory="async_client")
        + """
@pytest.fixture(scope="module")
def vcr_config():
    return {"record_mode": "all", "filter_headers": [], "serializer": "yaml"}
"""
    )
    project.makepyfile(test_roles=ROLE_TESTS)
    project.runpytest("--rolecheck-record-mode=once").assert_outcomes(passed=2)
    data = json.loads(_cassette(project, "test_roles", "test_roles_differ").read_text())
    assert "rolecheck_cassette" in data
    monkeypatch.setenv("FAKE_API_DOWN", "1")
    # pytest-recording's network block stays on; a replay needs no network.
    project.runpytest("--block-network").assert_outcomes(passed=2)


def test_report_dir_writes_html_with_embedded_plots(project: pytest.Pytester) -> None:
    pytest.importorskip("matplotlib")
    project.makepyfile(test_roles=ROLE_TESTS)
    project.runpytest("--rolecheck-record-mode=once").assert_outcomes(passed=2)
    result = project.runpytest("--rolecheck-report-dir=html")
    result.assert_outcomes(passed=2)
    html = (project.path / "html" / "rolecheck-report.html").read_text()
    assert "developer vs system" in html
    assert "different" in html
    assert "equivalent" in html
    assert html.count('src="data:image/png;base64,') >= 4
    assert "http://" not in html.replace("http://www.w3.org", "")  # self-contained
    assert list((project.path / "html" / "png").glob("*.png"))
    # The JSON report carries what `rolecheck report` needs to redraw it.
    assert "insight" in _report(project)[0]


def test_extra_body_timeout_and_headers_in_params_replay(
    project: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The cassette must match the body the SDK sends: extra_body merged, the rest not sent.
    project.makepyfile(
        test_params=MESSAGES
        + """
from pytest_rolecheck import assert_roles_differ

def test_params():
    assert_roles_differ(
        MESSAGES, model="fake-model", trials=4,
        params={"extra_body": {"top_k": 1}, "timeout": 30, "extra_headers": {"x-team": "a"}},
    )
"""
    )
    project.runpytest("--rolecheck-record-mode=once").assert_outcomes(passed=1)
    data = json.loads(_cassette(project, "test_params", "test_params").read_text())
    body = data["interactions"][0]["request"]["body"]["json"]
    assert body["top_k"] == 1
    assert "extra_body" not in body
    assert "timeout" not in body
    monkeypatch.setenv("FAKE_API_DOWN", "1")
    project.runpytest().assert_outcomes(passed=1)


def test_assert_from_a_thread_of_the_test_uses_the_test_cassette(
    project: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    project.makepyfile(
        test_thread=MESSAGES
        + """
from concurrent.futures import ThreadPoolExecutor
from pytest_rolecheck import assert_roles_differ

def test_thread():
    with ThreadPoolExecutor(1) as pool:
        pool.submit(assert_roles_differ, MESSAGES, model="fake-model", trials=4).result()
"""
    )
    project.runpytest("--rolecheck-record-mode=once").assert_outcomes(passed=1)
    monkeypatch.setenv("FAKE_API_DOWN", "1")
    project.runpytest().assert_outcomes(passed=1)


def test_assert_outside_a_test_is_refused_not_sent_live(project: pytest.Pytester) -> None:
    project.makepyfile(
        test_module_fixture=MESSAGES
        + """
import pytest
from pytest_rolecheck import assert_roles_differ

@pytest.fixture(scope="module")
def verdict():
    return assert_roles_differ(MESSAGES, model="fake-model", trials=4)

def test_uses_it(verdict):
    pass
"""
    )
    # In a subprocess: an in-process run would see the outer test's own context.
    result = project.runpytest_subprocess("--rolecheck-record-mode=once")
    result.assert_outcomes(errors=1)
    result.stdout.fnmatch_lines(["*called outside a test*module- or session-scoped fixture*"])
    assert not (project.path / "cassettes").exists()


def test_bad_options_are_refused_before_any_call(
    project: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("FAKE_API_DOWN", "1")  # a call would fail with a connection error
    project.makepyfile(
        test_bad=MESSAGES
        + """
import pytest
from pytest_rolecheck import RolecheckUsageError, assert_roles_differ

@pytest.mark.parametrize("options", [{"trials": 2}, {"metric": "nope"}, {"alpha": 2}])
def test_bad(options):
    with pytest.raises(RolecheckUsageError):
        assert_roles_differ(MESSAGES, model="fake-model", **options)
"""
    )
    project.runpytest("--rolecheck-record-mode=once").assert_outcomes(passed=3)


def test_assert_keywords_beat_the_variant_parameters(project: pytest.Pytester) -> None:
    project.makepyfile(
        test_precedence=MESSAGES
        + """
from pytest_rolecheck import Variant

def test_precedence(rolecheck):
    v = Variant.from_messages(MESSAGES, label="v", model="variant-model", temperature=0.0)
    r = rolecheck.run(v, n=1, model="kwarg-model", temperature=1.0)[0]
    assert r.model == "kwarg-model"
    r = rolecheck.run(v, n=1, temperature=1.0, params={"temperature": 0.5})[0]
    assert r.model == "variant-model"
"""
    )
    project.runpytest("--rolecheck-record-mode=once").assert_outcomes(passed=1)
    body = json.loads(_cassette(project, "test_precedence", "test_precedence").read_text())
    temperatures = [i["request"]["body"]["json"]["temperature"] for i in body["interactions"]]
    assert temperatures == [1.0, 0.5]


def test_calls_run_by_hand_are_counted_in_the_summary(project: pytest.Pytester) -> None:
    project.makepyfile(
        test_by_hand=MESSAGES
        + """
import pytest

@pytest.mark.parametrize("model", ["org/fake-model"])
def test_by_hand(rolecheck, model):
    rolecheck.run(rolecheck.variant(MESSAGES), n=3, model=model)
"""
    )
    result = project.runpytest("--rolecheck-record-mode=once", "-v")
    result.assert_outcomes(passed=1)
    result.stdout.fnmatch_lines(
        ["*test_by_hand.py::test_by_hand?org/fake-model?*calls, no comparison*3*live*"]
    )
    assert _report(project)[0]["calls"] == 3


def test_socket_blocker_without_unix_sockets_fails_cleanly(project: pytest.Pytester) -> None:
    pytest.importorskip("pytest_socket")
    project.makepyfile(test_roles=ROLE_TESTS)
    project.runpytest("--rolecheck-record-mode=once").assert_outcomes(passed=2)
    result = project.runpytest_subprocess("--disable-socket", "-k", "test_roles_differ")
    result.assert_outcomes(failed=1)
    assert "INTERNALERROR" not in result.stdout.str() + result.stderr.str()
    result.stdout.fnmatch_lines(["*--allow-unix-socket*"])


def test_report_path_on_the_command_line_is_relative_to_the_invocation_dir(
    project: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    project.makepyfile(test_roles=ROLE_TESTS)
    project.runpytest("--rolecheck-record-mode=once").assert_outcomes(passed=2)
    elsewhere = project.mkdir("elsewhere")
    monkeypatch.chdir(elsewhere)
    result = project.runpytest(
        "--rootdir", str(project.path), str(project.path), "--rolecheck-report=cli.json"
    )
    result.assert_outcomes(passed=2)
    assert (elsewhere / "cli.json").is_file()
    assert (project.path / "report.json").is_file()  # the ini value: rootdir-relative


def test_finished_tests_release_their_client_and_cassette(
    project: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    # pytest keeps every item to the end of the run: what a finished test keeps
    # alive grows with the suite (bench/memory.py measures the bytes).
    tests = MESSAGES + "from pytest_rolecheck import assert_roles_differ\n"
    for i in range(3):
        tests += f"""
def test_roles_{i}():
    assert_roles_differ(MESSAGES, model="fake-model", trials=4)
"""
    project.makepyfile(test_many=tests)
    project.runpytest("--rolecheck-record-mode=once").assert_outcomes(passed=3)
    project.makeconftest(
        CONFTEST.format(factory="async_client")
        + """
import gc
import json

def pytest_sessionfinish(session):
    from pytest_rolecheck.recording.cassette import CassetteSession
    from pytest_rolecheck.running.client import CompletionRunner

    gc.collect()
    alive = {"sessions": 0, "runners": 0}
    for obj in gc.get_objects():
        if isinstance(obj, CassetteSession):
            alive["sessions"] += 1
        elif isinstance(obj, CompletionRunner):
            alive["runners"] += 1
    with open("alive.json", "w") as out:
        json.dump(alive, out)
"""
    )
    env_path = os.pathsep.join([str(project.path), os.environ.get("PYTHONPATH", "")])
    monkeypatch.setenv("PYTHONPATH", env_path)
    monkeypatch.setenv("FAKE_API_DOWN", "1")
    project.runpytest_subprocess().assert_outcomes(passed=3)
    assert json.loads((project.path / "alive.json").read_text()) == {"sessions": 0, "runners": 0}
    assert len(_report(project)) == 3  # the summary rows survive


class _SilentServer:
    """Accepts connections on 127.0.0.1 and never answers (a hung API)."""

    def __init__(self) -> None:
        self.sock = socket.create_server(("127.0.0.1", 0))
        self.port = self.sock.getsockname()[1]
        self.accepted: list[float] = []
        self._held: list[socket.socket] = []
        threading.Thread(target=self._serve, daemon=True).start()

    def _serve(self) -> None:
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            self._held.append(conn)
            self.accepted.append(time.monotonic())

    def close(self) -> None:
        self.sock.close()
        for conn in self._held:
            conn.close()


LOGPROBS_TRUE = "--rolecheck-logprobs=true"


@pytest.mark.parametrize("kind", ["OpenAI", "AsyncOpenAI"])
def test_ctrl_c_stops_hung_calls_at_once_and_keeps_the_old_cassette(
    project: pytest.Pytester, kind: str
) -> None:
    project.makepyfile(test_roles=ROLE_TESTS)
    project.runpytest("--rolecheck-record-mode=once", "-k", "test_roles_differ").assert_outcomes(
        passed=1
    )
    cassette = _cassette(project, "test_roles", "test_roles_differ")
    before = cassette.read_bytes()
    server = _SilentServer()
    # The SDK's defaults: a 600 s timeout and 2 retries per call.
    project.makeconftest(
        f"""
import openai
import pytest

@pytest.fixture(scope="session")
def rolecheck_client():
    return openai.{kind}(api_key="sk-test-hung", base_url="http://127.0.0.1:{server.port}/v1")
"""
    )
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([str(project.path), env.get("PYTHONPATH", "")])
    # hypothesis's plugin imports hypothesis at the end of a run (~2 s here): not ours to time.
    plugins = ["-p", "no:cacheprovider", "-p", "no:hypothesispytest"]
    command = [sys.executable, "-m", "pytest", *plugins, "-k", "test_roles_differ"]
    child = subprocess.Popen(
        # logprobs=true: no first call alone to find out whether the server gives logprobs
        [*command, "--rolecheck-record-mode=rewrite", "--rolecheck-concurrency=3", LOGPROBS_TRUE],
        cwd=project.path,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )
    try:
        deadline = time.monotonic() + 60
        while len(server.accepted) < 3 and time.monotonic() < deadline:
            time.sleep(0.05)
        assert len(server.accepted) == 3, "the calls never reached the server"
        interrupted = time.monotonic()
        child.send_signal(signal.SIGINT)
        try:
            output, _ = child.communicate(timeout=10)
        except subprocess.TimeoutExpired:
            pytest.fail("still running 10 s after Ctrl-C")
        elapsed = time.monotonic() - interrupted
        time.sleep(1.5)  # a retry would come within the SDK's first backoff
    finally:
        child.kill()
        child.wait()
        server.close()
    text = output.decode(errors="replace")
    assert elapsed < 4, text
    assert child.returncode == pytest.ExitCode.INTERRUPTED, text
    assert "KeyboardInterrupt" in text
    assert [t for t in server.accepted if t > interrupted] == []  # nothing sent after Ctrl-C
    assert cassette.read_bytes() == before
    assert not list(cassette.parent.glob("*.tmp"))


def _outside_layout(project: pytest.Pytester) -> Path:
    """``root/pytest.ini`` with ``testpaths = ../a ../b``; one file name in both."""
    project.syspathinsert()  # for _fake_api
    root = project.mkdir("root")
    (root / "pytest.ini").write_text(
        "[pytest]\ntestpaths = ../a ../b\naddopts = --import-mode=importlib\n"
        "rolecheck_report = report.json\n"
    )
    conftest = (project.path / "conftest.py").read_text()
    for name, role in (("a", "developer"), ("b", "system")):
        folder = project.mkdir(name)
        (folder / "conftest.py").write_text(conftest)
        (folder / "test_same.py").write_text(
            MESSAGES
            + f"""
def test_x(rolecheck):
    rolecheck.run(rolecheck.variant(MESSAGES).with_role("{role}"), n=3, model="fake-model")
"""
        )
    return root


def test_tests_outside_the_rootdir_with_one_name_get_their_own_cassettes(
    project: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    root = _outside_layout(project)
    monkeypatch.chdir(root)
    project.runpytest("--rolecheck-record-mode=rewrite").assert_outcomes(passed=2)
    a = root / "cassettes" / "__" / "a" / "test_same" / "test_x.json"
    b = root / "cassettes" / "__" / "b" / "test_same" / "test_x.json"
    assert a.read_bytes() != b.read_bytes()
    monkeypatch.setenv("FAKE_API_DOWN", "1")
    project.runpytest().assert_outcomes(passed=2)  # each replays its own recording


def test_two_tests_mapped_to_one_cassette_are_refused_by_name(
    project: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    root = _outside_layout(project)
    # ../a/test_same.py maps to cassettes/__/a/...; so does a real folder named "__"
    inside = root / "__" / "a"
    inside.mkdir(parents=True)
    (inside / "test_same.py").write_text((project.path / "a" / "test_same.py").read_text())
    (inside / "conftest.py").write_text((project.path / "conftest.py").read_text())
    (root / "pytest.ini").write_text(
        (root / "pytest.ini").read_text().replace("../a ../b", "../a __ ../b")
    )
    monkeypatch.chdir(root)
    result = project.runpytest("--rolecheck-record-mode=rewrite")
    result.assert_outcomes(failed=2, passed=1)
    result.stdout.fnmatch_lines(
        [
            "*../a/test_same.py::test_x, __/a/test_same.py::test_x would share the cassette "
            "cassettes/__/a/test_same/test_x.json*Rename one of the test*"
        ]
    )
    assert not (root / "cassettes" / "__" / "a").exists()


def test_fewer_calls_than_recorded_fail_with_the_counts_and_the_rewrite_command(
    project: pytest.Pytester,
) -> None:
    project.makepyfile(test_roles=ROLE_TESTS)
    project.runpytest("--rolecheck-record-mode=once").assert_outcomes(passed=2)
    project.makepyfile(test_roles=ROLE_TESTS.replace("trials=6)", "trials=5)", 1))
    result = project.runpytest("-k", "test_roles_differ")
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(
        [
            "*CassetteUnusedError: *test_roles_differ made 10 calls but its cassette "
            "cassettes/test_roles/test_roles_differ.json recorded 12: 2 recorded calls (#11 on) "
            "went unused*--rolecheck-record-mode=rewrite*test_roles.py::test_roles_differ*"
        ]
    )
    project.runpytest("-k", "test_same_variant").assert_outcomes(passed=1)  # untouched


def test_a_failure_before_the_last_recorded_call_keeps_its_message(
    project: pytest.Pytester,
) -> None:
    two = """
from pytest_rolecheck import assert_roles_differ, assert_roles_equivalent

def test_two(rolecheck):
    FIRST(MESSAGES, model="fake-model", trials=4)
    assert_roles_differ(MESSAGES, model="fake-model", trials=4, max_tokens=5)
"""
    project.makepyfile(test_two=MESSAGES + two.replace("FIRST", "assert_roles_differ"))
    project.runpytest("--rolecheck-record-mode=once").assert_outcomes(passed=1)
    # A stricter first assertion now fails on the same recording: that is the result.
    project.makepyfile(test_two=MESSAGES + two.replace("FIRST", "assert_roles_equivalent"))
    result = project.runpytest()
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(
        ["*assert_roles_equivalent failed*", "*rolecheck*", "*8 recorded calls*unused*"]
    )


# Each of these reached the API (or a verdict) before: the statistics depend on them.
REQUEST_OPTIONS = [
    ({"top_logprobs": 0}, "top_logprobs=0 is not allowed: expected a whole number in [1, 20]"),
    ({"top_logprobs": 50}, "top_logprobs=50 is not allowed: expected a whole number in [1, 20]"),
    ({"temperature": 5}, "temperature=5 is not allowed: expected a number in [0, 2]"),
    ({"max_tokens": 0}, "max_tokens=0 is not allowed: expected a whole number ≥ 1"),
    ({"trials": "10"}, "trials='10' is not allowed: expected a whole number ≥ 4, got a str"),
    ({"trials": 3}, "trials=3 is not allowed: expected a whole number ≥ 4"),
    # logprobs=True requires them (the default, auto, compares the texts without them)
    (
        {"logprobs": True, "params": {"logprobs": False}},
        "logprobs=False, top_logprobs=20: a logprob comparison",
    ),
    (
        {"logprobs": True, "params": {"top_logprobs": None}},
        "logprobs=True, top_logprobs=None: a logprob comparison",
    ),
    ({"logprobs": "maybe"}, "logprobs='maybe' is not allowed: expected True, False or one of auto"),
    ({"logprobs": False, "metric": "js"}, "metric='js' compares token logprobs, but no logprobs"),
    ({"params": {"temperature": -1}}, "temperature=-1 is not allowed"),
    ({"params": {"max_completion_tokens": 0}}, "max_completion_tokens=0 is not allowed"),
    ({"params": {"n": 3}}, "n=3 is not allowed: each call must return one choice"),
    ({"params": {"stream": True}}, "stream=True is not allowed"),
    ({"model": 5}, "model=5 is not allowed: expected a non-empty string, got a int"),
]


@pytest.mark.parametrize(("options", "message"), REQUEST_OPTIONS)
def test_request_fields_are_refused_before_any_call(
    project: pytest.Pytester, monkeypatch: pytest.MonkeyPatch, options: object, message: str
) -> None:
    monkeypatch.setenv("FAKE_API_DOWN", "1")  # a call would fail with a connection error
    kwargs = {"model": "fake-model", **options}  # type: ignore[dict-item]
    project.makepyfile(
        test_bad=MESSAGES
        + f"""
from pytest_rolecheck import assert_roles_equivalent

def test_bad():
    assert_roles_equivalent(MESSAGES, **{kwargs!r})
"""
    )
    result = project.runpytest("--rolecheck-record-mode=once")
    result.assert_outcomes(failed=1)
    text = result.stdout.str()
    assert f"RolecheckUsageError: {message}" in text
    assert "fake API is down" not in text


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"temperature": 5}, "temperature=5 is not allowed"),
        ({"trials": "10"}, "trials='10' is not allowed"),
        ({"alpha": 2}, "alpha=2 is not allowed"),
        ({"tolerance": 0}, "tolerance is the largest"),
        ({"params": {"n": 2}}, "n=2 is not allowed"),
    ],
)
def test_tool_call_options_are_refused_before_any_call(
    project: pytest.Pytester, monkeypatch: pytest.MonkeyPatch, options: object, message: str
) -> None:
    monkeypatch.setenv("FAKE_API_DOWN", "1")
    kwargs = {"model": "fake-model", **options}  # type: ignore[dict-item]
    project.makepyfile(
        test_bad=MESSAGES
        + f"""
from pytest_rolecheck import assert_tool_calls_equivalent

def test_bad():
    assert_tool_calls_equivalent(MESSAGES, MESSAGES, **{kwargs!r})
"""
    )
    result = project.runpytest("--rolecheck-record-mode=once")
    result.assert_outcomes(failed=1)
    assert f"RolecheckUsageError: {message}" in result.stdout.str()
    assert "fake API is down" not in result.stdout.str()


def test_tool_call_comparison_without_any_tool_call_is_refused(project: pytest.Pytester) -> None:
    # The fake API always answers in text, as the bundled SmolLM2 model does.
    project.makepyfile(
        test_tools=MESSAGES
        + """
TOOLS = [{"type": "function", "function": {"name": "get_weather", "parameters": {}}}]

def test_tools(rolecheck):
    v = rolecheck.variant(MESSAGES, tools=TOOLS, tool_choice="auto")
    rolecheck.assert_tool_calls_equivalent(
        v, v.tools_in_system_prompt(), model="fake-model", trials=4
    )
"""
    )
    result = project.runpytest("--rolecheck-record-mode=once")
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(
        ["*NothingToCompareError: no call of * made a tool call (4+4 calls, all answered in text)*"]
    )
    assert "to a model that supports tool calls" in result.stdout.str()
    assert all(row["verdict"] != "equivalent" for row in _report(project))


NO_MODEL_TEST = (
    MESSAGES
    + """
from pytest_rolecheck import assert_roles_differ

def test_roles():
    assert_roles_differ(MESSAGES, trials=4)
"""
)


@pytest.mark.parametrize("flag", ["--rolecheck-local", "--rolecheck-model=fake-model"])
def test_replay_uses_the_recorded_model_when_none_is_configured(
    project: pytest.Pytester, monkeypatch: pytest.MonkeyPatch, flag: str
) -> None:
    # The fake client stands in for the local server: the flag still picks the model.
    project.makepyfile(test_x=NO_MODEL_TEST)
    project.runpytest("--rolecheck-record-mode=once", flag).assert_outcomes(passed=1)
    recorded = json.loads(_cassette(project, "test_x", "test_roles").read_text())
    model = "smollm2-135m-instruct" if flag == "--rolecheck-local" else "fake-model"
    assert recorded["recorded_with"]["model"] == model
    assert recorded["recorded_with"]["local"] is (flag == "--rolecheck-local")
    assert recorded["recorded_with"]["endpoint"] == "http://fake-api.test/v1"
    monkeypatch.setenv("FAKE_API_DOWN", "1")
    project.runpytest().assert_outcomes(passed=1)  # plain pytest, as in CI


def test_fix_command_repeats_the_run_flags_and_works_verbatim(
    project: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    project.makepyfile(test_x=NO_MODEL_TEST)
    flags = ["-p", "no:cacheprovider", "--rolecheck-cassette-dir=cas", "--rolecheck-local"]
    project.runpytest("--rolecheck-record-mode=once", *flags).assert_outcomes(passed=1)
    project.makepyfile(test_x=NO_MODEL_TEST.replace("trials=4", "trials=5"))
    # Replayed without --rolecheck-local: the command must put it back.
    result = project.runpytest("-p", "no:cacheprovider", "--rolecheck-cassette-dir=cas")
    result.assert_outcomes(failed=1)
    command = (
        "pytest -p no:cacheprovider --rolecheck-cassette-dir=cas --rolecheck-local "
        "--rolecheck-record-mode=rewrite 'test_x.py::test_roles'"
    )
    assert f"`{command}`" in result.stdout.str()
    rerun = project.runpytest(*shlex.split(command)[1:])
    rerun.assert_outcomes(passed=1)
    monkeypatch.setenv("FAKE_API_DOWN", "1")
    project.runpytest("--rolecheck-cassette-dir=cas").assert_outcomes(passed=1)


def test_once_command_repeats_ini_overrides_and_config_file(project: pytest.Pytester) -> None:
    project.makepyfile(test_x=NO_MODEL_TEST)
    (project.path / "other.ini").write_text("[pytest]\n")
    args = ["-c", "other.ini", "--rootdir=.", "-o", "rolecheck_model=fake-model"]
    result = project.runpytest(*args)
    result.assert_outcomes(failed=1)
    command = (
        "pytest --config-file=other.ini --rootdir=. --override-ini=rolecheck_model=fake-model "
        "--rolecheck-record-mode=once 'test_x.py::test_roles'"
    )
    assert f"`{command}`" in result.stdout.str()
    project.runpytest(*shlex.split(command)[1:]).assert_outcomes(passed=1)


def test_replay_ignores_the_host_so_ci_needs_no_base_url(
    project: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    project.makepyfile(test_roles=ROLE_TESTS)
    project.runpytest("--rolecheck-record-mode=once").assert_outcomes(passed=2)
    # CI: the default client (api.openai.com), no key, no OPENAI_BASE_URL.
    (project.path / "conftest.py").unlink()
    result = project.runpytest("-p", "no:cacheprovider")
    result.assert_outcomes(passed=2)
    assert "rewrite" not in result.stdout.str()


def test_misspelt_cassette_directory_says_the_directory_is_missing(
    project: pytest.Pytester,
) -> None:
    project.makepyfile(test_roles=ROLE_TESTS)
    project.runpytest("--rolecheck-record-mode=once").assert_outcomes(passed=2)
    result = project.runpytest("--rolecheck-cassette-dir=casettes")
    result.assert_outcomes(failed=2)
    result.stdout.fnmatch_lines(
        ["*the cassette directory casettes does not exist*(directories in *: cassettes/)*"]
    )
    assert "did you mean 'cassettes'?" in result.stdout.str()
    assert "no cassette at" not in result.stdout.str()


# A test that names a model the bundled server does not serve (the README's old snippet).
NAMED_MODEL_TEST = NO_MODEL_TEST.replace("trials=4)", 'model="gpt-4o-mini", trials=4)')


def test_warns_once_when_another_model_answered(
    project: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    project.makepyfile(test_x=NAMED_MODEL_TEST)
    monkeypatch.setenv("FAKE_API_SERVED_MODEL", "smollm2-135m-instruct")
    result = project.runpytest("--rolecheck-record-mode=once")
    result.assert_outcomes(passed=1, warnings=1)
    result.stdout.fnmatch_lines(
        [
            "*RolecheckWarning*named model 'gpt-4o-mini' but the server says it served "
            "'smollm2-135m-instruct'*"
        ]
    )
    # A dated snapshot of the requested alias is the same model.
    monkeypatch.setenv("FAKE_API_SERVED_MODEL", "gpt-4o-mini-2024-07-18")
    result = project.runpytest("--rolecheck-record-mode=rewrite")
    result.assert_outcomes(passed=1)
    assert "RolecheckWarning" not in result.stdout.str()


def test_warns_when_the_local_model_answers_another_name(
    project: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The bundled server echoes any model name and answers with SmolLM2 regardless; a
    # replay through --rolecheck-local's own client says so as the live run would.
    project.makepyfile(test_x=NAMED_MODEL_TEST)
    project.runpytest("--rolecheck-record-mode=once").assert_outcomes(passed=1)
    (project.path / "conftest.py").unlink()  # the plugin's own local client from now on
    monkeypatch.setenv("FAKE_API_DOWN", "1")
    result = project.runpytest("--rolecheck-local")
    result.assert_outcomes(passed=1, warnings=1)
    result.stdout.fnmatch_lines(
        ["*RolecheckWarning*named model 'gpt-4o-mini' but 'smollm2-135m-instruct' answered*"]
    )
    # A user's own client may point anywhere: no guess about what answered.
    project.makeconftest(CONFTEST.format(factory="async_client"))
    result = project.runpytest("--rolecheck-local")
    result.assert_outcomes(passed=1)
    assert "RolecheckWarning" not in result.stdout.str()


def test_an_older_cassette_without_its_model_says_to_replay_with_the_recording_options(
    project: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    project.makepyfile(test_x=NO_MODEL_TEST)
    project.runpytest("--rolecheck-record-mode=once", "--rolecheck-local").assert_outcomes(passed=1)
    cassette = _cassette(project, "test_x", "test_roles")
    document = json.loads(cassette.read_text())
    del document["recorded_with"]  # as written by pytest-rolecheck 0.1
    cassette.write_text(json.dumps(document))
    monkeypatch.setenv("FAKE_API_DOWN", "1")
    result = project.runpytest()
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(["*no model given*predates the record of its model*"])
    project.runpytest("--rolecheck-local").assert_outcomes(passed=1)


COUNT_CLIENTS = """
import json

import openai

BUILT = []
_init = openai.AsyncOpenAI.__init__


def _counting(self, *args, **kwargs):
    BUILT.append(self)
    _init(self, *args, **kwargs)


openai.AsyncOpenAI.__init__ = _counting


def pytest_unconfigure(config):
    openai.AsyncOpenAI.__init__ = _init
    with open("clients.json", "w") as out:
        json.dump([[str(c.base_url), c.max_retries, c.is_closed()] for c in BUILT], out)
"""


def test_replayed_tests_share_one_default_client_closed_at_the_end(
    project: pytest.Pytester,
) -> None:
    # An AsyncOpenAI costs ~18 ms to build (its SSL context), a sixth of a replayed test.
    project.makepyfile(test_roles=ROLE_TESTS)
    project.makeconftest(CONFTEST.format(factory="async_client") + COUNT_CLIENTS)
    project.runpytest("--rolecheck-record-mode=once").assert_outcomes(passed=2)
    # The rolecheck_client fixture still wins: no default client was built.
    built = json.loads((project.path / "clients.json").read_text())
    assert {url for url, _, _ in built} == {"http://fake-api.test/v1/"}
    project.makeconftest(COUNT_CLIENTS)  # no fixture: the default client replays
    project.runpytest("-p", "no:cacheprovider").assert_outcomes(passed=2)
    built = json.loads((project.path / "clients.json").read_text())
    assert built == [["https://api.openai.com/v1/", 0, True]]  # one, no retries, closed


def test_heap_is_frozen_once_after_the_first_test_that_made_calls(
    project: pytest.Pytester,
) -> None:
    project.makepyfile(test_roles=ROLE_TESTS, test_plain="def test_plain():\n    pass\n")
    project.makeconftest(
        CONFTEST.format(factory="async_client")
        + """
import gc
import json

FROZEN = []
FREEZES = []
_freeze = gc.freeze

def _counting_freeze():
    FREEZES.append(1)
    _freeze()

gc.freeze = _counting_freeze

def pytest_runtest_logfinish(nodeid, location):
    FROZEN.append(len(FREEZES))

def pytest_sessionfinish(session):
    with open("frozen.json", "w") as out:
        json.dump(FROZEN, out)
"""
    )
    result = project.runpytest_subprocess(
        "--rolecheck-record-mode=once", "-p", "no:randomly", "test_plain.py", "test_roles.py"
    )
    result.assert_outcomes(passed=3)
    plain, first, second = json.loads((project.path / "frozen.json").read_text())
    # no calls yet (the heavy modules are not loaded), then once per process
    assert (plain, first, second) == (0, 1, 1)
