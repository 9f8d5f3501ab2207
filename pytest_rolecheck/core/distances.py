"""Distances between two chat-completion calls, a metric registry and the distance matrix.

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
from .limits import DEFAULT_METRIC
from .parse import LOGPROB_FLOOR, ParsedCall, Position

__all__ = [
    "BLIND_METRICS",
    "BOUNDED_METRICS",
    "DEFAULT_METRIC",
    "NOISE_MASS",
    "TOK_L1_MIN_LOGPROB",
    "Metric",
    "available_metrics",
    "compared_positions",
    "distance_matrix",
    "distances_to",
    "divergence_position",
    "first_token_distance",
    "get_metric",
    "js_distance",
    "position_profile",
    "register_metric",
    "seed_distance",
    "tok_l1_distance",
    "tv_distance",
    "unregister_metric",
]

Metric = Callable[[ParsedCall, ParsedCall], float]
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

#: Metrics whose values lie in [0, 1] and mean "share of probability mass moved"
#: (js in bits is at most tv): the tolerance is read in those units and the
#: change bound guards against changes too rare to be seen (see ``_stats``).
BOUNDED_METRICS: frozenset[str] = frozenset({"js", "tv", "first_token"})

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

# ---------------------------------------------------------------------------
# reference implementation (one pair, readable)
# ---------------------------------------------------------------------------


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


# ---------------------------------------------------------------------------
# vectorised distance matrix
# ---------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class _Packed:
    """All calls as padded arrays; axes are (call, position, slot) or (call, position, vocab).

    Slots are a call's own alternatives at a position; the vocabulary is the
    union of every call's tokens at that position, plus one padding column
    (index V) that no call lists.
    """

    idx: NDArray[np.int64]  # (C, T, K) vocabulary index of each slot, V for padding
    valid: NDArray[np.bool_]  # (C, T, K)
    prob: FloatArray  # (C, T, K) normalised probability, 0 for padding
    logp: FloatArray  # (C, T, K) its log, clipped at TOK_L1_MIN_LOGPROB, 0 for padding
    plogp: FloatArray  # (C, T) sum of prob * ln(prob) over the slots
    listed: NDArray[np.bool_]  # (C * T * (V + 1),) flat dense "is listed" mask
    dense_prob: FloatArray  # (C * T * (V + 1),) flat dense probabilities
    dense_logp: FloatArray  # (C * T * (V + 1),) flat dense clipped logs
    n_vocab: int  # V + 1
    kth: FloatArray  # (C, T) smallest listed probability
    leftover: FloatArray  # (C, T) 1 - sum of listed probabilities, >= 0


def _xlogx(x: FloatArray) -> FloatArray:
    """x·ln(x) with 0·ln(0) = 0."""
    logs = np.zeros_like(x)
    np.log(x, out=logs, where=x > 0.0)
    result: FloatArray = x * logs
    return result


def _slots(position: Position) -> tuple[list[str], list[float]]:
    """Keys and logprobs of a position's distinct alternatives, generated token included."""
    alts = position.alternatives
    keys = [a[0] for a in alts]
    logprobs = [a[2] for a in alts]
    if position.key in keys and len(set(keys)) == len(keys):
        return keys, logprobs  # what parse_response guarantees
    # Hand-built Position: first entry per key wins, the generated token counts.
    first: dict[str, float] = {}
    for key, lp in zip(keys, logprobs, strict=True):
        first.setdefault(key, lp)
    first.setdefault(position.key, position.logprob)
    return list(first), list(first.values())


def _generated_ids(calls: Sequence[ParsedCall], n_pos: int) -> NDArray[np.int64]:
    """(C, n_pos) integer id of each generated key per position; -1 past a call's end."""
    gen = np.full((len(calls), n_pos), -1, dtype=np.int64)
    for t in range(n_pos):
        ids: dict[str, int] = {}
        for c, call in enumerate(calls):
            if t < len(call.positions):
                gen[c, t] = ids.setdefault(call.positions[t].key, len(ids))
    return gen


