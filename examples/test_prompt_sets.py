"""The forum experiment over twenty prompts at once: a prompt set.

One prompt decides little about "does the ``developer`` role behave like
``system``?". Here the same question is asked over the twenty requests of
``prompts.yaml`` (loaded with :func:`~pytest_rolecheck.load_prompt_set`), with
5 calls per role and case (the prompt sets' default): one comparison, one
verdict over the set, and a per-case breakdown that names the cases that moved.

On the bundled SmolLM2-135M-Instruct model behind llama.cpp's ``llama-server``
a ``developer`` message is rendered exactly as a ``system`` one, so every case
gives the same answer under both roles: the set is certified equivalent (20
quiet cases bound the share of prompts that could change below the tolerance).
The forum's control, another wording of the instruction, moves the cases and
must be detected.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from pytest_rolecheck import Rolecheck, assert_roles_equivalent, load_prompt_set

PROMPTS = load_prompt_set(Path(__file__).parent / "prompts.yaml")

# 200 calls per test: 10 tokens with their top-5 alternatives keep each cassette small.
pytestmark = pytest.mark.rolecheck(max_tokens=10, top_logprobs=5)


def test_developer_vs_system_over_twenty_prompts() -> None:
    """developer vs system on every case: equivalent over the set."""
    result = assert_roles_equivalent(prompts=PROMPTS, roles=("developer", "system"))
    assert result.n_cases == 20


def test_instruction_wording_moves_the_set(rolecheck: Rolecheck) -> None:
    """The forum's control over the set: another wording of the instruction."""
    helpful = PROMPTS.with_label("helpful")
    creative = PROMPTS.with_instruction(
        "You are a creative English language output AI", label="creative"
    )
    result = rolecheck.assert_variants_differ(helpful, creative)
    assert len(result.changed) > len(PROMPTS) // 2


def test_sampled_set_is_equivalent_to_itself(rolecheck: Rolecheck) -> None:
    """A/A at temperature 1: every call is its own sample (a per-call seed), so the
    cases vary call to call; the statistics, not identical texts, decide. The default
    metric compares sampled answers as texts too (js_edit), whose call-to-call spread
    is wide: 10 calls per case and arm certify what 5 leave inconclusive."""
    sampled = PROMPTS.with_label("t=1")
    result = rolecheck.assert_variants_equivalent(sampled, sampled, temperature=1.0, trials=10)
    assert result.metric == "js_edit"
