"""The numbers the statistics need, defined once: every entry point reads them from here."""

from __future__ import annotations

from typing import Final

__all__ = [
    "DEFAULT_ALPHA",
    "DEFAULT_DESIGN",
    "DEFAULT_METRIC",
    "DEFAULT_TOLERANCE",
    "DEFAULT_TRIALS",
    "DEFAULT_TRIALS_PER_CASE",
    "DESIGNS",
    "GREEDY_METRIC",
    "HAMMING_CHARS",
    "MAX_RECOMMENDED_TRIALS",
    "MIN_CALLS_PER_ARM",
    "MIN_PILOT",
    "MIN_TRIALS_PER_CASE",
    "SAMPLED_METRIC",
    "TEXT_METRIC",
]

#: Fewest calls per arm: with 3 there are only C(6, 3) = 20 relabellings, so the
#: permutation test can never reach p <= 0.05, and the delete-one jackknife is unstable.
MIN_CALLS_PER_ARM: Final = 4
#: Fewest calls of an A/A pilot for ``rolecheck plan``: two arms of distinct calls.
MIN_PILOT: Final = 2 * MIN_CALLS_PER_ARM
#: Calls per arm when the user does not say (enough to certify the default tolerance).
DEFAULT_TRIALS: Final = 20
#: Calls per arm of each case of a prompt set when the user does not say: the set pools
#: evidence over its cases, so each case needs far fewer calls than a single prompt.
DEFAULT_TRIALS_PER_CASE: Final = 5
#: Fewest calls per arm of one case: a within-arm distance needs a pair.
MIN_TRIALS_PER_CASE: Final = 2
#: Significance level of the difference test; ``1 - alpha`` is the confidence of the bounds.
DEFAULT_ALPHA: Final = 0.05
#: The default tolerance of every comparison kind: the largest change that
#: still counts as equivalent, as a share of probability mass moved (``js``,
#: ``tv``, ``first_token``) or of calls whose outcome changes (tool calls).
#: A change that rewrites one answer in five is at the tolerance, so it is
#: never certified (at most alpha of the time). 20 calls per arm (the default
#: trials) can certify down to 1 - 0.05 ** (1/20) = 0.139; 10 calls only to 0.259.
DEFAULT_TOLERANCE: Final = 0.2
#: The metric of a comparison when the user does not say: chosen from the calls by
#: :func:`~pytest_rolecheck.core.distances.choose_metric` (one of the three below).
DEFAULT_METRIC: Final = "auto"
#: What ``auto`` picks for calls that took their most likely token at every position
#: (temperature 0): the texts part only where the distributions differ, and ``js``
#: compares every position up to there.
GREEDY_METRIC: Final = "js"
#: What ``auto`` picks for sampled calls (some call took a token other than its most
#: likely one): ``js`` on the shared prefix combined with ``edit`` on the whole answer,
#: which sees what the answers say after they part (bench/calibration.py measures both).
SAMPLED_METRIC: Final = "js_edit"
#: What ``auto`` picks when no call carries logprobs: the text alone.
TEXT_METRIC: Final = "edit"
#: The designs of a logprob comparison; the first is the default.
DESIGNS: Final[tuple[str, ...]] = ("all-pairs", "seed")
DEFAULT_DESIGN: Final = DESIGNS[0]
#: Above this many trials per arm a recommendation is no longer practical advice.
MAX_RECOMMENDED_TRIALS: Final = 10_000
#: The ``hamming`` text metric compares the first this many characters of two answers:
#: about 250 tokens, longer than most test answers (max_tokens 20 is ~100 characters), and
#: a cap on the cost of very long ones.
HAMMING_CHARS: Final = 1000
