"""Run llama.cpp's own C++ ``llama-server`` (embedded by xllamacpp) in this process.

Usage::

    python -m pytest_rolecheck.running.llama_server --model PATH --ready-file PATH [options]

`LocalServer` starts this module as a subprocess rather than calling
``xllamacpp.Server`` in the test process, for three reasons: llama.cpp installs
its own SIGINT/SIGTERM handlers when the server starts (a Ctrl-C in pytest would
reach llama.cpp instead of pytest), ``xllamacpp.Server`` has no stop method (the
server stops when the object is destroyed), and one process can be shared by
every xdist worker and killed as a whole.

The server answers on ``127.0.0.1`` (a free port is chosen by the server itself,
``port = 0``, so no other process can take it between probing and binding).
Once the model is loaded, the listening address is written to the ready file as
``{"base_url": ..., "pid": ...}``; the launcher waits for that file.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import sys
import threading
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any


def _parse_args(argv: Sequence[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m pytest_rolecheck.running.llama_server",
        description="llama.cpp's llama-server (via xllamacpp) for pytest-rolecheck",
    )
    parser.add_argument("--model", required=True, help="GGUF model file")
    parser.add_argument("--alias", required=True, help="model name the server lists")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0, help="0: a free port")
    parser.add_argument("--parallel", type=int, default=2, help="parallel slots")
    parser.add_argument("--threads", type=int, default=1, help="CPU threads")
    parser.add_argument("--ctx", type=int, default=4096, help="context tokens, all slots")
    parser.add_argument(
        "--chat-template-file",
        metavar="PATH",
        help="Jinja chat template to render requests with (default: the GGUF's own)",
    )
    parser.add_argument("--ready-file", required=True, help="where to write the address")
    parser.add_argument("--exit-with-parent", type=int, metavar="PID", help="exit when PID is gone")
    return parser.parse_args(list(argv))


def server_params(xlc: Any, args: argparse.Namespace) -> Any:
    """Build ``xllamacpp.CommonParams`` from the parsed arguments.

    Parameters
    ----------
    xlc : module
        The imported ``xllamacpp``.
    args : argparse.Namespace
        Arguments of this module.

    Returns
    -------
    xllamacpp.CommonParams
        Parameters for ``xllamacpp.Server``.
    """
    params = xlc.CommonParams()
    params.model.path = args.model
    # a set of names: assigning a plain string would make a set of its characters
    params.model_alias = {args.alias}
    params.hostnames = [args.host]
    params.port = args.port
    params.n_parallel = args.parallel
    params.n_ctx = args.ctx
    params.cpuparams.n_threads = args.threads
    params.cpuparams_batch.n_threads = args.threads
    params.endpoint_slots = False
    # Reusing a slot's cached prompt makes temperature-0 logprobs jitter (~3e-4 bits,
    # measured on the seed experiment with 4 slots): the cached KV was computed in
    # another batch shape. Without the cache they are bit-identical, and a prompt of
    # a few dozen tokens costs little to recompute.
    params.cache_prompt = False
    if args.chat_template_file:
        # llama.cpp's own --chat-template-file reads the file into this field
        params.chat_template = Path(args.chat_template_file).read_text(encoding="utf-8")
    return params


def _exit_with_parent(parent_pid: int, stop: threading.Event, interval: float = 0.5) -> None:
    # a launcher killed with SIGKILL (a CI timeout, an OOM kill) cannot stop us: notice it
    initial_ppid = os.getppid()

    def parent_alive() -> bool:
        if os.getppid() != initial_ppid:
            return False  # reparented: the launcher is gone
        try:
            os.kill(parent_pid, 0)
        except ProcessLookupError:
            return False
        except PermissionError:
            return True
        return True

    def watch() -> None:
        while parent_alive() and not stop.is_set():
            time.sleep(interval)
        stop.set()

    threading.Thread(target=watch, name="rolecheck-exit-with-parent", daemon=True).start()


def main(argv: Sequence[str] | None = None) -> int:
    """Start the server, write the ready file, serve until SIGTERM/SIGINT or parent death.

    Parameters
    ----------
    argv : sequence of str, optional
        Command-line arguments (default ``sys.argv[1:]``).

    Returns
    -------
    int
        Process exit code (2 when xllamacpp is missing or the server cannot start).
    """
    args = _parse_args(sys.argv[1:] if argv is None else argv)
    try:
        import xllamacpp as xlc
    except ImportError as exc:
        print(f"error: cannot import xllamacpp ({exc})", file=sys.stderr)
        return 2
    stop = threading.Event()
    if args.exit_with_parent is not None:
        _exit_with_parent(args.exit_with_parent, stop)
    try:
        server = xlc.Server(server_params(xlc, args))
    except RuntimeError as exc:
        print(f"error: llama-server did not start: {exc}", file=sys.stderr)
        return 2

    def on_signal(signum: int, frame: object) -> None:
        stop.set()

    # llama.cpp replaced the handlers when it started: take them back, so that a
    # signal ends this process instead of only llama.cpp's main loop
    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    ready = Path(args.ready_file)
    tmp = ready.with_name(ready.name + ".tmp")
    tmp.write_text(json.dumps({"base_url": f"{server.listening_address}/v1", "pid": os.getpid()}))
    tmp.replace(ready)  # atomic: the launcher never reads half a file
    while not stop.wait(0.5):
        pass
    # Destroying the server joins llama.cpp's loop; never hang on it.
    threading.Timer(10.0, os._exit, (0,)).start()
    del server
    os._exit(0)  # llama.cpp's threads must not keep the process alive


if __name__ == "__main__":
    sys.exit(main())