def _pack(calls: Sequence[ParsedCall], n_pos: int) -> _Packed:
    """Pack positions ``0..n_pos-1`` of every call (built once, shared by all pairs)."""
    n_calls = len(calls)
    flat_v: list[int] = []
    flat_lp: list[float] = []
    counts: list[int] = []
    owner_c: list[int] = []
    owner_t: list[int] = []
    n_vocab = 0
    # Position-major, so each position gets its own small vocabulary.
    for t in range(n_pos):
        vocab: dict[str, int] = {}
        for c, call in enumerate(calls):
            if t >= len(call.positions):
                continue
            keys, logprobs = _slots(call.positions[t])
            flat_v.extend([vocab.setdefault(k, len(vocab)) for k in keys])
            flat_lp.extend(logprobs)
            counts.append(len(keys))
            owner_c.append(c)
            owner_t.append(t)
        n_vocab = max(n_vocab, len(vocab))
    count_arr = np.array(counts, dtype=np.int64)
    starts = np.cumsum(count_arr) - count_arr
    ci = np.repeat(np.array(owner_c, dtype=np.int64), count_arr)
    ti = np.repeat(np.array(owner_t, dtype=np.int64), count_arr)
    ki = np.arange(int(count_arr.sum())) - np.repeat(starts, count_arr)
    vi = np.array(flat_v, dtype=np.int64)
    lp_flat = np.array(flat_lp, dtype=float)
    n_slots = int(ki.max()) + 1 if ki.size else 0

    idx = np.full((n_calls, n_pos, n_slots), n_vocab, dtype=np.int64)
    valid = np.zeros((n_calls, n_pos, n_slots), dtype=bool)
    raw_lp = np.zeros((n_calls, n_pos, n_slots))
    idx[ci, ti, ki] = vi
    valid[ci, ti, ki] = True
    raw_lp[ci, ti, ki] = lp_flat
    raw_prob = np.where(valid, np.exp(raw_lp), 0.0)
    # Listed mass above 1 (rounding, merged duplicates): rescale that side to 1.
    scale = np.maximum(raw_prob.sum(axis=2), 1.0)
    prob = raw_prob / scale[:, :, None]
    logp = np.where(valid, np.maximum(raw_lp - np.log(scale)[:, :, None], TOK_L1_MIN_LOGPROB), 0.0)
    kth = np.where(valid, prob, np.inf).min(axis=2, initial=np.inf)
    kth = np.where(np.isfinite(kth), kth, 0.0)
    leftover = np.maximum(0.0, 1.0 - prob.sum(axis=2))

    shape = (n_calls, n_pos, n_vocab + 1)
    listed = np.zeros(shape, dtype=bool)
    dense_prob = np.zeros(shape)
    dense_logp = np.zeros(shape)
    listed[ci, ti, vi] = True
    dense_prob[ci, ti, vi] = prob[ci, ti, ki]
    dense_logp[ci, ti, vi] = logp[ci, ti, ki]
    return _Packed(
        idx=idx,
        valid=valid,
        prob=prob,
        logp=logp,
        plogp=_xlogx(prob).sum(axis=2),
        listed=listed.reshape(-1),
        dense_prob=dense_prob.reshape(-1),
        dense_logp=dense_logp.reshape(-1),
        n_vocab=n_vocab + 1,
        kth=kth,
        leftover=leftover,
    )


