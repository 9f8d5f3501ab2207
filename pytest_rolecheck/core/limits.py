"""Numbers and names the statistics need, importable without numpy.

The plugin's option table (``settings.py``) reads them at start-up, before any
test asks for numpy or scipy; the statistics import them from here too.
"""

from __future__ import annotations

from typing import Final

#: Fewer calls per arm cannot work: with 3 per arm the permutation test's
#: smallest p-value is 0.1, and the jackknife behind the bound is unstable.
MIN_CALLS_PER_ARM: Final = 4
DEFAULT_ALPHA: Final = 0.05
#: The default tolerance of every comparison kind: the largest change that
#: still counts as equivalent, as a share of probability mass moved (``js``,
#: ``tv``, ``first_token``) or of calls whose outcome changes (tool calls).
#: A change that rewrites one answer in five is at the tolerance, so it is
#: never certified (at most alpha of the time). 20 calls per arm (the default
#: trials) can certify down to 1 - 0.05 ** (1/20) = 0.139; 10 calls only to 0.259.
DEFAULT_TOLERANCE: Final = 0.2
DEFAULT_METRIC: Final = "js"
DESIGNS: Final[tuple[str, ...]] = ("all-pairs", "seed")
