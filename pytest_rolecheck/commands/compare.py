"""``rolecheck compare``: run one experiment outside pytest and print the verdict.

The defaults are the forum experiment this project started from: ``gpt-4o-mini``,
the instruction "You are a helpful AI assistant" as a ``developer`` vs a
``system`` message, the rock-song prompt, 20 tokens, top-20 logprobs; the trials
per arm are the plugin's default (20; the forum used 10). The statistics use the
product's defaults (all-pairs design, ``js`` metric); ``--trials 10 --design seed
--metric seed --temperature 0.00001 --top-p 0.00001`` reproduces the forum's own
printout.

Only argparse is imported at module level: ``rolecheck --help`` stays fast.
"""

from __future__ import annotations

import argparse
import dataclasses
import functools
import shlex
import sys
import threading
from collections.abc import Sequence
from typing import IO, Any, Final

from ..cli import ExitCode, add_command, command_flag
from ..recording.mode import RecordMode
from ..settings import Settings, Use, check_together

SEED_MODEL: Final = "gpt-4o-mini"
SEED_INSTRUCTION: Final = "You are a helpful AI assistant"
SEED_PROMPT: Final = "Produce two stanza rock song lyrics for 'Rockin with my Kitty Cat'"
SEED_ROLES: Final = ("developer", "system")

_DESCRIPTION: Final = """\
Run an experiment outside pytest: a baseline/trial set of chat completions per arm
through the openai SDK (OPENAI_API_KEY / OPENAI_BASE_URL, or --local for the bundled
model), then print the per-trial distances, mean/std/min/max per arm, and the verdict
(equivalent / different / inconclusive).

The arms are either the same messages with the instruction in two roles (--roles,
--instruction, --prompt) or two variant files (--variant-a, --variant-b). Defaults
reproduce the forum experiment's request (gpt-4o-mini, 20 tokens, top-20 logprobs;
20 trials, the forum used 10); add --trials 10 --design seed --metric seed
--temperature 0.00001 --top-p 0.00001 for its exact method.

Variant file (YAML):
  label: developer              # optional
  extends: base.yaml            # optional: start from another variant file
  messages:                     # required unless extends is given
    - {role: developer, content: You are a helpful AI assistant}
    - {role: user, content: "Produce two stanza rock song lyrics for ..."}
  params: {temperature: 0}      # optional request parameters (win over the flags)
  derive:                       # optional, applied in order:
    - role: system              #   role, instruction, append_instruction, preamble,
                                #   tools, without_tools, parallel_tool_calls,
                                #   tools_in_system_prompt, params

Exit status: 0 when the experiment ran (whatever the verdict) unless --expect is
given, then 1 if the verdict differs; 1 when calls or cassettes failed; 2 on bad
options or files; 130 when interrupted.
"""

_EPILOG: Final = """\
examples:
  rolecheck compare --local
  rolecheck compare --local --cassette cassettes/roles.json --html report/
  rolecheck compare --model gpt-4o-mini --variant-a a.yaml --variant-b b.yaml --expect equivalent
  rolecheck compare --local --design seed --metric seed --temperature 0.00001 --top-p 0.00001
"""


def add_parser(subparsers: Any) -> argparse.ArgumentParser:
    """Add ``rolecheck compare`` to the ``rolecheck`` command."""
    return add_command(
        subparsers,
        "compare",
        run,
        help="run a role/variant experiment outside pytest and print the verdict",
        description=_DESCRIPTION,
        epilog=_EPILOG,
        instruction=Use(help=f"instruction message text (default: {SEED_INSTRUCTION!r})"),
        prompt=Use(help=f"user message (default: {SEED_PROMPT!r})"),
        model=Use(help=f"model name (default: {SEED_MODEL}; with --local, the bundled model)"),
        record_mode=Use(
            default=RecordMode.ONCE.value,
            help="with --cassette: once = replay if the file exists, else record; "
            "none = replay only; all/rewrite = call live and replace the file",
        ),
        roles=Use(
            help=f"roles of the instruction in arm A and arm B: system, developer, "
            f"user-prefixed or instructions (the Responses API's parameter: with --api "
            f"responses) (default: {' '.join(SEED_ROLES)})"
        ),
    )


# --------------------------------------------------------------------------- progress


