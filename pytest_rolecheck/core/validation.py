"""Input checks shared by the statistics: arm sizes, options, distance matrices and vectors.

Kept apart from the computations (the layout of scipy's ``_mannwhitneyu.py``);
every check raises :class:`~pytest_rolecheck.errors.RolecheckUsageError` with the fix.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
import numpy.typing as npt

from ..errors import RolecheckUsageError
from .limits import DEFAULT_ALPHA, DEFAULT_TOLERANCE, DESIGNS, MIN_CALLS_PER_ARM

__all__ = [
    "validate_alpha",
    "validate_arm_sizes",
    "validate_labels",
    "validate_matrix",
    "validate_options",
    "validate_seed",
    "validate_trials",
]

FloatArray = npt.NDArray[np.float64]


def validate_arm_sizes(n_a: int, n_b: int, labels: tuple[str, str] = ("A", "B")) -> None:
    """Refuse arms with fewer than :data:`MIN_CALLS_PER_ARM` calls.

    Raises
    ------
    RolecheckUsageError
        If an arm is too small, with the reason and the fix.
    """
    for n, label in ((n_a, labels[0]), (n_b, labels[1])):
        if n < MIN_CALLS_PER_ARM:
            raise RolecheckUsageError(
                f"arm {label!r} has {n} call(s); at least {MIN_CALLS_PER_ARM} per arm are "
                f"needed. With 3 calls per arm there are only C(6, 3) = 20 relabellings, so the "
                f"permutation test can never reach p <= 0.05 (its smallest p-value is 0.1), and "
                f"the delete-one jackknife behind the equivalence bound is unstable. "
                "Run more trials per arm (the default is 20; 14 is the fewest to certify 0.2)."
            )


def validate_options(*, alpha: float, tolerance: float, design: str) -> None:
    """Check the numeric and design options shared by every entry point.

    Raises
    ------
    RolecheckUsageError
        If ``alpha`` is not in (0, 1), ``tolerance`` is not a positive finite
        number, or ``design`` is unknown.
    """
    validate_alpha(alpha)
    if (
        isinstance(tolerance, bool)
        or not isinstance(tolerance, int | float)
        or not math.isfinite(tolerance)
        or tolerance <= 0
    ):
        raise RolecheckUsageError(
            f"tolerance={tolerance!r} is not allowed: it is the largest change that still counts "
            f"as equivalent, in the metric's units (for js, tv and first_token the share of "
            f"probability mass moved, in (0, 1]), e.g. {DEFAULT_TOLERANCE} (the default)."
        )
    if design not in DESIGNS:
        raise RolecheckUsageError(
            f"design={design!r} is unknown; allowed values: {', '.join(map(repr, DESIGNS))} "
            f"('all-pairs' is the default and recommended)."
        )


def validate_alpha(alpha: object) -> None:
    """Refuse a significance level that is not a number strictly between 0 and 1."""
    if isinstance(alpha, bool) or not isinstance(alpha, int | float) or not 0 < alpha < 1:
        raise RolecheckUsageError(
            f"alpha={alpha!r} is not allowed: the significance level must be a number strictly "
            f"between 0 and 1 ({DEFAULT_ALPHA} is the default)."
        )


def validate_seed(seed: object, *, seeds: str) -> None:
    """Refuse a seed that is not a whole number >= 0; ``seeds`` says what it seeds."""
    if isinstance(seed, bool) or not isinstance(seed, int) or seed < 0:
        raise RolecheckUsageError(
            f"seed={seed!r} is not allowed: it seeds {seeds} and must be a whole number >= 0 "
            f"(0 is the default)."
        )


def validate_labels(labels: object) -> None:
    """Refuse arm labels that are not two different non-empty strings."""
    if (
        not isinstance(labels, Sequence)
        or isinstance(labels, str)
        or len(labels) != 2
        or not all(isinstance(x, str) and x for x in labels)
        or labels[0] == labels[1]
    ):
        raise RolecheckUsageError(
            f"labels={labels!r} is not allowed: pass two different non-empty strings, "
            f"e.g. labels=('developer', 'system')."
        )


def validate_matrix(distances: npt.ArrayLike, n_a: int) -> FloatArray:
    d = np.asarray(distances, dtype=np.float64)
    if d.ndim != 2 or d.shape[0] != d.shape[1]:
        raise RolecheckUsageError(
            f"expected a square distance matrix, got shape {d.shape}; build it with "
            f"distance_matrix(calls_a + calls_b, metric)."
        )
    n = d.shape[0]
    if not 0 < n_a < n:
        raise RolecheckUsageError(
            f"n_a={n_a} must split the {n} calls into two non-empty arms (A = the first n_a)."
        )
    validate_arm_sizes(n_a, n - n_a)
    if not np.all(np.isfinite(d)) or np.any(d < 0):
        raise RolecheckUsageError(
            "the distance matrix contains negative, NaN or infinite values; a metric must return "
            "a finite number >= 0 for every pair of calls. Fix the custom metric or use a "
            "built-in one (see available_metrics())."
        )
    scale = max(1.0, float(np.max(d)))
    if not np.allclose(d, d.T, rtol=0, atol=1e-9 * scale) or np.any(np.diag(d) != 0):
        raise RolecheckUsageError(
            "the distance matrix must be symmetric with a zero diagonal; a metric must satisfy "
            "d(x, y) == d(y, x) and d(x, x) == 0."
        )
    # Symmetrise exactly so the rank of a pair does not depend on which triangle is read.
    return (d + d.T) / 2


def validate_trials(d_a: npt.ArrayLike, d_b: npt.ArrayLike) -> tuple[FloatArray, FloatArray]:
    a = np.asarray(d_a, dtype=np.float64).ravel()
    b = np.asarray(d_b, dtype=np.float64).ravel()
    validate_arm_sizes(a.size, b.size)
    for x in (a, b):
        if not np.all(np.isfinite(x)) or np.any(x < 0):
            raise RolecheckUsageError(
                "per-trial distances must be finite numbers >= 0; fix the custom metric or use a "
                "built-in one (see available_metrics())."
            )
    return a, b
