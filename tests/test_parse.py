"""Tests for pytest_rolecheck.core.parse: responses -> ParsedCall, including messy server output."""

from __future__ import annotations

import copy
import math
from typing import Any

import pytest
from _factories import make_call, make_response, random_response
from hypothesis import given, settings
from hypothesis import strategies as st

from pytest_rolecheck.core.parse import (
    LOGPROB_FLOOR,
    ParsedCall,
    Position,
    ToolCallRecord,
    clamp_logprob,
    parse_response,
    token_key,
)
from pytest_rolecheck.errors import NoLogprobsError, ResponseFormatError

LN = math.log


def _content(response: dict[str, Any]) -> list[dict[str, Any]]:
    entries: list[dict[str, Any]] = response["choices"][0]["logprobs"]["content"]
    return entries


# --------------------------------------------------------------------------- basics


def test_parses_every_field() -> None:
    response = make_response(
        [("Yes", LN(0.9), [("Yes", LN(0.9)), ("No", LN(0.1))]), ("!", 0.0, [("!", 0.0)])],
        finish_reason="stop",
        model="gpt-4o-mini-2024-07-18",
        system_fingerprint="fp_abc",
        prompt_tokens=17,
    )
    call = parse_response(response)
    assert call.text == "Yes!"
    assert call.finish_reason == "stop"
    assert not call.truncated
    assert call.model == "gpt-4o-mini-2024-07-18"
    assert call.system_fingerprint == "fp_abc"
    assert (call.prompt_tokens, call.completion_tokens) == (17, 2)
    assert call.has_logprobs
    assert call.tool_calls == ()
    assert call.keys == ("Yes", "!")
    first = call.positions[0]
    assert first == Position(
        token="Yes",
        key="Yes",
        logprob=LN(0.9),
        alternatives=(("Yes", "Yes", LN(0.9)), ("No", "No", LN(0.1))),
        listed_logprobs=(LN(0.9), LN(0.1)),
    )


def test_sdk_object_and_dict_parse_identically() -> None:
    chat = pytest.importorskip("openai.types.chat")
    response = make_response(
        [("Hi", -0.1, [("Hi", -0.1), ("Hello", -2.5)]), (" there", -0.3, [(" there", -0.3)])],
        tool_calls=[("lookup", '{"q": 1}')],
    )
    sdk_object = chat.ChatCompletion.model_validate(response)
    assert parse_response(sdk_object) == parse_response(response)


def test_parsed_call_passes_through_unchanged() -> None:
    call = make_call([("a", -0.1, [("a", -0.1)])])
    assert parse_response(call) is call


def test_usage_missing_gives_none() -> None:
    response = make_response([("a", -0.1, [("a", -0.1)])])
    del response["usage"]
    del response["system_fingerprint"]
    call = parse_response(response)
    assert call.prompt_tokens is None
    assert call.completion_tokens is None
    assert call.system_fingerprint is None


def test_choice_selects_another_completion() -> None:
    response = make_response([("a", -0.1, [("a", -0.1)])])
    second = copy.deepcopy(response["choices"][0])
    second["message"]["content"] = "b"
    second["logprobs"]["content"][0].update(token="b", bytes=[98])
    response["choices"].append(second)
    assert parse_response(response, choice=1).keys == ("b",)
    with pytest.raises(ResponseFormatError, match=r"choice=2 is out of range.*2 choice"):
        parse_response(response, choice=2)


# --------------------------------------------------------------------------- alternatives


def test_fewer_than_k_alternatives_is_fine() -> None:
    call = make_call([("a", -0.1, [("a", -0.1)]), ("b", -0.2, [])])
    assert [len(p.alternatives) for p in call.positions] == [1, 1]
    # The second position listed nothing: the generated token is still counted.
    assert call.positions[1].alternatives == (("b", "b", -0.2),)
    assert call.positions[1].listed_logprobs == ()


def test_top_logprobs_null_counts_as_empty() -> None:
    response = make_response([("a", -0.1, [])])
    _content(response)[0]["top_logprobs"] = None
    assert parse_response(response).positions[0].alternatives == (("a", "a", -0.1),)


