"""The ``rolecheck`` command.

Subcommands register themselves in `build_parser` through an ``add_<name>``
function that adds a subparser and sets ``handler`` (a function taking the
parsed namespace and returning an exit code). Heavy modules are imported
inside the handlers, never at import time.

Exit codes: 0 success, 1 the command failed (e.g. the server did not start),
2 usage error (bad option), 130 interrupted before finishing.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable, Sequence
from typing import Any

from .commands.types import int_at_least

EXIT_OK = 0
EXIT_FAILED = 1
EXIT_USAGE = 2
EXIT_INTERRUPTED = 130

Handler = Callable[[argparse.Namespace], int]


_positive_int = int_at_least(1)


def _port(text: str) -> int:
    value = _positive_int(text)
    if value > 65535:
        raise argparse.ArgumentTypeError(f"expected a port in 1..65535, got {value}")
    return value


def _positive_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number of seconds, got {text!r}") from None
    if not value > 0:
        raise argparse.ArgumentTypeError(f"expected a positive number of seconds, got {text}")
    return value


def add_serve(subparsers: Any) -> None:
    """Add ``rolecheck serve``: the bundled local model behind an OpenAI-compatible server.

    Parameters
    ----------
    subparsers
        The object returned by ``ArgumentParser.add_subparsers``.
    """
    from .running.local import DEFAULT_PARALLEL, DEFAULT_SLOT_CTX, DEFAULT_THREADS

    parser: argparse.ArgumentParser = subparsers.add_parser(
        "serve",
        help="run the bundled local model (SmolLM2 on llama.cpp) as an OpenAI-compatible server",
        description="Run the bundled local model (SmolLM2-135M-Instruct on llama.cpp's own "
        "llama-server) in the foreground until Ctrl-C, and print the environment variables "
        "that point the openai SDK at it. The server answers any model name with its one "
        "model and maps the developer role to system itself.",
    )
    parser.add_argument(
        "--port", type=_port, default=None, help="port to listen on (default: a free one)"
    )
    parser.add_argument(
        "--host", default="127.0.0.1", help="interface to listen on (default: %(default)s)"
    )
    parser.add_argument(
        "--model",
        dest="model_path",
        default=None,
        metavar="GGUF",
        help="model file (default: the bundled SmolLM2-135M-Instruct)",
    )
    parser.add_argument(
        "--alias",
        default=None,
        help="model name the server lists (default: smollm2-135m-instruct)",
    )
    parser.add_argument(
        "--parallel",
        type=_positive_int,
        default=DEFAULT_PARALLEL,
        help="parallel slots, decoded together (default: %(default)s)",
    )
    parser.add_argument(
        "--threads",
        type=_positive_int,
        default=DEFAULT_THREADS,
        help="CPU threads (default: %(default)s, measured fastest on a busy 2-core machine)",
    )
    parser.add_argument(
        "--slot-ctx",
        type=_positive_int,
        default=DEFAULT_SLOT_CTX,
        help="context tokens per slot (default: %(default)s)",
    )
    parser.add_argument(
        "--timeout",
        type=_positive_float,
        default=120.0,
        help="seconds to wait for the server to start (default: %(default)s)",
    )
    parser.add_argument(
        "--log-file",
        default=None,
        metavar="PATH",
        help="write the server log here (default: a temporary file, printed at start)",
    )
    parser.set_defaults(handler=_serve)


def _serve(args: argparse.Namespace) -> int:
    import signal
    import time

    from .errors import BackendError, RolecheckUsageError
    from .running.local import DEFAULT_MODEL_ALIAS, LocalServer

    try:
        server = LocalServer(
            model_path=args.model_path,
            alias=args.alias or DEFAULT_MODEL_ALIAS,
            host=args.host,
            port=args.port,
            parallel=args.parallel,
            threads=args.threads,
            slot_ctx=args.slot_ctx,
            log_path=args.log_file,
        )
    except RolecheckUsageError as exc:
        print(f"rolecheck serve: error: {exc}", file=sys.stderr)
        return EXIT_USAGE

    def on_sigterm(signum: int, frame: object) -> None:
        raise KeyboardInterrupt

    previous = signal.signal(signal.SIGTERM, on_sigterm)
    serving = False
    try:
        try:
            server.start(timeout=args.timeout)
        except BackendError as exc:
            print(f"rolecheck serve: error: {exc}", file=sys.stderr)
            return EXIT_FAILED
        _print_serving(server)
        serving = True
        while server.running:
            time.sleep(0.5)
        print(
            f"rolecheck serve: the server exited unexpectedly; last log lines:\n"
            f"{server.tail_log()}",
            file=sys.stderr,
        )
        return EXIT_FAILED
    except KeyboardInterrupt:
        print("rolecheck serve: stopping", file=sys.stderr)
        return EXIT_OK if serving else EXIT_INTERRUPTED
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


def _lazy(module: str) -> Callable[[Any], None]:
    """Register a subcommand whose parser and handler live in ``pytest_rolecheck.<module>``."""

    def add(subparsers: Any) -> None:
        import importlib

        importlib.import_module(f"pytest_rolecheck.{module}").add_parser(subparsers)

    return add


_SUBCOMMANDS: tuple[Callable[[Any], None], ...] = (
    add_serve,
    _lazy("commands.compare"),  # rolecheck compare
    _lazy("commands.plan"),  # rolecheck plan
    _lazy("commands.report"),  # rolecheck report
)


def build_parser() -> argparse.ArgumentParser:
    """Build the ``rolecheck`` argument parser with every subcommand.

    Returns
    -------
    argparse.ArgumentParser
        The parser; each subcommand sets ``handler`` in the namespace.
    """
    parser = argparse.ArgumentParser(
        prog="rolecheck",
        description="pytest-rolecheck tools: statistical behaviour checks of LLM chat models.",
    )
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND")
    for add in _SUBCOMMANDS:
        add(subparsers)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the ``rolecheck`` command.

    Parameters
    ----------
    argv : sequence of str, optional
        Arguments without the program name (default ``sys.argv[1:]``).

    Returns
    -------
    int
        Exit code: 0 success, 1 failure, 2 usage error, 130 interrupted.
    """
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:  # --help (0) or a usage error (2)
        return exc.code if isinstance(exc.code, int) else EXIT_USAGE
    # The words as typed: `rolecheck compare` repeats them in its fix commands.
    args.argv = list(sys.argv[1:] if argv is None else argv)
    handler: Handler | None = getattr(args, "handler", None)
    if handler is None:
        parser.print_help(sys.stderr)
        return EXIT_USAGE
    return handler(args)


if __name__ == "__main__":
    sys.exit(main())
