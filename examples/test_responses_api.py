"""The forum's question, asked of the Responses API: ``instructions`` or ``developer``?

``client.responses.create`` takes the instruction either as its ``instructions``
parameter (documented as "a system (or developer) message inserted into the model's
context") or as a ``developer`` message among the ``input`` items. These tests send
both through the Responses API (``api="responses"``) to the bundled SmolLM2-135M-Instruct
behind llama.cpp's ``llama-server``, which serves ``/v1/responses`` and puts
``instructions`` where a ``developer`` (= ``system``) message goes: the two arms are the
same prompt, and the engine certifies that they are equivalent. Moving the instruction
into the user's message is another prompt, and that must be detected.

That server returns no logprobs on ``/v1/responses`` (every ``output_text`` part has an
empty list), so the calls ask for none (``logprobs=False``) and are compared by their
texts: ``metric="edit"``, the normalised edit distance of the whole answers (what
``metric="auto"`` picks for calls without logprobs). The equivalence is
certified on sampled calls (temperature 1), with real call-to-call variation in each
arm (about 0.6 to 0.7 of the characters of two answers differ); the change is shown on
greedy ones (temperature 0).
"""

from __future__ import annotations

import pytest

from pytest_rolecheck import Rolecheck, Variant

MESSAGES = [
    {"role": "system", "content": "You are a helpful AI assistant. Answer in one sentence."},
    {"role": "user", "content": "What is the best thing about cats?"},
]
# Every test here: the Responses API, the texts compared, sampled calls.
pytestmark = pytest.mark.rolecheck(api="responses", logprobs=False, metric="edit", temperature=1.0)


# 40 calls per arm: the change is the share of answers that moved, and two sampled
# answers already differ in most of their characters, so 20 calls leave its upper bound
# near 0.28, above the tolerance.
@pytest.mark.rolecheck(trials=40)
def test_instructions_vs_developer_message(rolecheck: Rolecheck) -> None:
    """``instructions`` and a ``developer`` message: the same prompt on this server."""
    base = Variant.from_messages(MESSAGES)
    result = rolecheck.assert_variants_equivalent(
        base.with_role("instructions"), base.with_role("developer")
    )
    assert not result.deterministic  # sampled: the answers vary from call to call


def test_instructions_vs_instruction_in_the_user_message(rolecheck: Rolecheck) -> None:
    """The instruction prefixed to the user's message instead: another prompt (SmolLM2's
    template then adds its own default system line), other answers."""
    base = Variant.from_messages(MESSAGES)
    rolecheck.assert_variants_differ(
        base.with_role("instructions"), base.with_role("user-prefixed"), temperature=0.0
    )
