"""Tests for the text metrics (core/text_metrics.py) and the choice of the default metric."""

from __future__ import annotations

import itertools
import math
from collections.abc import Sequence

import numpy as np
import pytest
from _factories import make_call
from hypothesis import given, settings
from hypothesis import strategies as st

from pytest_rolecheck import compare
from pytest_rolecheck.core.distances import (
    choose_metric,
    distance_matrix,
    edit_distance,
    get_metric,
    hamming_distance,
    js_distance,
    js_edit_distance,
    register_metric,
)
from pytest_rolecheck.core.limits import HAMMING_CHARS
from pytest_rolecheck.core.parse import ParsedCall
from pytest_rolecheck.errors import NothingToCompareError, RolecheckUsageError

TEXT_METRICS = ("hamming", "edit", "js_edit")


def text_call(text: str) -> ParsedCall:
    """A call with text and no logprobs (a model or server that returns none)."""
    return ParsedCall(text=text, positions=(), has_logprobs=False)


# --------------------------------------------------------------------------- references


def ref_hamming(x: str, y: str) -> float:
    """Plain-Python reference: pad the shorter with a character that matches nothing."""
    x, y = x[:HAMMING_CHARS], y[:HAMMING_CHARS]
    m = max(len(x), len(y))
    if m == 0:
        return 0.0
    pad_x, pad_y = list(x) + [None] * (m - len(x)), list(y) + [object()] * (m - len(y))
    return sum(a != b for a, b in zip(pad_x, pad_y, strict=True)) / m


def ref_levenshtein(x: str, y: str) -> int:
    """The textbook dynamic programme (Wagner & Fischer 1974)."""
    previous = list(range(len(y) + 1))
    for i, cx in enumerate(x, 1):
        current = [i]
        for j, cy in enumerate(y, 1):
            current.append(min(previous[j] + 1, current[j - 1] + 1, previous[j - 1] + (cx != cy)))
        previous = current
    return previous[-1]


def ref_edit(x: str, y: str) -> float:
    m = max(len(x), len(y))
    return ref_levenshtein(x, y) / m if m else 0.0


# --------------------------------------------------------------------------- hand values


@pytest.mark.parametrize(
    ("x", "y", "hamming", "edit"),
    [
        ("", "", 0.0, 0.0),
        ("abc", "abc", 0.0, 0.0),
        ("abc", "abd", 1 / 3, 1 / 3),
        ("abc", "ab", 1 / 3, 1 / 3),
        ("", "Yes", 1.0, 1.0),
        ("kitten", "sitting", 3 / 7, 3 / 7),
        # one inserted character misaligns Hamming from there on; edit realigns
        ("a cat sat", "the cat sat", 1.0, 3 / 11),
    ],
)
def test_hand_computed_values(x: str, y: str, hamming: float, edit: float) -> None:
    a, b = text_call(x), text_call(y)
    assert hamming_distance(a, b) == pytest.approx(hamming, abs=1e-15)
    assert edit_distance(a, b) == pytest.approx(edit, abs=1e-15)
    assert js_edit_distance(a, b) == pytest.approx(edit, abs=1e-15)  # no logprobs: text only


def test_hamming_compares_only_the_first_characters() -> None:
    head = "x" * HAMMING_CHARS
    assert hamming_distance(text_call(head + "abc"), text_call(head + "xyz")) == 0.0
    assert edit_distance(text_call(head + "abc"), text_call(head + "xyz")) > 0.0


def test_js_edit_combines_like_positions() -> None:
    yes = [("Yes", math.log(0.8), [("Yes", math.log(0.8)), ("No", math.log(0.2))])]
    yes_other = [("Yes", math.log(0.5), [("Yes", math.log(0.5)), ("No", math.log(0.5))])]
    a = make_call(yes, text="Yes, it rocks")
    b = make_call(yes_other, text="Yes, it rolls")
    js, edit = js_distance(a, b), edit_distance(a, b)
    assert 0.0 < js < 1.0
    assert 0.0 < edit < 1.0
    assert js_edit_distance(a, b) == pytest.approx(1.0 - (1.0 - js) * (1.0 - edit), abs=1e-15)
    # Same text, different distributions: js alone; one side without logprobs: edit alone.
    same = make_call(yes_other, text="Yes, it rocks")
    assert js_edit_distance(a, same) == pytest.approx(js_distance(a, same), abs=1e-15)
    bare = ParsedCall(text=b.text, positions=(), has_logprobs=False)
    assert js_edit_distance(a, bare) == pytest.approx(edit, abs=1e-15)


# --------------------------------------------------------------------------- properties

_TEXT = st.text(alphabet=st.sampled_from("ab c\né🎸"), max_size=12)


@settings(max_examples=300, deadline=None)
@given(x=_TEXT, y=_TEXT)
def test_properties_and_reference(x: str, y: str) -> None:
    a, b = text_call(x), text_call(y)
    assert hamming_distance(a, b) == pytest.approx(ref_hamming(x, y), abs=1e-12)
    assert edit_distance(a, b) == pytest.approx(ref_edit(x, y), abs=1e-12)
    for name in TEXT_METRICS:
        fn = get_metric(name)
        d = fn(a, b)
        assert 0.0 <= d <= 1.0, name
        assert d == fn(b, a), name  # symmetric bit for bit
        assert fn(a, text_call(x)) == 0.0, name
        assert (d == 0.0) == (x == y), name  # 0 exactly on equal texts


