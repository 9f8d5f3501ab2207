"""The noise floor of an A/A pilot: the mean distance between two calls of one configuration."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from ..errors import RolecheckUsageError
from .limits import MIN_PILOT

__all__ = ["FloorEstimate", "estimate_floor", "validate_pilot"]

FloatArray = npt.NDArray[np.float64]


@dataclass(frozen=True, slots=True)
class FloorEstimate:
    """The noise floor of the pilot and its spread."""

    floor: float
    pair_std: float
    pair_min: float
    pair_max: float
    call_mean_min: float
    call_mean_max: float
    interval: tuple[float, float]
    n_calls: int


def validate_pilot(matrix: npt.ArrayLike) -> FloatArray:
    """A pilot's distance matrix as floats; refuses one too small to split, or invalid."""
    d = np.asarray(matrix, dtype=float)
    if d.ndim != 2 or d.shape[0] != d.shape[1] or d.shape[0] < MIN_PILOT:
        raise RolecheckUsageError(
            f"the pilot matrix must be square with at least {MIN_PILOT} calls, got shape {d.shape}."
        )
    if not np.all(np.isfinite(d)) or np.any(d < 0):
        raise RolecheckUsageError("the pilot matrix must hold finite distances >= 0.")
    return d


def estimate_floor(
    matrix: npt.ArrayLike, *, replications: int = 1000, seed: int = 0
) -> FloorEstimate:
    """Noise floor of a pilot (mean pair distance) and its spread.

    Parameters
    ----------
    matrix : array_like, shape (m, m)
        Distances between the pilot's calls.
    replications : int, default 1000
        Bootstrap resamples of the calls for the interval.
    seed : int, default 0
        Seed of the bootstrap.

    Returns
    -------
    FloorEstimate
        Mean, standard deviation, min and max of the pair distances; range of
        the per-call mean distances (an unusual call stands out there); 90%
        bootstrap percentile interval of the floor (calls resampled with
        replacement, pairs of copies of one call left out).

    References
    ----------
    .. [1] B. Efron and R. J. Tibshirani, "An Introduction to the Bootstrap",
       Chapman & Hall, 1993, ch. 13 (percentile intervals).
    """
    d = validate_pilot(matrix)
    m = d.shape[0]
    iu = np.triu_indices(m, 1)
    pairs = d[iu]
    call_means = (d.sum(axis=1)) / (m - 1)
    rng = np.random.default_rng(seed)
    boot = np.empty(replications)
    for r in range(replications):
        idx = np.asarray(rng.integers(0, m, size=m), dtype=np.intp)
        sub = d[np.ix_(idx, idx)]
        distinct = idx[:, None] != idx[None, :]
        boot[r] = float(sub[distinct].mean()) if distinct.any() else 0.0
    return FloorEstimate(
        floor=float(pairs.mean()),
        pair_std=float(pairs.std()),
        pair_min=float(pairs.min()),
        pair_max=float(pairs.max()),
        call_mean_min=float(call_means.min()),
        call_mean_max=float(call_means.max()),
        interval=(float(np.quantile(boot, 0.05)), float(np.quantile(boot, 0.95))),
        n_calls=m,
    )