def _position_values(
    packed: _Packed, rows: NDArray[np.int64], cols: NDArray[np.int64], kind: str
) -> FloatArray:
    """Per-pair, per-position js / tv / tok_l1 for pairs (rows[i], cols[i]); shape (P, T).

    Same construction as :func:`_pair_support`, laid out as: a's slots, b's
    slots that a lacks, the "other" bucket. JS uses the entropy form
    ``JS = ½(Σ p ln p + Σ q ln q) − Σ m ln m`` so that only ``m`` needs a log
    per pair (``Σ p ln p`` over a side's listed tokens is partner-independent).
    """
    n_pos = packed.valid.shape[1]
    t = np.arange(n_pos)[None, :, None]
    # Flat indices of a's slot tokens in b's dense rows, and vice versa.
    a_in_b = (cols[:, None, None] * n_pos + t) * packed.n_vocab + packed.idx[rows]
    b_in_a = (rows[:, None, None] * n_pos + t) * packed.n_vocab + packed.idx[cols]
    valid_a, valid_b = packed.valid[rows], packed.valid[cols]
    only_a = valid_a & ~packed.listed[a_in_b]  # tokens b is missing
    only_b = valid_b & ~packed.listed[b_in_a]  # tokens a is missing
    miss_b = only_a.sum(axis=2)
    miss_a = only_b.sum(axis=2)
    left_a, left_b = packed.leftover[rows], packed.leftover[cols]
    floor_a = np.where(
        miss_a > 0, np.minimum(packed.kth[rows], left_a / np.maximum(miss_a, 1)), 0.0
    )
    floor_b = np.where(
        miss_b > 0, np.minimum(packed.kth[cols], left_b / np.maximum(miss_b, 1)), 0.0
    )

    if kind == "tok_l1":
        lo = TOK_L1_MIN_LOGPROB
        tok_floor_a = np.maximum(floor_a, _TOK_L1_FLOOR_SHARE * packed.kth[rows])
        tok_floor_b = np.maximum(floor_b, _TOK_L1_FLOOR_SHARE * packed.kth[cols])
        with np.errstate(divide="ignore"):
            log_floor_a = np.maximum(np.log(tok_floor_a), lo)[:, :, None]
            log_floor_b = np.maximum(np.log(tok_floor_b), lo)[:, :, None]
        lb_at_a = np.where(only_a, log_floor_b, packed.dense_logp[a_in_b])
        sum_a = (np.abs(packed.logp[rows] - lb_at_a) * valid_a).sum(axis=2)
        sum_b = (np.abs(log_floor_a - packed.logp[cols]) * only_b).sum(axis=2)
        tok: FloatArray = (sum_a + sum_b) / np.maximum(valid_a.sum(axis=2) + miss_a, 1)
        return tok

    other_a = np.maximum(0.0, left_a - miss_a * floor_a)
    other_b = np.maximum(0.0, left_b - miss_b * floor_b)
    pa = packed.prob[rows]
    qa = packed.dense_prob[a_in_b] + only_a * floor_b[:, :, None]
    pb = only_b * floor_a[:, :, None]
    qb = only_b * packed.prob[cols]
    if kind == "tv":
        moved = (
            np.abs(pa - qa).sum(axis=2) + np.abs(pb - qb).sum(axis=2) + np.abs(other_a - other_b)
        )
        tv: FloatArray = np.where(0.5 * moved < NOISE_MASS, 0.0, np.clip(0.5 * moved, 0.0, 1.0))
        return tv
    s_p = packed.plogp[rows] + miss_a * _xlogx(floor_a) + _xlogx(other_a)
    s_q = packed.plogp[cols] + miss_b * _xlogx(floor_b) + _xlogx(other_b)
    s_m = (
        _xlogx(0.5 * (pa + qa)).sum(axis=2)
        + _xlogx(0.5 * (pb + qb)).sum(axis=2)
        + _xlogx(0.5 * (other_a + other_b))
    )
    js_nats = 0.5 * (s_p + s_q) - s_m
    # Equal distributions give exactly 0 whatever order numpy sums the entropy terms in.
    same = (miss_a == 0) & (miss_b == 0) & (other_a == other_b) & (pa == qa).all(axis=2)
    moved = np.abs(pa - qa).sum(axis=2) + np.abs(pb - qb).sum(axis=2) + np.abs(other_a - other_b)
    same |= 0.5 * moved < NOISE_MASS  # floating-point noise, not a change
    js: FloatArray = np.clip(np.where(same, 0.0, js_nats / math.log(2.0)), 0.0, 1.0)
    return js


IntArray = NDArray[np.int64]
_PairsFn = Callable[[Sequence[ParsedCall], IntArray, IntArray], FloatArray]