@settings(max_examples=40, deadline=None)
@given(texts=st.lists(_TEXT, min_size=2, max_size=7))
def test_matrix_matches_the_per_pair_reference(texts: list[str]) -> None:
    calls = [text_call(t) for t in texts]
    for name, ref in (("hamming", ref_hamming), ("edit", ref_edit), ("js_edit", ref_edit)):
        matrix = distance_matrix(calls, name)
        expected = np.zeros((len(texts), len(texts)))
        for i, j in itertools.combinations(range(len(texts)), 2):
            expected[i, j] = expected[j, i] = ref(texts[i], texts[j])
        assert np.allclose(matrix, expected, rtol=0, atol=1e-12), name
        assert np.array_equal(matrix, matrix.T)


def test_js_edit_matrix_matches_the_per_pair_function_with_logprobs() -> None:
    rng = np.random.default_rng(5)
    vocab = ["a", " b", " cat", "!"]
    calls = []
    for _ in range(9):
        tokens = []
        for _t in range(int(rng.integers(0, 5))):
            p = rng.dirichlet(np.ones(len(vocab)))
            chosen = vocab[int(rng.choice(len(vocab), p=p))]
            tokens.append(
                (
                    chosen,
                    math.log(p[vocab.index(chosen)]),
                    [(v, math.log(q)) for v, q in zip(vocab, p, strict=True)],
                )
            )
        calls.append(make_call(tokens))
    calls.append(text_call("a cat!"))  # a call without logprobs among them
    matrix = distance_matrix(calls, "js_edit")
    for i, j in itertools.combinations(range(len(calls)), 2):
        assert matrix[i, j] == pytest.approx(js_edit_distance(calls[i], calls[j]), abs=1e-12)


# --------------------------------------------------------------------------- auto


def _greedy(text: str) -> ParsedCall:
    # Each generated token is its position's most likely one.
    return make_call([(text, math.log(0.9), [(text, math.log(0.9)), ("z", math.log(0.1))])])


def _sampled(text: str) -> ParsedCall:
    # The generated token is less likely than another listed one: sampling drew it.
    return make_call([(text, math.log(0.3), [("z", math.log(0.7)), (text, math.log(0.3))])])


def test_choose_metric() -> None:
    assert choose_metric([_greedy("x"), _greedy("y")]) == ("js", None)
    name, why = choose_metric([_greedy("x"), _sampled("y"), _greedy("x")])
    assert name == "js_edit"
    assert "1 of 3 calls took a token other than their most likely one" in why
    name, why = choose_metric([text_call("x"), text_call("y")])
    assert (name, "no call carries logprobs" in why) == ("edit", True)
    # The arms are pooled: the order of the calls never changes the choice.
    calls = [_greedy("x"), _sampled("y"), text_call("z")]
    assert {choose_metric(list(p))[0] for p in itertools.permutations(calls)} == {"js_edit"}


def test_auto_is_a_choice_not_a_distance() -> None:
    with pytest.raises(RolecheckUsageError, match="choice made from the calls"):
        get_metric("auto")
    with pytest.raises(RolecheckUsageError, match="name of the default"):
        register_metric("auto", edit_distance)
    calls = [text_call("a cat"), text_call("a dog")]
    assert np.array_equal(distance_matrix(calls, "auto"), distance_matrix(calls, "edit"))


def _arm(texts: Sequence[str]) -> list[ParsedCall]:
    return [text_call(t) for t in texts]


def test_compare_without_logprobs_uses_the_texts() -> None:
    same = _arm(["the cat sings", "the cat sings loud", "a cat sings", "the cat sang"] * 5)
    other = _arm(["il pleut des cordes", "il pleut", "des cordes, il pleut", "pluie"] * 5)
    result = compare(same, other)
    assert result.metric == "edit"
    assert result.verdict == "different"
    assert any("no call carries logprobs" in note for note in result.notes)
    assert "no call carries logprobs" in str(result)
    assert compare(same, same[::-1]).verdict == "equivalent"
    # A token metric has nothing to compare on such calls: refused, not "equivalent".
    with pytest.raises(NothingToCompareError):
        compare(same, other, metric="js")


def test_sampled_calls_get_js_edit_and_greedy_calls_js() -> None:
    greedy = [_greedy("x")] * 4
    assert compare(greedy, greedy).metric == "js"
    assert not any("metric auto" in note for note in compare(greedy, greedy).notes)
    sampled = [_sampled("x"), _sampled("y")] * 2
    assert compare(sampled, sampled).metric == "js_edit"
    assert compare(sampled, sampled, metric="js").metric == "js"  # an explicit metric stays


def test_a_rewrite_of_sampled_answers_is_different_by_the_share_that_moved() -> None:
    # Sampled-like answers: two calls of an arm share few characters (edit ~0.9), so even
    # answers in another alphabet altogether are only ~0.1 further apart; the change is the
    # share of answers that moved (all of them), not that 0.1.
    rng = np.random.default_rng(0)

    def answers(alphabet: str) -> list[ParsedCall]:
        return [text_call("".join(rng.choice(list(alphabet), size=40))) for _ in range(20)]

    letters, digits = answers("abcdefghijklmnopqrstuvwxyz"), answers("0123456789")
    result = compare(letters, digits, metric="edit")
    assert result.within_a > 0.85
    assert result.cross - result.within_a < 0.2  # what the absolute change would read
    assert result.change > 0.9
    assert result.verdict == "different"
    assert compare(letters[:10], letters[10:], metric="edit").verdict != "different"
