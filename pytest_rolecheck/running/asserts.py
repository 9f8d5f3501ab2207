"""The module-level asserts: they act on the running test's :class:`Rolecheck`.

Inside pytest the plugin registers each test's :class:`Rolecheck` as the active
one, so the functions here share its cassette, counters and summary rows;
outside pytest they make live calls with the default client and no cassette.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

from ..errors import RolecheckUsageError
from ..settings import Settings
from ..verdicts.observers import listen
from .calls import VariantLike
from .session import Rolecheck

if TYPE_CHECKING:
    from ..variants.prompt_sets import PromptSet
    from ..verdicts.compare import Comparison
    from ..verdicts.prompt_sets import PromptSetComparison
    from ..verdicts.toolcalls import ToolCallComparison


# ------------------------------------------------------------ module level API
# The running test's Rolecheck (a stack: pytester runs nest pytest in one
# process). Process-wide, not per context, so threads the test starts see it too.
_ACTIVE: list[Rolecheck] = []
_PLUGIN_ACTIVE: list[bool] = []


def set_plugin_active(active: bool) -> None:
    """Called by the plugin at configure/unconfigure time."""
    _PLUGIN_ACTIVE[:] = [True] if active else []


def current() -> Rolecheck | None:
    """The running test's :class:`Rolecheck`; ``None`` outside pytest.

    Raises
    ------
    RolecheckUsageError
        Inside a pytest run but outside a test (e.g. in a module- or
        session-scoped fixture), where no cassette belongs to the calls.
    """
    if _ACTIVE:
        return _ACTIVE[-1]
    if _PLUGIN_ACTIVE:
        raise RolecheckUsageError(
            "a rolecheck assert was called outside a test (e.g. in a module- or "
            "session-scoped fixture, or after the test ended): its calls would belong to no "
            "cassette and could go live in replay mode. Call it from the test itself or from "
            "a function-scoped fixture (or use the `rolecheck` fixture)."
        )
    return None


def _on_comparison(result: object) -> None:
    if _ACTIVE:
        _ACTIVE[-1].record_by_hand(result)


listen(_on_comparison)


def activate(rolecheck: Rolecheck) -> None:
    _ACTIVE.append(rolecheck)


def deactivate(rolecheck: Rolecheck) -> None:
    if rolecheck in _ACTIVE:
        _ACTIVE.remove(rolecheck)


def _dispatch(method: str, *args: Any, **kwargs: Any) -> Any:
    __tracebackhide__ = True
    rolecheck = current()
    if rolecheck is not None:
        return getattr(rolecheck, method)(*args, **kwargs)
    # Outside pytest: live calls, no cassette; close the client afterwards.
    temporary = Rolecheck(Settings())
    try:
        return getattr(temporary, method)(*args, **kwargs)
    finally:
        temporary.finish(save=False)


def assert_roles_equivalent(
    messages: Sequence[Mapping[str, Any]] | None = None,
    roles: tuple[str, str] = ("developer", "system"),
    *,
    prompts: PromptSet | Sequence[Sequence[Mapping[str, Any]]] | None = None,
    **options: Any,
) -> Comparison | PromptSetComparison:
    """Assert that the instruction message's role (e.g. developer vs system) changes nothing.

    See :meth:`Rolecheck.compare` for the options (``trials``, ``model``,
    ``max_tokens``, ``top_logprobs``, ``temperature``, ``metric``, ``alpha``,
    ``tolerance``, ``design``, ``seed``, ``params``, ``logprobs``). Pass ``prompts=`` (a
    :class:`~pytest_rolecheck.PromptSet` or a list of message lists) instead of
    ``messages`` to check the roles over a set of prompts at once.
    """
    __tracebackhide__ = True
    result: Comparison | PromptSetComparison = _dispatch(
        "assert_roles_equivalent", messages, roles, prompts=prompts, **options
    )
    return result


def assert_roles_differ(
    messages: Sequence[Mapping[str, Any]] | None = None,
    roles: tuple[str, str] = ("developer", "system"),
    *,
    prompts: PromptSet | Sequence[Sequence[Mapping[str, Any]]] | None = None,
    **options: Any,
) -> Comparison | PromptSetComparison:
    """Assert that the instruction message's role changes behaviour."""
    __tracebackhide__ = True
    result: Comparison | PromptSetComparison = _dispatch(
        "assert_roles_differ", messages, roles, prompts=prompts, **options
    )
    return result


def assert_variants_equivalent(
    variant_a: VariantLike, variant_b: VariantLike, **options: Any
) -> Comparison | PromptSetComparison:
    """Assert that two variants (messages + params) behave the same, within the tolerance."""
    __tracebackhide__ = True
    result: Comparison | PromptSetComparison = _dispatch(
        "assert_variants_equivalent", variant_a, variant_b, **options
    )
    return result


def assert_variants_differ(
    variant_a: VariantLike, variant_b: VariantLike, **options: Any
) -> Comparison | PromptSetComparison:
    """Assert that two variants behave differently."""
    __tracebackhide__ = True
    result: Comparison | PromptSetComparison = _dispatch(
        "assert_variants_differ", variant_a, variant_b, **options
    )
    return result


def assert_tool_calls_equivalent(
    variant_a: VariantLike, variant_b: VariantLike, **options: Any
) -> ToolCallComparison | PromptSetComparison:
    """Assert that two variants call the same tools with the same arguments."""
    __tracebackhide__ = True
    result: ToolCallComparison | PromptSetComparison = _dispatch(
        "assert_tool_calls_equivalent", variant_a, variant_b, **options
    )
    return result


def assert_tool_calls_differ(
    variant_a: VariantLike, variant_b: VariantLike, **options: Any
) -> ToolCallComparison | PromptSetComparison:
    """Assert that two variants' tool-call outcomes differ."""
    __tracebackhide__ = True
    result: ToolCallComparison | PromptSetComparison = _dispatch(
        "assert_tool_calls_differ", variant_a, variant_b, **options
    )
    return result