def _greedy_ids(calls: Sequence[ParsedCall], n_pos: int) -> NDArray[np.bool_]:
    """(C, T): whether each call's generated token is its top listed token (see ``_greedy``)."""
    out = np.zeros((len(calls), n_pos), dtype=bool)
    for i, call in enumerate(calls):
        for t, position in enumerate(call.positions[:n_pos]):
            out[i, t] = _greedy(position)
    return out


def _lengths(calls: Sequence[ParsedCall]) -> IntArray:
    return np.array([len(c.positions) for c in calls], dtype=np.int64)


def _averaged_pairs(
    calls: Sequence[ParsedCall], rows: IntArray, cols: IntArray, kind: str, empty_value: float
) -> FloatArray:
    """js / tv / tok_l1 for the pairs (rows[i], cols[i]), averaged over compared positions."""
    lengths = _lengths(calls)
    len_a, len_b = lengths[rows], lengths[cols]
    shorter = np.minimum(len_a, len_b)
    values: FloatArray = np.where((len_a == 0) & (len_b == 0), 0.0, empty_value)
    live = shorter > 0
    if live.any():
        r, c, s = rows[live], cols[live], shorter[live]
        n_pos = int(s.max())
        gen = _generated_ids(calls, n_pos)
        t = np.arange(n_pos)[None, :]
        differs = (gen[r] != gen[c]) & (t < s[:, None])
        compared = np.where(differs.any(axis=1), differs.argmax(axis=1) + 1, s)
        # Positions past every pair's divergence are never needed: do not pack them.
        width = int(compared.max())
        per_position = _position_values(_pack(calls, width), r, c, kind)
        mask = t[:, :width] < compared[:, None]
        if kind in _PARTING:
            parting = 1.0 - np.where(mask, 1.0 - per_position, 1.0).prod(axis=1)
            greedy = _greedy_ids(calls, width)
            at = np.minimum(compared - 1, width - 1)
            parted = differs.any(axis=1) & greedy[r, at] & greedy[c, at]
            values[live] = np.where(parted, 1.0, parting)
        else:
            values[live] = np.where(mask, per_position, 0.0).sum(axis=1) / compared
    return values


def _first_token_pairs(calls: Sequence[ParsedCall], rows: IntArray, cols: IntArray) -> FloatArray:
    lengths = _lengths(calls)
    len_a, len_b = lengths[rows], lengths[cols]
    values: FloatArray = np.where((len_a == 0) & (len_b == 0), 0.0, _EMPTY_BOUNDED)
    live = (len_a > 0) & (len_b > 0)
    if live.any():
        r, c = rows[live], cols[live]
        js = _position_values(_pack(calls, 1), r, c, "js")[:, 0]
        gen, greedy = _generated_ids(calls, 1)[:, 0], _greedy_ids(calls, 1)[:, 0]
        values[live] = np.where((gen[r] != gen[c]) & greedy[r] & greedy[c], 1.0, js)
    return values


def _seed_pairs(calls: Sequence[ParsedCall], rows: IntArray, cols: IntArray) -> FloatArray:
    lengths = _lengths(calls)
    ranked = [[_ranked(p) for p in c.positions] for c in calls]
    n_ranks = max((len(r) for call in ranked for r in call), default=0)
    shape = (len(calls), int(lengths.max(initial=0)), n_ranks)
    listed = np.zeros(shape)
    present = np.zeros(shape, dtype=bool)
    for c, call in enumerate(ranked):
        for t, lps in enumerate(call):
            listed[c, t, : len(lps)] = lps
            present[c, t, : len(lps)] = True
    # Padding is "absent", so zip-to-the-shorter on both axes comes for free.
    both = present[rows] & present[cols]
    total = np.where(both, np.abs(listed[rows] - listed[cols]), 0.0).sum(axis=(1, 2))
    count = both.sum(axis=(1, 2))
    values: FloatArray = np.where(count > 0, total / np.maximum(count, 1), 0.0)
    one_empty = (lengths[rows] == 0) != (lengths[cols] == 0)
    result: FloatArray = np.where(one_empty, _EMPTY_SEED, values)
    return result


# ---------------------------------------------------------------------------
# registry
# ---------------------------------------------------------------------------

