"""Every option of pytest-rolecheck and of the ``rolecheck`` command: one table.

Each option is declared once in :data:`OPTIONS`, with the one function that
parses it. From that table come the ``--rolecheck-*`` flags, the
``rolecheck_*`` ini keys, the keywords of ``@pytest.mark.rolecheck(...)`` AND
the argparse arguments of ``rolecheck compare/plan/report/diff/serve``; so a value
is refused with the same words wherever it is typed
("invalid value '1.5': expected a number in (0, 1)").

Precedence in pytest, highest first: marker > command line > ini > default.
Keyword arguments passed to an ``assert_*`` call override all of them for that call.

This module imports nothing heavy; the plugin loads it at start-up.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from . import option_values as values
from .core.limits import (
    DEFAULT_ALPHA,
    DEFAULT_METRIC,
    DEFAULT_TOLERANCE,
    DESIGNS,
    MIN_CALLS_PER_ARM,
)
from .errors import RolecheckUsageError
from .recording.mode import RecordMode

RECORD_MODES: tuple[str, ...] = tuple(mode.value for mode in RecordMode)
VERDICTS_EXPECTED = ("equivalent", "different")
# The OpenAI API a request is made for: chat.completions.create or responses.create.
APIS = ("chat", "responses")
# Whether requests ask for logprobs (running/logprobs.py says what each value does).
LOGPROBS_MODES = ("auto", "true", "false")

# --------------------------------------------------------------------------- the table

_SAME: Any = object()  # a command keeps the option's default


@dataclass(frozen=True)
class Use:
    """How one ``rolecheck`` subcommand shows an option (its default or help may differ)."""

    default: Any = _SAME
    help: str | None = None
    flag: str | None = None  # the argparse flag when it is not --<name>
    metavar: str | None = None


@dataclass(frozen=True)
class OptionSpec:
    """One option: its name, parser, default and help text, and where it is accepted."""

    name: str
    parse: values.Parser
    default: Any
    help: str
    flag: bool = False  # a switch without a value
    pytest: bool = True  # a --rolecheck-* flag and a rolecheck_* ini key
    marker: bool = True  # allowed in @pytest.mark.rolecheck(...)
    metavar: str | tuple[str, ...] | None = None
    nargs: int | None = None
    required: bool = False

    @property
    def cli_name(self) -> str:
        return "--rolecheck-" + self.name.replace("_", "-")

    @property
    def ini_name(self) -> str:
        return "rolecheck_" + self.name

    @property
    def pytest_help(self) -> str:
        shown = "" if self.default is None or self.flag else f" (default: {self.default})"
        return self.help + shown

    def flag_in(self, use: Use) -> str:
        """The argparse flag of this option as ``use`` shows it (default ``--<name>``)."""
        return use.flag or "--" + self.name.replace("_", "-")

    def default_in(self, use: Use) -> Any:
        """The default of this option as ``use`` shows it."""
        return self.default if use.default is _SAME else use.default


def _command_only(
    name: str, parse: values.Parser, default: Any, help: str, **kw: Any
) -> OptionSpec:
    return OptionSpec(name, parse, default, help, pytest=False, marker=False, **kw)


OPTIONS: tuple[OptionSpec, ...] = (
    # -- shared by pytest and the rolecheck command
    OptionSpec(
        "record_mode",
        values.choice(RECORD_MODES),
        RecordMode.NONE.value,
        "cassette mode: none = replay only, a missing cassette fails (CI-safe); "
        "once = record missing cassettes; all/rewrite = call live and replace cassettes",
        marker=False,
        metavar=values.braces(RECORD_MODES),
    ),
    OptionSpec("model", values.text, None, "model name sent to the API"),
    OptionSpec(
        "api",
        values.choice(APIS),
        APIS[0],
        "chat = client.chat.completions.create; responses = client.responses.create (input "
        "items, instructions, max_output_tokens; no n or seed)",
        metavar=values.braces(APIS),
    ),
    OptionSpec(
        "base_url",
        values.text,
        None,
        "OpenAI-compatible endpoint (default: $OPENAI_BASE_URL, else OpenAI)",
        marker=False,
    ),
    OptionSpec(
        "local",
        values.boolean,
        False,
        "use the bundled local model (SmolLM2-135M behind a llama.cpp server on 127.0.0.1, "
        "started on the first live call)",
        flag=True,
        marker=False,
    ),
    OptionSpec(
        "concurrency",
        values.int_in(1),
        8,
        "completions in flight at once; in pytest, across all xdist workers",
    ),
    OptionSpec(
        "trials",
        values.int_in(MIN_CALLS_PER_ARM),
        20,
        f"calls per arm, at least {MIN_CALLS_PER_ARM}",
    ),
    OptionSpec("max_tokens", values.int_in(1), 20, "max_tokens of every request"),
    OptionSpec(
        "top_logprobs",
        values.int_in(1, values.MAX_TOP_LOGPROBS),
        values.MAX_TOP_LOGPROBS,
        f"top_logprobs of every request, at most {values.MAX_TOP_LOGPROBS} (OpenAI's limit)",
    ),
    OptionSpec(
        "logprobs",
        values.choice(LOGPROBS_MODES),
        LOGPROBS_MODES[0],
        "auto = ask, and when a server rejects or ignores them stop asking and compare the "
        "texts; true = require them; false = never ask (compare the texts)",
        metavar=values.braces(LOGPROBS_MODES),
    ),
    OptionSpec(
        "temperature",
        values.float_in(0.0, 2.0, low_open=False, high_open=False),
        0.0,
        "temperature of every request",
    ),
    OptionSpec(
        "timeout",
        values.seconds,
        None,
        "seconds each try of a live call may wait for its answer (the SDK retries); past it, "
        "the calls still in flight are listed. Unset: the client's own timeout (120 s for "
        "the default client)",
    ),
    OptionSpec(
        "design",
        values.choice(DESIGNS),
        DESIGNS[0],
        "all-pairs, or seed: one baseline call, per-trial distance to it (the forum's design)",
        metavar=values.braces(DESIGNS),
    ),
    OptionSpec(
        "metric", values.metric, DEFAULT_METRIC, f"per-call distance: {values.metric.__doc__}"
    ),
    OptionSpec(
        "alpha", values.share_open, DEFAULT_ALPHA, "significance level of the difference test"
    ),
    OptionSpec(
        "tolerance",
        # Unbounded metrics (tok_l1) measure in nats: the [0, 1] limit of js/tv
        # and tool calls is checked against the metric, not here.
        values.positive,
        None,
        "largest change that still counts as equivalent, in the metric's units: share of "
        "probability mass moved (js, tv), of answers that moved (edit, hamming, js_edit) or "
        "of calls whose tool-call outcome changes; "
        f"choose it before looking at data (default: {DEFAULT_TOLERANCE})",
    ),
    OptionSpec(
        "cassette_dir",
        values.text,
        "cassettes",
        "directory of the cassettes, relative to the rootdir",
        marker=False,
    ),
    OptionSpec(
        "report",
        values.text,
        None,
        "write a JSON report of every comparison to this path",
        marker=False,
    ),
    OptionSpec(
        "report_dir",
        values.text,
        None,
        "write a self-contained HTML report with plots (and the PNGs) to this directory "
        "(needs: pip install 'pytest-rolecheck[report]')",
        marker=False,
    ),
    OptionSpec(
        "drift",
        values.boolean,
        False,
        "drift check: run every recorded test live again with its recorded requests and compare "
        "the live calls with the recorded ones, arm by arm; cassettes are not modified; exit "
        "non-zero when an arm changed beyond its tolerance (family-wise error at alpha, Holm)",
        flag=True,
        marker=False,
    ),
    OptionSpec(
        "drift_save",
        values.text,
        None,
        "with --rolecheck-drift: also write the live calls to this directory, as cassettes laid "
        "out like the cassette directory (to inspect, or to promote by copying them over it)",
        marker=False,
    ),
    OptionSpec(
        "prices",
        values.price_file,
        None,
        "price table (YAML or JSON: model name or glob -> USD per 1M input, output and cached "
        "input tokens): each test's cost in the summary and reports, and an estimate before a "
        "live run. Relative: to where pytest was started, or to the rootdir for the ini key",
        marker=False,
    ),
    # -- rolecheck compare
    _command_only("instruction", values.text, None, "instruction message text"),
    _command_only("prompt", values.text, None, "user message"),
    _command_only(
        "roles",
        values.text,
        None,
        "roles of the instruction in arm A and arm B: system, developer, user-prefixed or "
        "instructions (the Responses API's parameter; with --api responses)",
        metavar=("ROLE_A", "ROLE_B"),
        nargs=2,
    ),
    _command_only("variant_a", values.path, None, "arm A from a variant file", metavar="YAML"),
    _command_only("variant_b", values.path, None, "arm B from a variant file", metavar="YAML"),
    _command_only(
        "top_p",
        values.float_in(0.0, 1.0, low_open=True, high_open=False),
        None,
        "top_p (default: not sent)",
    ),
    _command_only("seed", values.int_in(0), 0, "seed of the permutation test"),
    _command_only(
        "expect",
        values.choice(VERDICTS_EXPECTED),
        None,
        "exit with status 1 unless the verdict is this",
        metavar=values.braces(VERDICTS_EXPECTED),
    ),
    _command_only(
        "cassette",
        values.path,
        None,
        "record the calls to / replay them from this cassette file",
        metavar="PATH",
    ),
    _command_only(
        "html",
        values.path,
        None,
        "write the HTML report (and its PNG plots) into DIR",
        metavar="DIR",
    ),
    _command_only(
        "json",
        values.path,
        None,
        "write the JSON report (the input of `rolecheck report` and `rolecheck plan`)",
        metavar="PATH",
    ),
    # -- rolecheck plan
    _command_only(
        "effect",
        values.positive,
        None,
        "change to detect, in the metric's units (e.g. 0.5: half the probability mass "
        "moves); at or below --tolerance such a change is meant to pass as equivalent",
    ),
    _command_only("power", values.share_open, 0.8, "required power"),
    _command_only(
        "arm",
        values.text,
        None,
        "which calls are the pilot: a request group of a cassette / 1 = A, 2 = B of a "
        "report, or all (default: see the docs)",
    ),
    _command_only(
        "comparison",
        values.int_in(1),
        None,
        "report pilots: which comparison, 1-based (default: the first with a distance matrix)",
    ),
    _command_only(
        "cases",
        values.boolean,
        False,
        "the pilot is an A/A run of a prompt set (a cassette): plan cases x trials per case, "
        "each distinct request being one case",
        flag=True,
    ),
    _command_only(
        "replications",
        values.int_in(20),
        200,
        "simulated runs per number of trials (with --cases: per cases x trials cell)",
    ),
    _command_only(
        "max_trials",
        values.int_in(MIN_CALLS_PER_ARM),
        200,
        "largest number of trials per arm tried",
    ),
    # -- rolecheck report
    _command_only(
        "out",
        values.path,
        None,
        "directory to write rolecheck-report.html and png/ into (created if missing)",
        metavar="DIR",
        required=True,
    ),
    # -- rolecheck diff
    _command_only(
        "against",
        values.text,
        None,
        "with one path: the git revision it is compared with (default: HEAD; in a pull "
        "request's CI e.g. origin/main)",
        metavar="REV",
    ),
    _command_only(
        "exit_zero",
        values.boolean,
        False,
        "exit 0 even when the behaviour changed (usage errors still exit 2)",
        flag=True,
    ),
    # -- rolecheck serve (model file, timeout, port: the server's, not the requests')
    _command_only("port", values.int_in(1, 65535), None, "port to listen on (default: a free one)"),
    _command_only("host", values.text, "127.0.0.1", "interface to listen on"),
    _command_only(
        "model_path",
        values.text,
        None,
        "model file (default: the bundled SmolLM2-135M-Instruct)",
    ),
    _command_only("alias", values.text, None, "model name the server lists"),
    _command_only("parallel", values.int_in(1), None, "parallel slots, decoded together"),
    _command_only(
        "threads",
        values.int_in(1),
        None,
        "CPU threads; the default was measured fastest on a busy 2-core machine",
    ),
    _command_only("slot_ctx", values.int_in(1), None, "context tokens per slot"),
    _command_only(
        "start_timeout", values.seconds, 120.0, "seconds to wait for the server to start"
    ),
    _command_only(
        "log_file",
        values.text,
        None,
        "write the server log here (default: a temporary file, printed at start)",
        metavar="PATH",
    ),
)


def _names(text: str) -> tuple[str, ...]:
    return tuple(text.split())


#: The options of each ``rolecheck`` subcommand by --help group (``None``: no group).
COMMANDS: dict[str, dict[str | None, tuple[str, ...]]] = {
    "compare": {
        "what to compare": ("instruction", "prompt", "roles", "variant_a", "variant_b"),
        "requests": _names(
            "model api base_url local trials max_tokens top_logprobs logprobs temperature top_p "
            "concurrency"
        ),
        "statistics": ("design", "metric", "alpha", "tolerance", "seed", "expect"),
        "recording and output": ("cassette", "record_mode", "html", "json"),
    },
    "plan": {
        None: _names(
            "tolerance effect alpha power metric arm comparison cases replications seed max_trials"
        )
    },
    "report": {None: ("out",)},
    "diff": {None: ("against", "json", "exit_zero")},
    "cassettes": {},  # upgrade takes only paths
    "serve": {
        None: _names("port host model_path alias parallel threads slot_ctx start_timeout log_file")
    },
}

OPTIONS_BY_NAME: dict[str, OptionSpec] = {spec.name: spec for spec in OPTIONS}
PYTEST_OPTIONS: tuple[OptionSpec, ...] = tuple(spec for spec in OPTIONS if spec.pytest)
MARKER_KEYS: tuple[str, ...] = tuple(spec.name for spec in OPTIONS if spec.marker)


def _default(name: str) -> Any:
    return OPTIONS_BY_NAME[name].default


@dataclass(frozen=True)
class Settings:
    """Resolved settings for one test (or for the whole run, before markers)."""

    record_mode: str = _default("record_mode")
    model: str | None = _default("model")
    api: str = _default("api")
    base_url: str | None = _default("base_url")
    local: bool = _default("local")
    concurrency: int = _default("concurrency")
    trials: int = _default("trials")
    alpha: float = _default("alpha")
    tolerance: float | None = _default("tolerance")  # None: DEFAULT_TOLERANCE of the kind
    metric: str = _default("metric")
    design: str = _default("design")
    max_tokens: int = _default("max_tokens")
    top_logprobs: int = _default("top_logprobs")
    logprobs: str = _default("logprobs")
    temperature: float = _default("temperature")
    timeout: float | None = _default("timeout")
    cassette_dir: str = _default("cassette_dir")
    report: str | None = _default("report")
    report_dir: str | None = _default("report_dir")
    drift: bool = _default("drift")
    drift_save: str | None = _default("drift_save")
    prices: str | None = _default("prices")
    rootdir: Path = dataclasses.field(default_factory=Path.cwd)

    def replace(self, **changes: Any) -> Settings:
        return dataclasses.replace(self, **changes)


def check_together(settings: Settings) -> None:
    """The comparison's own check of the statistics options together, before any call.

    The parsers check each value alone; whether a tolerance above 1 is allowed
    depends on the metric (only unbounded ones: tok_l1).
    """
    from .verdicts.compare import check_options

    check_options(
        metric=settings.metric,
        alpha=settings.alpha,
        tolerance=settings.tolerance,
        design=settings.design,
        seed=0,
        baseline=None,
        labels=("A", "B"),
    )


def check_drift(settings: Settings, *, typed_record_mode: str | None) -> None:
    """A drift check reads the cassettes and never writes them: refuse what contradicts that.

    A record mode from an ini file is ignored by a drift check; one typed with it is refused.
    """
    if settings.drift_save and not settings.drift:
        raise RolecheckUsageError(
            "--rolecheck-drift-save / rolecheck_drift_save keeps the live calls of a drift check: "
            "add --rolecheck-drift, or drop it."
        )
    if settings.drift and typed_record_mode not in (None, RecordMode.NONE.value):
        raise RolecheckUsageError(
            f"--rolecheck-drift compares live calls with the cassettes and never writes them, but "
            f"--rolecheck-record-mode={typed_record_mode} would record: drop one of the two "
            "(to keep the live calls, add --rolecheck-drift-save=DIR)."
        )


# --------------------------------------------------------------------------- pytest side


def parse_value(spec: OptionSpec, raw: Any, *, source: str) -> Any:
    """Parse ``raw`` for ``spec`` or raise :class:`RolecheckUsageError` naming ``source``."""
    if raw is None:
        return spec.default
    text = str(raw)  # ini values, marker keywords: all read as if typed
    try:
        return spec.parse(text)
    except ValueError as exc:
        raise RolecheckUsageError(f"{source}: {values.invalid_value(text, exc)}.") from None


def check_value(name: str, value: Any, *, source: str | None = None) -> Any:
    """Check a typed value (an assert keyword, a request field) against ``name``'s rule.

    The same rule as the command line and ini, but stricter about types: ``trials="10"``
    is a mistake in Python code, not a string to parse.
    """
    spec = OPTIONS_BY_NAME[name]
    kind = str if spec.default is None else type(spec.default)
    allowed = (int, float) if kind is float else (kind,)
    shown = f"{source or name}={value!r}"
    if isinstance(value, bool) or not isinstance(value, allowed):
        raise RolecheckUsageError(
            f"{shown} is not allowed: expected {spec.parse.__doc__}, "
            f"got a {type(value).__name__}. Checked before any call."
        )
    try:
        return spec.parse(str(value))
    except ValueError:
        raise RolecheckUsageError(
            f"{shown} is not allowed: expected {spec.parse.__doc__}. Checked before any call."
        ) from None


def resolve_settings(
    cli_values: Mapping[str, Any],
    ini_values: Mapping[str, Any],
    *,
    rootdir: Path,
) -> Settings:
    """Combine command-line and ini values (CLI wins) into validated :class:`Settings`.

    ``cli_values`` maps option names to the raw value given on the command line
    (``None`` or missing when absent); ``ini_values`` likewise for the ini file.
    """
    resolved: dict[str, Any] = {}
    for spec in PYTEST_OPTIONS:
        cli_raw = cli_values.get(spec.name)
        ini_raw = ini_values.get(spec.name)
        if spec.flag and cli_raw is False:
            cli_raw = None  # an absent switch must not hide the ini value
        if cli_raw is not None:
            resolved[spec.name] = parse_value(spec, cli_raw, source=spec.cli_name)
        elif ini_raw not in (None, "", []):
            resolved[spec.name] = parse_value(spec, ini_raw, source=f"ini option {spec.ini_name}")
        else:
            resolved[spec.name] = spec.default
    return Settings(rootdir=rootdir, **resolved)


def apply_marker(settings: Settings, kwargs: Mapping[str, Any], *, where: str) -> Settings:
    """Apply ``@pytest.mark.rolecheck(**kwargs)`` over ``settings`` (marker wins)."""
    changes: dict[str, Any] = {}
    for key, raw in kwargs.items():
        spec = OPTIONS_BY_NAME.get(key)
        if spec is None or not spec.marker:
            raise RolecheckUsageError(
                f"{where}: @pytest.mark.rolecheck got an unknown argument {key!r}; "
                f"allowed: {', '.join(MARKER_KEYS)}."
            )
        changes[key] = parse_value(spec, raw, source=f"{where}: @pytest.mark.rolecheck({key}=...)")
    return settings.replace(**changes)
