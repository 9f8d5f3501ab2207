"""Permutations within one stratum (a prompt-set case), and the per-case q-values.

The null distribution of a case's change under relabellings of its calls
(every labelling when few, random ones otherwise) and the Benjamini-Hochberg
adjustment across cases; :mod:`~pytest_rolecheck.core.prompt_sets` combines them.
"""

from __future__ import annotations

import functools
import itertools
import math

import numpy as np
import numpy.typing as npt
from scipy import stats as _sps

from ..errors import RolecheckUsageError

__all__ = ["all_labellings", "at_least", "benjamini_hochberg", "case_null", "relabelled_changes"]

FloatArray = npt.NDArray[np.float64]
#: Random labellings are drawn in batches of at most this many matrix cells (memory).
_BATCH_CELLS = 2_000_000


@functools.lru_cache(maxsize=64)
def all_labellings(n: int, n_a: int) -> FloatArray:
    """Every 0/1 labelling of ``n`` calls with ``n_a`` ones (1 = arm A; read-only, cached)."""
    total = math.comb(n, n_a)
    cols = np.fromiter(
        itertools.chain.from_iterable(itertools.combinations(range(n), n_a)),
        dtype=np.intp,
        count=total * n_a,
    )
    z = np.zeros((total, n), dtype=np.float64)
    z[np.repeat(np.arange(total), n_a), cols] = 1.0
    z.flags.writeable = False
    return z


def relabelled_changes(z: FloatArray, d: FloatArray, n_a: int) -> FloatArray:
    """``delta_c`` of the case under each labelling (rows of ``z``, 1 = arm A)."""
    n_b = d.shape[0] - n_a
    total = d.sum() / 2
    dz = z @ d
    s_aa = np.einsum("pi,pi->p", dz, z) / 2
    # Pairs within B: (1 - z)' D (1 - z) / 2 = total - z'D1 + z'Dz / 2.
    s_bb = total - dz.sum(axis=1) + s_aa
    cross = (total - s_aa - s_bb) / (n_a * n_b)
    within = np.minimum(s_aa / math.comb(n_a, 2), s_bb / math.comb(n_b, 2))
    return np.asarray(cross - within, dtype=np.float64)


def case_null(
    d: FloatArray, n_a: int, max_exact: int, n_resamples: int, rng: np.random.Generator
) -> tuple[FloatArray, bool]:
    """Null values of ``delta_c``: every labelling (``exact``) or ``n_resamples`` random ones."""
    n = d.shape[0]
    if math.comb(n, n_a) <= max_exact:
        return relabelled_changes(all_labellings(n, n_a), d, n_a), True
    z_obs = np.zeros(n)
    z_obs[:n_a] = 1.0
    batch = max(1, _BATCH_CELLS // n)
    parts = []
    for start in range(0, n_resamples, batch):
        size = min(batch, n_resamples - start)
        z = rng.permuted(np.broadcast_to(z_obs, (size, n)), axis=1)
        parts.append(relabelled_changes(z, d, n_a))
    return np.concatenate(parts), False


def at_least(values: FloatArray, observed: float) -> npt.NDArray[np.bool_]:
    # Sums of the same distances in another order differ in the last bits; a relabelling
    # that reproduces the observed statistic must count as "at least as large".
    return values >= observed - 1e-9 * max(1.0, abs(observed))


def benjamini_hochberg(p_values: npt.ArrayLike) -> FloatArray:
    """Benjamini-Hochberg adjusted p-values (q-values), in the input order.

    ``q_(i) = min_{j >= i} min(1, m p_(j) / j)`` over the sorted p-values; a
    hypothesis with ``q <= level`` is rejected by the step-up procedure at
    false discovery rate ``level`` (valid for independent p-values, as the
    within-case tests of different cases are).

    References
    ----------
    .. [1] Y. Benjamini and Y. Hochberg, "Controlling the false discovery rate:
       a practical and powerful approach to multiple testing", J. R. Stat.
       Soc. B 57(1), pp. 289-300, 1995.
    """
    p = np.asarray(p_values, dtype=np.float64).ravel()
    if p.size == 0:
        return p
    if not np.all((p >= 0) & (p <= 1)):
        raise RolecheckUsageError("p-values must lie in [0, 1].")
    return np.asarray(_sps.false_discovery_control(p, method="bh"), dtype=np.float64)