class ProgressDisplay:
    """Shows calls done/total, tokens and elapsed time on stderr while calls run.

    On a terminal the line is redrawn in place every ``interval`` seconds; on
    anything else (CI logs, pipes) only the final line is written.

    Parameters
    ----------
    progress
        An object with ``total``, ``done``, ``usage.total_tokens`` and
        ``elapsed`` (``Rolecheck.progress``), read from another thread.
    stream
        Where to write (default ``sys.stderr``).
    interval
        Seconds between redraws on a terminal.
    """

    def __init__(self, progress: Any, stream: IO[str] | None = None, interval: float = 0.2):
        self.progress = progress
        self.stream = stream if stream is not None else sys.stderr
        self.interval = interval
        self.tty = bool(getattr(self.stream, "isatty", lambda: False)())
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._width = 0

    def line(self) -> str:
        """The current progress line."""
        from ..running.progress import progress_line

        return progress_line(self.progress)

    def _draw(self, text: str) -> None:
        pad = max(self._width - len(text), 0)
        self.stream.write("\r" + text + " " * pad)
        self.stream.flush()
        self._width = len(text)

    def _loop(self) -> None:
        while not self._stop.wait(self.interval):
            self._draw(self.line())

    def __enter__(self) -> ProgressDisplay:
        if self.tty:
            self._thread = threading.Thread(target=self._loop, name="rolecheck-progress")
            self._thread.daemon = True
            self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
            self._draw("")
            self.stream.write("\r")
        self.stream.write(self.line() + "\n")
        self.stream.flush()


# --------------------------------------------------------------------------- tables


def _num(value: float | None, width: int = 9) -> str:
    from ..verdicts.numbers import fmt_value

    return fmt_value(value, 4).rjust(width)


def trial_table(comparison: Any) -> list[str]:
    """The seed-style table: per-trial distances, then mean/std/min/max per arm.

    Seed design: each trial's distance to the baseline call (the forum's
    numbers). All-pairs design: each call's mean distance to the other calls
    of its own arm and to the calls of the other arm, then the summary of the
    within-arm pair distances per arm and of the cross pairs.

    Parameters
    ----------
    comparison : Comparison
        The result of ``compare``.

    Returns
    -------
    list of str
        Lines to print.
    """
    from ..core.divergence import METRIC_UNITS

    unit = METRIC_UNITS.get(comparison.metric, "metric units")
    if comparison.trial_distances_a is not None and comparison.trial_distances_b is not None:
        return _seed_table(comparison, unit)
    return _pairs_table(comparison, unit)


def _seed_table(comparison: Any, unit: str) -> list[str]:
    a, b = comparison.labels
    w = max(len(a), len(b), 9)
    lines: list[str] = []
    da, db = list(comparison.trial_distances_a), list(comparison.trial_distances_b)
    lines.append(f"Per-trial {comparison.metric} distance to the baseline call ({unit}):")
    lines.append(f"  {'trial':>5}  {a:>{w}}  {b:>{w}}")
    for i in range(max(len(da), len(db))):
        lines.append(
            f"  {i + 1:>5}  {_num(da[i] if i < len(da) else None, w)}  "
            f"{_num(db[i] if i < len(db) else None, w)}"
        )
    for name in ("mean", "std", "min", "max"):
        sa = getattr(comparison.summary_a, name)
        sb = getattr(comparison.summary_b, name)
        lines.append(f"  {name:>5}  {_num(sa, w)}  {_num(sb, w)}")
    lines.append("  (std with ddof=0, as numpy computes it)")
    return lines


