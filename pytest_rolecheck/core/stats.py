"""Statistics behind the verdicts: difference test, equivalence bound, descriptives.

Everything here works on numbers only: a distance matrix between calls (the
first ``n_a`` rows/columns are arm A, the rest arm B) or, for the seed design,
two vectors of per-trial distances to one baseline call. Turning responses
into those numbers is the job of ``core.parse`` and ``core.distances``; turning
the numbers into a report is the job of ``verdicts.compare``.

This module is the statistics' public face; the pieces live in
``validation`` (input checks, apart from the computations, the layout of
scipy's ``_mannwhitneyu.py``), ``descriptives``, ``difference`` (the tests),
``bounds`` (the change bounds) and ``decision`` (the verdict rule); the
numbers they share in ``limits``, the verdict names in ``verdict``.

The decision rules, in one place (``decide``), the same for every design:

* the *change* is ``delta = cross - min(within_a, within_b)`` (all-pairs,
  :func:`change_bound`; for the text metrics the larger of ``(cross - within_x) /
  (1 - within_x)``, the share of answers that moved) or ``mean(B) - mean(A)`` of
  the trials' distances to the baseline (seed design, :func:`trial_change_bound`);
  the *tolerance* is the largest change that still counts as equivalent, chosen
  before seeing data (:data:`DEFAULT_TOLERANCE`);
* *equivalent*: the ``1 - alpha`` upper bound of the change is below the
  tolerance;
* *different*: the permutation (seed design: Mann-Whitney) p-value is
  ``<= alpha`` **and** the lower bound of the change is above the tolerance;
* otherwise *inconclusive*, never equivalence.

The deterministic short-cut (every within-arm distance exactly 0) is applied
by ``verdicts.compare`` before any of this: the change is then known exactly and
compared with the tolerance directly.
"""

from __future__ import annotations

from .bounds import (
    Bound,
    change_bound,
    share_lower,
    smallest_certifiable,
    trial_change_bound,
    unseen_share_upper,
)
from .decision import Decision, decide, recommend_trials
from .descriptives import (
    ArmSummary,
    FlipSummary,
    PairMeans,
    cliffs_delta,
    flip_test,
    pair_means,
    split_pairs,
    summarize,
)
from .difference import PermutationResult, TrialTestResult, baseline_test, permutation_test
from .limits import DEFAULT_TOLERANCE, DESIGNS, MAX_RECOMMENDED_TRIALS, MIN_CALLS_PER_ARM
from .validation import validate_arm_sizes, validate_options
from .verdict import Verdict

__all__ = [
    "DEFAULT_TOLERANCE",
    "DESIGNS",
    "MAX_RECOMMENDED_TRIALS",
    "MIN_CALLS_PER_ARM",
    "ArmSummary",
    "Bound",
    "Decision",
    "FlipSummary",
    "PairMeans",
    "PermutationResult",
    "TrialTestResult",
    "Verdict",
    "baseline_test",
    "change_bound",
    "cliffs_delta",
    "decide",
    "flip_test",
    "pair_means",
    "permutation_test",
    "recommend_trials",
    "share_lower",
    "smallest_certifiable",
    "split_pairs",
    "summarize",
    "trial_change_bound",
    "unseen_share_upper",
    "validate_arm_sizes",
    "validate_options",
]
