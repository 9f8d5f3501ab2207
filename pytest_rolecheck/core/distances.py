"""The metric registry, the default metric's choice, and the all-pairs distance matrix.

Every metric maps two :class:`~pytest_rolecheck.core.parse.ParsedCall` values to a
finite float ``>= 0``, is symmetric, and gives exactly ``0.0`` for identical
calls. The built-in metrics, their construction and edge cases are described in
:mod:`~pytest_rolecheck.core.metrics` (token metrics) and
:mod:`~pytest_rolecheck.core.text_metrics` (text metrics); users add their own with
:func:`register_metric`. The default, ``auto``, is not a distance but a choice made
from the calls by :func:`choose_metric`.
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
    took_other_token,
    tv_distance,
)
from .parse import ParsedCall
from .text_metrics import (
    edit_distance,
    edit_pairs,
    hamming_distance,
    hamming_pairs,
    js_edit_distance,
    text_metric_pairs,
)

__all__ = [
    "AUTO",
    "BLIND_METRICS",
    "BOUNDED_METRICS",
    "DEFAULT_METRIC",
    "NOISE_MASS",
    "TOK_L1_MIN_LOGPROB",
    "Metric",
    "available_metrics",
    "check_calls",
    "choose_metric",
    "compared_positions",
    "distance_matrix",
    "divergence_position",
    "edit_distance",
    "first_token_distance",
    "get_metric",
    "hamming_distance",
    "js_distance",
    "js_edit_distance",
    "position_profile",
    "register_metric",
    "seed_distance",
    "tok_l1_distance",
    "tv_distance",
    "uses_text",
]

Metric = Callable[[ParsedCall, ParsedCall], float]
FloatArray = NDArray[np.float64]
IntArray = NDArray[np.int64]

from .limits import (  # noqa: E402  (one definition)
    DEFAULT_METRIC,
    GREEDY_METRIC,
    SAMPLED_METRIC,
    TEXT_METRIC,
)

#: The name of the default: not a distance, but "choose one from the calls" (:func:`choose_metric`).
AUTO = "auto"

_BUILTINS: dict[str, Metric] = {
    "js": js_distance,
    "tv": tv_distance,
    "tok_l1": tok_l1_distance,
    "first_token": first_token_distance,
    "seed": seed_distance,
    "hamming": hamming_distance,
    "edit": edit_distance,
    "js_edit": js_edit_distance,
}
# The metrics that read the texts: they need text, not logprobs.
_TEXT_METRICS = frozenset({"hamming", "edit", "js_edit"})
_REGISTRY: dict[str, Metric] = dict(_BUILTINS)
# Vectorised pair evaluators, keyed by the metric function they reproduce (so a
# user who overwrites "js" with another function gets that function, not these).
_FAST_PAIRS: dict[Metric, PairsFn] = {
    js_distance: lambda calls, r, c: averaged_pairs(calls, r, c, "js", _EMPTY_BOUNDED),
    tv_distance: lambda calls, r, c: averaged_pairs(calls, r, c, "tv", _EMPTY_BOUNDED),
    tok_l1_distance: lambda calls, r, c: averaged_pairs(calls, r, c, "tok_l1", _EMPTY_TOK_L1),
    first_token_distance: first_token_pairs,
    seed_distance: seed_pairs,
    hamming_distance: hamming_pairs,
    edit_distance: edit_pairs,
    js_edit_distance: text_metric_pairs(
        lambda calls, r, c: averaged_pairs(calls, r, c, "js", _EMPTY_BOUNDED)
    ),
}


def uses_text(metric: str | Metric) -> bool:
    """Whether ``metric`` (a name or a function) is a built-in metric that reads the texts."""
    fn = _REGISTRY.get(metric) if isinstance(metric, str) else metric
    return any(fn is _BUILTINS[name] for name in _TEXT_METRICS)


def choose_metric(calls: Sequence[ParsedCall]) -> tuple[str, str]:
    """The metric ``auto`` stands for, chosen from the calls of both arms, and why.

    One rule, the same for every comparison (the calls of both arms are pooled, so
    the choice never depends on which arm a call is in):

    * no call carries logprobs: :data:`~pytest_rolecheck.core.limits.TEXT_METRIC`
      (``edit``), the texts alone;
    * some call took a token other than its most likely one (it was sampled,
      :func:`~pytest_rolecheck.core.metrics.took_other_token`):
      :data:`~pytest_rolecheck.core.limits.SAMPLED_METRIC` (``js_edit``), since
      sampled calls part within a few tokens and ``js`` alone sees nothing after;
    * otherwise (greedy decoding): :data:`~pytest_rolecheck.core.limits.GREEDY_METRIC`
      (``js``), which compares every position up to where the calls part.

    Returns
    -------
    (str, str)
        The metric's name and one sentence saying why it was chosen.
    """
    checked = check_calls(calls)
    if not any(c.has_logprobs and c.positions for c in checked):
        return TEXT_METRIC, (
            f"metric auto chose {TEXT_METRIC}: no call carries logprobs, so the texts are "
            "compared (normalised edit distance of the whole answers)"
        )
    sampled = sum(took_other_token(c) for c in checked)
    if sampled:
        return SAMPLED_METRIC, (
            f"metric auto chose {SAMPLED_METRIC}: {sampled} of {len(checked)} calls took a "
            "token other than their most likely one (sampled), so js on the shared prefix is "
            "combined with the edit distance of the whole answers"
        )
    return GREEDY_METRIC, (
        f"metric auto chose {GREEDY_METRIC}: every call took its most likely token at every "
        "position (greedy decoding)"
    )


def available_metrics() -> tuple[str, ...]:
    """Names a user may pass as ``metric=``: ``auto``, the built-ins, then user metrics by name."""
    builtin = tuple(name for name in _BUILTINS if name in _REGISTRY)
    return (AUTO, *builtin, *tuple(sorted(n for n in _REGISTRY if n not in _BUILTINS)))


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
    if name == AUTO:
        raise RolecheckUsageError(
            f"{AUTO!r} is the name of the default (a metric chosen from the calls); register "
            "your metric under another name."
        )
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
    if name == AUTO:
        raise RolecheckUsageError(
            f"{AUTO!r} is not one distance but a choice made from the calls; pick it with "
            "choose_metric(calls) and pass the name it returns."
        )
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
    metric : str or callable, default "auto"
        A registered name or a metric function; ``"auto"`` is resolved from
        ``calls`` by :func:`choose_metric`.

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
    fn = _resolve(choose_metric(checked)[0] if metric == AUTO else metric)
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