def test_unsorted_alternatives_are_sorted_descending() -> None:
    call = make_call([("b", -0.5, [("c", -3.0), ("a", -1.5), ("b", -0.5)])])
    position = call.positions[0]
    assert [a[0] for a in position.alternatives] == ["b", "a", "c"]
    # The server's order is kept for the rank-based seed metric.
    assert position.listed_logprobs == (-3.0, -1.5, -0.5)


def test_equal_logprobs_sort_by_key_so_server_order_never_matters() -> None:
    one = make_call([("x", -1.0, [("y", -1.0), ("x", -1.0)])])
    two = make_call([("x", -1.0, [("x", -1.0), ("y", -1.0)])])
    assert one.positions[0].alternatives == two.positions[0].alternatives
    assert [a[0] for a in one.positions[0].alternatives] == ["x", "y"]


def test_duplicate_token_merges_by_logsumexp() -> None:
    # "a" listed twice with p = 0.1 and p = 0.2 -> one entry with p = 0.3.
    call = make_call([("b", LN(0.5), [("b", LN(0.5)), ("a", LN(0.1)), ("a", LN(0.2))])])
    alternatives = call.positions[0].alternatives
    assert [a[0] for a in alternatives] == ["b", "a"]
    assert alternatives[1][2] == pytest.approx(LN(0.3), abs=1e-12)
    assert call.positions[0].listed_logprobs == (LN(0.5), LN(0.1), LN(0.2))


def test_duplicate_of_probability_zero_adds_nothing() -> None:
    # exp(-9999) is 0: merging it with p = 0.25 must leave 0.25, and 0 + 0 stays the floor.
    call = make_call(
        [("a", LN(0.25), [("a", LN(0.25)), ("a", -9999.0), ("z", -9999.0), ("z", -9999.0)])]
    )
    alternatives = {k: lp for k, _, lp in call.positions[0].alternatives}
    assert alternatives == {"a": LN(0.25), "z": LOGPROB_FLOOR}


def test_generated_token_missing_from_alternatives_is_added() -> None:
    # Sampled outside the listed top-k (or a server that omits it): still counted.
    call = make_call([("rare", -6.0, [("x", -0.2), ("y", -1.8)])])
    position = call.positions[0]
    assert [a[0] for a in position.alternatives] == ["x", "y", "rare"]
    assert position.alternatives[2] == ("rare", "rare", -6.0)
    assert position.listed_logprobs == (-0.2, -1.8)


def test_duplicate_spellings_keep_the_likelier_text() -> None:
    # Same bytes, two spellings: one key, the text of the more likely entry.
    response = make_response([("é", LN(0.5), [("é", LN(0.5))])])
    _content(response)[0]["top_logprobs"].append(
        {"token": "e\u0301?", "logprob": LN(0.1), "bytes": list("é".encode())}
    )
    alternatives = parse_response(response).positions[0].alternatives
    assert len(alternatives) == 1
    assert alternatives[0][:2] == ("é", "é")
    assert alternatives[0][2] == pytest.approx(LN(0.6))


# --------------------------------------------------------------------------- token identity


def test_key_rule() -> None:
    assert token_key("Hello", None) == "Hello"
    assert token_key("Hello", list(b"Hello")) == "Hello"
    # bytes win over a mangled token text (GPT-2 style "Ġ" for a space)
    assert token_key("\u0120hello", list(b" hello")) == " hello"
    # half of a multi-byte character: OpenAI's own "bytes:" spelling
    assert token_key("\ufffd", [0xE2, 0x80]) == "bytes:\\xe2\\x80"
    assert token_key("\ufffd", b"\xf0\x9f") == "bytes:\\xf0\\x9f"


def test_bytes_on_one_side_and_null_on_the_other_still_match() -> None:
    with_bytes = make_call([("Hello", -0.1, [("Hello", -0.1)])], with_bytes=True)
    without = make_call([("Hello", -0.1, [("Hello", -0.1)])], with_bytes=False)
    assert with_bytes.positions == without.positions


