"""The parsers of option values: each takes the text as typed and returns the value.

A parser raises ``ValueError("expected <what is allowed>")``; its ``__doc__`` is that
"<what is allowed>", shown in the help. :mod:`.settings` pairs each option with one.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from pathlib import Path
from typing import Any

from .core.limits import DEFAULT_METRIC

# A day: no single call or server start waits longer, and an unbounded value
# (inf, 1e300) overflows the socket timeout inside every live call.
MAX_SECONDS = 86_400.0
# OpenAI's limit; 0 would silently give one alternative per token.
MAX_TOP_LOGPROBS = 20

Parser = Callable[[str], Any]


def parser(allowed: str, convert: Callable[[str], Any]) -> Parser:
    def parse(raw: str) -> Any:
        try:
            return convert(str(raw).strip())
        except ValueError:
            raise ValueError(f"expected {allowed}") from None

    parse.__doc__ = allowed
    return parse


def braces(allowed: tuple[str, ...]) -> str:
    return "{" + ",".join(allowed) + "}"


def choice(allowed: tuple[str, ...]) -> Parser:
    def convert(text: str) -> str:
        if text.lower() not in allowed:
            raise ValueError
        return text.lower()

    return parser(f"one of {', '.join(allowed)}", convert)


def int_in(low: int, high: int | None = None) -> Parser:
    def convert(text: str) -> int:
        value = int(text)
        if value < low or (high is not None and value > high):
            raise ValueError
        return value

    return parser(
        f"a whole number ≥ {low}" if high is None else f"a whole number in [{low}, {high}]",
        convert,
    )


def float_in(low: float, high: float | None, *, low_open: bool, high_open: bool) -> Parser:
    """A finite number in the interval (``high=None``: no upper bound but finite)."""

    def convert(text: str) -> float:
        value = float(text)
        bad_low = value <= low if low_open else value < low
        bad_high = high is not None and (value >= high if high_open else value > high)
        if bad_low or bad_high or not math.isfinite(value):
            raise ValueError
        return value

    lo = "(" if low_open else "["
    hi = ")" if high_open or high is None else "]"
    return parser(f"a number in {lo}{low:g}, {'∞' if high is None else f'{high:g}'}{hi}", convert)


def text_value(text: str) -> str:
    if not text:
        raise ValueError
    return text


text = parser("a non-empty string", text_value)
path = parser("a path", lambda text: Path(text_value(text)))
# What a price table may be read from (the file itself is checked by pytest_rolecheck.prices).
PRICE_SUFFIXES = (".yaml", ".yml", ".json")


def price_file_value(text: str) -> str:
    if not text_value(text).lower().endswith(PRICE_SUFFIXES):
        raise ValueError
    return text


price_file = parser(
    f"the path of a price table file ({', '.join(PRICE_SUFFIXES)}); for a name without "
    "that suffix, rename the file",
    price_file_value,
)


def bool_value(text: str) -> bool:
    if text.lower() in ("1", "true", "yes", "on"):
        return True
    if text.lower() in ("0", "false", "no", "off", ""):
        return False
    raise ValueError


boolean = parser("true or false", bool_value)
positive = float_in(0.0, None, low_open=True, high_open=True)
share_open = float_in(0.0, 1.0, low_open=True, high_open=True)
seconds = float_in(0.0, MAX_SECONDS, low_open=True, high_open=False)


def metric(raw: str) -> str:
    name: str = text(raw)
    if name != DEFAULT_METRIC:  # only another metric pays for importing the distances
        from .core.distances import available_metrics

        known = available_metrics()
        if name not in known:
            raise ValueError(
                f"expected one of {', '.join(known)} (or a metric registered with "
                "pytest_rolecheck.register_metric(name, fn))"
            )
    return name


metric.__doc__ = (
    "auto (js for greedy calls, js_edit for sampled ones, edit without logprobs), js, tv, "
    "tok_l1, first_token, seed, hamming, edit, js_edit, or a registered metric's name"
)


def invalid_value(raw: object, exc: ValueError) -> str:
    """The one wording of a refused option value, for pytest and for ``rolecheck``."""
    return f"invalid value {raw!r}: {exc}"
