"""``rolecheck plan``: how many trials per arm, estimated from an A/A pilot by resampling.

A *pilot* is a small run in which both arms send the same request (an A/A run):
every difference between its calls is call-to-call jitter. From it the command
estimates the noise floor (the mean distance between two calls of the same
configuration) and its spread, then simulates comparisons of ``n`` calls per arm
by resampling the pilot's calls, for increasing ``n``:

* **certifying equivalence** at ``--tolerance``: both simulated arms are drawn
  from the pilot, so nothing changed; the share of simulations whose verdict
  is ``equivalent`` (upper bound of the change
  ``cross - min(within_a, within_b)`` below the tolerance,
  :func:`pytest_rolecheck.core.stats.change_bound`) is the power to certify
  equivalence with ``n`` trials (what ``assert_*_equivalent`` needs);
* **detecting an effect** of ``--effect`` (in the metric's units, like the
  tolerance): the same simulated arms, with each call of arm B moved away from
  every call of arm A by ``effect x w``, where ``w`` is the relative jitter of
  a randomly chosen pilot call (its mean distance to the other pilot calls
  divided by the floor; ``w`` averages 1). The change therefore is ``effect``
  on average and varies from call to call as much as the pilot's jitter does.
  The share of simulations whose verdict (:func:`pytest_rolecheck.core.stats.decide`
  on the permutation test and the same bound the engine uses) is
  ``different`` is the power to detect it (what ``assert_*_differ`` needs): a
  significant p-value alone is not enough: the change must also be shown
  larger than the tolerance. A change below the tolerance is *meant* to pass
  as equivalent; the plan says so instead of giving a number of trials. The
  model assumes each arm's own jitter stays as in the pilot and that every B
  call carries the change; a change that also adds noise, or shows in only
  some calls, needs more trials than this predicts (the output says so).

Resampling: a simulated run splits ``2n`` distinct pilot calls into two arms,
so only ``n <= m // 2`` can be simulated from ``m`` pilot calls (no call is
ever used twice: a copy would sit at an impossible distance 0 from itself, or
at a made-up one, and bias the table). Larger ``n`` are *extrapolated* from
the runs at ``m // 2`` and marked so: the A/A change estimate and its standard
error shrink like ``n**-beta``, ``beta`` fitted to the simulated rows and
clipped to [0.5, 1] (1/n is the rate when nothing changed, 1/sqrt(n) the
slowest plausible one); with the change, the estimate's spread and SE shrink
like ``1/sqrt(n)`` around its mean and the jackknife lower bound stands in for
the permutation test; with a metric in [0, 1] no row's upper bound is below
``1 - alpha ** (1/n)``, the guard against changes too rare to be seen. The
shares are made non-decreasing in ``n`` (pool adjacent violators) before the
smallest sufficient ``n`` is read off. Each
``n`` uses its own generator seeded with ``(seed, n)``, so a plan is
reproducible and adding ``n`` values does not change the others. Simulated
permutation tests use 199 random relabellings (exact enumeration when there
are at most 1,000), enough to tell ``p <= 0.05`` apart.

Choosing the tolerance
----------------------
The tolerance is the largest change you accept, in the metric's units (for
``js``/``tv`` the share of probability mass moved). Choose it *before* looking
at the A/B data, from what matters for your product; the table printed here
shows, for each ``n``, how large the upper bound typically is when nothing
changed. A tolerance below that cannot be certified at that ``n``. Never
derive it from the comparison you are testing (e.g. "just above its observed
change"): the test would then certify whatever it measured.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final

from ..errors import RolecheckUsageError
from ..verdicts.numbers import fmt_value
from .types import float_in, int_at_least

if TYPE_CHECKING:  # numpy loads only when a plan is computed: `rolecheck --help` stays fast
    import numpy as np
    import numpy.typing as npt

    FloatArray = npt.NDArray[np.float64]

EXIT_OK: Final = 0
EXIT_USAGE: Final = 2
MIN_TRIALS: Final = 4
# Two arms of MIN_TRIALS distinct calls: smaller pilots cannot simulate a single row.
MIN_PILOT: Final = 2 * MIN_TRIALS
DEFAULT_GRID: Final = (4, 5, 6, 7, 8, 10, 12, 14, 16, 20, 25, 30, 40, 50, 60, 80, 100, 150, 200)
_SIM_RESAMPLES: Final = 199
_SIM_MAX_EXACT: Final = 1000
_SLOWEST_RATE: Final = 0.5

_EPILOG: Final = """\
choosing the tolerance:
  The tolerance is the largest change you accept, in the metric's units (js/tv: the
  share of probability mass moved; default 0.2). Choose it before looking at the A/B
  data, from what matters for your product (the table shows how large the upper bound
  gets when nothing changed). Never derive it from the comparison you are testing:
  the test would certify whatever it measured.

pilot size:
  A pilot of m calls simulates up to m/2 trials per arm (two arms of distinct calls);
  larger rows are extrapolated and marked so. Record 2 x the trials you expect to need.

examples:
  rolecheck compare --local --variant-a a.yaml --variant-b a.yaml --trials 20 \\
      --cassette pilot.json                      # an A/A pilot of 40 calls
  rolecheck plan pilot.json --tolerance 0.2 --effect 0.5
  rolecheck plan report.json --comparison 2 --arm all
