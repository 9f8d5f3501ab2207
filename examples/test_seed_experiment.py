"""The forum experiment that started this project, as regression tests.

A developer asked whether the ``developer`` and ``system`` roles behave the
same. The experiment: one baseline call, 10 trials per role, top-20 logprobs,
20 tokens, and the mean absolute logprob difference of each trial against the
baseline. These tests run it on the bundled SmolLM2-135M-Instruct model, whose
ChatML template inserts its own default system prompt whenever the first
message is not ``system`` — so on this model the role really matters, and the
tests say so. (On OpenAI's models the answer may differ: record against them
with ``--rolecheck-record-mode=rewrite`` and your own ``rolecheck_client``.)
"""

from __future__ import annotations

from pytest_rolecheck import Rolecheck, Variant, assert_roles_differ

INSTRUCTION = "You are a helpful AI assistant"
PROMPT = "Produce two stanza rock song lyrics for 'Rockin with my Kitty Cat'"
MESSAGES = [
    {"role": "system", "content": INSTRUCTION},
    {"role": "user", "content": PROMPT},
]
# The local server rewrites developer -> system for this model name, which is
# what OpenAI has been reported to do with the developer role.
DEVELOPER_AS_SYSTEM = "smollm2-135m-instruct+developer-as-system"


def test_seed_design_developer_vs_system(rolecheck: Rolecheck) -> None:
    """The forum's own design: baseline + 10 + 10, per-trial distance to the baseline.

    On these calls it cannot tell: the baseline happens to be developer's one
    unusual answer, so developer's own trials sit as far from it as system's
    (distance 1 for 9 of 10), and every tied distance leaves the rank test
    without power. The all-pairs design below, which depends on no single
    call, shows the difference; this is why it is the default.
    """
    base = Variant.from_messages(MESSAGES)
    result = rolecheck.compare(base.with_role("developer"), base.with_role("system"), design="seed")
    assert result.n_a == result.n_b == 10
    assert result.verdict == "inconclusive"


def test_developer_vs_system_all_pairs() -> None:
    """The default design: all pairs of 10 + 10 calls, no privileged baseline."""
    assert_roles_differ(MESSAGES, roles=("developer", "system"))


def test_control_instruction_wording_differs(rolecheck: Rolecheck) -> None:
    """The forum's control: changing the instruction's wording must be detected."""
    helpful = Variant.from_messages(MESSAGES, label="helpful")
    creative = helpful.with_instruction(
        "You are a creative English language output AI", label="creative"
    )
    rolecheck.assert_variants_differ(helpful, creative)


def test_developer_rewritten_as_system_is_equivalent(rolecheck: Rolecheck) -> None:
    """If a provider turns developer messages into system ones, nothing changes."""
    system = Variant.from_messages(MESSAGES, label="system")
    developer = system.with_role("developer").with_params(
        model=DEVELOPER_AS_SYSTEM, label="developer-as-system"
    )
    rolecheck.assert_variants_equivalent(developer, system)


def test_sampled_same_prompt_is_equivalent(rolecheck: Rolecheck) -> None:
    """A/A at temperature 1: sampled texts differ call to call, behaviour does not."""
    sampled = Variant.from_messages(MESSAGES, label="t=1")
    result = rolecheck.assert_variants_equivalent(sampled, sampled, temperature=1.0)
    assert result.verdict == "equivalent"
