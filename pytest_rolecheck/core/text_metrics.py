"""Distances between the texts of two calls: no logprobs needed, the whole answer seen.

The token metrics (:mod:`~pytest_rolecheck.core.metrics`) compare next-token
distributions up to the first position where the two calls' tokens differ. When
calls are sampled (temperature > 0) their texts usually part within the first
few tokens, so those metrics see only the start of the answer, and a change that
shows later is invisible to them. The metrics here compare what was written,
from the first character to the last, and work on calls without logprobs (a
:class:`~pytest_rolecheck.core.parse.ParsedCall` with text and no positions).

Every one is symmetric, in ``[0, 1]``, exactly ``0.0`` for equal texts (two
empty texts included) and ``1.0`` when exactly one text is empty.

``hamming``
    The share of differing characters among the first
    :data:`~pytest_rolecheck.core.limits.HAMMING_CHARS` characters of the longer
    text, the shorter padded with a character that matches nothing. In the
    spirit of the Hamming kernel of Gao, Liang & Guestrin (*Model equality
    testing*, ICLR 2025), but normalised by the compared length instead of the
    fixed ``L``, so that a one-word answer is not diluted by ``L``. It compares
    character ``i`` with character ``i``: one inserted word early in an answer
    misaligns everything after it.
``edit``
    The Levenshtein distance (insertions, deletions, substitutions of
    characters) divided by the longer text's length, over the whole texts. It
    realigns after an insertion, so an answer that only gained or lost a word
    stays close to the original.
``js_edit``
    ``1 - (1 - js) * (1 - edit)``: the token metric ``js`` on the shared prefix
    (0 when either call carries no logprobs) combined with ``edit`` on the whole
    answer as the positions of ``js`` are combined — the chance that either
    part tells the calls apart. For sampled calls: ``js`` sees a change of the
    next-token distributions up to the first divergence, ``edit`` what the
    answers say after it.

Units: a distance is a share of characters; a *change* measured by these metrics is
a share of answers that moved: the distance between the arms beyond an arm's own
spread, over the room ``1 - within`` that spread leaves
(:func:`~pytest_rolecheck.core.bounds.change_bound` with ``relative``). Two sampled
answers of one prompt already differ in most of their characters, so in characters
even a complete rewrite moves little. Two unrelated texts are not at distance 1
(letters and spaces recur), so a complete rewrite reads as less than "all answers
moved"; the calibration in the README shows what that costs in power.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np
from numpy.typing import NDArray
from rapidfuzz.distance import Hamming, Levenshtein
from rapidfuzz.process import cdist

from .limits import HAMMING_CHARS
from .metrics import js_distance
from .parse import ParsedCall

__all__ = [
    "edit_distance",
    "edit_pairs",
    "hamming_distance",
    "hamming_pairs",
    "js_edit_distance",
    "text_metric_pairs",
]

FloatArray = NDArray[np.float64]
IntArray = NDArray[np.int64]
_Scorer = Callable[..., float]


def hamming_distance(a: ParsedCall, b: ParsedCall) -> float:
    """Share of differing characters over the first ``HAMMING_CHARS`` (the ``hamming`` metric).

    Parameters
    ----------
    a, b : ParsedCall
        The two calls; only their texts are read.

    Returns
    -------
    float
        In ``[0, 1]``: differing positions (padding included) over
        ``min(HAMMING_CHARS, max(len(a.text), len(b.text)))``; ``0.0`` for two
        empty texts.
    """
    return float(
        Hamming.normalized_distance(a.text[:HAMMING_CHARS], b.text[:HAMMING_CHARS], pad=True)
    )


def edit_distance(a: ParsedCall, b: ParsedCall) -> float:
    """Normalised Levenshtein distance of the whole texts (the ``edit`` metric).

    Parameters
    ----------
    a, b : ParsedCall
        The two calls; only their texts are read.

    Returns
    -------
    float
        ``levenshtein(a.text, b.text) / max(len(a.text), len(b.text))``, in
        ``[0, 1]``; ``0.0`` for two empty texts.
    """
    return float(Levenshtein.normalized_distance(a.text, b.text))


def _prefix_js(a: ParsedCall, b: ParsedCall) -> float:
    # A call without logprobs says nothing about the distributions: only its text counts.
    return js_distance(a, b) if a.has_logprobs and b.has_logprobs else 0.0


def js_edit_distance(a: ParsedCall, b: ParsedCall) -> float:
    """``js`` on the shared prefix combined with ``edit`` on the whole answer (``js_edit``).

    Parameters
    ----------
    a, b : ParsedCall
        The two calls.

    Returns
    -------
    float
        ``1 - (1 - js(a, b)) * (1 - edit(a, b))`` in ``[0, 1]``, with ``js``
        taken as 0 when either call carries no logprobs.
    """
    return 1.0 - (1.0 - _prefix_js(a, b)) * (1.0 - edit_distance(a, b))


def _text_matrix(texts: Sequence[str], scorer: _Scorer, **kwargs: object) -> FloatArray:
    # rapidfuzz scores every pair in C++; one thread, as the rest of the engine.
    out: FloatArray = cdist(
        texts, texts, scorer=scorer, dtype=np.float64, workers=1, scorer_kwargs=kwargs
    )
    return out


def hamming_pairs(calls: Sequence[ParsedCall], rows: IntArray, cols: IntArray) -> FloatArray:
    """``hamming`` for the pairs (rows[i], cols[i]), scored by rapidfuzz."""
    texts = [c.text[:HAMMING_CHARS] for c in calls]
    return _text_matrix(texts, Hamming.normalized_distance, pad=True)[rows, cols]


def edit_pairs(calls: Sequence[ParsedCall], rows: IntArray, cols: IntArray) -> FloatArray:
    """``edit`` for the pairs (rows[i], cols[i]), scored by rapidfuzz."""
    return _text_matrix([c.text for c in calls], Levenshtein.normalized_distance)[rows, cols]


def text_metric_pairs(
    js_pairs: Callable[[Sequence[ParsedCall], IntArray, IntArray], FloatArray],
) -> Callable[[Sequence[ParsedCall], IntArray, IntArray], FloatArray]:
    """``js_edit`` over pairs, given the vectorised ``js`` (kept in ``fast_pairs``)."""

    def pairs(calls: Sequence[ParsedCall], rows: IntArray, cols: IntArray) -> FloatArray:
        has = np.array([c.has_logprobs for c in calls], dtype=bool)
        js = np.where(has[rows] & has[cols], js_pairs(calls, rows, cols), 0.0)
        combined: FloatArray = 1.0 - (1.0 - js) * (1.0 - edit_pairs(calls, rows, cols))
        return combined

    return pairs
