"""The one way rolecheck prints a number: terminal, HTML, JSON-derived tables and messages.

Kept apart from :mod:`~pytest_rolecheck.verdicts.wording` so the CLI and the
reports can import it without numpy. Conventions, the same everywhere:

* no value (``None``, NaN): ``"—"``;
* an infinite bound: ``"∞"`` (``"-∞"``), never "unbounded" or a dash;
* a p-value: 3 significant digits, ``"1"`` at or above 1 (a permutation p-value
  can round to 1), never a threshold like "< 0.001" that hides it from alpha;
* other values: ``digits`` significant digits (3 by default: what a table and a
  sentence need; messages that state an exact change pass 4).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any, Final

__all__ = [
    "MISSING",
    "fmt_bounds",
    "fmt_change",
    "fmt_confidence",
    "fmt_count",
    "fmt_exact",
    "fmt_list",
    "fmt_p",
    "fmt_rounded_count",
    "fmt_share",
    "fmt_usd",
    "fmt_value",
    "json_value",
]

#: What a missing number prints as.
MISSING: Final = "—"


def fmt_value(value: Any, digits: int = 3) -> str:
    """Format one number: ``digits`` significant digits, ``∞`` for an infinite bound.

    Parameters
    ----------
    value : float, int, bool, None or any
        ``None`` and NaN print as ``"—"``; a ``bool`` as ``"yes"``/``"no"``; an
        ``int`` in full; anything that is not a number as ``str(value)``.
    digits : int, default 3
        Significant digits of a float.

    Returns
    -------
    str
    """
    if value is None:
        return MISSING
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, int):
        return str(value)
    try:
        x = float(value)
    except (TypeError, ValueError):
        return str(value)
    if math.isnan(x):
        return MISSING
    if math.isinf(x):
        return "∞" if x > 0 else "-∞"
    if x == 0:
        return "0"
    return f"{x:.{digits}g}"


def fmt_exact(value: Any) -> str:
    """A change stated in a sentence: 4 significant digits (an exact change reads as one)."""
    return fmt_value(value, 4)


def fmt_p(value: Any) -> str:
    """Format a p-value: 3 significant digits, ``"1"`` at or above 1, ``"—"`` if missing."""
    if value is None:
        return MISSING
    x = float(value)
    if math.isnan(x):
        return MISSING
    return "1" if x >= 1 else f"{x:.3g}"


def fmt_bounds(lower: Any, upper: Any, digits: int = 3) -> str:
    """``"lower .. upper"``, each with :func:`fmt_value`."""
    return f"{fmt_value(lower, digits)} .. {fmt_value(upper, digits)}"


def fmt_share(value: float) -> str:
    """A share in [0, 1] as a percentage: ``0.95`` -> ``"95%"``, ``0.125`` -> ``"12.5%"``."""
    pct = 100 * value
    return f"{pct:.0f}%" if abs(pct - round(pct)) < 1e-9 else f"{pct:.3g}%"


def fmt_confidence(alpha: float) -> str:
    """The confidence level of ``alpha`` as a percentage: ``0.05`` -> ``"95%"``."""
    return fmt_share(1 - alpha)


def fmt_list(values: Sequence[float], digits: int = 4) -> str:
    """``"[v1, v2, ...]"`` with :func:`fmt_value`."""
    return "[" + ", ".join(fmt_value(v, digits) for v in values) + "]"


def fmt_change(estimate: Any, upper: Any, *, exact: bool = False, digits: int = 3) -> str:
    """A table cell for a change and its upper bound: ``"0.12 [0.3]"``, ``"0.12 [∞]"``.

    ``exact`` (a deterministic backend) prints ``"0.12 (exact)"``. A missing upper
    bound of a statistical comparison is an infinite one: JSON reports store it as
    ``null``, and the terminal and HTML must read it the same way.
    """
    if exact:
        return f"{fmt_value(estimate, digits)} (exact)"
    bound = "∞" if upper is None else fmt_value(upper, digits)
    return f"{fmt_value(estimate, digits)} [{bound}]"


def fmt_count(value: int) -> str:
    """A count in full with thousands separators: ``1240`` -> ``"1,240"``."""
    return f"{value:,}"


def fmt_rounded_count(value: float) -> str:
    """An estimated count, rounded to what it is worth: ``310_400`` -> ``"310k"``.

    Below 1,000 in full; then 2 significant digits at least, with ``k`` or ``M``.
    """
    for scale, suffix in ((1e9, "G"), (1e6, "M"), (1e3, "k")):
        if abs(value) >= scale:
            scaled = value / scale
            return f"{scaled:.0f}{suffix}" if abs(scaled) >= 10 else f"{scaled:.2g}{suffix}"
    return f"{round(value):,}"


def fmt_usd(value: Any) -> str:
    """US dollars: cents from $0.01 up (``"$0.42"``, ``"$1,234.50"``), 2 significant digits
    below (``"$0.0031"``: a cheap call is not free), ``"$0"`` for nothing, ``"—"`` if missing."""
    if value is None or (isinstance(value, float) and not math.isfinite(value)):
        return MISSING
    x = float(value)
    if x == 0:
        return "$0"
    if abs(x) < 0.005:  # 2 significant digits, written out: $0.000012, not $1.2e-05
        decimals = 1 - math.floor(math.log10(abs(x)))
        return f"${x:.{decimals}f}"
    return f"${x:,.2f}"


def json_value(value: Any) -> Any:
    """One field of a result as plain JSON, the same for every result's ``to_dict()``.

    Non-finite numbers become ``None`` (JSON has no NaN or infinity); a verdict
    its string; numpy scalars and arrays plain numbers and nested lists; an
    object with ``to_dict()`` that dict; a parsed call its text.
    """
    if value is None or isinstance(value, bool):
        return value
    if isinstance(value, str):
        return str(value)  # a Verdict becomes its plain string
    if isinstance(value, int):
        return int(value)
    if isinstance(value, float):
        return float(value) if math.isfinite(value) else None
    for method in ("tolist", "to_dict"):  # numpy values; summaries and cases
        convert = getattr(value, method, None)
        if callable(convert):
            return json_value(convert())
    if isinstance(value, Mapping):
        return {k: json_value(v) for k, v in value.items()}
    text = getattr(value, "text", None)  # a parsed call
    if isinstance(text, str):
        return text
    return [json_value(v) for v in value]
