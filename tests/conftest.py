"""Shared test configuration.

pytester's in-process runs restore ``sys.modules`` afterwards, dropping every
module first imported inside them; numpy cannot be imported twice in one
process, so the heavy modules are imported here, once, before any inner run.
So are the input classes: ``pytest_rolecheck`` caches them on first access, and
a later inner run would otherwise build a ``PromptSet`` or ``Variant`` that the
plugin's freshly imported module does not recognise.
"""

from __future__ import annotations

import numpy  # noqa: F401
import openai  # noqa: F401
import scipy.stats  # noqa: F401
import vcr  # noqa: F401

import pytest_rolecheck.variants.prompt_sets  # noqa: F401
