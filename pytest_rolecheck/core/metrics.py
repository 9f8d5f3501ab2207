"""The built-in distances between two chat-completion calls (one pair at a time, readable).

:mod:`~pytest_rolecheck.core.fast_pairs` computes the same values for many pairs at
once; :mod:`~pytest_rolecheck.core.distances` holds the registry and the matrix.

Every metric maps two :class:`~pytest_rolecheck.core.parse.ParsedCall` values to a
finite float ``>= 0``, is symmetric, and gives exactly ``0.0`` for identical
calls. None ever returns NaN.

Construction shared by ``js``, ``tv`` and ``tok_l1``
----------------------------------------------------
At each compared position, each call's listed alternatives (the generated
token always counts as one) define probabilities ``p = exp(logprob)``; a side
whose listed mass exceeds 1 (rounding, merged duplicates) is rescaled to 1.
The support is the union of both sides' tokens, matched by ``Position.key``.
A token that one side did not list gets that side's *floor*::

    floor = min(smallest listed probability,
                (1 - sum of listed probabilities) / number of tokens it is missing)

(it was not in that side's top k, so it is at most the k-th probability, and
the missing tokens cannot together exceed the unlisted mass). Whatever
unlisted mass remains goes to one ``other`` bucket, so each side sums to 1.

Compared positions
------------------
Positions ``0..d`` where ``d`` is the first position whose generated tokens
differ (:func:`divergence_position`). ``d`` is included: its prefix is still
shared, and the flip itself is the behaviour we want to see. Later positions
condition on different prefixes and are not comparable. With no divergence,
all positions of the shorter call are compared (tokens past the end of the
shorter call are not seen: an end-of-sequence token is not part of the
logprobs, so compare texts or finish reasons to catch length changes).
For ``js`` and ``tv`` the per-position values ``v_t`` combine as
``1 - prod_t (1 - v_t)``: with ``tv`` this is the chance that two coupled
samples part somewhere along the compared prefix, and the value still reads
"share of probability mass moved" (a mean over the ``k + 1`` compared
positions would dilute a change at position ``k`` by ``1/(k + 1)``). One
exception makes an answer-changing flip count fully: when the calls diverge
at a position where *each* generated token is its own call's single top listed
token (no other token within 1e-6 nats of it), both decodes took their most
likely token and still parted, so the distance is ``1.0`` (greedy decoding
parts there with certainty, however close the two distributions are). Tokens
drawn by sampling are rarely both top tokens of different distributions, so
identical distributions still give 0 whatever was sampled. ``tok_l1`` is the
mean of its per-position values.

Floating-point noise
--------------------
A position whose two distributions differ by less than :data:`NOISE_MASS`
(``1e-6`` of probability mass, i.e. logprob differences of ~1e-6 nats) counts
as identical and contributes exactly ``0.0`` to ``js`` and ``tv``: rounding
must not make a bit-reproducible backend look noisy, nor a jittered one
"different".

Edge cases
----------
* identical calls → exactly ``0.0``; both calls empty → ``0.0``;
* exactly one call empty (no positions) → the metric's maximum: ``1.0`` for
  ``js``, ``tv`` and ``first_token``; :data:`TOK_L1_MIN_LOGPROB` magnitude
  (30 nats) for ``tok_l1``; ``9999.0`` (``-LOGPROB_FLOOR``) for ``seed``.
  One call produced nothing, the other something: behaviour differs totally.

Metrics
-------
``js`` (default)
    Jensen–Shannon divergence in bits (in ``[0, 1]``, at most ``tv``),
    combined over the compared positions as above.
``tv``
    Total variation ``½·Σ|p − q|`` with the same construction: the fraction of
    probability mass moved along the compared prefix, in ``[0, 1]``.
``tok_l1``
    Mean ``|Δ logprob|`` (nats) over the union tokens of each position (floor
    for a missing token, the ``other`` bucket excluded), averaged over the
    compared positions. For ``tok_l1`` the floor is never below half the
    side's smallest listed probability: when the listed mass rounds to 1, the
    unlisted mass (hence the floor above) drops to 0 and a missing token would
    otherwise sit at the clip below, a jump of many nats caused by a 1e-7
    rounding; with the bound such a rounding moves a missing token's logprob by
    at most ``ln 2``. ``js`` and ``tv`` keep the plain floor: they weigh the
    floor by its probability, so the same rounding changes them by at most the
    floor mass itself. Logprobs are clipped below at
    :data:`TOK_L1_MIN_LOGPROB` so one "probability 0" entry (``-9999``) cannot
    outweigh everything else. Sensitive to shifts in the tail that JS barely
    registers.
``first_token``
    JS at position 0 only, for one-token classification prompts (``1.0`` when
    the two calls' first tokens differ and each is its call's top token).
``seed``
    The forum experiment's metric, reproduced exactly: at each position ``i``
    of the shorter call, candidates are compared **by rank** ``j`` (``j``-th
    listed top-logprob against the ``j``-th, whatever the tokens), and the
    result is the mean of all ``|Δ logprob|``, over the whole completion.
    Differences from the forum code: ``-inf`` logprobs are clamped to
    ``-9999`` (the forum would return ``inf``), and "nothing to compare"
    returns a number instead of NaN (see edge cases; two non-empty calls
    without any top-logprobs give ``0.0``).

Why ``seed`` is not the default
-------------------------------
*Rank alignment cannot see a swap.* A classifier that answers "Yes" 0.9 /
"No" 0.1 and one that answers "No" 0.9 / "Yes" 0.1 list the same numbers by
rank, so ``seed`` reports 0 for opposite behaviour; ``js`` matches tokens by
identity and reports the swap in full. *Position alignment after a flip
compares unrelated distributions.* Once a near-tie flips the greedy token,
every later position conditions on another prefix; the forum's data show
what that does: a noise floor of ~0.4 nats jumps to ~2 for the trial whose
top token flipped, and that single outlier dominates mean/std. ``js`` stops
comparing at the first divergence, so a flip counts once, at the position
where it happened, with a bounded value.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

from ..errors import RolecheckUsageError
from .parse import LOGPROB_FLOOR, ParsedCall, Position

__all__ = [
    "BLIND_METRICS",
    "BOUNDED_METRICS",
    "NOISE_MASS",
    "TOK_L1_MIN_LOGPROB",
    "compared_positions",
    "divergence_position",
    "first_token_distance",
    "js_distance",
    "position_profile",
    "seed_distance",
    "tok_l1_distance",
    "took_other_token",
    "tv_distance",
]

FloatArray = NDArray[np.float64]

#: ``tok_l1`` clips logprobs below at this value (probability ≈ 1e-13): smaller
#: values are "probability 0" for practical purposes, and without the clip a
#: single ``-9999`` sentinel would dominate the mean.
TOK_L1_MIN_LOGPROB: float = -30.0

# tok_l1's floor for a missing token is at least this share of the side's k-th
# probability, so a rounding of the listed mass cannot move it by more than ln 2.
_TOK_L1_FLOOR_SHARE = 0.5

_EMPTY_BOUNDED = 1.0

#: A position whose two distributions differ by less than this total variation
#: (probability mass) counts as identical: such differences are floating-point
#: rounding and server jitter (logprob changes of ~1e-6 nats), not behaviour.
NOISE_MASS: float = 1e-6

# A generated token within this many nats of the top listed one counts as the top token.
_GREEDY_SLACK = 1e-6

# Metrics aggregated as "the chance that coupled samples part along the compared
# prefix", 1 - prod(1 - v_t), instead of a mean over positions.
_PARTING = frozenset({"js", "tv"})

#: Metrics whose values lie in [0, 1]: "share of probability mass moved" (js in bits
#: is at most tv) or, for the text metrics (:mod:`.text_metrics`), share of characters
#: that differ. The tolerance is read in those units (for the text metrics: the share of
#: answers that moved, see ``change_bound(relative=True)``) and the change bound guards
#: against changes too rare to be seen (see ``_stats``).
BOUNDED_METRICS: frozenset[str] = frozenset(
    {"js", "tv", "first_token", "hamming", "edit", "js_edit"}
)

#: Metrics that cannot see some behaviour changes, with the reason: they may
#: report a change but never certify equivalence.
BLIND_METRICS: dict[str, str] = {
    "tok_l1": (
        "tok_l1 averages |delta logprob| over every listed token, so two near-tied top tokens "
        "swapping places (the answer changes) moves it by a fraction of a nat"
    ),
    "seed": (
        "seed compares candidates by rank, not by token, so a Yes 0.9 / No 0.1 answer and a "
        "No 0.9 / Yes 0.1 answer look identical to it"
    ),
}
_EMPTY_TOK_L1 = -TOK_L1_MIN_LOGPROB
_EMPTY_SEED = -LOGPROB_FLOOR


@dataclass(frozen=True, slots=True)
class _SideDist:
    """One call's listed distribution at one position (partner-independent)."""

    probs: dict[str, float]  # key -> probability, generated token included, total <= 1
    logprobs: dict[str, float]  # key -> log of the same probability
    kth: float  # smallest listed probability
    leftover: float  # 1 - sum(probs), >= 0


