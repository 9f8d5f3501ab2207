"""Shared test configuration.

pytester's in-process runs restore ``sys.modules`` afterwards, dropping every
module first imported inside them; numpy cannot be imported twice in one
process, so the heavy modules are imported here, once, before any inner run.
"""

from __future__ import annotations

import numpy  # noqa: F401
import openai  # noqa: F401
import scipy.stats  # noqa: F401
import vcr  # noqa: F401