def test_partial_characters_are_told_apart_by_bytes() -> None:
    response = make_response([("\ufffd", -0.5, [("\ufffd", -0.5)])])
    entry = _content(response)[0]
    entry["bytes"] = [0xE2, 0x80]
    entry["top_logprobs"] = [
        {"token": "\ufffd", "logprob": -0.5, "bytes": [0xE2, 0x80]},
        {"token": "\ufffd", "logprob": -1.5, "bytes": [0xF0, 0x9F]},
    ]
    position = parse_response(response).positions[0]
    assert position.key == "bytes:\\xe2\\x80"
    assert [a[0] for a in position.alternatives] == ["bytes:\\xe2\\x80", "bytes:\\xf0\\x9f"]
    # and a server that sends OpenAI's text spelling without bytes lands on the same key
    assert token_key("bytes:\\xe2\\x80", None) == position.key


@pytest.mark.parametrize("bad", [[256], [-1], "abc", [1.5], 7, [True]])
def test_malformed_bytes_is_a_format_error(bad: object) -> None:
    response = make_response([("a", -0.1, [("a", -0.1)])])
    _content(response)[0]["bytes"] = bad
    with pytest.raises(ResponseFormatError, match=r"content\[0\]: bytes should be null"):
        parse_response(response)


# --------------------------------------------------------------------------- logprob values


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        (-math.inf, LOGPROB_FLOOR),
        (-9999.0, LOGPROB_FLOOR),
        (-1e5, LOGPROB_FLOOR),
        (math.nan, LOGPROB_FLOOR),
        (1e-7, 0.0),  # rounding noise above 0
        (0.0, 0.0),
        (-0.25, -0.25),
        (-9998.5, -9998.5),
    ],
)
def test_logprobs_are_clamped_to_a_finite_range(raw: float, expected: float) -> None:
    assert clamp_logprob(raw) == expected
    call = make_call([("a", raw, [("a", raw), ("b", raw)])])
    position = call.positions[0]
    assert position.logprob == expected
    assert all(lp == expected for _, _, lp in position.alternatives)
    assert position.listed_logprobs == (expected, expected)


@pytest.mark.parametrize("bad", [None, "-0.1", True, [0.1]])
def test_non_numeric_logprob_is_a_format_error(bad: object) -> None:
    response = make_response([("a", -0.1, [("a", -0.1), ("b", -2.0)])])
    _content(response)[0]["top_logprobs"][1]["logprob"] = bad
    with pytest.raises(ResponseFormatError, match=r"top_logprobs\[1\]: logprob should be"):
        parse_response(response)


def test_missing_token_or_logprob_is_a_format_error() -> None:
    response = make_response([("a", -0.1, [])])
    del _content(response)[0]["logprob"]
    with pytest.raises(ResponseFormatError, match="has no 'logprob'"):
        parse_response(response)
    response = make_response([("a", -0.1, [])])
    _content(response)[0]["token"] = None
    with pytest.raises(ResponseFormatError, match="'token' should be a string"):
        parse_response(response)


# --------------------------------------------------------------------------- empty / lengths


def test_empty_content_gives_zero_positions() -> None:
    call = parse_response(make_response([], text=""))
    assert call.text == ""
    assert call.positions == ()
    assert call.has_logprobs


def test_null_content_and_null_token_list_give_zero_positions() -> None:
    response = make_response([], text="")
    response["choices"][0]["message"]["content"] = None
    response["choices"][0]["logprobs"]["content"] = None
    call = parse_response(response)
    assert (call.text, call.positions, call.has_logprobs) == ("", (), True)


def test_responses_of_different_lengths_parse_independently() -> None:
    short = make_call([("a", -0.1, [("a", -0.1)])], finish_reason="stop")
    long = make_call([("a", -0.1, [("a", -0.1)])] * 5, finish_reason="length")
    assert (len(short.positions), len(long.positions)) == (1, 5)
    assert (short.truncated, long.truncated) == (False, True)
    assert long.finish_reason == "length"


