"""Options, ini keys and marker arguments: one table, one precedence rule.

Every setting is declared once in :data:`OPTIONS`; from that table come the
``--rolecheck-*`` command-line flags, the ``rolecheck_*`` ini keys, the
validation (bad values name the option, the value and what is allowed) and the
keyword arguments accepted by ``@pytest.mark.rolecheck(...)``.

Precedence, highest first: marker > command line > ini > default. Keyword
arguments passed to an ``assert_*`` call override all of them for that call.

This module imports nothing heavy; the plugin loads it at start-up.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .errors import RolecheckUsageError

RECORD_MODES = ("none", "once", "all", "rewrite")
DESIGNS = ("all-pairs", "seed")


def _choice(allowed: tuple[str, ...]) -> Callable[[str], str]:
    def parse(raw: str) -> str:
        value = str(raw).strip().lower()
        if value not in allowed:
            raise ValueError(f"expected one of {', '.join(allowed)}")
        return value

    parse.__doc__ = f"one of {', '.join(allowed)}"
    return parse


def _int_at_least(low: int) -> Callable[[str], int]:
    def parse(raw: str) -> int:
        try:
            value = int(str(raw).strip())
        except ValueError:
            raise ValueError(f"expected a whole number ≥ {low}") from None
        if value < low:
            raise ValueError(f"expected a whole number ≥ {low}")
        return value

    parse.__doc__ = f"a whole number ≥ {low}"
    return parse


def _int_in(low: int, high: int) -> Callable[[str], int]:
    def parse(raw: str) -> int:
        try:
            value = int(str(raw).strip())
        except ValueError:
            raise ValueError(f"expected a whole number in [{low}, {high}]") from None
        if not low <= value <= high:
            raise ValueError(f"expected a whole number in [{low}, {high}]")
        return value

    parse.__doc__ = f"a whole number in [{low}, {high}]"
    return parse


def _float_in(
    low: float, high: float | None, *, low_open: bool, high_open: bool
) -> Callable[[str], float]:
    lo = "(" if low_open else "["
    hi = ")" if high_open else "]"
    span = f"{lo}{low:g}, {'∞' if high is None else f'{high:g}'}{hi}"

    def parse(raw: str) -> float:
        try:
            value = float(str(raw).strip())
        except ValueError:
            raise ValueError(f"expected a number in {span}") from None
        bad_low = value <= low if low_open else value < low
        bad_high = high is not None and (value >= high if high_open else value > high)
        if bad_low or bad_high or value != value:  # NaN fails every comparison
            raise ValueError(f"expected a number in {span}")
        return value

    parse.__doc__ = f"a number in {span}"
    return parse


def _text(raw: str) -> str:
    """a non-empty string"""
    value = str(raw).strip()
    if not value:
        raise ValueError("expected a non-empty string")
    return value


def _bool(raw: str | bool) -> bool:
    if isinstance(raw, bool):
        return raw
    value = raw.strip().lower()
    if value in ("1", "true", "yes", "on"):
        return True
    if value in ("0", "false", "no", "off", ""):
        return False
    raise ValueError("expected true or false")


@dataclass(frozen=True)
class OptionSpec:
    """One setting: its name, parser, default and help text."""

    name: str
    parse: Callable[[str], Any]
    default: Any
    help: str
    flag: bool = False  # a command-line switch without a value
    cli: bool = True  # also a --rolecheck-* flag (else ini/marker only)
    marker: bool = True  # allowed in @pytest.mark.rolecheck(...)

    @property
    def cli_name(self) -> str:
        return "--rolecheck-" + self.name.replace("_", "-")

    @property
    def ini_name(self) -> str:
        return "rolecheck_" + self.name


OPTIONS: tuple[OptionSpec, ...] = (
    OptionSpec(
        "record_mode",
        _choice(RECORD_MODES),
        "none",
        "cassette mode: none = replay only, a missing cassette fails (default, CI-safe); "
        "once = record missing cassettes; all/rewrite = call live and replace cassettes",
        marker=False,
    ),
    OptionSpec("model", _text, None, "model name sent to the chat-completions API"),
    OptionSpec(
        "base_url",
        _text,
        None,
        "OpenAI-compatible endpoint (default: $OPENAI_BASE_URL, else OpenAI)",
        marker=False,
    ),
    OptionSpec(
        "local",
        _bool,
        False,
        "use the bundled local model (a llama.cpp server on 127.0.0.1, started on the first "
        "live call)",
        flag=True,
        marker=False,
    ),
    OptionSpec(
        "concurrency",
        _int_at_least(1),
        8,
        "completions in flight at once, across all xdist workers",
    ),
    OptionSpec("trials", _int_at_least(4), 20, "calls per arm (at least 4)"),
    OptionSpec(
        "alpha", _float_in(0.0, 1.0, low_open=True, high_open=True), 0.05, "significance level"
    ),
    OptionSpec(
        "tolerance",
        _float_in(0.0, 1.0, low_open=True, high_open=False),
        None,
        "largest change that still counts as equivalent: share of probability mass moved "
        "(js, tv) or of calls whose tool-call outcome changes (default 0.2)",
    ),
    OptionSpec(
        "metric",
        _text,
        "js",
        "per-call distance (js, tv, tok_l1, first_token, seed, or registered)",
    ),
    OptionSpec(
        "design", _choice(DESIGNS), "all-pairs", "all-pairs (default) or seed (the forum's design)"
    ),
    OptionSpec("max_tokens", _int_at_least(1), 20, "max_tokens of every request"),
    OptionSpec(
        "top_logprobs",
        # 0 would silently give one alternative per token; OpenAI allows at most 20.
        _int_in(1, 20),
        20,
        "top_logprobs of every request (1 to 20, OpenAI's limit)",
    ),
    OptionSpec(
        "temperature",
        _float_in(0.0, 2.0, low_open=False, high_open=False),
        0.0,
        "temperature of every request",
    ),
    OptionSpec(
        "timeout",
        _float_in(0.0, None, low_open=True, high_open=True),
        None,
        "seconds each try of a live call may wait for its answer (the SDK retries); past it, "
        "the calls still in flight are listed. Unset: the client's own timeout (120 s for "
        "the default client)",
    ),
    OptionSpec(
        "cassette_dir",
        _text,
        "cassettes",
        "directory of the cassettes, relative to the rootdir",
        marker=False,
    ),
    OptionSpec(
        "report", _text, None, "write a JSON report of every comparison to this path", marker=False
    ),
    OptionSpec(
        "report_dir",
        _text,
        None,
        "write a self-contained HTML report with plots (and the PNGs) to this directory "
        "(needs: pip install 'pytest-rolecheck[report]')",
        marker=False,
    ),
)

OPTIONS_BY_NAME: dict[str, OptionSpec] = {spec.name: spec for spec in OPTIONS}
MARKER_KEYS: tuple[str, ...] = tuple(spec.name for spec in OPTIONS if spec.marker)


@dataclass(frozen=True)
class Settings:
    """Resolved settings for one test (or for the whole run, before markers)."""

    record_mode: str = "none"
    model: str | None = None
    base_url: str | None = None
    local: bool = False
    concurrency: int = 8
    trials: int = 20
    alpha: float = 0.05
    tolerance: float | None = None  # None: DEFAULT_TOLERANCE of the comparison kind
    metric: str = "js"
    design: str = "all-pairs"
    max_tokens: int = 20
    top_logprobs: int = 20
    temperature: float = 0.0
    timeout: float | None = None
    cassette_dir: str = "cassettes"
    report: str | None = None
    report_dir: str | None = None
    rootdir: Path = dataclasses.field(default_factory=Path.cwd)

    def replace(self, **changes: Any) -> Settings:
        return dataclasses.replace(self, **changes)


def parse_value(spec: OptionSpec, raw: Any, *, source: str) -> Any:
    """Parse ``raw`` for ``spec`` or raise :class:`RolecheckUsageError` naming ``source``."""
    if raw is None:
        return spec.default
    if not isinstance(raw, str) and not isinstance(raw, bool):
        raw = str(raw)
    try:
        return spec.parse(raw)
    except ValueError as exc:
        raise RolecheckUsageError(f"{source}: invalid value {raw!r}: {exc}.") from None


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
    for spec in OPTIONS:
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