def _pairs_table(comparison: Any, unit: str) -> list[str]:
    import numpy as np

    a, b = comparison.labels
    w = max(len(a), len(b), 9)
    lines: list[str] = []
    m = np.asarray(comparison.matrix, dtype=float)
    n_a, n = comparison.n_a, m.shape[0]
    lines.append(
        f"Per-call mean {comparison.metric} distance ({unit}) to the other calls of the same "
        "arm / of the other arm:"
    )
    lines.append(
        f"  {'call':>5}  {a + ' same':>{w + 5}}  {'other':>{w}}  "
        f"{b + ' same':>{w + 5}}  {'other':>{w}}"
    )
    for i in range(max(n_a, n - n_a)):
        cells = []
        for start, stop in ((0, n_a), (n_a, n)):
            k = start + i
            if k < stop:
                own = np.delete(m[k, start:stop], i)
                other = np.concatenate([m[k, :start], m[k, stop:]])
                cells.append(f"{_num(float(own.mean()), w + 5)}  {_num(float(other.mean()), w)}")
            else:
                cells.append(" " * (2 * w + 7))
        lines.append(f"  {i + 1:>5}  " + "  ".join(cells).rstrip())
    lines.append("")
    lines.append(f"Pair distances ({unit}):")
    lines.append(f"  {'':<{w + 8}}{'mean':>9}  {'std':>9}  {'min':>9}  {'max':>9}  pairs")
    iu = np.triu_indices(n, 1)
    values = m[iu]
    cross = values[(iu[0] < n_a) & (iu[1] >= n_a)]
    rows = [
        (
            f"within {a}",
            comparison.summary_a.mean,
            comparison.summary_a.std,
            comparison.summary_a.min,
            comparison.summary_a.max,
            comparison.summary_a.n,
        ),
        (
            f"within {b}",
            comparison.summary_b.mean,
            comparison.summary_b.std,
            comparison.summary_b.min,
            comparison.summary_b.max,
            comparison.summary_b.n,
        ),
        (
            "across arms",
            float(cross.mean()),
            float(cross.std()),
            float(cross.min()),
            float(cross.max()),
            int(cross.size),
        ),
    ]
    for name, mean, std, lo, hi, count in rows:
        lines.append(f"  {name:<{w + 8}}{_num(mean)}  {_num(std)}  {_num(lo)}  {_num(hi)}  {count}")
    return lines


# --------------------------------------------------------------------------- run


def _validate(args: argparse.Namespace) -> str | None:
    """Return a usage error message, or None."""
    files = (args.variant_a is not None, args.variant_b is not None)
    if any(files) and not all(files):
        return "--variant-a and --variant-b go together: pass both variant files."
    if all(files):
        clashing = [
            flag
            for flag, value in (
                ("--roles", args.roles),
                ("--instruction", args.instruction),
                ("--prompt", args.prompt),
            )
            if value is not None
        ]
        if clashing:
            return (
                f"{', '.join(clashing)} cannot be combined with --variant-a/--variant-b: the "
                "variant files hold the messages. Put the change into the files (derive: "
                "[{role: system}]) or drop the variant files."
            )
    if args.roles is not None and args.roles[0] == args.roles[1]:
        return (
            f"--roles {args.roles[0]} {args.roles[1]} compares a role with itself; for an A/A "
            "run (to measure the noise floor for `rolecheck plan`) use two identical variant "
            "files instead."
        )
    if args.record_mode != RecordMode.ONCE and args.cassette is None:
        return "--record-mode needs --cassette PATH (the file to record to / replay from)."
    return None


def _variants(args: argparse.Namespace) -> tuple[Any, Any]:
    from ..variants import Variant

    if args.variant_a is not None:
        from ..variants.files import load_variant

        a, b = load_variant(args.variant_a), load_variant(args.variant_b)
        if a.label == b.label:
            a, b = a.with_label(f"{a.label} (A)"), b.with_label(f"{b.label} (B)")
        return a, b
    roles = args.roles or SEED_ROLES
    messages = [
        {"role": "system", "content": args.instruction or SEED_INSTRUCTION},
        {"role": "user", "content": args.prompt or SEED_PROMPT},
    ]
    base = Variant.from_messages(messages)
    return base.with_role(roles[0]), base.with_role(roles[1])


def run(args: argparse.Namespace) -> int:
    """Run ``rolecheck compare`` with parsed arguments; return the exit status."""
    from ..errors import RolecheckUsageError

    problem = _validate(args)
    if problem is not None:
        raise RolecheckUsageError(problem)
    try:
        settings = _settings(args)
        check_together(settings)  # refused before any call is paid for
        variant_a, variant_b = _variants(args)
        if args.html is not None:
            from ..reporting.plots import require_matplotlib

            require_matplotlib()  # fail before spending calls
        return _run(args, settings, variant_a, variant_b)
    except KeyboardInterrupt:
        print("rolecheck compare: interrupted; nothing was recorded", file=sys.stderr)
        return ExitCode.INTERRUPTED