"""


# --------------------------------------------------------------------------- results


@dataclass(frozen=True, slots=True)
class Pilot:
    """Distances between the calls of one configuration (the A/A pilot)."""

    matrix: FloatArray
    metric: str
    source: str
    notes: tuple[str, ...] = ()

    @property
    def n(self) -> int:
        """Number of pilot calls."""
        return int(self.matrix.shape[0])


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


@dataclass(frozen=True, slots=True)
class PlanRow:
    """Outcomes with ``n`` calls per arm.

    ``p_equivalent``: share of A/A runs whose verdict is ``equivalent``;
    ``p_detect``: share of runs with the change whose verdict is
    ``different`` (None without ``--effect``). Both as made non-decreasing in
    ``n`` by :func:`plan_trials` (``p_detect`` only when ``effect > tolerance``).
    ``extrapolated``: ``2n`` exceeds the pilot's calls, so the row is scaled
    from the largest simulated one instead of simulated.
    """

    n: int
    p_equivalent: float
    median_upper: float
    q90_upper: float
    p_detect: float | None
    extrapolated: bool = False


@dataclass(frozen=True, slots=True)
class Plan:
    """The result of :func:`plan_trials`."""

    floor: FloorEstimate
    rows: tuple[PlanRow, ...]
    n_equivalence: int | None
    n_detect: int | None
    deterministic: bool
    tolerance: float
    effect: float | None
    alpha: float
    power: float
    replications: int
    seed: int
    max_trials: int
    pilot_calls: int
    beta: float | None  # fitted SE exponent, when some row is extrapolated


# --------------------------------------------------------------------------- pilot loading


def _fail(message: str) -> RolecheckUsageError:
    return RolecheckUsageError(message)


def _read_json(path: Path) -> Any:
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise _fail(
            f"no pilot file at {path}; pass a cassette of an A/A run (rolecheck compare "
            "--cassette PATH) or a JSON report (pytest --rolecheck-report=PATH)."
        ) from None
    except (OSError, UnicodeDecodeError) as exc:
        raise _fail(f"{path}: cannot be read ({exc}).") from None
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        raise _fail(
            f"{path}:{exc.lineno}:{exc.colno}: not valid JSON ({exc.msg}); a pilot is a "
            "rolecheck cassette or JSON report."
        ) from None


def load_pilot(
    path: Path, *, metric: str = "js", arm: str | None = None, comparison: int | None = None
) -> Pilot:
    """Read a pilot from a cassette or a JSON report.

    Parameters
    ----------
    path : pathlib.Path
        A rolecheck cassette (the calls are re-measured with ``metric``) or a
        JSON report (the stored distance matrix is used, in its own metric).
    metric : str, default "js"
        Per-call distance for cassettes.
    arm : {"1", "2", ..., "all"}, optional
        Which calls form the pilot. Cassette: the group of identical requests
        (numbered in order of first appearance; default: the only group, else
        1). Report: 1 = arm A, 2 = arm B, all = both arms (default: all when
        the arms carry the labels ``X (A)``/``X (B)`` of an A/A comparison, else
        1).
    comparison : int, optional
        Report only: which comparison (1-based; default the first logprob one).

    Returns
    -------
    Pilot

    Raises
    ------
    RolecheckUsageError
        Missing or unreadable file, neither a cassette nor a report, an arm or
        comparison that does not exist, or fewer than 4 pilot calls.
    """
    data = _read_json(path)
    if isinstance(data, Mapping) and "rolecheck_cassette" in data:
        if comparison is not None:
            raise _fail("--comparison applies to JSON reports; this pilot is a cassette.")
        return _pilot_from_cassette(path, data, metric=metric, arm=arm)
    if isinstance(data, Mapping) and "comparisons" in data:
        return _pilot_from_report(path, data, arm=arm, comparison=comparison)
    raise _fail(
        f"{path} is neither a rolecheck cassette (no 'rolecheck_cassette' key) nor a JSON "
        "report (no 'comparisons' key)."
    )


def _instruction_role(messages: Any) -> str:
    if isinstance(messages, list):
        for message in messages:
            if isinstance(message, Mapping) and message.get("role") in ("system", "developer"):
                return str(message["role"])
    return "no instruction"


def _pilot_from_cassette(
    path: Path, data: Mapping[str, Any], *, metric: str, arm: str | None
) -> Pilot:
    from ..core.distances import distance_matrix
    from ..core.parse import parse_response
    from ..errors import ResponseFormatError

    items = data.get("interactions")
    if not isinstance(items, list):
        raise _fail(f"{path}: 'interactions' is not a list; the cassette is corrupt.")
    ordered = sorted(
        (i for i in items if isinstance(i, Mapping)), key=lambda i: int(i.get("index", 0))
    )
    groups: dict[str, list[Any]] = {}
    described: dict[str, str] = {}
    for item in ordered:
        request = (item.get("request") or {}).get("body") or {}
        response = item.get("response") or {}
        body = (response.get("body") or {}).get("json")
        status = (response.get("status") or {}).get("code")
        if status != 200 or body is None:
            continue
        tree = request.get("json") if isinstance(request, Mapping) else None
        # Sampled calls carry a seed of their own: the same request otherwise.
        same = {k: v for k, v in tree.items() if k != "seed"} if isinstance(tree, dict) else tree
        key = json.dumps(same, sort_keys=True)
        try:
            call = parse_response(body)
        except ResponseFormatError as exc:
            raise _fail(
                f"{path}: call #{item.get('index')} cannot be used as a pilot: {exc}"
            ) from None
        if key not in groups:
            groups[key] = []
            req = tree if isinstance(tree, Mapping) else {}
            described[key] = (
                f"model {req.get('model')}, instruction role "
                f"{_instruction_role(req.get('messages'))}, temperature {req.get('temperature')}"
            )
        groups[key].append(call)
    if not groups:
        raise _fail(f"{path}: the cassette holds no successful chat completion to use as pilot.")
    keys = list(groups)
    notes: list[str] = []
    if arm in (None, "all") and len(keys) == 1:
        chosen = keys
    elif arm == "all":
        chosen = keys
        notes.append(
            "--arm all pools requests that differ: only right if they are the same "
            "configuration (the floor includes any real difference between them)."
        )
    else:
        number = _arm_number(arm or "1", len(keys), "request group")
        chosen = [keys[number - 1]]
        if len(keys) > 1:
            listing = "; ".join(
                f"{i}: {len(groups[k])} calls ({described[k]})" for i, k in enumerate(keys, 1)
            )
            notes.append(
                f"the cassette holds {len(keys)} different requests ({listing}); using group "
                f"{number} as the A/A pilot (choose another with --arm N)."
            )
    calls = [c for k in chosen for c in groups[k]]
    _check_size(len(calls), path)
    desc = ", ".join(described[k] for k in chosen)
    return Pilot(
        matrix=distance_matrix(calls, metric),
        metric=metric,
        source=f"cassette {path}: {len(calls)} calls ({desc})",
        notes=tuple(notes),
    )


def _arm_number(arm: str, count: int, what: str) -> int:
    try:
        number = int(arm)
    except ValueError:
        number = 0
    if not 1 <= number <= count:
        raise _fail(f"--arm {arm}: expected all or a {what} number from 1 to {count}.")
    return number


def _check_size(n: int, path: Path) -> None:
    if n < MIN_PILOT:
        raise _fail(
            f"{path}: the pilot has {n} call(s); at least {MIN_PILOT} are needed (two arms of "
            f"{MIN_TRIALS} distinct calls; 20-40 give a usable noise floor and simulate up to "
            "10-20 trials per arm). Record a larger A/A run."
        )


def _pilot_from_report(
    path: Path, data: Mapping[str, Any], *, arm: str | None, comparison: int | None
) -> Pilot:
    import numpy as np

    rows = data.get("comparisons")
    if not isinstance(rows, list) or not rows:
        raise _fail(f"{path}: the report has no comparisons.")
    usable = [
        i
        for i, r in enumerate(rows, 1)
        if isinstance(r, Mapping) and (r.get("details") or {}).get("matrix")
    ]
    if comparison is None:
        if not usable:
            raise _fail(
                f"{path}: no comparison in this report carries a distance matrix (tool-call "
                "comparisons have none); use a report of a logprob comparison."
            )
        comparison = usable[0]
    if comparison not in usable:
        raise _fail(
            f"--comparison {comparison}: expected one of {', '.join(map(str, usable)) or 'none'} "
            f"(the comparisons of {path} with a distance matrix)."
        )
    row = rows[comparison - 1]
    details = row["details"]
    matrix = np.array(
        [[np.nan if x is None else float(x) for x in r] for r in details["matrix"]], dtype=float
    )
    n_a = int(details.get("n_a") or row.get("n_a") or 0)
    labels = [str(x) for x in details.get("labels") or ["A", "B"]]
    aa = (
        len(labels) == 2
        and labels[0].endswith(" (A)")
        and labels[1].endswith(" (B)")
        and labels[0][:-4] == labels[1][:-4]
    )
    notes: list[str] = []
    choice = arm or ("all" if aa else "1")
    if choice == "all":
        index = np.arange(matrix.shape[0])
        if not aa:
            notes.append(
                f"--arm all pools {labels[0]!r} and {labels[1]!r}: only right for an A/A run."
            )
        what = "both arms"
    else:
        number = _arm_number(choice, 2, "arm")
        index = np.arange(n_a) if number == 1 else np.arange(n_a, matrix.shape[0])
        what = f"arm {labels[number - 1]!r}"
        if arm is None:
            notes.append(
                f"using the calls of {what} as the A/A pilot; if this comparison was an A/A "
                "run, pass --arm all to use both arms."
            )
    sub = matrix[np.ix_(index, index)]
    if not np.all(np.isfinite(sub)):
        raise _fail(f"{path}: comparison {comparison} has missing distances; re-run it.")
    _check_size(sub.shape[0], path)
    return Pilot(
        matrix=sub,
        metric=str(details.get("metric", "js")),
        source=(
            f"report {path}, comparison {comparison} ({row.get('title', '')}): "
            f"{sub.shape[0]} calls of {what}"
        ),
        notes=tuple(notes),
    )


# --------------------------------------------------------------------------- simulation


def _validate_matrix(matrix: npt.ArrayLike) -> FloatArray:
    import numpy as np

    d = np.asarray(matrix, dtype=float)
    if d.ndim != 2 or d.shape[0] != d.shape[1] or d.shape[0] < MIN_PILOT:
        raise _fail(
            f"the pilot matrix must be square with at least {MIN_PILOT} calls, got shape {d.shape}."
        )
    if not np.all(np.isfinite(d)) or np.any(d < 0):
        raise _fail("the pilot matrix must hold finite distances >= 0.")
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
    import numpy as np

    d = _validate_matrix(matrix)
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


@dataclass(frozen=True, slots=True)
class _Draws:
    """Per-replicate outcomes of the simulated comparisons with ``n`` calls per arm."""

    n: int
    rho: FloatArray  # A/A: change estimate
    se: FloatArray  # A/A: its jackknife standard error
    upper: FloatArray  # A/A: 95% upper bound of the change, as the engine computes it
    shifted_rho: FloatArray | None  # with the change: change estimate
    shifted_se: FloatArray | None
    different: FloatArray | None  # with the change: 1.0 where the verdict was "different"
    significant: FloatArray | None  # with the change: 1.0 where p <= alpha


def _split(d: FloatArray, n: int, rng: np.random.Generator) -> FloatArray:
    """Two arms of ``n`` distinct pilot calls each (needs ``2n <= m``)."""
    import numpy as np

    idx = rng.permutation(d.shape[0])[: 2 * n]
    return d[np.ix_(idx, idx)]


def _simulate(
    d: FloatArray,
    weights: FloatArray,
    floor: float,
    n: int,
    *,
    tolerance: float,
    effect: float | None,
    alpha: float,
    bounded: bool,
    replications: int,
    seed: int,
) -> _Draws:
    import numpy as np

    from ..core.stats import change_bound, decide, permutation_test

    rng = np.random.default_rng([seed, n])
    rho, se, upper = (np.empty(replications) for _ in range(3))
    s_rho, s_se, different, significant = (np.empty(replications) for _ in range(4))
    for r in range(replications):
        sub = _split(d, n, rng)
        bound = change_bound(sub, n, alpha=alpha, bounded=bounded)
        rho[r], se[r], upper[r] = bound.estimate, bound.se, bound.upper
        if effect is None:
            continue
        shifted = sub.copy()
        # Each B call moves by its own amount: the jitter of a random pilot call.
        move = effect * rng.choice(weights, size=n)
        shifted[:n, n:] += move[None, :]
        shifted[n:, :n] += move[:, None]
        moved = change_bound(shifted, n, alpha=alpha, bounded=bounded)
        s_rho[r], s_se[r] = moved.estimate, moved.se
        p = permutation_test(
            shifted, n, seed=seed + r, max_exact=_SIM_MAX_EXACT, n_resamples=_SIM_RESAMPLES
        ).p_value
        # The verdict assert_*_differ needs: significant and shown above the tolerance.
        verdict = decide(
            p_value=p, alpha=alpha, bound=moved, tolerance=tolerance, n=n, bounded=bounded
        ).verdict
        different[r] = verdict == "different"
        significant[r] = p <= alpha
    return _Draws(
        n=n,
        rho=rho,
        se=se,
        upper=upper,
        shifted_rho=None if effect is None else s_rho,
        shifted_se=None if effect is None else s_se,
        different=None if effect is None else different,
        significant=None if effect is None else significant,
    )


def _fit_exponent(draws: Sequence[_Draws]) -> float:
    """``beta`` in ``SE ~ n**-beta``, fitted to the simulated rows, clipped to [0.5, 1].

    Under no change the estimate is a degenerate statistic whose standard error
    shrinks like ``1/n``; ``1/sqrt(n)`` is the slowest plausible rate. The
    clip keeps a noisy fit on few rows inside that range.
    """
    import numpy as np

    xs: list[float] = []
    ys: list[float] = []
    for dr in draws:
        ok = dr.se[np.isfinite(dr.se) & (dr.se > 0)]
        if 2 * ok.size >= dr.se.size:  # a median over mostly unbounded runs says nothing
            xs.append(math.log(dr.n))
            ys.append(math.log(float(np.median(ok))))
    if len(xs) < 2:
        return _SLOWEST_RATE
    slope = float(np.polyfit(xs, ys, 1)[0])
    return min(max(-slope, _SLOWEST_RATE), 1.0)


def _monotone(values: Sequence[float]) -> list[float]:
    """Least-squares non-decreasing fit (pool adjacent violators, equal weights).

    References
    ----------
    .. [1] R. E. Barlow, D. J. Bartholomew, J. M. Bremner and H. D. Brunk,
       "Statistical Inference under Order Restrictions", Wiley, 1972.
    """
    blocks: list[tuple[float, int]] = []
    for value in values:
        total, count = value, 1
        while blocks and blocks[-1][0] / blocks[-1][1] > total / count:
            prev_total, prev_count = blocks.pop()
            total, count = total + prev_total, count + prev_count
        blocks.append((total, count))
    return [total / count for total, count in blocks for _ in range(count)]


class _Planner:
    """Rows of the plan, simulated (``2n <= m``) or extrapolated from the largest split."""

    def __init__(
        self,
        d: FloatArray,
        floor: float,
        *,
        tolerance: float,
        effect: float | None,
        alpha: float,
        bounded: bool,
        replications: int,
        seed: int,
    ) -> None:
        self.d = d
        self.floor = floor
        self.tolerance = tolerance
        self.bounded = bounded
        self.effect = effect
        self.alpha = alpha
        self.replications = replications
        self.seed = seed
        self.largest = d.shape[0] // 2
        self.weights = (d.sum(axis=1) / (d.shape[0] - 1)) / floor
        self._draws: dict[int, _Draws] = {}
        self._rows: dict[int, PlanRow] = {}
        self._beta: float | None = None

    def draws(self, n: int) -> _Draws:
        if n not in self._draws:
            self._draws[n] = _simulate(
                self.d,
                self.weights,
                self.floor,
                n,
                tolerance=self.tolerance,
                effect=self.effect,
                alpha=self.alpha,
                bounded=self.bounded,
                replications=self.replications,
                seed=self.seed,
            )
        return self._draws[n]

    @property
    def beta(self) -> float:
        # Fitted on a fixed set of rows, so the exponent (and every extrapolated row) does not
        # depend on which rows the search happened to visit.
        if self._beta is None:
            fit = sorted({n for n in DEFAULT_GRID if n <= self.largest} | {self.largest})
            self._beta = _fit_exponent([self.draws(n) for n in fit])
        return self._beta

    def row_ns(self) -> list[int]:
        """The ``n`` of every row computed so far."""
        return sorted(self._rows)

    def row(self, n: int) -> PlanRow:
        """The unsmoothed row for ``n`` calls per arm."""
        if n not in self._rows:
            self._rows[n] = self._simulated(n) if n <= self.largest else self._extrapolated(n)
        return self._rows[n]

    def rows(self) -> tuple[PlanRow, ...]:
        """Every row computed so far, by ``n``, with the shares made non-decreasing in ``n``."""
        import dataclasses

        raw = [self._rows[n] for n in sorted(self._rows)]
        eq = _monotone([r.p_equivalent for r in raw])
        if self.effect is not None and self.effect > self.tolerance:
            det: list[float | None] = list(_monotone([r.p_detect or 0.0 for r in raw]))
        else:
            # Below the tolerance more trials *certify* the change: no monotone trend to impose.
            det = [r.p_detect for r in raw]
        return tuple(
            dataclasses.replace(r, p_equivalent=e, p_detect=p)
            for r, e, p in zip(raw, eq, det, strict=True)
        )

    def _summary(
        self, n: int, upper: FloatArray, different: FloatArray | None, extrapolated: bool
    ) -> PlanRow:
        import numpy as np

        finite = np.where(np.isfinite(upper), upper, np.inf)
        return PlanRow(
            n=n,
            p_equivalent=float(np.mean(finite < self.tolerance)),
            # inverted_cdf never interpolates, so an unbounded (inf) bound gives inf, not NaN
            median_upper=float(np.quantile(finite, 0.5, method="inverted_cdf")),
            q90_upper=float(np.quantile(finite, 0.9, method="inverted_cdf")),
            p_detect=None if different is None else float(np.mean(different)),
            extrapolated=extrapolated,
        )

    def _simulated(self, n: int) -> PlanRow:
        dr = self.draws(n)
        return self._summary(n, dr.upper, dr.different, extrapolated=False)

    def _extrapolated(self, n: int) -> PlanRow:
        import numpy as np
        from scipy import stats

        from ..core.stats import smallest_certifiable

        base = self.draws(self.largest)
        t_upper = float(stats.t.ppf(1.0 - self.alpha, n - 1))
        guard = smallest_certifiable(n, self.alpha) if self.bounded else -np.inf
        # A/A: estimate and SE both shrink like n**-beta around 0.
        scale = (self.largest / n) ** self.beta
        with np.errstate(invalid="ignore"):
            upper = (base.rho + t_upper * base.se) * scale
        upper = np.maximum(np.where(np.isnan(upper), np.inf, upper), guard)
        different: FloatArray | None = None
        if (
            base.shifted_rho is not None
            and base.shifted_se is not None
            and base.significant is not None
        ):
            # With a real change the estimate converges to it and its SE shrinks like
            # 1/sqrt(n). A run significant at n0 stays so with more calls; for the others the
            # jackknife lower bound above 0 stands in for the permutation test. An unbounded
            # SE stays unbounded: never equivalent, and no new significance.
            ok = np.isfinite(base.shifted_rho) & np.isfinite(base.shifted_se)
            centre = float(np.mean(base.shifted_rho[ok])) if ok.any() else 0.0
            shrink = math.sqrt(self.largest / n)
            est = np.where(ok, centre + (base.shifted_rho - centre) * shrink, 0.0)
            se = np.where(ok, base.shifted_se * shrink, 0.0)
            t_lower = float(stats.t.ppf(1.0 - self.alpha / 2, n - 1))
            lower = np.where(ok, est - t_lower * se, -np.inf)
            detected = ((base.significant > 0) | (lower > 0)) & (lower > self.tolerance)
            different = detected.astype(float)
        return self._summary(n, upper, different, extrapolated=True)


def _validate_plan(
    tolerance: float,
    effect: float | None,
    alpha: float,
    power: float,
    replications: int,
    max_trials: int,
) -> None:
    if not tolerance > 0 or not math.isfinite(tolerance):
        raise _fail(f"--tolerance {tolerance}: expected a number > 0 (e.g. 0.2).")
    if effect is not None and (not effect > 0 or not math.isfinite(effect)):
        raise _fail(f"--effect {effect}: expected a number > 0 (in the metric's units).")
    if not 0 < alpha < 1:
        raise _fail(f"--alpha {alpha}: expected a number in (0, 1).")
    if not 0 < power < 1:
        raise _fail(f"--power {power}: expected a number in (0, 1), e.g. 0.8.")
    if replications < 20:
        raise _fail(f"--replications {replications}: expected at least 20 (default 200).")
    if max_trials < MIN_TRIALS:
        raise _fail(f"--max-trials {max_trials}: expected at least {MIN_TRIALS}.")


def plan_trials(
    matrix: npt.ArrayLike,
    *,
    tolerance: float | None = None,
    effect: float | None = None,
    alpha: float = 0.05,
    bounded: bool = True,
    power: float = 0.8,
    replications: int = 200,
    seed: int = 0,
    max_trials: int = 200,
) -> Plan:
    """Trials per arm needed to certify equivalence / detect an effect, by resampling a pilot.

    Parameters
    ----------
    matrix : array_like, shape (m, m)
        Distances between the calls of an A/A pilot (one configuration),
        ``m >= 8``.
    tolerance : float, optional
        The largest change that still counts as equivalent (metric units);
        default :data:`~pytest_rolecheck.core.stats.DEFAULT_TOLERANCE`.
    effect : float, optional
        Effect to detect, in the metric's units: each simulated call of arm B
        moves away from the calls of arm A by ``effect * w`` (``w``: relative
        jitter of a random pilot call, mean 1). None: plan for equivalence only.
    alpha : float, default 0.05
        Significance level of the difference test.
    bounded : bool, default True
        The metric's values lie in [0, 1] (js, tv, first_token): the bounds
        include the unseen-change guard.
    power : float, default 0.8
        Required share of simulated runs reaching the goal.
    replications : int, default 200
        Simulated runs per ``n``.
    seed : int, default 0
        Seed; each ``n`` uses ``numpy.random.default_rng([seed, n])``.
    max_trials : int, default 200
        Largest ``n`` tried.

    Returns
    -------
    Plan
        The floor estimate, the table and the smallest ``n`` reaching
        ``power`` for each goal (None when ``max_trials`` is not enough, and
        for detection when ``effect <= tolerance``: such a change is meant to be
        certified equivalent). A deterministic pilot (floor 0) needs no
        simulation: 4 trials detect any difference, and equivalence means
        identical outputs.

    Raises
    ------
    RolecheckUsageError
        Invalid arguments or pilot matrix.

    Notes
    -----
    Rows with ``2n <= m`` are simulated: each run splits ``2n`` distinct
    pilot calls into two arms and applies the engine's own rules (the bounds
    of :func:`pytest_rolecheck.core.stats.change_bound`, the
    permutation test and :func:`pytest_rolecheck.core.stats.decide`). A row counts
    as detecting the change only where the verdict is ``different``.

    Rows with ``2n > m`` are extrapolated from the runs at ``n0 = m // 2``
    (no pilot call is used twice): without a change, the change estimate and
    its standard error are scaled by ``(n0 / n) ** beta`` (the upper bound never
    below the unseen-change guard), ``beta`` fitted to
    the simulated rows and clipped to [0.5, 1]; with the change, the estimate
    shrinks towards its mean and its SE like ``sqrt(n0 / n)``, and the
    jackknife lower bound above 0 stands in for the permutation test.

    The shares are made non-decreasing in ``n`` by pooling adjacent
    violators before the smallest passing ``n`` is read off (not for
    detection when ``effect <= tolerance``, whose share falls as ``n`` grows).
    The grid 4, 5, 6, 7, 8, 10, 12, ... is searched until both goals are
    reached, then the gap below the first passing value is bisected.
    Monte-Carlo error of a share is about ``sqrt(p (1 - p) / R)`` (0.028 at
    p = 0.8 and R = 200).

    References
    ----------
    .. [1] B. Efron and R. J. Tibshirani, "An Introduction to the Bootstrap",
       Chapman & Hall, 1993.
    .. [2] D. N. Politis, J. P. Romano and M. Wolf, "Subsampling", Springer,
       1999 (subsamples without replacement; rate estimation, ch. 8).
    .. [3] M. J. Anderson, "A new method for non-parametric multivariate
       analysis of variance", Austral Ecology 26, pp. 32-46, 2001.
    """
    from ..core.stats import DEFAULT_TOLERANCE

    d = _validate_matrix(matrix)
    if tolerance is None:
        tolerance = DEFAULT_TOLERANCE
    _validate_plan(tolerance, effect, alpha, power, replications, max_trials)
    floor = estimate_floor(d, seed=seed)
    common: dict[str, Any] = {
        "tolerance": tolerance,
        "effect": effect,
        "alpha": alpha,
        "power": power,
        "replications": replications,
        "seed": seed,
        "max_trials": max_trials,
        "pilot_calls": d.shape[0],
    }
    if floor.floor == 0.0:
        return Plan(
            floor=floor,
            rows=(),
            n_equivalence=MIN_TRIALS,
            n_detect=MIN_TRIALS if effect is not None else None,
            deterministic=True,
            beta=None,
            **common,
        )
    planner = _Planner(
        d,
        floor.floor,
        tolerance=tolerance,
        effect=effect,
        alpha=alpha,
        bounded=bounded,
        replications=replications,
        seed=seed,
    )
    goals = ["eq"] + (["detect"] if effect is not None and effect > tolerance else [])

    def first(goal: str) -> int | None:
        for r in planner.rows():
            value = r.p_equivalent if goal == "eq" else r.p_detect
            if value is not None and value >= power:
                return r.n
        return None

    grid = [n for n in DEFAULT_GRID if n <= max_trials]
    if grid[-1] != max_trials:
        grid.append(max_trials)
    previous = MIN_TRIALS - 1
    for n in grid:
        planner.row(n)
        for goal in goals:
            hit = first(goal)
            if hit is not None and hit > previous:
                # Bisect the gap below the first passing grid value; the monotone fit is redone
                # with every new row, and the answer is read off the final fit below.
                low, high = previous, hit
                while high - low > 1:
                    mid = (low + high) // 2
                    planner.row(mid)
                    hit = first(goal)
                    if hit is not None and hit <= mid:
                        high = mid
                    else:
                        low = mid
        if all(first(goal) is not None for goal in goals):
            break
        previous = n
    return Plan(
        floor=floor,
        rows=planner.rows(),
        n_equivalence=first("eq"),
        n_detect=first("detect") if "detect" in goals else None,
        deterministic=False,
        beta=planner.beta if max(planner.row_ns()) > planner.largest else None,
        **common,
    )


# --------------------------------------------------------------------------- CLI


def add_parser(subparsers: Any) -> argparse.ArgumentParser:
    """Add ``rolecheck plan`` to the ``rolecheck`` command.

    Parameters
    ----------
    subparsers
        The object returned by ``ArgumentParser.add_subparsers``.

    Returns
    -------
    argparse.ArgumentParser
        The new subparser (its ``handler`` default is :func:`run`).
    """
    parser: argparse.ArgumentParser = subparsers.add_parser(
        "plan",
        help="trials per arm needed for equivalence / to detect an effect, from an A/A pilot",
        description=(
            "Estimate the noise floor from an A/A pilot (a cassette of a run whose arms send "
            "the same request, or a JSON report of one) and, by resampling the pilot's calls "
            "(seeded), how many trials per arm certify equivalence at --tolerance, or detect a "
            "change of --effect (metric units), with the requested power (default 80%)."
        ),
        epilog=_EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("pilot", type=Path, help="cassette (.json) or JSON report of the pilot")
    parser.add_argument(
        "--tolerance",
        type=float_in(0.0, None, low_open=True),
        default=None,
        help="largest change that still counts as equivalent, in the metric's units "
        "(js/tv: share of probability mass moved; default: 0.2)",
    )
    parser.add_argument(
        "--effect",
        type=float_in(0.0, None, low_open=True),
        default=None,
        help="change to detect, in the metric's units (e.g. 0.5: half the probability "
        "mass moves); at or below --tolerance such a change is meant to pass as equivalent",
    )
    parser.add_argument(
        "--alpha",
        type=float_in(0.0, 1.0, low_open=True, high_open=True),
        default=0.05,
        help="significance level of the difference test (default: %(default)s)",
    )
    parser.add_argument(
        "--power",
        type=float_in(0.0, 1.0, low_open=True, high_open=True),
        default=0.8,
        help="required power (default: %(default)s)",
    )
    parser.add_argument(
        "--metric",
        default="js",
        help="distance for cassette pilots (default: js; reports keep theirs)",
    )
    parser.add_argument(
        "--arm",
        default=None,
        help="which calls are the pilot: a request group of a cassette / 1 = A, "
        "2 = B of a report, or all (default: see the docs)",
    )
    parser.add_argument(
        "--comparison",
        type=int_at_least(1),
        default=None,
        help="report pilots: which comparison, 1-based (default: the first with a distance matrix)",
    )
    parser.add_argument(
        "--replications",
        type=int_at_least(20),
        default=200,
        help="simulated runs per number of trials (default: %(default)s)",
    )
    parser.add_argument(
        "--seed",
        type=int_at_least(0),
        default=0,
        help="seed of the resampling (default: %(default)s)",
    )
    parser.add_argument(
        "--max-trials",
        type=int_at_least(MIN_TRIALS),
        default=200,
        help="largest number of trials per arm tried (default: %(default)s)",
    )
    parser.set_defaults(handler=run)
    return parser


def _fmt(value: float, digits: int = 4) -> str:
    return fmt_value(value, digits)


def format_plan(pilot: Pilot, plan: Plan) -> list[str]:
    """Lines that ``rolecheck plan`` prints.

    Parameters
    ----------
    pilot : Pilot
        Where the numbers come from.
    plan : Plan
        The result of :func:`plan_trials`.

    Returns
    -------
    list of str
    """
    from ..core.divergence import METRIC_UNITS

    unit = METRIC_UNITS.get(pilot.metric, "metric units")
    f = plan.floor
    lines = [f"pilot: {pilot.source}; metric {pilot.metric} ({unit})"]
    lines += [f"note: {note}" for note in pilot.notes]
    if plan.deterministic:
        lines += [
            "",
            "noise floor: 0 -- deterministic backend: every pilot call gave exactly the same "
            "output.",
            "No statistics are needed on such a backend: any difference between two arms is "
            f"detected with the minimum of {MIN_TRIALS} trials per arm, and equivalence means "
            "identical outputs (also shown with "
            f"{MIN_TRIALS} trials). The change is then known exactly and compared with the "
            "tolerance directly.",
            f"trials per arm: {MIN_TRIALS}",
        ]
        return lines
    largest = plan.pilot_calls // 2
    lines += [
        "",
        f"noise floor (mean distance between two pilot calls): {_fmt(f.floor)} {unit}",
        f"  90% bootstrap interval at {f.n_calls} calls: {_fmt(f.interval[0])} .. "
        f"{_fmt(f.interval[1])}",
        f"  pair distances: std {_fmt(f.pair_std)}, min {_fmt(f.pair_min)}, max "
        f"{_fmt(f.pair_max)}; per-call mean distance {_fmt(f.call_mean_min)} .. "
        f"{_fmt(f.call_mean_max)}",
        "",
        f"simulated comparisons ({plan.replications} per row, seed {plan.seed}): each run splits "
        f"2 x trials distinct pilot calls into two arms (up to {largest} trials per arm with "
        f"{plan.pilot_calls} calls); larger rows are extrapolated",
    ]
    detect = plan.effect is not None
    head = f"  {'trials':>6}  {'P(equivalent)':>13}  {'A/A upper bound: median':>23}  "
    head += f"{'90th pct':>8}"
    if detect:
        head += f"  {'P(different)':>12}"
    lines.append(head + "  row")
    for r in plan.rows:
        line = (
            f"  {r.n:>6}  {r.p_equivalent:>13.2f}  {_fmt(r.median_upper, 3):>23}  "
            f"{_fmt(r.q90_upper, 3):>8}"
        )
        if detect:
            line += f"  {r.p_detect or 0.0:>12.2f}"
        lines.append(line + ("  extrapolated" if r.extrapolated else "  simulated"))
    lines.append(
        "  P(equivalent): share of A/A runs with verdict `equivalent` (upper bound of the "
        f"change < tolerance {plan.tolerance:g})."
    )
    if detect:
        lines.append(
            f"  P(different): share of runs with a change of {plan.effect:g} whose verdict is "
            f"`different` (p <= {plan.alpha:g} and lower bound > tolerance), what "
            "assert_*_differ needs."
        )
    both = plan.effect is not None and plan.effect > plan.tolerance
    monotone = "both shares" if both else "P(equivalent)"
    lines.append(f"  {monotone} made non-decreasing in trials (adjacent rows pooled).")
    if any(r.extrapolated for r in plan.rows):
        lines.append(
            f"  extrapolated rows reuse the {largest}-trial runs: no pilot call is used twice; "
            f"the A/A bound shrinks like trials^-{plan.beta:.2f} (fitted to the simulated rows), "
            "the change's like trials^-0.5. Record a pilot of 2 x trials calls to simulate them."
        )
    if detect:
        lines.append(
            f"  assumed change: every call of arm B moves {plan.effect:g} x w away from "
            "arm A's calls (w: the relative jitter of a random pilot call, mean 1); each arm's "
            "own jitter stays as in the pilot. A change that also makes calls noisier, or shows "
            "in only some calls, needs more trials than P(different) says."
        )
    lines.append("")
    pct = f"{plan.power:.0%}"
    lines.append(
        f"to certify equivalence at tolerance {plan.tolerance:g} with {pct} power: "
        + _answer(plan.n_equivalence, plan, "widen the tolerance (see the A/A upper bounds above)")
    )
    if plan.effect is not None and plan.effect <= plan.tolerance:
        lines.append(
            f"a change of {plan.effect:g} is not above the tolerance {plan.tolerance:g}: it is "
            "meant to pass as equivalent, so no number of trials makes assert_*_differ pass "
            "reliably (P(different) tends to 0 as trials grow). To detect it, choose a "
            f"tolerance below {plan.effect:g}."
        )
    elif plan.effect is not None:
        lines.append(
            f"to detect a change of {plan.effect:g} with {pct} power at alpha "
            f"{plan.alpha:g}: " + _answer(plan.n_detect, plan, "use a larger --effect")
        )
    lines.append(
        "choose the tolerance from what matters to you, before looking at the "
        "A/B data (see `rolecheck plan --help`)"
    )
    return lines


def _answer(n: int | None, plan: Plan, otherwise: str) -> str:
    if n is None:
        return f"more than {plan.max_trials} trials per arm; {otherwise} or raise --max-trials"
    text = f"{n} trials per arm"
    if 2 * n > plan.pilot_calls:
        text += (
            f" (extrapolated beyond the {plan.pilot_calls}-call pilot; an A/A pilot of "
            f"{2 * n} calls would simulate it)"
        )
    return text


def run(args: argparse.Namespace) -> int:
    """Run ``rolecheck plan`` with parsed arguments; return the exit status."""
    from ..core.distances import BOUNDED_METRICS

    try:
        pilot = load_pilot(args.pilot, metric=args.metric, arm=args.arm, comparison=args.comparison)
        plan = plan_trials(
            pilot.matrix,
            tolerance=args.tolerance,
            effect=args.effect,
            alpha=args.alpha,
            bounded=pilot.metric in BOUNDED_METRICS,
            power=args.power,
            replications=args.replications,
            seed=args.seed,
            max_trials=args.max_trials,
        )
    except RolecheckUsageError as exc:
        print(f"rolecheck plan: error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    print("\n".join(format_plan(pilot, plan)))
    return EXIT_OK
