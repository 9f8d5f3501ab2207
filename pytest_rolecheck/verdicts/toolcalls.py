"""Compare the tool-calling behaviour of two arms by the distribution of call outcomes (pure).

Responses to requests with ``tools`` usually carry no token logprobs, but each one has
an *outcome*: which function(s) the model called and with which arguments, or no call
at all. :func:`compare_tool_calls` counts outcomes per arm and decides, on the 2×K
contingency table, whether the arms behave the same (total-variation distance provably
below a tolerance), differently (a significant difference test), or whether the sample
cannot tell.

Outcome strings
---------------
* no tool call (plain text, refusal, empty) → ``<text>``
* one call → ``name(<arguments>)`` with the arguments parsed as JSON and re-serialised
  with sorted keys and no spaces (``get_weather({"location":"Paris","unit":"c"})``);
  integral floats are written as integers (``1.0`` → ``1``) and empty arguments as ``{}``
* arguments that are not valid JSON → ``name(invalid arguments)``
* several calls (parallel tool calls) → the single-call strings joined by `` + ``,
  sorted: the API does not give parallel calls an order, so ``a + b`` equals ``b + a``
  (pass ``ordered=True`` to keep the response order)
* ``names_only=True`` → names only (``get_weather``), arguments ignored
"""

from __future__ import annotations

import json
import math
import textwrap
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Final, Literal

import numpy as np
from scipy import stats
from scipy.special import gammaln

from ..core.jsonish import as_dict
from ..core.stats import DEFAULT_TOLERANCE, unseen_share_upper
from ..errors import (
    NothingToCompareError,
    ResponseFormatError,
    RolecheckAssertionError,
    RolecheckUsageError,
)
from .observers import comparison_made

__all__ = [
    "TEXT_OUTCOME",
    "ToolCallComparison",
    "assert_tool_calls_differ",
    "assert_tool_calls_equivalent",
    "compare_tool_calls",
    "tool_call_outcome",
]

TEXT_OUTCOME: Final = "<text>"
"""Outcome of a response without any tool call."""

Verdict = Literal["equivalent", "different", "inconclusive"]

MIN_TRIALS: Final = 4
# Posterior draws for the TV upper bound, and tables sampled by the Monte Carlo
# difference test when exact enumeration is too large.
_TV_DRAWS: Final = 4000
_MC_TABLES: Final = 10000
_EXACT_MAX_TABLES: Final = 20000
_MAX_RECOMMENDED: Final = 10000
_LABEL_WIDTH: Final = 60
_REPORT_WIDTH: Final = 100


# -- outcomes ---------------------------------------------------------------------------


def _plain(obj: Any) -> Any:
    """Mapping or SDK object -> dict; anything else unchanged."""
    if obj is None or isinstance(obj, dict):
        return obj
    try:
        return as_dict(obj)
    except TypeError:
        return obj