def _fix_command(argv: Sequence[str] | None, mode: str | None, flags: Sequence[str]) -> str:
    """This ``rolecheck compare`` command line again, with ``mode`` and ``flags`` applied.

    A cassette error's fix must re-run the command that failed; a pytest command
    cannot. ``argv`` is the command as typed (``None``: the words are unknown).
    """
    words = list(argv) if argv is not None else ["compare", "..."]
    kept: list[str] = []
    skip = False
    for word in words:  # drop the old --record-mode: the fix sets its own
        if skip:
            skip = False
        elif word == "--record-mode":
            skip = True
        elif not word.startswith("--record-mode="):
            kept.append(word)
    for flag in flags:
        name, sep, value = flag.partition("=")
        ours = command_flag(name, "compare")
        if ours is None or (not sep and ours in kept):
            continue
        kept.append(f"{ours}={value}" if sep else ours)
    if mode is not None:
        kept += ["--record-mode", mode]
    return " ".join(["rolecheck", *(shlex.quote(word) for word in kept)])


_SETTINGS_FIELDS: Final = frozenset(f.name for f in dataclasses.fields(Settings)) - {"rootdir"}


def _settings(args: argparse.Namespace) -> Settings:
    # The options shared with pytest keep their names: they become the Settings as typed.
    shared = {name: value for name, value in vars(args).items() if name in _SETTINGS_FIELDS}
    shared["record_mode"] = args.record_mode if args.cassette is not None else "all"
    shared["model"] = args.model or (None if args.local else SEED_MODEL)
    return Settings(**shared)


def _run(args: argparse.Namespace, settings: Settings, variant_a: Any, variant_b: Any) -> int:
    from ..running.session import LocalBackend, Rolecheck

    backend = LocalBackend() if args.local else None
    rolecheck = Rolecheck(
        settings,
        backend=backend,
        cassette_file=args.cassette,
        fix_command=functools.partial(_fix_command, getattr(args, "argv", None)),
    )
    params = {"top_p": args.top_p} if args.top_p is not None else None
    model = rolecheck.model
    print(
        f"rolecheck compare: {variant_a.label} vs {variant_b.label} on {model} "
        f"({args.trials} calls per arm{' + 1 baseline' if args.design == 'seed' else ''}, "
        f"max_tokens {args.max_tokens}, top_logprobs {args.top_logprobs}, temperature "
        f"{args.temperature:g}{'' if args.top_p is None else f', top_p {args.top_p:g}'}; "
        f"{'replaying' if not rolecheck.live else 'live'})",
        flush=True,
    )
    saved = False
    try:
        with ProgressDisplay(rolecheck.progress):
            result = rolecheck.compare(
                variant_a,
                variant_b,
                trials=args.trials,
                metric=args.metric,
                alpha=args.alpha,
                tolerance=args.tolerance,
                design=args.design,
                seed=args.seed,
                params=params,
            )
        rolecheck.finish(save=True)
        saved = True
    finally:
        if not saved:
            rolecheck.finish(save=False)
        if backend is not None:
            backend.stop()

    print()
    print("\n".join(trial_table(result)))
    print()
    print(str(result))
    rows = _rows_with_insight(rolecheck.rows, result)
    if args.cassette is not None:
        print(f"\ncassette: {args.cassette} ({'recorded' if rolecheck.live else 'replayed'})")
    if args.json is not None:
        from ..reporting.summary import SummaryReport

        SummaryReport(rows).write_json(args.json)
        print(f"JSON report: {args.json}")
    if args.html is not None:
        from ..reporting.html import write_html_report

        path = write_html_report(rows, args.html)
        print(f"HTML report: {path}")
    if args.expect is not None and result.verdict != args.expect:
        from ..verdicts.wording import expect_failed

        print(
            expect_failed(result.verdict, args.expect, result.tolerance, result.advice),
            file=sys.stderr,
        )
        return ExitCode.FAILED
    return ExitCode.OK


def _rows_with_insight(rows: list[dict[str, Any]], result: Any) -> list[dict[str, Any]]:
    from ..core.divergence import divergence_insight

    out = [dict(row) for row in rows]
    if out and "insight" not in out[-1]:
        out[-1]["insight"] = divergence_insight(
            result.calls_a, result.calls_b, metric=result.metric, labels=result.labels
        )
    return out
