"""The price table file of ``--rolecheck-prices``: read, checked line by line, cached.

One mapping, YAML or JSON, of model name (exact, or a glob such as ``gpt-4.1*``) to
USD per 1M tokens::

    gpt-4.1:         {input: 2.00, cached_input: 0.50, output: 8.00}
    "gpt-4.1-mini*": {input: 0.40, output: 1.60}   # a pattern: quoted in YAML

The arithmetic is :mod:`.core.cost`'s; this module only turns the file into a
:class:`~.core.cost.PriceTable`, or raises a :class:`RolecheckUsageError` naming
``file:line`` and the fix.
"""

from __future__ import annotations

import functools
import math
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final

from .core.cost import Price, PriceTable
from .errors import RolecheckUsageError
from .option_values import PRICE_SUFFIXES

if TYPE_CHECKING:
    from .settings import Settings

REQUIRED: Final = ("input", "output")
OPTIONAL: Final = ("cached_input",)
_STR_TAG: Final = "tag:yaml.org,2002:str"
FORMAT_HINT: Final = (
    "each entry is `<model or glob>: {input: <USD per 1M tokens>, output: <USD per 1M>, "
    "cached_input: <optional>}` (README: Cost estimates)"
)


def _error(where: str, problem: str) -> RolecheckUsageError:
    return RolecheckUsageError(f"{where}: {problem}; fix the price table: {FORMAT_HINT}.")


def _at(shown: str, node: Any) -> str:
    return f"{shown}:{node.start_mark.line + 1}"


def _plain_text(node: Any) -> str | None:
    """A scalar that YAML reads as text (``gpt-4o``, ``"4"``), else ``None`` (``4``, a list)."""
    import yaml

    if isinstance(node, yaml.ScalarNode) and node.tag == _STR_TAG and str(node.value).strip():
        return str(node.value)
    return None


def _usd(node: Any, where: str, key: str) -> float:
    import yaml

    value: float | None = None
    if isinstance(node, yaml.ScalarNode) and node.style not in ("'", '"'):
        try:
            value = float(node.value)
        except ValueError:
            value = None
    if value is None or not math.isfinite(value) or value < 0:
        got = repr(node.value) if isinstance(node, yaml.ScalarNode) else "a list or mapping"
        raise _error(where, f"{key} must be a number ≥ 0 (USD per 1M tokens), got {got}")
    return value


@functools.lru_cache(maxsize=8)  # read once per run (and per xdist worker), not per test
def load_prices(path: Path) -> PriceTable:
    """Read the price table at ``path`` (absolute); every problem names ``file:line``."""
    import yaml  # JSON is YAML: one reader, and the same line numbers for both

    shown = str(path)
    if path.suffix.lower() not in PRICE_SUFFIXES:
        raise _error(shown, f"a price table is a {', '.join(PRICE_SUFFIXES)} file")
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise RolecheckUsageError(
            f"no price table at {shown}: check the path (--rolecheck-prices is relative to "
            "where pytest was started, the ini option rolecheck_prices to the rootdir)."
        ) from None
    except (OSError, UnicodeDecodeError) as exc:
        raise RolecheckUsageError(f"{shown}: cannot read the price table ({exc}).") from None
    try:
        node = yaml.compose(text, Loader=yaml.SafeLoader)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        at = f":{mark.line + 1}:{mark.column + 1}" if mark is not None else ""
        problem = getattr(exc, "problem", None) or exc
        raise _error(
            f"{shown}{at}",
            f"not valid YAML/JSON ({problem}; a name starting with * must be quoted)",
        ) from None
    if not isinstance(node, yaml.MappingNode) or not node.value:
        raise _error(f"{shown}:1", "expected a mapping of model names to prices")
    exact: dict[str, Price] = {}
    patterns: dict[str, Price] = {}
    seen: dict[str, int] = {}
    for key_node, value_node in node.value:
        where = _at(shown, key_node)
        name = _plain_text(key_node)
        if name is None:
            raise _error(where, f"a model name must be text (quote it), got {key_node.value!r}")
        if name in seen:
            raise _error(where, f"{name!r} is already priced at line {seen[name]}")
        seen[name] = key_node.start_mark.line + 1
        if not isinstance(value_node, yaml.MappingNode):
            raise _error(
                _at(shown, value_node), f"the prices of {name!r} must be a mapping {{input: ...}}"
            )
        found: dict[str, float] = {}
        for price_key, price_value in value_node.value:
            key = _plain_text(price_key)
            if key not in REQUIRED + OPTIONAL:
                raise _error(
                    _at(shown, price_key),
                    f"unknown key {price_key.value!r} for {name!r}; allowed: "
                    f"{', '.join(REQUIRED + OPTIONAL)}",
                )
            found[key] = _usd(price_value, _at(shown, price_value), key)
        missing = [k for k in REQUIRED if k not in found]
        if missing:
            raise _error(where, f"{name!r} has no {' and no '.join(missing)} price")
        price = Price(found["input"], found["output"], found.get("cached_input"))
        (patterns if PriceTable.is_pattern(name) else exact)[name] = price
    return PriceTable(exact, patterns)


def price_table(settings: Settings) -> PriceTable | None:
    """The run's price table (``settings.prices`` is made absolute by the plugin)."""
    return load_prices(Path(settings.prices)) if settings.prices else None
