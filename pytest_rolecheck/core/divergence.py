"""Where two arms start to differ, token by token: the data behind the report's plots (pure).

:func:`divergence_insight` picks one representative call per arm, compares them
position by position along the completion, and reports the first position where
their generated tokens differ together with the top alternatives of both arms at
that position. It also averages the per-position distances over many pairs of
calls (within each arm and across arms), so a plot can show whether a position's
difference between the arms stands out from the call-to-call jitter there.

Everything returned is plain JSON (dicts, lists, str, float, int, None), so it can
travel inside a report row (``row["insight"]``) and be plotted later from a saved
JSON report, without the calls.

Representative call
    The *medoid* of each arm under the ``js`` metric: the call with the smallest
    total distance to the other calls of its arm (ties: the earliest call). Unlike
    "the first call" it is never an outlier, and unlike an average it is a real
    call whose tokens can be shown.
Per-position profile
    :func:`~pytest_rolecheck.core.distances.position_profile` between the two
    representatives: the per-position distance over positions ``0..d`` where ``d``
    is the first diverging position (included), or over the shorter call.
Focus position
    The first diverging position when the representatives diverge; otherwise the
    position of the largest per-position distance (``"largest difference"``), or 0
    when every position is identical (``"identical"``).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any, Final

import numpy as np

from ..errors import RolecheckUsageError
from .distances import check_calls, distance_matrix, divergence_position, position_profile
from .parse import ParsedCall, Position

__all__ = ["INSIGHT_VERSION", "METRIC_UNITS", "display_token", "divergence_insight"]

INSIGHT_VERSION: Final = 1

#: Unit of each built-in metric, for axis labels.
METRIC_UNITS: Final[dict[str, str]] = {
    "js": "bits",
    "tv": "share of probability mass",
    "tok_l1": "nats",
    "first_token": "bits",
    "seed": "nats, rank-aligned",
    "hamming": "share of characters",
    "edit": "share of characters",
    "js_edit": "js bits and share of characters, combined",
}

# Per-position forms exist for these metrics only; any other falls back to js.
_PROFILE_METRICS: Final = ("js", "tv", "tok_l1")
# Pairs per group (within A, within B, cross) for the mean profiles: enough for a
# stable mean, bounded so a report over long completions stays fast.
_MAX_PAIRS: Final = 60


def display_token(token: str) -> str:
    """Return a token as it should appear in a plot or table: whitespace made visible.

    Parameters
    ----------
    token : str
        Token text.

    Returns
    -------
    str
        Spaces shown as ``␣``, newlines as ``\\n``, tabs as ``\\t``, other
        control characters escaped; ``"∅"`` for the empty string.
    """
    if token == "":
        return "∅"
    out = []
    for ch in token:
        if ch == " ":
            out.append("␣")
        elif ch == "\n":
            out.append("\\n")
        elif ch == "\t":
            out.append("\\t")
        elif ord(ch) < 32 or ch == "\x7f":
            out.append(f"\\x{ord(ch):02x}")
        else:
            out.append(ch)
    return "".join(out)


def _check_calls(calls: Sequence[ParsedCall], name: str) -> tuple[ParsedCall, ...]:
    checked = tuple(check_calls(calls, name))
    if not checked:
        raise RolecheckUsageError(
            f"{name} is empty; pass the parsed calls of the arm (at least one)."
        )
    return checked


def _medoid(calls: Sequence[ParsedCall]) -> int:
    if len(calls) < 3:
        return 0
    d = distance_matrix(calls, "js")
    return int(np.argmin(d.sum(axis=1)))


def _probability(logprob: float) -> float:
    return float(math.exp(logprob)) if logprob > -700 else 0.0


def _alternatives(position: Position, top: int) -> list[dict[str, Any]]:
    return [
        {
            "token": text,
            "key": key,
            "probability": _probability(lp),
            "generated": key == position.key,
        }
        for key, text, lp in position.alternatives[:top]
    ]


def _union(pa: Position, pb: Position, top: int) -> list[dict[str, Any]]:
    """Tokens in either arm's top list, with both arms' probabilities (None: not listed)."""
    probs_a = {key: (text, _probability(lp)) for key, text, lp in pa.alternatives}
    probs_b = {key: (text, _probability(lp)) for key, text, lp in pb.alternatives}
    keys: list[str] = []
    for key, _, _ in (*pa.alternatives[:top], *pb.alternatives[:top]):
        if key not in keys:
            keys.append(key)
    rows = []
    for key in keys:
        text = (probs_a.get(key) or probs_b[key])[0]
        rows.append(
            {
                "token": text,
                "key": key,
                "a": probs_a[key][1] if key in probs_a else None,
                "b": probs_b[key][1] if key in probs_b else None,
                "generated_a": key == pa.key,
                "generated_b": key == pb.key,
            }
        )
    rows.sort(key=_largest, reverse=True)
    return rows


def _largest(row: dict[str, Any]) -> float:
    return max(float(row["a"] or 0.0), float(row["b"] or 0.0))


def _pairs(
    calls_x: Sequence[ParsedCall], calls_y: Sequence[ParsedCall] | None, rng: np.random.Generator
) -> list[tuple[ParsedCall, ParsedCall]]:
    if calls_y is None:
        idx = [(i, j) for i in range(len(calls_x)) for j in range(i + 1, len(calls_x))]
        ys: Sequence[ParsedCall] = calls_x
    else:
        idx = [(i, j) for i in range(len(calls_x)) for j in range(len(calls_y))]
        ys = calls_y
    if len(idx) > _MAX_PAIRS:
        chosen = rng.choice(len(idx), size=_MAX_PAIRS, replace=False)
        idx = [idx[int(k)] for k in sorted(chosen)]
    return [(calls_x[i], ys[j]) for i, j in idx]


def _mean_profile(
    pairs: Sequence[tuple[ParsedCall, ParsedCall]], metric: str
) -> dict[str, list[Any]]:
    """Mean per-position distance over pairs still sharing the prefix, and divergence shares."""
    profiles = [position_profile(a, b, metric) for a, b in pairs]
    divergences = [divergence_position(a, b) for a, b in pairs]
    length = max((p.size for p in profiles), default=0)
    mean: list[float | None] = []
    count: list[int] = []
    diverged: list[float] = []
    for i in range(length):
        values = [float(p[i]) for p in profiles if p.size > i]
        count.append(len(values))
        mean.append(math.fsum(values) / len(values) if values else None)
        hit = sum(1 for d in divergences if d is not None and d <= i)
        diverged.append(hit / len(pairs) if pairs else 0.0)
    return {"mean": mean, "pairs": count, "diverged_share": diverged}


def _focus(
    rep_a: ParsedCall, rep_b: ParsedCall, profile: np.ndarray, d: int | None, top: int
) -> dict[str, Any] | None:
    if d is not None:
        position, reason = d, "first divergence"
    elif profile.size and float(profile.max()) > 0.0:
        position, reason = int(np.argmax(profile)), "largest difference"
    elif rep_a.positions and rep_b.positions:
        position, reason = 0, "identical"
    else:
        return None
    pa, pb = rep_a.positions[position], rep_b.positions[position]
    return {
        "position": position,
        "reason": reason,
        "token_a": pa.token,
        "token_b": pb.token,
        "value": float(profile[position]) if profile.size > position else None,
        "alternatives_a": _alternatives(pa, top),
        "alternatives_b": _alternatives(pb, top),
        "union": _union(pa, pb, top),
    }


# Long by its docstring; the body is 40 lines.
def divergence_insight(
    calls_a: Sequence[ParsedCall],
    calls_b: Sequence[ParsedCall],
    *,
    metric: str = "js",
    labels: Sequence[str] = ("A", "B"),
    top: int = 5,
    seed: int = 0,
) -> dict[str, Any]:
    """Describe where and how two arms' completions start to differ (JSON-able).

    Parameters
    ----------
    calls_a, calls_b : sequence of ParsedCall
        The calls of each arm, e.g. ``Comparison.calls_a`` / ``calls_b``.
    metric : str, default "js"
        Per-position quantity: ``"js"``, ``"tv"`` or ``"tok_l1"``; any other
        metric name (``"seed"``, ``"first_token"``, user metrics) falls back to
        ``"js"``, and ``"metric"`` in the result says which one was used.
    labels : (str, str), default ("A", "B")
        Arm names, copied into the result for plot legends.
    top : int, default 5
        Alternatives listed per arm at the focus position.
    seed : int, default 0
        Seeds the choice of pairs when an arm has more than 60 pairs (the mean
        profiles use a random subset of at most 60 pairs per group).

    Returns
    -------
    dict
        ``insight`` (format version), ``metric``, ``unit``, ``labels``, ``n_a``,
        ``n_b``, ``representatives`` (``{"a": {...}, "b": {...}}`` with
        ``index``, ``text``, ``tokens``, ``finish_reason``), ``profile`` (list
        of float, one per compared position), ``divergence`` (int or None),
        ``focus`` (None when a representative has no tokens; else ``position``,
        ``reason`` — "first divergence", "largest difference" or "identical" —,
        ``token_a``, ``token_b``, ``value``, ``alternatives_a``/``_b`` (top
        ``top`` as ``{"token", "key", "probability", "generated"}``) and
        ``union`` (tokens of both top lists with ``a``/``b`` probabilities,
        None where an arm did not list the token)), and ``mean_profiles``
        (``within_a``, ``within_b``, ``cross``: each ``{"mean", "pairs",
        "diverged_share"}`` per position; ``mean`` is over the pairs that still
        share their prefix at that position, ``diverged_share`` the share of
        pairs that have diverged at or before it).

    Raises
    ------
    RolecheckUsageError
        An arm is empty, an element is not a ParsedCall, or ``top`` is below 1.
    """
    a_calls = _check_calls(calls_a, "calls_a")
    b_calls = _check_calls(calls_b, "calls_b")
    if isinstance(top, bool) or not isinstance(top, int) or top < 1:
        raise RolecheckUsageError(f"top must be a whole number >= 1, got {top!r}.")
    used = metric if metric in _PROFILE_METRICS else "js"
    ia, ib = _medoid(a_calls), _medoid(b_calls)
    rep_a, rep_b = a_calls[ia], b_calls[ib]
    profile = position_profile(rep_a, rep_b, used)
    d = divergence_position(rep_a, rep_b)
    rng = np.random.default_rng(seed)
    return {
        "insight": INSIGHT_VERSION,
        "metric": used,
        "unit": METRIC_UNITS[used],
        "labels": [str(labels[0]), str(labels[1])],
        "n_a": len(a_calls),
        "n_b": len(b_calls),
        "representatives": {
            "how": "medoid under js (smallest total distance to the other calls of its arm)",
            "a": _representative(rep_a, ia),
            "b": _representative(rep_b, ib),
        },
        "profile": [float(x) for x in profile],
        "divergence": d,
        "focus": _focus(rep_a, rep_b, profile, d, top),
        "mean_profiles": {
            "within_a": _mean_profile(_pairs(a_calls, None, rng), used),
            "within_b": _mean_profile(_pairs(b_calls, None, rng), used),
            "cross": _mean_profile(_pairs(a_calls, b_calls, rng), used),
        },
    }


def _representative(call: ParsedCall, index: int) -> dict[str, Any]:
    return {
        "index": index,
        "text": call.text,
        "tokens": [p.token for p in call.positions],
        "finish_reason": call.finish_reason,
    }
