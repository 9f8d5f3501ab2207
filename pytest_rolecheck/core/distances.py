"""The metric registry and the all-pairs distance matrix.

Every metric maps two :class:`~pytest_rolecheck.core.parse.ParsedCall` values to a
finite float ``>= 0``, is symmetric, and gives exactly ``0.0`` for identical
calls. The built-in metrics, their construction and edge cases are described in
:mod:`~pytest_rolecheck.core.metrics`; users add their own with
:func:`register_metric`.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence

import numpy as np
from numpy.typing import NDArray

from ..errors import RolecheckUsageError
from .fast_pairs import PairsFn, averaged_pairs, first_token_pairs, seed_pairs
from .metrics import (
    _EMPTY_BOUNDED,
    _EMPTY_TOK_L1,
    BLIND_METRICS,
    BOUNDED_METRICS,
    NOISE_MASS,
    TOK_L1_MIN_LOGPROB,
    compared_positions,
    divergence_position,
    first_token_distance,
    js_distance,
    position_profile,
    seed_distance,
    tok_l1_distance,
    tv_distance,
)
from .parse import ParsedCall

__all__ = [
    "BLIND_METRICS",
    "BOUNDED_METRICS",
    "DEFAULT_METRIC",
    "NOISE_MASS",
    "TOK_L1_MIN_LOGPROB",
    "Metric",
    "available_metrics",
    "check_calls",
    "compared_positions",
    "distance_matrix",
    "divergence_position",
    "first_token_distance",
    "get_metric",
    "js_distance",
    "position_profile",
    "register_metric",
    "seed_distance",
    "tok_l1_distance",
    "tv_distance",
]

Metric = Callable[[ParsedCall, ParsedCall], float]
FloatArray = NDArray[np.float64]
IntArray = NDArray[np.int64]

from .limits import DEFAULT_METRIC  # noqa: E402  (one definition)

_BUILTINS: dict[str, Metric] = {
    "js": js_distance,
    "tv": tv_distance,
    "tok_l1": tok_l1_distance,
    "first_token": first_token_distance,
    "seed": seed_distance,
}
_REGISTRY: dict[str, Metric] = dict(_BUILTINS)
# Vectorised pair evaluators, keyed by the metric function they reproduce (so a
# user who overwrites "js" with another function gets that function, not these).
_FAST_PAIRS: dict[Metric, PairsFn] = {
    js_distance: lambda calls, r, c: averaged_pairs(calls, r, c, "js", _EMPTY_BOUNDED),
    tv_distance: lambda calls, r, c: averaged_pairs(calls, r, c, "tv", _EMPTY_BOUNDED),
    tok_l1_distance: lambda calls, r, c: averaged_pairs(calls, r, c, "tok_l1", _EMPTY_TOK_L1),
    first_token_distance: first_token_pairs,
    seed_distance: seed_pairs,
}


def available_metrics() -> tuple[str, ...]:
    """Names of the registered metrics: the built-ins first, then user metrics by name."""
    builtin = tuple(name for name in _BUILTINS if name in _REGISTRY)
    return builtin + tuple(sorted(name for name in _REGISTRY if name not in _BUILTINS))


def _check_metric_name(name: object) -> str:
    if not isinstance(name, str) or not name.strip() or name != name.strip():
        raise RolecheckUsageError(
            f"metric name must be a non-empty string without surrounding spaces, got {name!r}; "
            "pass e.g. register_metric('my_metric', fn)."
        )
    return name


def register_metric(name: str, fn: Metric, *, overwrite: bool = False) -> None:
    """Register a per-call distance under ``name``.

    Parameters
    ----------
    name : str
        The name users pass as ``metric=``.
    fn : callable
        ``fn(a: ParsedCall, b: ParsedCall) -> float``, finite, ``>= 0``,
        symmetric, ``0`` for identical calls. :func:`distance_matrix` evaluates
        it for ``i < j`` only and mirrors the result.
    overwrite : bool, default False
        Allow replacing an existing metric (built-ins included).

    Raises
    ------
    RolecheckUsageError
        Invalid name, ``fn`` not callable, or ``name`` taken and ``overwrite``
        is False.
    """
    _check_metric_name(name)
    if not callable(fn):
        raise RolecheckUsageError(
            f"register_metric({name!r}, ...) needs a callable fn(a, b) -> float, got "
            f"{type(fn).__name__}."
        )
    if name in _REGISTRY and not overwrite:
        raise RolecheckUsageError(
            f"a metric named {name!r} is already registered; pass overwrite=True to replace it "
            "or choose another name."
        )
    _REGISTRY[name] = fn


def get_metric(name: str) -> Metric:
    """Return the metric registered under ``name``.

    Raises
    ------
    RolecheckUsageError
        Unknown name; the message lists :func:`available_metrics`.
    """
    fn = _REGISTRY.get(name) if isinstance(name, str) else None
    if fn is None:
        raise RolecheckUsageError(
            f"unknown metric {name!r}; available: {', '.join(available_metrics())}. "
            "Pass one of these as metric=, or register your own with "
            "pytest_rolecheck.register_metric(name, fn)."
        )
    return fn


def check_calls(calls: Sequence[ParsedCall], name: str = "calls") -> list[ParsedCall]:
    """Refuse anything in ``calls`` that is not a :class:`ParsedCall`, with the fix."""
    checked = list(calls)
    for i, call in enumerate(checked):
        if not isinstance(call, ParsedCall):
            raise RolecheckUsageError(
                f"{name}[{i}] is a {type(call).__name__}, not a ParsedCall; convert responses "
                "with pytest_rolecheck.parse_response(response) first."
            )
    return checked


def _resolve(metric: str | Metric) -> Metric:
    if isinstance(metric, str):
        return get_metric(metric)
    if callable(metric):
        return metric
    raise RolecheckUsageError(
        f"metric must be a registered name or a function, got {type(metric).__name__}; "
        f"available names: {', '.join(available_metrics())}."
    )


def _checked_value(fn: Metric, value: object, i: int, j: int) -> float:
    if (
        isinstance(value, bool)
        or not isinstance(value, int | float | np.floating | np.integer)
        or not math.isfinite(float(value))
        or value < 0
    ):
        name = getattr(fn, "__name__", repr(fn))
        raise RolecheckUsageError(
            f"metric {name} returned {value!r} for calls {i} and {j}; a metric must return a "
            "finite number >= 0 — fix the metric function."
        )
    return float(value)


def _pair_values(calls: list[ParsedCall], rows: IntArray, cols: IntArray, fn: Metric) -> FloatArray:
    if rows.size == 0:
        return np.zeros(0)
    fast = _FAST_PAIRS.get(fn)
    if fast is not None:
        return fast(calls, rows, cols)
    return np.array(
        [
            _checked_value(fn, fn(calls[i], calls[j]), i, j)
            for i, j in zip(rows.tolist(), cols.tolist(), strict=True)
        ],
        dtype=float,
    )


def distance_matrix(
    calls: Sequence[ParsedCall], metric: str | Metric = DEFAULT_METRIC
) -> FloatArray:
    """All-pairs distance matrix.

    Parameters
    ----------
    calls : sequence of ParsedCall
        The calls, in the order the rows and columns should have.
    metric : str or callable, default "js"
        A registered name or a metric function.

    Returns
    -------
    numpy.ndarray
        Shape ``(n, n)``, symmetric, zero diagonal, finite, ``>= 0``. The
        built-in metrics are vectorised over pairs; other metrics are called
        once per pair ``i < j`` and mirrored.

    Raises
    ------
    RolecheckUsageError
        Unknown metric name, an element of ``calls`` is not a ParsedCall, or a
        user metric returned a value that is not a finite number ``>= 0``.
    """
    checked = check_calls(calls)
    fn = _resolve(metric)
    n = len(checked)
    rows, cols = np.triu_indices(n, k=1)
    values = _pair_values(checked, rows, cols, fn)
    if any(fn is builtin for builtin in _BUILTINS.values()):
        # Floating-point sums depend on which call is "a": evaluated one way only, a
        # pair (x, y) and (y, x) differ in the last bit, and exact ties between
        # bit-identical calls would be split by call order, biasing the rank test.
        # Averaging both orientations is exactly symmetric (addition commutes).
        values = (values + _pair_values(checked, cols, rows, fn)) / 2.0
    out = np.zeros((n, n))
    out[rows, cols] = values
    out[cols, rows] = values
    return out
