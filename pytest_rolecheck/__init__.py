"""pytest-rolecheck: statistical regression tests for the behaviour of LLM chat models.

The public names are resolved lazily (PEP 562) so that pytest's plugin import
stays cheap: numpy, scipy, openai and vcrpy load only when a test uses them.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

# public name -> module that defines it
_EXPORTS: dict[str, str] = {
    # pure core
    "compare": "pytest_rolecheck._compare",
    "Comparison": "pytest_rolecheck._compare",
    "assert_equivalent": "pytest_rolecheck._compare",
    "assert_different": "pytest_rolecheck._compare",
    "parse_response": "pytest_rolecheck._parse",
    "ParsedCall": "pytest_rolecheck._parse",
    "register_metric": "pytest_rolecheck._distances",
    "get_metric": "pytest_rolecheck._distances",
    "available_metrics": "pytest_rolecheck._distances",
    "distance_matrix": "pytest_rolecheck._distances",
    # variants and tools
    "Variant": "pytest_rolecheck.variants",
    "render_tools_namespace": "pytest_rolecheck._tools_render",
    "compare_tool_calls": "pytest_rolecheck._toolcalls",
    "ToolCallComparison": "pytest_rolecheck._toolcalls",
    # running inside pytest
    "Rolecheck": "pytest_rolecheck._session",
    "assert_roles_equivalent": "pytest_rolecheck._session",
    "assert_roles_differ": "pytest_rolecheck._session",
    "assert_variants_equivalent": "pytest_rolecheck._session",
    "assert_variants_differ": "pytest_rolecheck._session",
    "assert_tool_calls_equivalent": "pytest_rolecheck._session",
    "assert_tool_calls_differ": "pytest_rolecheck._session",
    # errors (cheap, but kept in one place)
    "RolecheckError": "pytest_rolecheck._errors",
    "RolecheckAssertionError": "pytest_rolecheck._errors",
    "RolecheckUsageError": "pytest_rolecheck._errors",
    "ResponseFormatError": "pytest_rolecheck._errors",
    "NoLogprobsError": "pytest_rolecheck._errors",
    "NothingToCompareError": "pytest_rolecheck._errors",
    "RolecheckWarning": "pytest_rolecheck._errors",
    "CassetteError": "pytest_rolecheck._errors",
    "BackendError": "pytest_rolecheck._errors",
    "BackendNotInstalledError": "pytest_rolecheck._errors",
}

__all__ = ["__version__", *sorted(_EXPORTS)]


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'pytest_rolecheck' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value  # cache: later lookups skip __getattr__
    return value


def __dir__() -> list[str]:
    return __all__


if TYPE_CHECKING:  # pragma: no cover - for type checkers and IDEs only
    from ._compare import Comparison, assert_different, assert_equivalent, compare
    from ._distances import available_metrics, distance_matrix, get_metric, register_metric
    from ._errors import (
        BackendError,
        BackendNotInstalledError,
        CassetteError,
        NoLogprobsError,
        NothingToCompareError,
        ResponseFormatError,
        RolecheckAssertionError,
        RolecheckError,
        RolecheckUsageError,
        RolecheckWarning,
    )
    from ._parse import ParsedCall, parse_response
    from ._session import (
        Rolecheck,
        assert_roles_differ,
        assert_roles_equivalent,
        assert_tool_calls_differ,
        assert_tool_calls_equivalent,
        assert_variants_differ,
        assert_variants_equivalent,
    )
    from ._toolcalls import ToolCallComparison, compare_tool_calls
    from ._tools_render import render_tools_namespace
    from .variants import Variant