def _side(position: Position) -> _SideDist:
    logprobs: dict[str, float] = {}
    for key, _, lp in position.alternatives:
        logprobs.setdefault(key, lp)  # parse_response merges duplicates; else first wins
    # A hand-built Position may omit the generated token; it was generated, so it counts.
    logprobs.setdefault(position.key, position.logprob)
    probs = {key: math.exp(lp) for key, lp in logprobs.items()}
    total = math.fsum(probs.values())
    if total > 1.0:
        shift = math.log(total)
        logprobs = {key: lp - shift for key, lp in logprobs.items()}
        probs = {key: p / total for key, p in probs.items()}
        total = math.fsum(probs.values())
    return _SideDist(
        probs=probs,
        logprobs=logprobs,
        kth=min(probs.values()),
        leftover=max(0.0, 1.0 - total),
    )


@dataclass(frozen=True, slots=True)
class _PairSupport:
    """Both sides of one position on their common support (sorted union keys + other)."""

    keys: tuple[str, ...]
    p: list[float]  # side a over keys, then its "other" bucket; sums to 1
    q: list[float]
    log_p: list[float]  # logs over keys only (no other bucket); -inf for a zero floor
    log_q: list[float]


def _floor(side: _SideDist, n_missing: int) -> float:
    if n_missing == 0:
        return 0.0
    return min(side.kth, side.leftover / n_missing)


