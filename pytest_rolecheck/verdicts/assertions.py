"""The assertions on a :func:`~pytest_rolecheck.verdicts.compare.compare` result.

They pass only on the verdict they name; the failure message comes from
:mod:`~pytest_rolecheck.verdicts.wording`.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any, TypeVar

from ..core.distances import BLIND_METRICS, DEFAULT_METRIC
from ..errors import RolecheckAssertionError, RolecheckUsageError
from . import wording
from .compare import Comparison, compare
from .prompt_sets import PromptSetComparison

Result = TypeVar("Result", Comparison, PromptSetComparison)

__all__ = ["assert_different", "assert_equivalent", "refuse_blind_equivalence"]


def refuse_blind_equivalence(metric: object) -> None:
    """Refuse an equivalence assertion with a metric that cannot see every change.

    Raises
    ------
    RolecheckUsageError
        For ``tok_l1`` and ``seed``, with the reason and what to use instead.
    """
    why = BLIND_METRICS.get(metric) if isinstance(metric, str) else None
    if why is not None:
        raise RolecheckUsageError(
            f"an equivalence assertion cannot pass with metric={metric!r}: {why}. Use "
            f"metric='js' (the default) or 'tv' to assert equivalence; {metric!r} can still "
            f"assert a difference."
        )


def assert_equivalent(
    responses_a: Iterable[Any], responses_b: Iterable[Any], **options: Any
) -> Comparison | PromptSetComparison:
    """Assert that two arms behave the same, within the tolerance.

    Same arguments as :func:`compare` (both arms mappings: a prompt set).
    Passes only on the verdict ``"equivalent"``: a non-significant difference test is not enough.

    Returns
    -------
    Comparison or PromptSetComparison
        The comparison, for further checks or reporting.

    Raises
    ------
    RolecheckAssertionError
        With the full report and what to do next, when the verdict is
        ``"different"`` or ``"inconclusive"``.
    """
    __tracebackhide__ = True
    refuse_blind_equivalence(options.get("metric", DEFAULT_METRIC))
    return _expect("assert_equivalent", compare(responses_a, responses_b, **options))


def assert_different(
    responses_a: Iterable[Any], responses_b: Iterable[Any], **options: Any
) -> Comparison | PromptSetComparison:
    """Assert that two arms behave differently.

    Same arguments as :func:`compare` (both arms mappings: a prompt set).
    Passes only on the verdict ``"different"``; a real difference that stays within the equivalence
    tolerance gives ``"equivalent"`` and fails here (lower ``tolerance`` to
    count it).

    Returns
    -------
    Comparison or PromptSetComparison
        The comparison, for further checks or reporting.

    Raises
    ------
    RolecheckAssertionError
        With the full report and what to do next, when the verdict is
        ``"equivalent"`` or ``"inconclusive"``.
    """
    __tracebackhide__ = True
    return _expect("assert_different", compare(responses_a, responses_b, **options))


def _expect(called: str, result: Result) -> Result:
    __tracebackhide__ = True
    if result.verdict != wording.expected_verdict(called):
        raise RolecheckAssertionError(wording.assertion_message(result, called))
    return result
