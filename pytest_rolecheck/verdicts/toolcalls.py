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

import dataclasses
import json
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Final, cast, overload

import numpy as np

from ..core.bounds import unseen_share_upper
from ..core.contingency import difference_test, recommend_outcome_trials, tv_bounds
from ..core.decision import verdict_of
from ..core.jsonish import as_dict
from ..core.limits import DEFAULT_ALPHA, DEFAULT_TOLERANCE, MIN_CALLS_PER_ARM
from ..core.parse_responses import chat_tool_calls, is_responses_output
from ..core.validation import validate_alpha, validate_labels, validate_seed
from ..core.verdict import Verdict
from ..errors import (
    NothingToCompareError,
    ResponseFormatError,
    RolecheckUsageError,
)
from . import wording
from .observers import comparison_made
from .prompt_sets import PromptSetComparison, case_ids, compare_tool_call_set, is_set
from .wording import details

__all__ = [
    "TEXT_OUTCOME",
    "ToolCallComparison",
    "compare_tool_calls",
]

TEXT_OUTCOME: Final = "<text>"
"""Outcome of a response without any tool call."""


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
    if is_responses_output(data):  # the Responses API: its function_call output items
        data = {"choices": [{"message": {"tool_calls": chat_tool_calls(data)}}]}
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
            "verdict": str(self.verdict),
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
        return details.tool_call_report(self)


# -- validation -------------------------------------------------------------------------


def check_tool_options(*, alpha: Any, tolerance: Any, seed: Any, labels: Any) -> None:
    """Validate the options of :func:`compare_tool_calls`; also used before calls are made."""
    validate_labels(labels)
    validate_alpha(alpha)
    if tolerance is not None and (  # None: the default tolerance
        isinstance(tolerance, bool)
        or not isinstance(tolerance, int | float)
        or not 0 < tolerance <= 1
    ):
        raise RolecheckUsageError(
            "tolerance is the largest total-variation distance between the arms' outcome "
            f"distributions that still counts as equivalent, in (0, 1], e.g. 0.2; got {tolerance!r}"
        )
    validate_seed(seed, seeds="the Monte Carlo parts of the statistics")


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
        if len(items) < MIN_CALLS_PER_ARM:
            raise RolecheckUsageError(
                f"arm {label!r} has {len(items)} responses; comparing tool calls needs at "
                f"least {MIN_CALLS_PER_ARM} per arm (10 or more for a useful verdict); run more "
                "trials"
            )
        arms.append(items)
    return arms[0], arms[1], (labels[0], labels[1])


# -- public API -------------------------------------------------------------------------


@overload
def compare_tool_calls(
    responses_a: Mapping[str, Sequence[Any]],
    responses_b: Mapping[str, Sequence[Any]],
    *,
    alpha: float = ...,
    tolerance: float | None = ...,
    names_only: bool = ...,
    ordered: bool = ...,
    seed: int = ...,
    labels: tuple[str, str] = ...,
) -> PromptSetComparison: ...
@overload
def compare_tool_calls(
    responses_a: Sequence[Any],
    responses_b: Sequence[Any],
    *,
    alpha: float = ...,
    tolerance: float | None = ...,
    names_only: bool = ...,
    ordered: bool = ...,
    seed: int = ...,
    labels: tuple[str, str] = ...,
) -> ToolCallComparison: ...