def test_finish_reason_does_not_change_positions() -> None:
    tokens = [("a", -0.1, [("a", -0.1), ("b", -2.4)])]
    stop = make_call(tokens, finish_reason="stop")
    length = make_call(tokens, finish_reason="length")
    assert stop.positions == length.positions
    assert make_call(tokens, finish_reason=None).finish_reason is None


# --------------------------------------------------------------------------- no logprobs


def test_logprobs_null_raises_with_the_fix() -> None:
    response = make_response([("a", -0.1, [])], logprobs=False)
    with pytest.raises(NoLogprobsError) as info:
        parse_response(response)
    message = str(info.value)
    assert "gpt-4o-mini returned no token logprobs" in message
    assert "logprobs is null" in message
    assert "logprobs=True, top_logprobs=k" in message
    assert "require_logprobs=False" in message
    assert isinstance(info.value, ResponseFormatError)


def test_logprobs_null_allowed_when_not_required() -> None:
    call = parse_response(make_response([("a", -0.1, [])], logprobs=False), require_logprobs=False)
    assert call.text == "a"
    assert call.positions == ()
    assert not call.has_logprobs


def test_text_without_logprob_tokens_raises() -> None:
    # e.g. llama.cpp when top_logprobs was not set: a logprobs object, but no tokens in it
    response = make_response([], text="Hello")
    with pytest.raises(NoLogprobsError, match="no token entries although the message has text"):
        parse_response(response)


# --------------------------------------------------------------------------- malformed


def test_empty_choices_is_a_format_error() -> None:
    response = make_response([("a", -0.1, [])])
    response["choices"] = []
    with pytest.raises(ResponseFormatError, match="empty 'choices' list"):
        parse_response(response)


@pytest.mark.parametrize("choices", [None, "abc", 3])
def test_missing_or_bad_choices_is_a_format_error(choices: object) -> None:
    response = make_response([("a", -0.1, [])])
    response["choices"] = choices
    with pytest.raises(ResponseFormatError, match="no 'choices' list"):
        parse_response(response)


@pytest.mark.parametrize("junk", [42, "text", None, [1, 2]])
def test_non_response_is_a_format_error(junk: object) -> None:
    with pytest.raises(ResponseFormatError, match="openai ChatCompletion or its JSON"):
        parse_response(junk)


def test_non_string_content_is_a_format_error() -> None:
    response = make_response([("a", -0.1, [])])
    response["choices"][0]["message"]["content"] = [{"type": "text", "text": "a"}]
    with pytest.raises(ResponseFormatError, match="content should be a string or null"):
        parse_response(response)


def test_token_list_that_is_not_a_list_is_a_format_error() -> None:
    response = make_response([("a", -0.1, [])])
    response["choices"][0]["logprobs"]["content"] = "a"
    with pytest.raises(ResponseFormatError, match="should be a list of token entries"):
        parse_response(response)


# --------------------------------------------------------------------------- tool calls / refusal


def test_tool_calls_are_recorded_without_logprobs() -> None:
    response = make_response(
        [],
        finish_reason="tool_calls",
        tool_calls=[("get_weather", '{"city": "Paris"}'), ("get_time", "{}")],
        logprobs=False,
    )
    with pytest.raises(NoLogprobsError):
        parse_response(response)
    call = parse_response(response, require_logprobs=False)
    assert call.text == ""
    assert call.finish_reason == "tool_calls"
    assert call.tool_calls == (
        ToolCallRecord(name="get_weather", arguments='{"city": "Paris"}'),
        ToolCallRecord(name="get_time", arguments="{}"),
    )
    assert call.tool_calls[0].id == "call_0"


def test_tool_call_id_is_not_part_of_equality() -> None:
    assert ToolCallRecord("f", "{}", id="call_1") == ToolCallRecord("f", "{}", id="call_2")
    assert ToolCallRecord("f", "{}") != ToolCallRecord("f", '{"a": 1}')
    with pytest.raises(AttributeError):
        ToolCallRecord("f", "{}").name = "g"  # type: ignore[misc]


