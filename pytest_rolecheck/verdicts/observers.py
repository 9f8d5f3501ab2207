"""Who hears of a comparison: lets the running test list ``compare()`` made by hand.

The pure comparison functions call :func:`comparison_made` with their result;
the plugin's per-test object listens (it imports this module, never the other
way round), so the verdict code knows nothing about pytest or reports.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TypeVar

Result = TypeVar("Result")

_LISTENERS: list[Callable[[object], None]] = []


def listen(listener: Callable[[object], None]) -> None:
    """Call ``listener(result)`` after every comparison (once per listener)."""
    if listener not in _LISTENERS:
        _LISTENERS.append(listener)


def comparison_made(result: Result) -> Result:
    """Tell the listeners about ``result`` and return it unchanged."""
    for listener in tuple(_LISTENERS):
        listener(result)
    return result