_BUILTINS: dict[str, Metric] = {
    "js": js_distance,
    "tv": tv_distance,
    "tok_l1": tok_l1_distance,
    "first_token": first_token_distance,
    "seed": seed_distance,
}
_REGISTRY: dict[str, Metric] = dict(_BUILTINS)
# Vectorised pair evaluators, keyed by the metric function they reproduce (so a
# user who overwrites "js" with another function gets that function, not these).
_FAST_PAIRS: dict[Metric, _PairsFn] = {
    js_distance: lambda calls, r, c: _averaged_pairs(calls, r, c, "js", _EMPTY_BOUNDED),
    tv_distance: lambda calls, r, c: _averaged_pairs(calls, r, c, "tv", _EMPTY_BOUNDED),
    tok_l1_distance: lambda calls, r, c: _averaged_pairs(calls, r, c, "tok_l1", _EMPTY_TOK_L1),
    first_token_distance: _first_token_pairs,
    seed_distance: _seed_pairs,
}


def available_metrics() -> tuple[str, ...]:
    """Names of the registered metrics: the built-ins first, then user metrics by name."""
    builtin = tuple(name for name in _BUILTINS if name in _REGISTRY)
    return builtin + tuple(sorted(name for name in _REGISTRY if name not in _BUILTINS))


def _check_metric_name(name: object) -> str:
    if not isinstance(name, str) or not name.strip() or name != name.strip():
        raise RolecheckUsageError(
            f"metric name must be a non-empty string without surrounding spaces, got {name!r}; "
            "pass e.g. register_metric('my_metric', fn)."
        )
    return name


def register_metric(name: str, fn: Metric, *, overwrite: bool = False) -> None:
    """Register a per-call distance under ``name``.

    Parameters
    ----------
    name : str
        The name users pass as ``metric=``.
    fn : callable
        ``fn(a: ParsedCall, b: ParsedCall) -> float``, finite, ``>= 0``,
        symmetric, ``0`` for identical calls. :func:`distance_matrix` evaluates
        it for ``i < j`` only and mirrors the result.
    overwrite : bool, default False
        Allow replacing an existing metric (built-ins included).

    Raises
    ------
    RolecheckUsageError
        Invalid name, ``fn`` not callable, or ``name`` taken and ``overwrite``
        is False.
    """
    _check_metric_name(name)
    if not callable(fn):
        raise RolecheckUsageError(
            f"register_metric({name!r}, ...) needs a callable fn(a, b) -> float, got "
            f"{type(fn).__name__}."
        )
    if name in _REGISTRY and not overwrite:
        raise RolecheckUsageError(
            f"a metric named {name!r} is already registered; pass overwrite=True to replace it "
            "or choose another name."
        )
    _REGISTRY[name] = fn


def unregister_metric(name: str) -> None:
    """Remove a user metric; for a built-in name, restore the built-in.

    Raises
    ------
    RolecheckUsageError
        No metric of that name is registered.
    """
    if name in _BUILTINS:
        _REGISTRY[name] = _BUILTINS[name]
        return
    if name not in _REGISTRY:
        raise RolecheckUsageError(
            f"no metric named {name!r} is registered; available: {', '.join(available_metrics())}."
        )
    del _REGISTRY[name]


def get_metric(name: str) -> Metric:
    """Return the metric registered under ``name``.

    Raises
    ------
    RolecheckUsageError
        Unknown name; the message lists :func:`available_metrics`.
    """
    fn = _REGISTRY.get(name) if isinstance(name, str) else None
    if fn is None:
        raise RolecheckUsageError(
            f"unknown metric {name!r}; available: {', '.join(available_metrics())}. "
            "Pass one of these as metric=, or register your own with "
            "pytest_rolecheck.register_metric(name, fn)."
        )
    return fn


def _check_calls(calls: Sequence[ParsedCall]) -> list[ParsedCall]:
    checked = list(calls)
    for i, call in enumerate(checked):
        if not isinstance(call, ParsedCall):
            raise RolecheckUsageError(
                f"calls[{i}] is a {type(call).__name__}, not a ParsedCall; convert responses "
                "with pytest_rolecheck.parse_response(response) first."
            )
    return checked


