"""The plugin end to end over a fake HTTP API: record, replay, errors, xdist, secrets.

The fake API runs on an ``httpx2.MockTransport`` (unit-level HTTP); the tests
against a real model behind a real server are in ``test_e2e_local.py``.
"""

from __future__ import annotations

import json
import os
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
    rolecheck.assert_variants_equivalent(v, v, model="fake-model", trials=10, max_tokens=6)
"""
)


@pytest.fixture
def project(pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch) -> pytest.Pytester:
    for var in ("FAKE_API_DOWN", "FAKE_API_STATUS", "FAKE_API_NO_LOGPROBS", "FAKE_API_NOISE"):
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
    recorded = project.runpytest("--rolecheck-record-mode=once")
    recorded.assert_outcomes(passed=2)
    recorded.stdout.fnmatch_lines(["*rolecheck*", "*developer vs system*different*live*"])
    first = _report(project)
    assert _cassette(project, "test_roles", "test_roles_differ").is_file()
    assert _cassette(project, "test_roles", "test_same_variant_equivalent").is_file()

    monkeypatch.setenv("FAKE_API_DOWN", "1")  # any live call would now fail
    replayed = project.runpytest()  # default mode none: replay only
    replayed.assert_outcomes(passed=2)
    replayed.stdout.fnmatch_lines(["*developer vs system*different*replayed*"])
    second = _report(project)
    assert [_numbers(r) for r in first] == [_numbers(r) for r in second]
    assert [r["source"] for r in second] == ["replayed", "replayed"]


def test_summary_lists_calls_and_tokens(project: pytest.Pytester) -> None:
    project.makepyfile(test_roles=ROLE_TESTS)
    result = project.runpytest("--rolecheck-record-mode=once")
    result.stdout.fnmatch_lines(
        [
            "*test*compared*verdict*n*tolerance*change*p*calls*tokens*source*",
            "*2 comparisons: *1 different*1 equivalent*; 32 calls (32 live, 0 replayed)*tokens",
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
        ["*no cassette at*test_roles_differ.json*--rolecheck-record-mode=once*test_roles_differ*"]
    )
    assert "Traceback" not in result.stdout.str()
    assert not (project.path / "cassettes").exists()


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
    first.stdout.fnmatch_lines(["*RolecheckAssertionError*expected 'equivalent', got 'different'*"])
    assert _cassette(project, "test_verdict", "test_claims_equivalence").is_file()
    second = project.runpytest()
    second.assert_outcomes(failed=1)
    second.stdout.fnmatch_lines(["*expected 'equivalent', got 'different'*"])


def test_exception_after_calls_writes_no_cassette(project: pytest.Pytester) -> None:
    project.makepyfile(
        test_crash=MESSAGES
        + """
def test_crash(rolecheck):
    rolecheck.run(rolecheck.variant(MESSAGES), n=4, model="fake-model")
    raise RuntimeError("user code failed after the calls")
"""
    )
    result = project.runpytest("--rolecheck-record-mode=once")
    result.assert_outcomes(failed=1)
    assert not _cassette(project, "test_crash", "test_crash").exists()
    assert (
        not (project.path / "cassettes").exists()
        or not list((project.path / "cassettes").rglob("*"))
        or all(p.is_dir() for p in (project.path / "cassettes").rglob("*"))
    )


def test_no_logprobs_says_which_option(
    project: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("FAKE_API_NO_LOGPROBS", "1")
    project.makepyfile(test_roles=ROLE_TESTS)
    result = project.runpytest("--rolecheck-record-mode=once", "-k", "test_roles_differ")
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(["*NoLogprobsError*logprobs=True*top_logprobs*"])


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
    recorded.stdout.fnmatch_lines(["*4 comparisons: 4 different*32 calls (32 live*"])
    for i in range(4):
        data = json.loads(_cassette(project, "test_many", f"test_roles_{i}").read_text())
        assert len(data["interactions"]) == 8
    monkeypatch.setenv("FAKE_API_DOWN", "1")
    replayed = project.runpytest_subprocess("-n", "2")
    replayed.assert_outcomes(passed=4)
    replayed.stdout.fnmatch_lines(["*4 comparisons: 4 different*32 calls (0 live, 32 replayed)*"])
    assert len(_report(project)) == 4


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
    result = project.runpytest("--rolecheck-record-mode=once")
    result.assert_outcomes(passed=1)
    result.stdout.fnmatch_lines(
        ["*test_by_hand.py::test_by_hand?org/fake-model?*no rolecheck comparison*3*live*"]
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
