"""Descriptive statistics of distances: per-arm summaries, pair means, Cliff's delta, text flips.

None of these decides anything; they are the numbers a report shows next to the verdict.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt
from scipy import stats as _sps

from ..errors import RolecheckUsageError
from .validation import validate_matrix

__all__ = [
    "ArmSummary",
    "FlipSummary",
    "PairMeans",
    "cliffs_delta",
    "flip_test",
    "pair_means",
    "split_pairs",
    "summarize",
]

FloatArray = npt.NDArray[np.float64]


@dataclass(frozen=True, slots=True)
class ArmSummary:
    """Mean, standard deviation (``ddof=0``, numpy's default), min and max of distances."""

    mean: float
    std: float
    min: float
    max: float
    n: int

    def to_dict(self) -> dict[str, float | int]:
        """Return the fields as a JSON-able dict."""
        return {"mean": self.mean, "std": self.std, "min": self.min, "max": self.max, "n": self.n}


@dataclass(frozen=True, slots=True)
class PairMeans:
    """Mean pair distances of an all-pairs distance matrix.

    ``floor = (within_a + within_b) / 2`` is the pooled call-to-call jitter of
    both arms; 0 means every call within each arm was identical.
    """

    within_a: float
    within_b: float
    cross: float
    floor: float


@dataclass(frozen=True, slots=True)
class FlipSummary:
    """Share of each arm's calls whose text differs from arm A's most common text.

    ``p_value`` is the two-sided Fisher exact test of the 2x2 table
    (changed / unchanged per arm).
    """

    changed_a: int
    changed_b: int
    n_a: int
    n_b: int
    share_a: float
    share_b: float
    p_value: float

    def to_dict(self) -> dict[str, float | int]:
        """Return the fields as a JSON-able dict."""
        return {
            "changed_a": self.changed_a,
            "changed_b": self.changed_b,
            "n_a": self.n_a,
            "n_b": self.n_b,
            "share_a": self.share_a,
            "share_b": self.share_b,
            "p_value": self.p_value,
        }


def summarize(values: npt.ArrayLike) -> ArmSummary:
    """Summarise distances the way the seed experiment printed them.

    Parameters
    ----------
    values : array_like
        Distances (at least one).

    Returns
    -------
    ArmSummary
        Mean, population standard deviation (``ddof=0``), min, max and count.
    """
    x = np.asarray(values, dtype=np.float64).ravel()
    if x.size == 0:
        raise RolecheckUsageError("cannot summarise an empty set of distances; pass at least one.")
    return ArmSummary(
        mean=float(np.mean(x)),
        std=float(np.std(x)),
        min=float(np.min(x)),
        max=float(np.max(x)),
        n=int(x.size),
    )


def split_pairs(distances: npt.ArrayLike, n_a: int) -> tuple[FloatArray, FloatArray, FloatArray]:
    """Return the within-A, within-B and cross pair distances of a matrix.

    Parameters
    ----------
    distances : array_like, shape (n_a + n_b, n_a + n_b)
        Symmetric distance matrix, arm A first.
    n_a : int
        Number of calls in arm A.

    Returns
    -------
    within_a, within_b, cross : ndarray
        Upper-triangle distances within A, within B, and all A x B distances.
    """
    d = validate_matrix(distances, n_a)
    return _split_pairs(d, n_a)


def _split_pairs(d: FloatArray, n_a: int) -> tuple[FloatArray, FloatArray, FloatArray]:
    dA = d[:n_a, :n_a]
    dB = d[n_a:, n_a:]
    return dA[np.triu_indices(n_a, 1)], dB[np.triu_indices(dB.shape[0], 1)], d[:n_a, n_a:].ravel()


def pair_means(distances: npt.ArrayLike, n_a: int) -> PairMeans:
    """Within-arm means, cross mean and jitter floor of a distance matrix.

    Parameters
    ----------
    distances : array_like, shape (n_a + n_b, n_a + n_b)
        Symmetric, zero-diagonal distance matrix; arm A is the first ``n_a``
        calls.
    n_a : int
        Number of calls in arm A.

    Returns
    -------
    PairMeans
        ``floor = (within_a + within_b) / 2``.
    """
    wa, wb, cr = _split_pairs(validate_matrix(distances, n_a), n_a)
    within_a, within_b = float(wa.mean()), float(wb.mean())
    return PairMeans(
        within_a=within_a,
        within_b=within_b,
        cross=float(cr.mean()),
        floor=0.5 * (within_a + within_b),
    )


def cliffs_delta(x: npt.ArrayLike, y: npt.ArrayLike) -> float:
    """Cliff's delta: ``P(X > Y) - P(X < Y)`` over all pairs of the two samples.

    Parameters
    ----------
    x, y : array_like
        The two samples (e.g. cross-arm and within-arm distances).

    Returns
    -------
    float
        A value in [-1, 1]; 0 when neither sample tends to be larger.

    References
    ----------
    .. [1] N. Cliff, "Dominance statistics: Ordinal analyses to answer
       ordinal questions", Psychological Bulletin 114(3), pp. 494-509, 1993.
    """
    xs = np.asarray(x, dtype=np.float64).ravel()
    ys = np.sort(np.asarray(y, dtype=np.float64).ravel())
    if xs.size == 0 or ys.size == 0:
        raise RolecheckUsageError("Cliff's delta needs two non-empty samples.")
    below = np.searchsorted(ys, xs, side="left").sum()  # y < x
    above = ys.size - np.searchsorted(ys, xs, side="right")  # y > x
    return float((below - above.sum()) / (xs.size * ys.size))


def flip_test(texts_a: Sequence[str], texts_b: Sequence[str]) -> FlipSummary:
    """Compare how often each arm's text differs from arm A's most common text.

    A greedy decode that flips one token rewrites the rest of the answer; such
    rare flips are behaviour too, and they are easy to miss in averages. Both
    arms are counted against the *same* reference, A's modal text: counted
    against its own modal text, an arm whose every call gives one new answer
    would show no flips at all.

    Parameters
    ----------
    texts_a, texts_b : sequence of str
        The generated texts of each arm's calls.

    Returns
    -------
    FlipSummary
        Counts, shares and the two-sided Fisher exact p-value.

    References
    ----------
    .. [1] R. A. Fisher, "On the interpretation of chi-square from
       contingency tables, and the calculation of P", J. R. Stat. Soc. 85(1),
       pp. 87-94, 1922.
    """
    if not texts_a or not texts_b:
        raise RolecheckUsageError("flip_test needs at least one text per arm.")
    reference = Counter(texts_a).most_common(1)[0][0]
    changed = [sum(t != reference for t in texts) for texts in (texts_a, texts_b)]
    n_a, n_b = len(texts_a), len(texts_b)
    table = [[changed[0], n_a - changed[0]], [changed[1], n_b - changed[1]]]
    same_share = changed[0] * n_b == changed[1] * n_a
    p = 1.0 if same_share else float(_sps.fisher_exact(table).pvalue)
    return FlipSummary(
        changed_a=changed[0],
        changed_b=changed[1],
        n_a=n_a,
        n_b=n_b,
        share_a=changed[0] / n_a,
        share_b=changed[1] / n_b,
        p_value=min(1.0, p),
    )
