"""The built-in metrics vectorised over many pairs of calls (what ``distance_matrix`` runs).

Same construction as the one-pair reference in :mod:`~pytest_rolecheck.core.metrics`
(tests check they agree), laid out as padded arrays so that a 20 x 20 matrix is a
few numpy operations instead of 190 Python loops.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

from .metrics import (
    _EMPTY_BOUNDED,
    _EMPTY_SEED,
    _PARTING,
    _TOK_L1_FLOOR_SHARE,
    NOISE_MASS,
    TOK_L1_MIN_LOGPROB,
    _greedy,
    _ranked,
)
from .parse import ParsedCall, Position

__all__ = ["PairsFn", "averaged_pairs", "first_token_pairs", "seed_pairs"]

FloatArray = NDArray[np.float64]
IntArray = NDArray[np.int64]
PairsFn = Callable[[Sequence[ParsedCall], IntArray, IntArray], FloatArray]


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


def _greedy_ids(calls: Sequence[ParsedCall], n_pos: int) -> NDArray[np.bool_]:
    """(C, T): whether each call's generated token is its top listed token (see ``_greedy``)."""
    out = np.zeros((len(calls), n_pos), dtype=bool)
    for i, call in enumerate(calls):
        for t, position in enumerate(call.positions[:n_pos]):
            out[i, t] = _greedy(position)
    return out


def _lengths(calls: Sequence[ParsedCall]) -> IntArray:
    return np.array([len(c.positions) for c in calls], dtype=np.int64)


def averaged_pairs(
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


def first_token_pairs(calls: Sequence[ParsedCall], rows: IntArray, cols: IntArray) -> FloatArray:
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


def seed_pairs(calls: Sequence[ParsedCall], rows: IntArray, cols: IntArray) -> FloatArray:
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
