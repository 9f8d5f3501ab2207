"""The ``rolecheck`` command.

Subcommands register themselves in `build_parser` through an ``add_<name>``
function that adds a subparser and sets ``handler`` (a function taking the
parsed namespace and returning an exit code). Heavy modules are imported
inside the handlers, never at import time.

Exit codes: :class:`ExitCode`. The options of every subcommand come from the
one option table in :mod:`pytest_rolecheck.settings`.
"""

from __future__ import annotations

import argparse
import enum
import sys
from collections.abc import Callable, Sequence
from typing import Any

from .errors import RolecheckError, RolecheckUsageError
from .option_values import invalid_value
from .settings import COMMANDS, OPTIONS_BY_NAME, PYTEST_OPTIONS, OptionSpec, Use

Handler = Callable[[argparse.Namespace], int]


class ExitCode(enum.IntEnum):
    """Exit status of every ``rolecheck`` subcommand."""

    OK = 0
    FAILED = 1  # the command ran and failed (calls, cassettes, --expect)
    USAGE = 2  # bad options or files; argparse's own status for a usage error
    INTERRUPTED = 130  # 128 + SIGINT, as a shell reports Ctrl-C


def add_command(
    subparsers: Any,
    name: str,
    handler: Handler,
    *,
    help: str,
    description: str,
    epilog: str | None = None,
    **changes: Any,
) -> argparse.ArgumentParser:
    """Add ``rolecheck <name>`` with its options from the option table.

    ``changes`` are :class:`~pytest_rolecheck.settings.Use` overrides of the
    table for this command (defaults that live with the command).
    """
    parser: argparse.ArgumentParser = subparsers.add_parser(
        name,
        help=help,
        description=description,
        epilog=epilog,
        formatter_class=argparse.RawDescriptionHelpFormatter if epilog else argparse.HelpFormatter,
    )
    add_arguments(parser, name, **changes)
    parser.set_defaults(handler=handler)
    return parser


def add_arguments(parser: argparse.ArgumentParser, command: str, **changes: Use) -> None:
    """Add the options of ``rolecheck <command>`` from the option table to ``parser``.

    ``changes`` say how this command shows an option where it differs from the
    table (a default, help text or flag that lives with the command).
    """
    for group, names in COMMANDS[command].items():
        target = parser if group is None else parser.add_argument_group(group)
        for name in names:
            spec, use = OPTIONS_BY_NAME[name], changes.get(name, Use())
            default, text = spec.default_in(use), use.help or spec.help
            kwargs: dict[str, Any] = {"dest": name, "default": default}
            if spec.flag:
                kwargs["action"] = "store_true"
            else:
                if default is not None:
                    text += " (default: %(default)s)"
                kwargs.update(
                    type=_argparse_type(spec),
                    metavar=use.metavar or spec.metavar or name.upper(),
                    nargs=spec.nargs,
                    required=spec.required,
                )
            target.add_argument(spec.flag_in(use), help=text, **kwargs)


def _argparse_type(spec: OptionSpec) -> Callable[[str], Any]:
    def parse(text: str) -> Any:
        try:
            return spec.parse(text)
        except ValueError as exc:  # argparse prints only an ArgumentTypeError's words
            raise argparse.ArgumentTypeError(invalid_value(text, exc)) from None

    parse.__name__ = spec.name
    return parse


def command_flag(pytest_flag: str, command: str) -> str | None:
    """``rolecheck <command>``'s spelling of a ``--rolecheck-*`` flag (``None``: it has none)."""
    names = {name for group in COMMANDS[command].values() for name in group}
    for spec in PYTEST_OPTIONS:
        if spec.cli_name == pytest_flag and spec.name in names:
            return spec.flag_in(Use())
    return None


def error(command: str, message: object, code: ExitCode = ExitCode.USAGE) -> ExitCode:
    """Print ``rolecheck <command>: error: <message>`` on stderr; return ``code``."""
    print(f"rolecheck {command}: error: {message}", file=sys.stderr)
    return code


def _lazy(module: str) -> Callable[[Any], None]:
    """Register a subcommand whose parser and handler live in ``pytest_rolecheck.<module>``."""

    def add(subparsers: Any) -> None:
        import importlib

        importlib.import_module(f"pytest_rolecheck.{module}").add_parser(subparsers)

    return add


_SUBCOMMANDS: tuple[Callable[[Any], None], ...] = (
    _lazy("commands.serve"),  # rolecheck serve
    _lazy("commands.compare"),  # rolecheck compare
    _lazy("commands.plan"),  # rolecheck plan
    _lazy("commands.report"),  # rolecheck report
    _lazy("commands.diff"),  # rolecheck diff
    _lazy("commands.cassettes"),  # rolecheck cassettes upgrade
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
        return exc.code if isinstance(exc.code, int) else ExitCode.USAGE
    # The words as typed: `rolecheck compare` repeats them in its fix commands.
    args.argv = list(sys.argv[1:] if argv is None else argv)
    handler: Handler | None = getattr(args, "handler", None)
    if handler is None:
        parser.print_help(sys.stderr)
        return ExitCode.USAGE
    try:
        return handler(args)
    except RolecheckError as exc:  # bad options or files exit 2, every other failure 1
        code = ExitCode.USAGE if isinstance(exc, RolecheckUsageError) else ExitCode.FAILED
        return error(args.command, exc, code)


if __name__ == "__main__":
    sys.exit(main())