def _normalise_json(value: Any) -> Any:
    # 1 and 1.0 are the same JSON number; models write either.
    if isinstance(value, float) and value.is_integer() and abs(value) < 2**53:
        return int(value)
    if isinstance(value, dict):
        return {k: _normalise_json(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_normalise_json(v) for v in value]
    return value


def _canonical_arguments(arguments: Any) -> str | None:
    """Canonical JSON text of tool-call arguments, or None if they are not valid JSON."""
    if isinstance(arguments, Mapping):
        parsed: Any = dict(arguments)
    elif isinstance(arguments, str | bytes):
        text = arguments.decode("utf-8", "replace") if isinstance(arguments, bytes) else arguments
        if not text.strip():
            return "{}"  # servers send "" for functions without parameters
        try:
            parsed = json.loads(text)
        except ValueError:
            return None
    elif arguments is None:
        return "{}"
    else:
        return None
    try:
        return json.dumps(
            _normalise_json(parsed), sort_keys=True, separators=(",", ":"), ensure_ascii=False
        )
    except (TypeError, ValueError):
        return None


def _call_string(name: Any, arguments: Any, names_only: bool) -> str:
    name_text = name if isinstance(name, str) and name else "<unnamed>"
    if names_only:
        return name_text
    canonical = _canonical_arguments(arguments)
    if canonical is None:
        return f"{name_text}(invalid arguments)"
    return f"{name_text}({canonical})"


def _calls_of(message: Mapping[str, Any]) -> list[tuple[Any, Any]]:
    calls: list[tuple[Any, Any]] = []
    for raw in message.get("tool_calls") or ():
        call = _plain(raw)
        if not isinstance(call, Mapping):
            calls.append((None, None))
            continue
        if call.get("type") == "custom" or "custom" in call:
            # Custom tools take free text, not JSON: compare the text as a JSON string.
            custom = _plain(call.get("custom")) or {}
            calls.append((custom.get("name"), {"input": custom.get("input")}))
            continue
        function = _plain(call.get("function")) or {}
        calls.append((function.get("name"), function.get("arguments")))
    if not calls:
        legacy = _plain(message.get("function_call"))
        if isinstance(legacy, Mapping):
            calls.append((legacy.get("name"), legacy.get("arguments")))
    return calls


def _call_tuple(
    response: Any, *, names_only: bool, ordered: bool, position: str
) -> tuple[str, ...]:
    try:
        data = as_dict(response)
    except TypeError:
        raise ResponseFormatError(
            f"{position} is a {type(response).__name__}, not a chat completion; pass the "
            "ChatCompletion objects (or their JSON dicts) returned by "
            "client.chat.completions.create()"
        ) from None
    choices = data.get("choices")
    if not choices:
        raise ResponseFormatError(
            f"{position} has no choices; check that the request succeeded (n >= 1) and pass "
            "the ChatCompletion returned by client.chat.completions.create()"
        )
    choice = _plain(choices[0])
    message = _plain(choice.get("message")) if isinstance(choice, Mapping) else None
    if not isinstance(message, Mapping):
        raise ResponseFormatError(
            f"{position} has no choices[0].message; tool calls are read from chat "
            "completions, not from streamed chunks or legacy completions"
        )
    calls = [_call_string(name, args, names_only) for name, args in _calls_of(message)]
    return tuple(calls) if ordered else tuple(sorted(calls))


def tool_call_outcome(response: Any, *, names_only: bool = False, ordered: bool = False) -> str:
    """Outcome string of one chat completion (see the module docstring for the format).

    Parameters
    ----------
    response : ChatCompletion or mapping
        An openai ``ChatCompletion`` or a dict of the same JSON.
    names_only : bool, default False
        Ignore the arguments.
    ordered : bool, default False
        Keep the order of several tool calls (default: sorted, order-free).

    Returns
    -------
    str
        ``"<text>"``, ``"name({...})"``, ``"name(invalid arguments)"``, or several of the
        call strings joined by ``" + "``.

    Raises
    ------
    ResponseFormatError
        If the response is not a chat completion with ``choices[0].message``.
    """
    calls = _call_tuple(response, names_only=names_only, ordered=ordered, position="the response")
    return _outcome_text(calls)


def _outcome_text(calls: tuple[str, ...]) -> str:
    return " + ".join(calls) if calls else TEXT_OUTCOME


# -- result -----------------------------------------------------------------------------


@dataclass(frozen=True)
class ToolCallComparison:
    """Result of :func:`compare_tool_calls`.

    Attributes
    ----------
    verdict : {"equivalent", "different", "inconclusive"}
    p_value : float
        Difference test on the outcome table (1.0 when both arms have one shared outcome).
    test : str
        ``"fisher-exact"`` (two outcomes), ``"exact-chi2"`` (enumerated tables),
        ``"permutation-chi2"`` (Monte Carlo), or ``"none"`` (a single outcome overall).
    tv : float
        Total-variation distance between the arms' observed outcome distributions.
    tv_upper : float
        Upper confidence bound on the true total-variation distance. When every call
        of both arms had one shared outcome, the largest rate ``1 - alpha**(1/n)``
        (``n`` the smaller arm) at which an arm could still give an outcome it never
        showed: what ``n`` calls cannot exclude under sampling (0.139 for n = 20).
    outcomes : tuple of str
        Outcome strings, most frequent first; ``counts_a``/``counts_b`` align with it.
    deterministic : bool
        Every call within each arm had the same outcome (verdict without statistics).
    """

    verdict: Verdict
    p_value: float
    test: str
    tv: float
    tv_lower: float
    tv_upper: float
    tolerance: float
    alpha: float
    n_a: int
    n_b: int
    outcomes: tuple[str, ...]
    counts_a: tuple[int, ...]
    counts_b: tuple[int, ...]
    deterministic: bool
    names_only: bool
    ordered: bool
    labels: tuple[str, str]
    seed: int
    recommended_trials: int | None
    warnings: tuple[str, ...]
    advice: str

    @property
    def counts(self) -> dict[str, tuple[int, int]]:
        """Outcome -> (count in A, count in B)."""
        return {
            o: (a, b) for o, a, b in zip(self.outcomes, self.counts_a, self.counts_b, strict=True)
        }

    def to_dict(self) -> dict[str, Any]:
        """JSON-serialisable summary (outcome counts as a list of rows)."""
        return {
            "kind": "tool-calls",
            "verdict": self.verdict,
            "p_value": self.p_value,
            "test": self.test,
            "tv": self.tv,
            "tv_lower": self.tv_lower,
            "tv_upper": self.tv_upper,
            "tolerance": self.tolerance,
            "alpha": self.alpha,
            "n_a": self.n_a,
            "n_b": self.n_b,
            "labels": list(self.labels),
            "outcomes": [
                {"outcome": o, "count_a": a, "count_b": b}
                for o, a, b in zip(self.outcomes, self.counts_a, self.counts_b, strict=True)
            ],
            "deterministic": self.deterministic,
            "names_only": self.names_only,
            "ordered": self.ordered,
            "seed": self.seed,
            "recommended_trials": self.recommended_trials,
            "warnings": list(self.warnings),
            "advice": self.advice,
        }

    def __str__(self) -> str:
        label_a, label_b = self.labels
        rows = [
            (_shorten(o), str(a), str(b))
            for o, a, b in zip(self.outcomes, self.counts_a, self.counts_b, strict=True)
        ]
        rows.append(("total", str(self.n_a), str(self.n_b)))
        w0 = max(len("outcome"), *(len(r[0]) for r in rows))
        w1 = max(len(label_a), *(len(r[1]) for r in rows))
        w2 = max(len(label_b), *(len(r[2]) for r in rows))
        what = "tool-call names" if self.names_only else "tool calls"
        lines = [
            f"{what}: {self.verdict} ({label_a} vs {label_b})",
            f"  {'outcome':<{w0}}  {label_a:>{w1}}  {label_b:>{w2}}",
        ]
        lines += [f"  {o:<{w0}}  {a:>{w1}}  {b:>{w2}}" for o, a, b in rows]
        if self.deterministic and len(self.outcomes) == 1:
            bound = (
                f"every call agreed, but an outcome never seen in {min(self.n_a, self.n_b)} "
                f"calls may still have a rate up to {self.tv_upper:.3f}; bounds "
                f"{self.tv_lower:.3f} .. {self.tv_upper:.3f}"
            )
        else:
            bound = f"bounds {self.tv_lower:.3f} .. {self.tv_upper:.3f}"
        if self.verdict == "equivalent":
            rule = f"below the tolerance {self.tolerance:g}"
        elif self.verdict == "different":
            rule = f"lower bound above the tolerance {self.tolerance:g}"
        else:
            rule = f"tolerance {self.tolerance:g}: neither below nor shown above it"
        lines += textwrap.wrap(
            f"TV distance {self.tv:.3f}, {1 - self.alpha:.0%} {bound} ({rule}); "
            f"p = {self.p_value:.4g} ({self.test}, alpha {self.alpha:g})",
            width=_REPORT_WIDTH,
            initial_indent="  ",
            subsequent_indent="    ",
        )
        for w in self.warnings:
            lines += textwrap.wrap(
                f"warning: {w}",
                width=_REPORT_WIDTH,
                initial_indent="  ",
                subsequent_indent="    ",
                break_long_words=False,
            )
        return "\n".join(lines)


def _shorten(text: str) -> str:
    return text if len(text) <= _LABEL_WIDTH else text[: _LABEL_WIDTH - 1] + "…"


# -- validation -------------------------------------------------------------------------


def check_tool_options(*, alpha: Any, tolerance: Any, seed: Any, labels: Any) -> None:
    """Validate the options of :func:`compare_tool_calls`; also used before calls are made."""
    if (
        not isinstance(labels, Sequence)
        or isinstance(labels, str)
        or len(labels) != 2
        or not all(isinstance(x, str) and x for x in labels)
        or labels[0] == labels[1]
    ):
        raise RolecheckUsageError(f"labels must be two different non-empty strings, got {labels!r}")
    if isinstance(alpha, bool) or not isinstance(alpha, int | float) or not 0 < alpha < 1:
        raise RolecheckUsageError(f"alpha must be a number in (0, 1), e.g. 0.05; got {alpha!r}")
    if tolerance is not None and (  # None: the default tolerance
        isinstance(tolerance, bool)
        or not isinstance(tolerance, int | float)
        or not 0 < tolerance <= 1
    ):
        raise RolecheckUsageError(
            "tolerance is the largest total-variation distance between the arms' outcome "
            f"distributions that still counts as equivalent, in (0, 1], e.g. 0.2; got {tolerance!r}"
        )
    if isinstance(seed, bool) or not isinstance(seed, int) or seed < 0:
        raise RolecheckUsageError(f"seed must be a non-negative integer, got {seed!r}")


def _validate(
    responses_a: Any,
    responses_b: Any,
    alpha: Any,
    tolerance: Any,
    seed: Any,
    labels: Any,
) -> tuple[list[Any], list[Any], tuple[str, str]]:
    check_tool_options(alpha=alpha, tolerance=tolerance, seed=seed, labels=labels)
    arms = []
    for label, responses in zip(labels, (responses_a, responses_b), strict=True):
        if isinstance(responses, str | bytes | Mapping) or not isinstance(responses, Iterable):
            raise RolecheckUsageError(
                f"responses for {label!r} must be a list of chat completions, "
                f"got {type(responses).__name__}"
            )
        items = list(responses)
        if len(items) < MIN_TRIALS:
            raise RolecheckUsageError(
                f"arm {label!r} has {len(items)} responses; comparing tool calls needs at "
                f"least {MIN_TRIALS} per arm (10 or more for a useful verdict); run more trials"
            )
        arms.append(items)
    return arms[0], arms[1], (labels[0], labels[1])


# -- statistics -------------------------------------------------------------------------


def _chi2_first_row(rows: np.ndarray, cols: np.ndarray, n_a: int, n_b: int) -> np.ndarray:
    """Pearson chi-square of 2×K tables given by their first rows (fixed margins)."""
    total = n_a + n_b
    exp_a = cols * (n_a / total)
    exp_b = cols * (n_b / total)
    second = cols - rows
    return np.asarray(((rows - exp_a) ** 2 / exp_a + (second - exp_b) ** 2 / exp_b).sum(axis=-1))


def _enumerate_first_rows(cols: np.ndarray, n_a: int) -> np.ndarray | None:
    """All first rows of 2×K tables with column sums ``cols`` and first-row sum ``n_a``.

    None when there would be more than ``_EXACT_MAX_TABLES``.
    """
    remaining = np.concatenate([np.cumsum(cols[::-1])[::-1][1:], [0]])
    partial = np.zeros((1, 0), dtype=np.int64)
    sums = np.zeros(1, dtype=np.int64)
    for k, c in enumerate(cols):
        options = np.arange(int(c) + 1)
        new_sums = (sums[:, None] + options[None, :]).ravel()
        keep = (new_sums <= n_a) & (new_sums + remaining[k] >= n_a)
        rep = np.repeat(partial, len(options), axis=0)[keep]
        col = np.tile(options, len(partial))[keep]
        partial = np.column_stack([rep, col])
        sums = new_sums[keep]
        if len(partial) > _EXACT_MAX_TABLES:
            return None
    return partial


def _difference_test(
    counts_a: np.ndarray, counts_b: np.ndarray, rng: np.random.Generator
) -> tuple[float, str]:
    """p-value of H0 "same outcome distribution" on the 2×K table (margins fixed).

    Two outcomes: Fisher's exact test. More: Pearson's chi-square statistic with its
    exact conditional (multivariate hypergeometric) null distribution, enumerated when
    there are at most ``_EXACT_MAX_TABLES`` tables, else sampled (Monte Carlo p-value
    ``(1 + hits) / (1 + draws)``, Phipson & Smyth 2010).
    """
    k = len(counts_a)
    if k < 2:
        return 1.0, "none"
    n_a, n_b = int(counts_a.sum()), int(counts_b.sum())
    if k == 2:
        table = np.array([counts_a, counts_b])
        return float(stats.fisher_exact(table, alternative="two-sided").pvalue), "fisher-exact"
    cols = counts_a + counts_b
    observed = float(_chi2_first_row(counts_a[None, :], cols, n_a, n_b)[0])
    threshold = observed - 1e-9 * max(1.0, observed)  # ties count as "at least as extreme"
    rows = _enumerate_first_rows(cols, n_a)
    if rows is not None:
        log_prob = (gammaln(cols + 1) - gammaln(rows + 1) - gammaln(cols - rows + 1)).sum(
            axis=1
        ) - (gammaln(n_a + n_b + 1) - gammaln(n_a + 1) - gammaln(n_b + 1))
        extreme = _chi2_first_row(rows, cols, n_a, n_b) >= threshold
        return float(min(1.0, np.exp(log_prob[extreme]).sum())), "exact-chi2"
    sampled = rng.multivariate_hypergeometric(cols, n_a, size=_MC_TABLES)
    hits = int((_chi2_first_row(sampled, cols, n_a, n_b) >= threshold).sum())
    return (1 + hits) / (1 + _MC_TABLES), "permutation-chi2"


def _tv_upper(
    counts_a: np.ndarray, counts_b: np.ndarray, alpha: float, rng: np.random.Generator
) -> float:
    """Upper bound on the TV distance: (1 - alpha/2) quantile under Jeffreys posteriors.

    Each arm's outcome probabilities get an independent Dirichlet(counts + 1/2)
    posterior over the outcomes seen in either arm (Jeffreys prior); the bound is the
    ``1 - alpha/2`` quantile of the TV distance between posterior draws, i.e. the upper
    end of the equal-tailed ``1 - alpha`` interval. Jeffreys-prior intervals have good
    frequentist coverage for proportions and their differences (Brown, Cai & DasGupta
    2001; Agresti & Min 2005), unlike a percentile bootstrap, which never resamples an
    outcome an arm did not show and so undercovers when one arm has a zero count. The
    one-sided level ``1 - alpha/2`` (instead of ``1 - alpha``) makes the bound
    conservative: in simulations at TV = tolerance = 0.2 with one arm never showing the
    differing outcomes (n = 30..150 per arm, K = 2..6), the equivalence verdict was
    wrongly reached in 2.9-4.7 % of runs at alpha = 0.05 (4.5-7.9 % at level 1 - alpha).
    """
    draws_a = rng.dirichlet(counts_a + 0.5, size=_TV_DRAWS)
    draws_b = rng.dirichlet(counts_b + 0.5, size=_TV_DRAWS)
    tv = 0.5 * np.abs(draws_a - draws_b).sum(axis=1)
    return float(np.quantile(tv, 1 - alpha / 2))


def _cp(count: np.ndarray, n: int, level: float) -> tuple[np.ndarray, np.ndarray]:
    """One-sided Clopper-Pearson lower and upper bounds of rates ``count / n`` at ``level``."""
    lower = np.where(count > 0, stats.beta.ppf(1 - level, count, n - count + 1), 0.0)
    upper = np.where(count < n, stats.beta.ppf(level, count + 1, n - count), 1.0)
    return lower, upper


def _tv_bounds(
    counts_a: np.ndarray, counts_b: np.ndarray, alpha: float, rng: np.random.Generator
) -> tuple[float, float]:
    """Lower and upper confidence bounds on the TV distance between the outcome distributions.

    Upper (equivalence needs it below the tolerance) is the largest of

    * the Jeffreys posterior bound of :func:`_tv_upper` (many outcomes at once);
    * per outcome, ``|p_a - p_b|`` bounded by exact Clopper-Pearson bounds at
      ``1 - alpha/2`` per arm: a rare outcome seen once or never in one arm cannot
      hide a difference the posterior smooths away;
    * ``1 - alpha ** (1/n)`` (:func:`~pytest_rolecheck.core.stats.unseen_share_upper`) for
      the smaller arm: an outcome neither arm showed may still have that rate, and the
      TV is then at least that large. This is the whole bound when every call of both
      arms agreed (an intersection-union argument: each arm's unseen rate at level
      ``alpha``).

    Lower (a difference must exceed the tolerance to count) is the largest per-outcome
    lower bound of ``|p_a - p_b|`` by Newcombe's hybrid score method (Wilson bounds
    combined, "MOVER"), one-sided at ``1 - alpha/(2m)`` per direction with ``m = 1`` for
    two outcomes (their differences are the same event) and ``m = K`` otherwise
    (Bonferroni). References: R. G. Newcombe, "Interval estimation for the difference
    between independent proportions", Stat. Med. 17, pp. 873-890, 1998.
    """
    n_a, n_b = int(counts_a.sum()), int(counts_b.sum())
    if len(counts_a) == 1:
        # Every call of both arms agreed. The TV is then the larger of the two arms' rates
        # of outcomes never seen; it is below the tolerance only if both are, and a rate
        # of at least the tolerance shows nothing in n calls with probability <= alpha.
        return 0.0, unseen_share_upper(0.0, min(n_a, n_b), alpha)
    lo_a, up_a = _cp(counts_a, n_a, 1 - alpha / 2)
    lo_b, up_b = _cp(counts_b, n_b, 1 - alpha / 2)
    upper = max(
        float(np.max(np.maximum(up_a - lo_b, up_b - lo_a))),
        unseen_share_upper(0.0, min(n_a, n_b), alpha),
    )
    if len(counts_a) > 1 and (counts_a > 0).sum() + (counts_b > 0).sum() > 2:
        upper = max(upper, _tv_upper(counts_a, counts_b, alpha, rng))
    m = 1 if len(counts_a) <= 2 else len(counts_a)
    z = float(stats.norm.ppf(1 - alpha / (2 * m)))
    pa, pb = counts_a / n_a, counts_b / n_b
    lo_a, up_a = _wilson(pa, n_a, z)
    lo_b, up_b = _wilson(pb, n_b, z)
    # Newcombe's hybrid score (MOVER-Wilson) lower bound of |p_a - p_b|, per direction.
    diff = pa - pb
    lower_ab = diff - np.sqrt((pa - lo_a) ** 2 + (up_b - pb) ** 2)
    lower_ba = -diff - np.sqrt((pb - lo_b) ** 2 + (up_a - pa) ** 2)
    lower = float(np.max(np.maximum(lower_ab, lower_ba)))
    return max(lower, 0.0), min(upper, 1.0)


def _wilson(p: np.ndarray, n: int, z: float) -> tuple[np.ndarray, np.ndarray]:
    """Wilson score bounds of rates ``p`` observed in ``n`` calls."""
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z * np.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / (1 + z * z / n)
    return centre - half, centre + half


def _recommended_trials(
    n: int, tv: float, tv_lower: float, tv_upper: float, tolerance: float, alpha: float
) -> int | None:
    """Trials per arm at which the blocking bound would likely clear the tolerance.

    Below the tolerance: the unseen-outcome bound ``1 - alpha ** (1/N)`` must fall below
    the room ``tolerance - tv`` (exact when every call agreed), and the bound's width,
    assumed to shrink like ``1/sqrt(N)``, too. Above it: the lower bound's distance from
    the observed TV shrinks the same way. ``None`` when the TV is about the tolerance
    (more trials will not settle it).
    """
    if abs(tv - tolerance) < 0.02:
        return None
    if tv < tolerance:
        room = tolerance - tv
        needed = float(math.floor(math.log(alpha) / math.log1p(-room)) + 1)
        if tv_lower > 0 or tv > 0:
            needed = max(needed, 1.1 * n * ((tv_upper - tv) / room) ** 2)
    else:
        needed = 1.1 * n * ((tv - tv_lower) / (tv - tolerance)) ** 2
    if needed > _MAX_RECOMMENDED:
        return None
    return int(max(n + 1, math.ceil(needed)))


# -- public API -------------------------------------------------------------------------


def compare_tool_calls(
    responses_a: Sequence[Any],
    responses_b: Sequence[Any],
    *,
    alpha: float = 0.05,
    tolerance: float | None = None,
    names_only: bool = False,
    ordered: bool = False,
    seed: int = 0,
    labels: tuple[str, str] = ("A", "B"),
) -> ToolCallComparison:
    """Compare two arms by the distribution of their tool-call outcomes.

    Parameters
    ----------
    responses_a, responses_b : sequence of ChatCompletion or mapping
        At least 4 responses per arm; ``choices[0].message.tool_calls`` (or the legacy
        ``function_call``) is read from each.
    alpha : float, default 0.05
        Significance level of the difference test; the TV bound is an equal-tailed
        ``1 - alpha`` posterior upper end.
    tolerance : float, optional
        Largest total-variation distance between the outcome distributions that counts
        as equivalent; default :data:`~pytest_rolecheck.core.stats.DEFAULT_TOLERANCE` (0.2:
        at most 20 % of the calls may behave differently). ``n`` calls per arm cannot
        certify a tolerance below ``1 - alpha ** (1/n)`` (0.259 for 10, 0.139 for 20).
    names_only : bool, default False
        Compare which functions are called, ignoring the arguments.
    ordered : bool, default False
        Treat several calls in one response as ordered. Default: unordered (the API
        gives parallel tool calls no order).
    seed : int, default 0
        Seed of the Monte Carlo parts (TV bound, large-table p-value): same input and
        seed, same result.
    labels : (str, str), default ("A", "B")
        Arm names used in the report.

    Returns
    -------
    ToolCallComparison

    Raises
    ------
    RolecheckUsageError
        If an arm has fewer than 4 responses or an argument is out of range.
    ResponseFormatError
        If a response is not a chat completion.

    Notes
    -----
    The same rule as :func:`~pytest_rolecheck.compare`, with the TV distance between
    the outcome distributions as the change (bounds: :func:`_tv_bounds`):

    1. *Equivalent* iff the TV upper bound is below ``tolerance``. When every call of
       both arms agreed, the bound is the rate an outcome never seen in ``n`` calls may
       still have, ``1 - alpha ** (1/n)``: 10 calls per arm that all agree do not
       certify a tolerance of 0.2.
    2. *Different* iff the difference test gives ``p_value <= alpha`` **and** the TV
       lower bound is above ``tolerance``.
    3. *Inconclusive* otherwise, with advice on whether more trials would help.

    The difference test conditions on the table margins: Fisher's exact test for two
    outcomes, else Pearson's chi-square with its exact permutation distribution
    (enumerated, or Monte Carlo for large tables).

    References
    ----------
    .. [1] Agresti, A., & Min, Y. (2005). Frequentist performance of Bayesian confidence
       intervals for comparing proportions in 2 × 2 contingency tables. *Biometrics*,
       61(2), 515-523.
    .. [2] Brown, L. D., Cai, T. T., & DasGupta, A. (2001). Interval estimation for a
       binomial proportion. *Statistical Science*, 16(2), 101-133.
    .. [3] Phipson, B., & Smyth, G. K. (2010). Permutation p-values should never be zero.
       *Statistical Applications in Genetics and Molecular Biology*, 9(1), Article 39.
    """
    if tolerance is None:
        tolerance = DEFAULT_TOLERANCE
    arm_a, arm_b, labels = _validate(responses_a, responses_b, alpha, tolerance, seed, labels)
    outcomes_a = [
        _call_tuple(
            r, names_only=names_only, ordered=ordered, position=f"response {i} of {labels[0]!r}"
        )
        for i, r in enumerate(arm_a)
    ]
    outcomes_b = [
        _call_tuple(
            r, names_only=names_only, ordered=ordered, position=f"response {i} of {labels[1]!r}"
        )
        for i, r in enumerate(arm_b)
    ]
    if not any(outcomes_a) and not any(outcomes_b):
        # Text everywhere is "equivalent, TV 0" by arithmetic, and says nothing about tools.
        raise NothingToCompareError(
            f"no call of {labels[0]!r} or {labels[1]!r} made a tool call ({len(arm_a)}+"
            f"{len(arm_b)} calls, all answered in text): there is no tool behaviour to compare, "
            "so no verdict is given. Make the model call a tool: send tools= with "
            "tool_choice='required' (or name the function), or a prompt that needs the tool, "
            "to a model that supports tool calls (the bundled SmolLM2 model never calls one: "
            "compare its answers with the logprob asserts instead)."
        )
    return comparison_made(
        _compare_outcomes(
            outcomes_a,
            outcomes_b,
            alpha=float(alpha),
            tolerance=float(tolerance),
            names_only=names_only,
            ordered=ordered,
            seed=seed,
            labels=labels,
        )
    )


def _compare_outcomes(
    outcomes_a: list[tuple[str, ...]],
    outcomes_b: list[tuple[str, ...]],
    *,
    alpha: float,
    tolerance: float,
    names_only: bool,
    ordered: bool,
    seed: int,
    labels: tuple[str, str],
) -> ToolCallComparison:
    keys = sorted(
        set(outcomes_a) | set(outcomes_b),
        key=lambda k: (-(outcomes_a.count(k) + outcomes_b.count(k)), _outcome_text(k)),
    )
    counts_a = np.array([outcomes_a.count(k) for k in keys], dtype=np.int64)
    counts_b = np.array([outcomes_b.count(k) for k in keys], dtype=np.int64)
    n_a, n_b = len(outcomes_a), len(outcomes_b)
    rng = np.random.default_rng(seed)
    p_value, test = _difference_test(counts_a, counts_b, rng)
    tv = float(0.5 * np.abs(counts_a / n_a - counts_b / n_b).sum())
    deterministic = int((counts_a > 0).sum()) == 1 and int((counts_b > 0).sum()) == 1
    tv_lower, tv_upper = _tv_bounds(counts_a, counts_b, alpha, rng)

    warnings: list[str] = []
    recommended: int | None = None
    label_a, label_b = labels
    n = min(n_a, n_b)
    verdict: Verdict
    if p_value <= alpha and tv_lower > tolerance:
        verdict = "different"
        if deterministic:
            advice = (
                f"every call in {label_a!r} gave {_shorten(_outcome_text(keys[0]))} and every "
                f"call in {label_b!r} gave {_shorten(_outcome_text(keys[1]))}."
            )
        else:
            advice = (
                f"the outcome distributions differ (p = {p_value:.3g} <= alpha {alpha:g}) by "
                f"more than the tolerance {tolerance:g} (TV lower bound {tv_lower:.3f})."
            )
    elif tv_upper < tolerance:
        verdict = "equivalent"
        advice = (
            f"the outcome distributions differ by at most {tv_upper:.3f} (TV upper bound) "
            f"< tolerance {tolerance:g}."
        )
        if p_value <= alpha:
            warnings.append(
                f"the difference is statistically detectable (p = {p_value:.3g}) but smaller "
                f"than the tolerance {tolerance:g}; lower tolerance= to treat it as a change"
            )
    else:
        verdict = "inconclusive"
        recommended = _recommended_trials(n, tv, tv_lower, tv_upper, tolerance, alpha)
        if tv < tolerance:
            why = f"the TV upper bound {tv_upper:.3f} is not below the tolerance {tolerance:g}"
            floor = unseen_share_upper(0.0, n, alpha)
            if floor >= tolerance:
                why += (
                    f" ({n} calls per arm cannot exclude an outcome never seen at a rate up to "
                    f"{floor:.3f})"
                )
        else:
            why = (
                f"the TV {tv:.3f} is above the tolerance {tolerance:g}, but its lower bound "
                f"{tv_lower:.3f} is not (p = {p_value:.3g})"
            )
        more = (
            f"run about {recommended} trials per arm (rough estimate)"
            if recommended is not None
            else "more trials will not settle it soon: decide whether a change of this size "
            "matters and set tolerance= accordingly"
        )
        advice = f"{why}: {more}"
        if not names_only:
            advice += ", or pass names_only=True to compare only which functions are called"
        advice += "."
    if not names_only and len(keys) > (n_a + n_b) / 2:
        warnings.append(
            f"{len(keys)} distinct outcomes in {n_a + n_b} calls: the arguments rarely repeat, "
            "so full-argument comparison has little power; consider names_only=True"
        )
    return ToolCallComparison(
        verdict=verdict,
        p_value=p_value,
        test=test,
        tv=tv,
        tv_lower=tv_lower,
        tv_upper=tv_upper,
        tolerance=tolerance,
        alpha=alpha,
        n_a=n_a,
        n_b=n_b,
        outcomes=tuple(_outcome_text(k) for k in keys),
        counts_a=tuple(int(c) for c in counts_a),
        counts_b=tuple(int(c) for c in counts_b),
        deterministic=deterministic,
        names_only=names_only,
        ordered=ordered,
        labels=labels,
        seed=seed,
        recommended_trials=recommended,
        warnings=tuple(warnings),
        advice=advice,
    )


def assert_tool_calls_equivalent(
    responses_a: Sequence[Any], responses_b: Sequence[Any], **kwargs: Any
) -> ToolCallComparison:
    """Assert that both arms call tools the same way; see :func:`compare_tool_calls`.

    Returns
    -------
    ToolCallComparison

    Raises
    ------
    RolecheckAssertionError
        If the verdict is not ``"equivalent"``; the message is the report plus advice.
    """
    __tracebackhide__ = True
    result = compare_tool_calls(responses_a, responses_b, **kwargs)
    if result.verdict != "equivalent":
        raise RolecheckAssertionError(
            f"tool-call behaviour is not shown to be equivalent\n{result}\n{result.advice}"
        )
    return result


def assert_tool_calls_differ(
    responses_a: Sequence[Any], responses_b: Sequence[Any], **kwargs: Any
) -> ToolCallComparison:
    """Assert that the arms call tools differently; see :func:`compare_tool_calls`.

    Returns
    -------
    ToolCallComparison

    Raises
    ------
    RolecheckAssertionError
        If the verdict is not ``"different"``; the message is the report plus advice.
    """
    __tracebackhide__ = True
    result = compare_tool_calls(responses_a, responses_b, **kwargs)
    if result.verdict != "different":
        raise RolecheckAssertionError(
            f"tool-call behaviour is not shown to differ\n{result}\n{result.advice}"
        )
    return result