def _log_tok_floor(floor: float, side: _SideDist) -> float:
    """Log of the floor ``tok_l1`` uses: never below a share of the k-th probability."""
    value = max(floor, _TOK_L1_FLOOR_SHARE * side.kth)
    return math.log(value) if value > 0.0 else -math.inf


def _pair_support(a: Position, b: Position) -> _PairSupport:
    sa, sb = _side(a), _side(b)
    keys = tuple(sorted(sa.probs.keys() | sb.probs.keys()))
    missing_a = len(keys) - len(sa.probs)
    missing_b = len(keys) - len(sb.probs)
    fa, fb = _floor(sa, missing_a), _floor(sb, missing_b)
    other_a = max(0.0, sa.leftover - missing_a * fa)
    other_b = max(0.0, sb.leftover - missing_b * fb)
    log_fa = _log_tok_floor(fa, sa)
    log_fb = _log_tok_floor(fb, sb)
    return _PairSupport(
        keys=keys,
        p=[sa.probs.get(k, fa) for k in keys] + [other_a],
        q=[sb.probs.get(k, fb) for k in keys] + [other_b],
        log_p=[sa.logprobs.get(k, log_fa) for k in keys],
        log_q=[sb.logprobs.get(k, log_fb) for k in keys],
    )


# math.fsum is exactly rounded, hence order-free: js(a, b) == js(b, a) bit for bit.


def _js_bits(p: Sequence[float], q: Sequence[float]) -> float:
    if _tv(p, q) < NOISE_MASS:
        return 0.0
    kl_p = math.fsum(x * math.log2(2.0 * x / (x + y)) for x, y in zip(p, q, strict=True) if x > 0)
    kl_q = math.fsum(y * math.log2(2.0 * y / (x + y)) for x, y in zip(p, q, strict=True) if y > 0)
    return min(1.0, max(0.0, 0.5 * (kl_p + kl_q)))


