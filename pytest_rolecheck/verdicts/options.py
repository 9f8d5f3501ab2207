"""The options of :func:`~pytest_rolecheck.compare`, checked before any call is made."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any

from ..core.distances import (
    AUTO,
    BLIND_METRICS,
    BOUNDED_METRICS,
    available_metrics,
    choose_metric,
    get_metric,
    uses_text,
)
from ..core.limits import DEFAULT_TOLERANCE, MIN_CALLS_PER_ARM
from ..core.parse import ParsedCall, parse_response
from ..core.validation import validate_labels, validate_options, validate_seed
from ..errors import NothingToCompareError, RolecheckUsageError

__all__ = ["Metric", "Options", "check_options", "parse_arm", "refuse_empty", "resolve_metric"]

Metric = Callable[[ParsedCall, ParsedCall], float]


@dataclass(frozen=True, slots=True)
class Options:
    metric_fn: Metric
    metric: str
    alpha: float
    tolerance: float
    design: str
    seed: int
    labels: tuple[str, str]
    bounded: bool  # metric values in [0, 1]: the unseen-change guard applies
    blind: str | None  # why this metric cannot certify equivalence (None: it can)

    @property
    def relative(self) -> bool:
        """The change is a share of the room the arms' spread leaves (the text metrics)."""
        return uses_text(self.metric_fn)


def check_options(
    *,
    metric: str | Metric,
    alpha: float,
    tolerance: float | None,
    design: str,
    seed: int,
    baseline: Any,
    labels: Sequence[str],
    max_excess_tv: float | None = None,
    margin: Any = None,
) -> Options:
    """Validate every option of :func:`compare`; also used before calls are made."""
    if margin is not None:
        raise RolecheckUsageError(
            f"margin={margin!r} is no longer supported: a tolerance relative to the measured "
            f"jitter let a change inflate the very floor it was measured against. Pass an "
            f"absolute tolerance= instead, the largest share of probability mass that may move "
            f"(default {DEFAULT_TOLERANCE})."
        )
    # auto stands for a bounded metric that sees every change; the calls choose which
    # (resolve_metric), and until then js stands in.
    fn, name = _metric("js") if metric == AUTO else _metric(metric)
    name = AUTO if metric == AUTO else name
    tolerance = _tolerance(tolerance, max_excess_tv, fn, name)
    validate_options(alpha=alpha, tolerance=tolerance, design=design)
    builtin = {m: get_metric(m) for m in available_metrics() if m != AUTO}
    bounded = any(fn is builtin.get(m) for m in BOUNDED_METRICS)
    blind = next((why for m, why in BLIND_METRICS.items() if fn is builtin.get(m)), None)
    if bounded and tolerance > 1:
        raise RolecheckUsageError(
            f"tolerance={tolerance!r} is not allowed with metric={name!r}: its values are a share "
            f"(of probability mass or of answers) in [0, 1], so the tolerance must be in "
            f"(0, 1], e.g. "
            f"{DEFAULT_TOLERANCE} (the default)."
        )
    _check_the_rest(seed=seed, baseline=baseline, design=design, labels=labels)
    return Options(
        metric_fn=fn,
        metric=name,
        alpha=float(alpha),
        tolerance=float(tolerance),
        design=design,
        seed=seed,
        labels=(labels[0], labels[1]),
        bounded=bounded,
        blind=blind,
    )


def resolve_metric(opts: Options, calls: Sequence[ParsedCall]) -> tuple[Options, str | None]:
    """``opts`` with ``auto`` replaced by the metric the calls call for, and why (else None)."""
    if opts.metric != AUTO:
        return opts, None
    name, why = choose_metric(calls)
    return replace(opts, metric=name, metric_fn=get_metric(name)), why


def _metric(metric: str | Metric) -> tuple[Metric, str]:
    """The metric function and the name it is reported under."""
    if isinstance(metric, str):
        return get_metric(metric), metric  # unknown names raise, listing available_metrics()
    if callable(metric):
        return metric, getattr(metric, "__name__", "custom")
    raise RolecheckUsageError(
        f"metric={metric!r} is neither a metric name nor a callable; pass a name such as "
        f"'js' (see available_metrics()) or a function fn(a, b) -> float."
    )


def _tolerance(
    tolerance: float | None, max_excess_tv: float | None, fn: Metric, name: str
) -> float:
    """The tolerance, from ``tolerance=``, its former name, or the default."""
    if max_excess_tv is not None:
        # The former name of the absolute tolerance, kept as an alias (tv only).
        if fn is not get_metric("tv"):
            raise RolecheckUsageError(
                f"max_excess_tv={max_excess_tv!r} is the former name of tolerance= for "
                f"metric='tv' (got metric={name!r}); pass tolerance={max_excess_tv!r} instead."
            )
        if tolerance is not None:
            raise RolecheckUsageError(
                "pass either tolerance= or its former name max_excess_tv=, not both."
            )
        tolerance = max_excess_tv
    return DEFAULT_TOLERANCE if tolerance is None else tolerance


def _check_the_rest(*, seed: Any, baseline: Any, design: str, labels: Sequence[str]) -> None:
    validate_seed(seed, seeds="the random relabellings of the permutation test")
    if baseline is not None and design != "seed":
        raise RolecheckUsageError(
            "baseline= is only used by design='seed'; pass design='seed' as well, or drop "
            "baseline= (the default all-pairs design compares every pair of calls)."
        )
    validate_labels(labels)


def parse_arm(responses: Iterable[Any], label: str) -> tuple[ParsedCall, ...]:
    if isinstance(responses, str | bytes | Mapping) or not isinstance(responses, Iterable):
        raise RolecheckUsageError(
            f"responses for arm {label!r} must be a list of chat-completion responses (or "
            f"ParsedCall values), got a single {type(responses).__name__}; wrap it in a list and "
            f"pass at least {MIN_CALLS_PER_ARM} calls."
        )
    return tuple(parse_response(r) for r in responses)


def refuse_empty(
    calls_a: Sequence[ParsedCall],
    calls_b: Sequence[ParsedCall],
    labels: tuple[str, str],
    metric: str | Metric = "js",
) -> None:
    # Zero tokens everywhere makes every distance 0: "equivalent" would prove nothing. A
    # text metric needs text, not logprobs.
    calls = (*calls_a, *calls_b)
    if any(call.positions for call in calls) or (
        uses_text(metric) and any(call.text for call in calls)
    ):
        return
    tools = sum(1 for call in (*calls_a, *calls_b) if call.tool_calls)
    why = f" ({tools} answered with tool calls)" if tools else ""
    raise NothingToCompareError(
        f"no call of {labels[0]!r} or {labels[1]!r} produced a token with logprobs "
        f"({len(calls_a)}+{len(calls_b)} calls, 0 tokens{why}): there is nothing to compare, "
        "so no verdict is given. Make the model answer in text: max_tokens >= 1 and a prompt "
        "that asks for an answer; compare tool calls with assert_tool_calls_* instead."
    )
