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
    "compare": "pytest_rolecheck.verdicts.compare",
    "Comparison": "pytest_rolecheck.verdicts.compare",
    "PromptSetComparison": "pytest_rolecheck.verdicts.prompt_sets",
    "CaseComparison": "pytest_rolecheck.verdicts.prompt_sets",
    "assert_equivalent": "pytest_rolecheck.verdicts.assertions",
    "assert_different": "pytest_rolecheck.verdicts.assertions",
    "parse_response": "pytest_rolecheck.core.parse",
    "ParsedCall": "pytest_rolecheck.core.parse",
    "register_metric": "pytest_rolecheck.core.distances",
    "get_metric": "pytest_rolecheck.core.distances",
    "available_metrics": "pytest_rolecheck.core.distances",
    "distance_matrix": "pytest_rolecheck.core.distances",
    # variants and tools
    "Variant": "pytest_rolecheck.variants",
    "load_variant": "pytest_rolecheck.variants.files",
    "PromptSet": "pytest_rolecheck.variants.prompt_sets",
    "load_prompt_set": "pytest_rolecheck.variants.prompt_sets",
    "render_tools_namespace": "pytest_rolecheck.variants.tools",
    "compare_tool_calls": "pytest_rolecheck.verdicts.toolcalls",
    "ToolCallComparison": "pytest_rolecheck.verdicts.toolcalls",
    # running inside pytest
    "Rolecheck": "pytest_rolecheck.running.session",
    "assert_roles_equivalent": "pytest_rolecheck.running.asserts",
    "assert_roles_differ": "pytest_rolecheck.running.asserts",
    "assert_variants_equivalent": "pytest_rolecheck.running.asserts",
    "assert_variants_differ": "pytest_rolecheck.running.asserts",
    "assert_tool_calls_equivalent": "pytest_rolecheck.running.asserts",
    "assert_tool_calls_differ": "pytest_rolecheck.running.asserts",
    # errors (cheap, but kept in one place)
    "RolecheckError": "pytest_rolecheck.errors",
    "RolecheckAssertionError": "pytest_rolecheck.errors",
    "RolecheckUsageError": "pytest_rolecheck.errors",
    "ResponseFormatError": "pytest_rolecheck.errors",
    "NoLogprobsError": "pytest_rolecheck.errors",
    "NothingToCompareError": "pytest_rolecheck.errors",
    "RolecheckWarning": "pytest_rolecheck.errors",
    "CassetteError": "pytest_rolecheck.errors",
    "BackendError": "pytest_rolecheck.errors",
    "BackendNotInstalledError": "pytest_rolecheck.errors",
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
    from .core.distances import available_metrics, distance_matrix, get_metric, register_metric
    from .core.parse import ParsedCall, parse_response
    from .errors import (
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
    from .running.asserts import (
        assert_roles_differ,
        assert_roles_equivalent,
        assert_tool_calls_differ,
        assert_tool_calls_equivalent,
        assert_variants_differ,
        assert_variants_equivalent,
    )
    from .running.session import Rolecheck
    from .variants import Variant
    from .variants.files import load_variant
    from .variants.prompt_sets import PromptSet, load_prompt_set
    from .variants.tools import render_tools_namespace
    from .verdicts.assertions import assert_different, assert_equivalent
    from .verdicts.compare import Comparison, compare
    from .verdicts.prompt_sets import CaseComparison, PromptSetComparison
    from .verdicts.toolcalls import ToolCallComparison, compare_tool_calls