def _tv(p: Sequence[float], q: Sequence[float]) -> float:
    moved = 0.5 * math.fsum(abs(x - y) for x, y in zip(p, q, strict=True))
    return 0.0 if moved < NOISE_MASS else min(1.0, moved)


def _tok_l1(log_p: Sequence[float], log_q: Sequence[float]) -> float:
    lo = TOK_L1_MIN_LOGPROB
    diffs = [abs(max(x, lo) - max(y, lo)) for x, y in zip(log_p, log_q, strict=True)]
    return math.fsum(diffs) / len(diffs)


_POSITION_FUNCS: dict[str, Callable[[_PairSupport], float]] = {
    "js": lambda s: _js_bits(s.p, s.q),
    "tv": lambda s: _tv(s.p, s.q),
    "tok_l1": lambda s: _tok_l1(s.log_p, s.log_q),
}


def _greedy(position: Position) -> bool:
    """Whether the generated token is the single most likely listed token at ``position``.

    A token tied with another at the top is not: a decoder may take either, so parting
    there is not certain.
    """
    near = [lp for key, _, lp in position.alternatives if key != position.key]
    return all(lp < position.logprob - _GREEDY_SLACK for lp in near)


def took_other_token(call: ParsedCall) -> bool:
    """Whether ``call`` generated, somewhere, a token less likely than another listed one.

    Greedy decoding (temperature 0) never does: it takes the most likely token, and
    the logprobs come from the same step. A call that did was sampled (temperature
    > 0), so calls of one configuration part where sampling drew differently.
    """
    return any(
        any(lp > p.logprob + _GREEDY_SLACK for _, _, lp in p.alternatives) for p in call.positions
    )


def divergence_position(a: ParsedCall, b: ParsedCall) -> int | None:
    """Return the first position whose generated tokens differ.

    Parameters
    ----------
    a, b : ParsedCall
        The two calls.

    Returns
    -------
    int or None
        The first index ``i`` below ``min(len(a), len(b))`` positions where the
        generated keys differ; None when the shorter call is a prefix of the
        longer one (by key).
    """
    for i, (pa, pb) in enumerate(zip(a.positions, b.positions, strict=False)):
        if pa.key != pb.key:
            return i
    return None


def compared_positions(a: ParsedCall, b: ParsedCall) -> int:
    """Return how many positions (from 0) the token metrics compare.

    ``d + 1`` when the calls diverge at ``d`` (see :func:`divergence_position`),
    else the length of the shorter call.
    """
    d = divergence_position(a, b)
    if d is not None:
        return d + 1
    return min(len(a.positions), len(b.positions))


def position_profile(a: ParsedCall, b: ParsedCall, metric: str = "js") -> FloatArray:
    """Per-position distances over the compared positions (for plots).

    Parameters
    ----------
    a, b : ParsedCall
        The two calls.
    metric : {"js", "tv", "tok_l1"}, default "js"
        Per-position quantity (see the module docstring).

    Returns
    -------
    numpy.ndarray
        Shape ``(compared_positions(a, b),)``; the mean of it is the
        ``metric`` distance (when both calls are non-empty).

    Raises
    ------
    RolecheckUsageError
        ``metric`` has no per-position form.
    """
    func = _POSITION_FUNCS.get(metric)
    if func is None:
        raise RolecheckUsageError(
            f"position_profile has no per-position form for metric {metric!r}; "
            f"pass metric= one of {', '.join(sorted(_POSITION_FUNCS))}."
        )
    n = compared_positions(a, b)
    return np.array(
        [func(_pair_support(a.positions[i], b.positions[i])) for i in range(n)], dtype=float
    )


def _averaged(a: ParsedCall, b: ParsedCall, metric: str, empty_value: float) -> float:
    if not a.positions or not b.positions:
        return 0.0 if not a.positions and not b.positions else empty_value
    values = position_profile(a, b, metric).tolist()
    if metric in _PARTING:
        d = divergence_position(a, b)
        if d is not None and _greedy(a.positions[d]) and _greedy(b.positions[d]):
            return 1.0  # both calls took their own top token there: the decodes part for sure
        return 1.0 - float(math.prod(1.0 - v for v in values))
    return math.fsum(values) / len(values)


