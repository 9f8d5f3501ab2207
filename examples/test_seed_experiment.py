"""The forum experiment that started this project, as regression tests.

A developer asked whether the ``developer`` and ``system`` roles behave the
same. The experiment: one baseline call, 10 trials per role, top-20 logprobs,
20 tokens, and the mean absolute logprob difference of each trial against the
baseline. These tests run it on the bundled SmolLM2-135M-Instruct model behind
llama.cpp's ``llama-server``, which renders a ``developer`` message exactly as a
``system`` one: on this stack the two roles are the same prompt, and the engine
certifies that they are equivalent. The forum's content control (other
instruction wording) must still be detected, and so must a role change that
really changes the prompt: the instruction moved into the user's message.
(On OpenAI's models the answer may differ: record against them with
``--rolecheck-record-mode=rewrite`` and your own ``rolecheck_client``.)
"""

from __future__ import annotations

from pytest_rolecheck import Rolecheck, Variant, assert_roles_equivalent

INSTRUCTION = "You are a helpful AI assistant"
PROMPT = "Produce two stanza rock song lyrics for 'Rockin with my Kitty Cat'"
MESSAGES = [
    {"role": "system", "content": INSTRUCTION},
    {"role": "user", "content": PROMPT},
]


def test_seed_design_developer_vs_system() -> None:
    """The forum's own design: baseline + N + N, per-trial distance to the baseline.

    On its own the seed design can show a difference but never certify equivalence
    (its jitter is one baseline call's); here every call of both roles is the same
    text with the same logprobs, so the change is known exactly: 0.
    """
    result = assert_roles_equivalent(MESSAGES, roles=("developer", "system"), design="seed")
    assert result.n_a == result.n_b == 20


def test_developer_vs_system_all_pairs() -> None:
    """The default design: all pairs of N + N calls, no privileged baseline."""
    assert_roles_equivalent(MESSAGES, roles=("developer", "system"))


def test_control_instruction_wording_differs(rolecheck: Rolecheck) -> None:
    """The forum's control: changing the instruction's wording must be detected."""
    helpful = Variant.from_messages(MESSAGES, label="helpful")
    creative = helpful.with_instruction(
        "You are a creative English language output AI", label="creative"
    )
    rolecheck.assert_variants_differ(helpful, creative)


def test_instruction_in_the_user_message_differs(rolecheck: Rolecheck) -> None:
    """A role change that changes the prompt: no system message, the instruction
    prefixed to the user's message. SmolLM2's template then inserts its own default
    system prompt, so the model sees other text and answers otherwise."""
    system = Variant.from_messages(MESSAGES, label="system")
    rolecheck.assert_variants_differ(system.with_role("user-prefixed"), system)


def test_sampled_same_prompt_is_equivalent(rolecheck: Rolecheck) -> None:
    """A/A at temperature 1: each call is its own sample (a per-call seed), so the
    texts differ call to call; the behaviour does not. The calls are sampled, so the
    default metric compares the whole answers too (js_edit), not only the tokens up to
    where they part: the certificate covers what the answers say."""
    sampled = Variant.from_messages(MESSAGES, label="t=1")
    result = rolecheck.assert_variants_equivalent(sampled, sampled, temperature=1.0)
    assert result.verdict == "equivalent"
    assert result.metric == "js_edit"
    assert not result.deterministic


def test_sampled_content_change_differs(rolecheck: Rolecheck) -> None:
    """A content change at temperature 1: the same instruction, another request.

    Two sampled answers of one prompt already differ in about three quarters of their
    characters, so the change is measured as the share of answers that moved: the
    distance between the arms beyond an arm's own spread, over the room that spread
    leaves (1 - within). Here far more answers move than the tolerance allows, although
    no two calls agree. (Smaller edits are another matter on this 135M model: at 20
    calls per arm another instruction wording, or "Puppy Dog" for "Kitty Cat", stays
    inconclusive at temperature 1; greedy calls show them, as the tests above do.)"""
    song = Variant.from_messages(MESSAGES, label="song")
    recipe = Variant.from_messages(
        [MESSAGES[0], {"role": "user", "content": "Write a short recipe for pancakes"}],
        label="recipe",
    )
    result = rolecheck.assert_variants_differ(song, recipe, temperature=1.0)
    assert result.metric == "js_edit"
    assert not result.deterministic