def test_custom_and_legacy_function_calls() -> None:
    custom = make_response(
        [],
        tool_calls=[{"id": "c1", "type": "custom", "custom": {"name": "grep", "input": "x"}}],
        logprobs=False,
    )
    assert parse_response(custom, require_logprobs=False).tool_calls == (
        ToolCallRecord(name="grep", arguments="x", type="custom"),
    )
    legacy = make_response([], text="", logprobs=False)
    legacy["choices"][0]["message"]["function_call"] = {"name": "f", "arguments": "{}"}
    assert parse_response(legacy, require_logprobs=False).tool_calls == (
        ToolCallRecord(name="f", arguments="{}"),
    )


def test_tool_call_without_name_is_a_format_error() -> None:
    response = make_response([], tool_calls=[{"id": "c", "type": "function", "function": {}}])
    with pytest.raises(ResponseFormatError, match=r"tool_calls\[0\] has no function name"):
        parse_response(response, require_logprobs=False)


def test_refusal_tokens_become_positions() -> None:
    response = make_response([], text="")
    choice = response["choices"][0]
    choice["message"].update(content=None, refusal="No.")
    choice["logprobs"]["refusal"] = _content(make_response([("No", -0.1, []), (".", -0.2, [])]))
    call = parse_response(response)
    assert call.text == ""
    assert call.refusal == "No."
    assert call.keys == ("No", ".")


# --------------------------------------------------------------------------- properties

_ALT = st.tuples(
    st.sampled_from(["a", "b", "c", " d", "é"]),
    st.one_of(
        st.floats(min_value=-30.0, max_value=0.0),
        st.sampled_from([-math.inf, -9999.0, 0.0, math.nan, 1e-9]),
    ),
)


@settings(max_examples=150, deadline=None)
@given(alts=st.lists(_ALT, max_size=8), data=st.data())
def test_order_of_alternatives_never_matters(alts: list[tuple[str, float]], data: Any) -> None:
    shuffled = data.draw(st.permutations(alts))
    one = make_call([("a", -0.5, alts)]).positions[0]
    two = make_call([("a", -0.5, shuffled)]).positions[0]
    # log-sum-exp uses math.fsum: merged values are identical bit for bit
    assert one.alternatives == two.alternatives
    keys = [k for k, _, _ in one.alternatives]
    assert len(keys) == len(set(keys))
    assert "a" in keys
    lps = [lp for _, _, lp in one.alternatives]
    assert lps == sorted(lps, reverse=True)
    assert all(LOGPROB_FLOOR <= lp <= 0.0 and math.isfinite(lp) for lp in lps)


@settings(max_examples=50, deadline=None)
@given(seed=st.integers(0, 2**32 - 1))
def test_random_responses_parse_to_consistent_calls(seed: int) -> None:
    import numpy as np

    response = random_response(np.random.default_rng(seed), n_tokens=5, top_k=4, vocab_size=8)
    call = parse_response(response)
    assert isinstance(call, ParsedCall)
    assert len(call.positions) == 5
    assert "".join(p.token for p in call.positions) == call.text
    assert all(p.key == p.alternatives[0][0] for p in call.positions)  # greedy


_ENTRY_VALUES = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-300, 300),
    st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=3),
    st.lists(st.one_of(st.integers(-2, 300), st.booleans()), max_size=4),
)
_ENTRIES = st.lists(
    st.dictionaries(st.sampled_from(["token", "logprob", "bytes"]), _ENTRY_VALUES), max_size=4
)


@settings(max_examples=300, deadline=None)
@given(_ENTRIES)
def test_the_plain_entry_path_reads_entries_as_the_checked_one(entries: list[Any]) -> None:
    from pytest_rolecheck.core.parse import _plain_entries, _token_entry

    fast = _plain_entries(entries)
    try:
        checked = [_token_entry(entry, "e") for entry in entries]
    except ResponseFormatError:
        assert fast is None  # only the checked path reports (and locates) a bad entry
        return
    assert fast is None or fast == checked