def js_distance(a: ParsedCall, b: ParsedCall) -> float:
    """Jensen–Shannon divergence between two calls (the ``js`` metric).

    Parameters
    ----------
    a, b : ParsedCall
        The two calls.

    Returns
    -------
    float
        Per-position JS divergences in bits combined as ``1 - prod(1 - v_t)``,
        in ``[0, 1]``; ``0.0`` for identical or two empty calls, ``1.0`` when
        exactly one call is empty.

    References
    ----------
    J. Lin, "Divergence measures based on the Shannon entropy", IEEE Trans.
    Inf. Theory 37(1), 1991.
    """
    return _averaged(a, b, "js", _EMPTY_BOUNDED)


def tv_distance(a: ParsedCall, b: ParsedCall) -> float:
    """Total-variation distance between two calls (the ``tv`` metric).

    Parameters
    ----------
    a, b : ParsedCall
        The two calls.

    Returns
    -------
    float
        Per-position ``½·Σ|p − q|`` combined as ``1 - prod(1 - v_t)``, in
        ``[0, 1]``: the share of probability mass moved. Empty-call rules as
        for :func:`js_distance`.
    """
    return _averaged(a, b, "tv", _EMPTY_BOUNDED)


def tok_l1_distance(a: ParsedCall, b: ParsedCall) -> float:
    """Token-matched mean absolute logprob difference (the ``tok_l1`` metric).

    Parameters
    ----------
    a, b : ParsedCall
        The two calls.

    Returns
    -------
    float
        In nats: per position, the mean ``|Δ logprob|`` over the union of both
        sides' tokens (floor for a missing token, logprobs clipped below at
        :data:`TOK_L1_MIN_LOGPROB`), averaged over the compared positions.
        ``0.0`` for identical or two empty calls, ``30.0`` when exactly one is
        empty.
    """
    return _averaged(a, b, "tok_l1", _EMPTY_TOK_L1)


def first_token_distance(a: ParsedCall, b: ParsedCall) -> float:
    """JS divergence (bits) at position 0 only (the ``first_token`` metric).

    Parameters
    ----------
    a, b : ParsedCall
        The two calls.

    Returns
    -------
    float
        In ``[0, 1]``; ``0.0`` when both calls are empty, ``1.0`` when exactly
        one is.
    """
    if not a.positions or not b.positions:
        return 0.0 if not a.positions and not b.positions else _EMPTY_BOUNDED
    pa, pb = a.positions[0], b.positions[0]
    if pa.key != pb.key and _greedy(pa) and _greedy(pb):
        return 1.0  # both took their top first token and still differ: the answer flipped
    support = _pair_support(pa, pb)
    return _js_bits(support.p, support.q)


def _ranked(position: Position) -> tuple[float, ...]:
    if position.listed_logprobs is not None:
        return position.listed_logprobs
    return tuple(lp for _, _, lp in position.alternatives)


def seed_distance(a: ParsedCall, b: ParsedCall) -> float:
    """The forum experiment's metric (``compute_trial_logprob_diff``), rank-aligned.

    Parameters
    ----------
    a, b : ParsedCall
        Baseline and trial (the metric is symmetric, so the order does not matter).

    Returns
    -------
    float
        Mean ``|Δ logprob|`` over every (position ``i``, rank ``j``) with
        ``i < min(len(a), len(b))`` and ``j < min(#candidates at i)``, where
        rank ``j`` is the ``j``-th ``top_logprobs`` entry as the server listed
        it — not token identity. ``0.0`` when both calls are empty or no
        candidates can be compared (the forum code returns NaN there);
        ``9999.0`` when exactly one call is empty.

    Notes
    -----
    Not the default metric: see the module docstring.
    """
    if not a.positions or not b.positions:
        return 0.0 if not a.positions and not b.positions else _EMPTY_SEED
    diffs: list[float] = []
    for pa, pb in zip(a.positions, b.positions, strict=False):
        ra, rb = _ranked(pa), _ranked(pb)
        diffs.extend(abs(x - y) for x, y in zip(ra, rb, strict=False))
    return float(np.mean(diffs)) if diffs else 0.0
