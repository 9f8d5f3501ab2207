"""Prompt sets as inputs: constructors, stable ids, files with file:line errors, derivations."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from pytest_rolecheck import PromptSet, RolecheckUsageError, Variant, load_prompt_set
from pytest_rolecheck.variants.prompt_sets import DERIVATIONS

MESSAGES = [
    [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Hi"}],
    [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Bye"}],
]

YAML = """\
instruction: You are a helpful assistant.
params: {temperature: 0}
cases:
  - id: capital
    prompt: What is the capital of France?
  - id: haiku
    messages:
      - {role: system, content: You write haiku.}
      - {role: user, content: A haiku about rain.}
"""


def test_from_messages_ids_default_to_positions_and_keep_order() -> None:
    ps = PromptSet.from_messages(MESSAGES, temperature=0.5)
    assert ps.ids == ("case-1", "case-2")
    assert ps.label == "system"
    assert ps["case-2"].request()["messages"][1]["content"] == "Bye"
    assert ps["case-1"].params["temperature"] == 0.5
    assert list(PromptSet.from_messages(MESSAGES, ids=["hi", "bye"])) == ["hi", "bye"]
    assert list(PromptSet.from_messages({"b": MESSAGES[1], "a": MESSAGES[0]})) == ["b", "a"]


def test_from_prompts_puts_every_prompt_under_the_instruction() -> None:
    ps = PromptSet.from_prompts({"x": "One", "y": "Two"}, instruction="Be kind.", role="developer")
    assert ps["y"].request()["messages"] == [
        {"role": "developer", "content": "Be kind."},
        {"role": "user", "content": "Two"},
    ]
    assert ps.label == "developer"
    bare = PromptSet.from_prompts(["One"])
    assert bare["case-1"].request()["messages"] == [{"role": "user", "content": "One"}]


@pytest.mark.parametrize(
    ("build", "words"),
    [
        (lambda: PromptSet.from_messages([]), "at least one case"),
        (lambda: PromptSet.from_messages(MESSAGES, ids=["a", "a"]), "already the id of case 1"),
        (lambda: PromptSet.from_messages(MESSAGES, ids=["a"]), "one id per case"),
        (lambda: PromptSet.from_messages([[{"role": "bot", "content": "x"}]]), "case 'case-1'"),
        (lambda: PromptSet.from_prompts(["ok", ""]), "case 'case-2': the prompt must be"),
        (lambda: PromptSet.from_prompts("one prompt"), "expected a list of prompts"),
        (lambda: PromptSet.from_prompts(["a"], role="user"), "role must be one of"),
        (lambda: PromptSet.from_messages({" x": MESSAGES[0]}), "leading or trailing spaces"),
    ],
)
def test_bad_python_input_is_refused_with_the_case(build: object, words: str) -> None:
    with pytest.raises(RolecheckUsageError, match=words):
        build()  # type: ignore[operator]


def test_every_variant_derivation_applies_to_every_case() -> None:
    ps = PromptSet.from_messages(MESSAGES)
    for name in ("with_role", "with_instruction", "with_preamble", "tools_in_system_prompt"):
        assert name in DERIVATIONS
    developer = ps.with_role("developer")
    assert isinstance(developer, PromptSet)
    assert developer.ids == ps.ids
    assert developer.label == "developer"
    assert {v.messages[0]["role"] for v in developer.values()} == {"developer"}
    reworded = ps.with_instruction("Be verbose.", label="verbose")
    assert reworded.label == "verbose"
    assert all(v.instruction == "Be verbose." for v in reworded.values())
    dated = ps.with_preamble(current_date="2024-07-10")
    assert dated.label == "system+date"
    tool = {"type": "function", "function": {"name": "f", "parameters": {"type": "object"}}}
    in_prompt = ps.with_tools([tool]).tools_in_system_prompt()
    assert all("namespace functions" in (v.instruction or "") for v in in_prompt.values())
    assert ps.map(lambda v: v.with_params(seed=1))["case-2"].params["seed"] == 1
    assert ps.with_label("base").label == "base"
    # a derivation that fails names the case
    with pytest.raises(RolecheckUsageError, match=r"case 'case-1'.*no tools"):
        ps.tools_in_system_prompt()
    with pytest.raises(AttributeError):
        ps.no_such_derivation  # noqa: B018


def test_sets_are_immutable_and_hashable() -> None:
    a, b = PromptSet.from_messages(MESSAGES), PromptSet.from_messages(MESSAGES)
    assert a == b
    assert hash(a) == hash(b)
    assert a != a.with_role("developer")
    with pytest.raises(AttributeError):
        a.label = "x"  # type: ignore[misc]


def test_yaml_file(tmp_path: Path) -> None:
    path = tmp_path / "prompts.yaml"
    path.write_text(YAML)
    ps = load_prompt_set(path)
    assert ps.ids == ("capital", "haiku")
    assert ps["capital"].request()["messages"][0] == {
        "role": "system",
        "content": "You are a helpful assistant.",
    }
    assert ps["haiku"].instruction == "You write haiku."
    assert ps["haiku"].params["temperature"] == 0
    assert load_prompt_set(path, label="base").label == "base"


def test_jsonl_file(tmp_path: Path) -> None:
    path = tmp_path / "prompts.jsonl"
    rows = [
        {"id": "a", "prompt": "One"},
        {"id": "b", "messages": [{"role": "user", "content": "Two"}]},
    ]
    path.write_text("\n".join(json.dumps(r) for r in rows) + "\n\n")
    ps = load_prompt_set(path)
    assert ps.ids == ("a", "b")
    assert ps["a"].request()["messages"] == [{"role": "user", "content": "One"}]


def test_ids_stay_stable_when_the_file_grows(tmp_path: Path) -> None:
    path = tmp_path / "prompts.yaml"
    path.write_text(YAML)
    before = load_prompt_set(path)
    grown = YAML.replace("cases:\n", "cases:\n  - id: new\n    prompt: A new first case\n")
    grown += "  - prompt: no id, so its position names it\n"
    path.write_text(grown)
    after = load_prompt_set(path)
    assert after.ids == ("new", "capital", "haiku", "case-4")
    for case_id in before:
        assert after[case_id] == before[case_id]


@pytest.mark.parametrize(
    ("suffix", "text", "where", "words"),
    [
        (".yaml", YAML + "  - id: capital\n    prompt: again\n", ":10:", "already used at line 4"),
        (".yaml", YAML + "  - id: x\n", ":10:", "exactly one of 'prompt' or 'messages'"),
        (".yaml", YAML + "  - id: x\n    prompt: y\n    extra: 1\n", ":10:", "unknown keys: extra"),
        (
            ".yaml",
            YAML + "  - id: x\n    messages: [{role: bot, content: y}]\n",
            ":10:",
            "case 'x': message 0 has role 'bot'",
        ),
        (".yaml", "cases:\n  - id: [unclosed\n", ":3:", "not valid YAML"),
        (".yaml", "prompts: []\n", ":1:", "a list under 'cases'"),
        (".yaml", "cases: []\n", "prompts.yaml:", "at least one case"),
        (".jsonl", '{"id": "a", "prompt": "x"}\n{"id": "b", "prompt": \n', ":2:", "not valid JSON"),
        (".jsonl", '{"id": "a", "prompt": "x"}\n\n{"id": "a", "prompt": "y"}\n', ":3:", "line 1"),
        (".jsonl", '["a list"]\n', ":1:", "a case is a mapping"),
        (".txt", "x", "prompts.txt:", "ends in .yaml, .yml or .jsonl"),
    ],
)
def test_file_errors_name_file_and_line_and_the_fix(
    tmp_path: Path, suffix: str, text: str, where: str, words: str
) -> None:
    path = tmp_path / f"prompts{suffix}"
    path.write_text(text)
    with pytest.raises(RolecheckUsageError) as error:
        load_prompt_set(path)
    message = str(error.value)
    assert message.startswith(str(path)), message
    assert where in message, message
    assert words in message, message
    if suffix != ".txt":
        assert "Fix the file" in message


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(RolecheckUsageError, match="no prompt set file at"):
        load_prompt_set(tmp_path / "nope.yaml")


def test_cases_are_variants() -> None:
    ps = PromptSet.from_messages(MESSAGES)
    assert all(isinstance(v, Variant) for v in ps.values())
    assert repr(ps) == "PromptSet('system', 2 cases: case-1, case-2)"