# Long by its docstring (the public entry point documents every option); the body is short.
def compare_tool_calls(
    responses_a: Sequence[Any] | Mapping[str, Sequence[Any]],
    responses_b: Sequence[Any] | Mapping[str, Sequence[Any]],
    *,
    alpha: float = DEFAULT_ALPHA,
    tolerance: float | None = None,
    names_only: bool = False,
    ordered: bool = False,
    seed: int = 0,
    labels: tuple[str, str] = ("A", "B"),
) -> ToolCallComparison | PromptSetComparison:
    """Compare two arms by the distribution of their tool-call outcomes.

    Parameters
    ----------
    responses_a, responses_b : sequence of ChatCompletion or mapping
        At least 4 responses per arm; ``choices[0].message.tool_calls`` (or the legacy
        ``function_call``) is read from each. A prompt set: both arms mappings
        ``{case_id: [responses...]}`` with the same ids; two calls are 0 apart when their
        outcomes agree, else 1, and the set is decided like ``compare()``'s (returns a
        :class:`~pytest_rolecheck.verdicts.prompt_sets.PromptSetComparison`).
    alpha : float, default 0.05
        Significance level of the difference test; the TV bound is an equal-tailed
        ``1 - alpha`` posterior upper end.
    tolerance : float, optional
        Largest total-variation distance between the outcome distributions that counts
        as equivalent; default :data:`~pytest_rolecheck.core.limits.DEFAULT_TOLERANCE` (0.2:
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
    the outcome distributions as the change (bounds:
    :func:`~pytest_rolecheck.core.contingency.tv_bounds`):

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
    if is_set(responses_a, responses_b):
        set_a, set_b = cast("tuple[Mapping[str, Sequence[Any]], ...]", (responses_a, responses_b))
        return _compare_set(set_a, set_b, alpha, tolerance, names_only, ordered, seed, labels)
    arm_a, arm_b, labels = _validate(responses_a, responses_b, alpha, tolerance, seed, labels)
    outcomes_a = _outcomes(arm_a, labels[0], names_only=names_only, ordered=ordered)
    outcomes_b = _outcomes(arm_b, labels[1], names_only=names_only, ordered=ordered)
    if not any(outcomes_a) and not any(outcomes_b):
        _refuse_no_tool_calls(len(arm_a), len(arm_b), labels)
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


def _compare_set(
    responses_a: Mapping[str, Sequence[Any]],
    responses_b: Mapping[str, Sequence[Any]],
    alpha: float,
    tolerance: float,
    names_only: bool,
    ordered: bool,
    seed: int,
    labels: tuple[str, str],
) -> PromptSetComparison:
    check_tool_options(alpha=alpha, tolerance=tolerance, seed=seed, labels=labels)
    labels = (labels[0], labels[1])
    ids = case_ids(responses_a, responses_b, labels)
    arms = []
    for label, mapping in zip(labels, (responses_a, responses_b), strict=True):
        arms.append(
            {
                k: _outcomes(
                    _listed(mapping[k], f"{label}[{k}]"),
                    f"{label}[{k}]",
                    names_only=names_only,
                    ordered=ordered,
                )
                for k in ids
            }
        )
    if not any(o for arm in arms for case in arm.values() for o in case):
        _refuse_no_tool_calls(
            sum(map(len, arms[0].values())), sum(map(len, arms[1].values())), labels
        )
    return compare_tool_call_set(
        arms[0],
        arms[1],
        alpha=float(alpha),
        tolerance=float(tolerance),
        seed=seed,
        labels=labels,
        outcome_text=_outcome_text,
    )


def _listed(responses: Any, where: str) -> list[Any]:
    if isinstance(responses, str | bytes | Mapping) or not isinstance(responses, Iterable):
        raise RolecheckUsageError(
            f"responses for {where!r} must be a list of chat completions, "
            f"got {type(responses).__name__}"
        )
    return list(responses)


def _outcomes(
    responses: Sequence[Any], label: str, *, names_only: bool, ordered: bool
) -> list[tuple[str, ...]]:
    return [
        _call_tuple(
            r, names_only=names_only, ordered=ordered, position=f"response {i} of {label!r}"
        )
        for i, r in enumerate(responses)
    ]


def _refuse_no_tool_calls(n_a: int, n_b: int, labels: tuple[str, str]) -> None:
    # Text everywhere is "equivalent, TV 0" by arithmetic, and says nothing about tools.
    raise NothingToCompareError(
        f"no call of {labels[0]!r} or {labels[1]!r} made a tool call ({n_a}+"
        f"{n_b} calls, all answered in text): there is no tool behaviour to compare, "
        "so no verdict is given. Make the model call a tool: send tools= with "
        "tool_choice='required' (or name the function), or a prompt that needs the tool, "
        "to a model that supports tool calls (the bundled SmolLM2 model never calls one: "
        "compare its answers with the logprob asserts instead)."
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
    p_value, test = difference_test(counts_a, counts_b, rng)
    tv = float(0.5 * np.abs(counts_a / n_a - counts_b / n_b).sum())
    tv_lower, tv_upper = tv_bounds(counts_a, counts_b, alpha, rng)
    # The rule of every comparison, on the TV distance between outcome distributions.
    verdict = verdict_of(
        p_value=p_value, alpha=alpha, lower=tv_lower, upper=tv_upper, tolerance=tolerance
    )
    n = min(n_a, n_b)
    result = ToolCallComparison(
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
        deterministic=int((counts_a > 0).sum()) == 1 and int((counts_b > 0).sum()) == 1,
        names_only=names_only,
        ordered=ordered,
        labels=labels,
        seed=seed,
        recommended_trials=(
            recommend_outcome_trials(n, tv, tv_lower, tv_upper, tolerance, alpha)
            if verdict is Verdict.INCONCLUSIVE
            else None
        ),
        warnings=(),
        advice="",
    )
    advice, warnings = _advice_and_warnings(result)
    return dataclasses.replace(result, advice=advice, warnings=warnings)


def _advice_and_warnings(r: ToolCallComparison) -> tuple[str, tuple[str, ...]]:
    """What the verdict means and what to do, and its caveats (words: verdicts.wording)."""
    n = min(r.n_a, r.n_b)
    advice, warnings = wording.tool_call_advice(
        verdict=r.verdict,
        labels=r.labels,
        outcomes=list(r.outcomes),
        deterministic=r.deterministic,
        p_value=r.p_value,
        alpha=r.alpha,
        tolerance=r.tolerance,
        tv=r.tv,
        tv_lower=r.tv_lower,
        tv_upper=r.tv_upper,
        n=n,
        recommended=r.recommended_trials,
        unseen=unseen_share_upper(0.0, n, r.alpha),
        names_only=r.names_only,
    )
    n_calls = r.n_a + r.n_b
    if not r.names_only and len(r.outcomes) > n_calls / 2:
        warnings = (
            *warnings,
            f"{len(r.outcomes)} distinct outcomes in {n_calls} calls: the arguments rarely "
            "repeat, so full-argument comparison has little power; consider names_only=True",
        )
    return advice, tuple(warnings)
