"""``rolecheck serve``: the bundled local model behind an OpenAI-compatible server.

Only argparse and the option table are imported at module level: ``rolecheck --help``
stays fast.
"""

from __future__ import annotations

import argparse
import sys
from typing import Any

from ..cli import ExitCode, add_command, error
from ..settings import Use


def add_parser(subparsers: Any) -> argparse.ArgumentParser:
    """Add ``rolecheck serve`` to the ``rolecheck`` command."""
    from ..running.local import (
        DEFAULT_MODEL_ALIAS,
        DEFAULT_PARALLEL,
        DEFAULT_SLOT_CTX,
        DEFAULT_THREADS,
    )

    return add_command(
        subparsers,
        "serve",
        run,
        help="run the bundled local model (SmolLM2 on llama.cpp) as an OpenAI-compatible server",
        description="Run the bundled local model (SmolLM2-135M-Instruct on llama.cpp's own "
        "llama-server) in the foreground until Ctrl-C, and print the environment variables "
        "that point the openai SDK at it. The server answers any model name with its one "
        "model and maps the developer role to system itself.",
        model_path=Use(flag="--model", metavar="GGUF"),
        start_timeout=Use(flag="--timeout", metavar="SECONDS"),
        alias=Use(default=DEFAULT_MODEL_ALIAS),
        parallel=Use(default=DEFAULT_PARALLEL),
        threads=Use(default=DEFAULT_THREADS),
        slot_ctx=Use(default=DEFAULT_SLOT_CTX),
    )


def run(args: argparse.Namespace) -> int:
    """Run ``rolecheck serve`` with parsed arguments; return the exit status."""
    import signal
    import time

    from ..running.local import LocalServer

    server = LocalServer(
        model_path=args.model_path,
        alias=args.alias,
        host=args.host,
        port=args.port,
        parallel=args.parallel,
        threads=args.threads,
        slot_ctx=args.slot_ctx,
        log_path=args.log_file,
    )

    def on_sigterm(signum: int, frame: object) -> None:
        raise KeyboardInterrupt

    previous = signal.signal(signal.SIGTERM, on_sigterm)
    serving = False
    try:
        server.start(timeout=args.start_timeout)
        # Set before printing: a Ctrl-C that follows the printed lines is a clean stop,
        # however late this process is scheduled after the flush.
        serving = True
        _print_serving(server)
        while server.running:
            time.sleep(0.5)
        return error(
            "serve",
            f"the server exited unexpectedly; last log lines:\n{server.tail_log()}",
            ExitCode.FAILED,
        )
    except KeyboardInterrupt:
        print("rolecheck serve: stopping", file=sys.stderr)
        return ExitCode.OK if serving else ExitCode.INTERRUPTED
    finally:
        server.stop()
        signal.signal(signal.SIGTERM, previous)


def _print_serving(server: Any) -> None:
    lines = [
        f"rolecheck serve: local model at {server.base_url} "
        f"(started in {server.startup_seconds:.1f} s)",
        "Point the openai SDK at it:",
        f"  export OPENAI_BASE_URL={server.base_url}",
        "  export OPENAI_API_KEY=anything",
        f"Model name: {server.model} (any name is answered by this model)",
        f"Server log: {server.log_path}",
        "Press Ctrl-C to stop.",
    ]
    print("\n".join(lines), flush=True)