def _resolve(metric: str | Metric) -> Metric:
    if isinstance(metric, str):
        return get_metric(metric)
    if callable(metric):
        return metric
    raise RolecheckUsageError(
        f"metric must be a registered name or a function, got {type(metric).__name__}; "
        f"available names: {', '.join(available_metrics())}."
    )


def _checked_value(fn: Metric, value: object, i: int, j: int) -> float:
    if (
        isinstance(value, bool)
        or not isinstance(value, int | float | np.floating | np.integer)
        or not math.isfinite(float(value))
        or value < 0
    ):
        name = getattr(fn, "__name__", repr(fn))
        raise RolecheckUsageError(
            f"metric {name} returned {value!r} for calls {i} and {j}; a metric must return a "
            "finite number >= 0 — fix the metric function."
        )
    return float(value)


def _pair_values(calls: list[ParsedCall], rows: IntArray, cols: IntArray, fn: Metric) -> FloatArray:
    if rows.size == 0:
        return np.zeros(0)
    fast = _FAST_PAIRS.get(fn)
    if fast is not None:
        return fast(calls, rows, cols)
    return np.array(
        [
            _checked_value(fn, fn(calls[i], calls[j]), i, j)
            for i, j in zip(rows.tolist(), cols.tolist(), strict=True)
        ],
        dtype=float,
    )


def distance_matrix(
    calls: Sequence[ParsedCall], metric: str | Metric = DEFAULT_METRIC
) -> FloatArray:
    """All-pairs distance matrix.

    Parameters
    ----------
    calls : sequence of ParsedCall
        The calls, in the order the rows and columns should have.
    metric : str or callable, default "js"
        A registered name or a metric function.

    Returns
    -------
    numpy.ndarray
        Shape ``(n, n)``, symmetric, zero diagonal, finite, ``>= 0``. The
        built-in metrics are vectorised over pairs; other metrics are called
        once per pair ``i < j`` and mirrored.

    Raises
    ------
    RolecheckUsageError
        Unknown metric name, an element of ``calls`` is not a ParsedCall, or a
        user metric returned a value that is not a finite number ``>= 0``.
    """
    checked = _check_calls(calls)
    fn = _resolve(metric)
    n = len(checked)
    rows, cols = np.triu_indices(n, k=1)
    values = _pair_values(checked, rows, cols, fn)
    if any(fn is builtin for builtin in _BUILTINS.values()):
        # Floating-point sums depend on which call is "a": evaluated one way only, a
        # pair (x, y) and (y, x) differ in the last bit, and exact ties between
        # bit-identical calls would be split by call order, biasing the rank test.
        # Averaging both orientations is exactly symmetric (addition commutes).
        values = (values + _pair_values(checked, cols, rows, fn)) / 2.0
    out = np.zeros((n, n))
    out[rows, cols] = values
    out[cols, rows] = values
    return out


def distances_to(
    reference: ParsedCall, calls: Sequence[ParsedCall], metric: str | Metric = DEFAULT_METRIC
) -> FloatArray:
    """Distances from one reference call to each of ``calls`` (the seed design's row).

    Parameters
    ----------
    reference : ParsedCall
        E.g. the baseline call.
    calls : sequence of ParsedCall
        E.g. the trials.
    metric : str or callable, default "js"
        A registered name or a metric function.

    Returns
    -------
    numpy.ndarray
        Shape ``(len(calls),)``; ``out[j] == metric(reference, calls[j])``
        (vectorised for the built-in metrics).

    Raises
    ------
    RolecheckUsageError
        As for :func:`distance_matrix`.
    """
    if not isinstance(reference, ParsedCall):
        raise RolecheckUsageError(
            f"reference is a {type(reference).__name__}, not a ParsedCall; convert responses "
            "with pytest_rolecheck.parse_response(response) first."
        )
    checked = [reference, *_check_calls(calls)]
    fn = _resolve(metric)
    cols = np.arange(1, len(checked), dtype=np.int64)
    return _pair_values(checked, np.zeros_like(cols), cols, fn)
