"""Tests of YAML variant files: the schema, derivations, and errors naming file and key."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from pytest_rolecheck.errors import RolecheckUsageError
from pytest_rolecheck.variants.files import DERIVATIONS, load_variant, variant_from_mapping

BASE = """\
label: developer
messages:
  - role: developer
    content: You are a helpful AI assistant
  - role: user
    content: Produce two stanza rock song lyrics for 'Rockin with my Kitty Cat'
params:
  top_p: 0.00001
"""

TOOL = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "Weather of a city",
        "parameters": {
            "type": "object",
            "properties": {"city": {"type": "string"}},
            "required": ["city"],
        },
    },
}


def write(tmp_path: Path, name: str, text: str) -> Path:
    path = tmp_path / name
    path.write_text(textwrap.dedent(text), encoding="utf-8")
    return path


def test_base_file(tmp_path: Path) -> None:
    variant = load_variant(write(tmp_path, "a.yaml", BASE))
    assert variant.label == "developer"
    request = variant.request()
    assert request["messages"][0] == {
        "role": "developer",
        "content": "You are a helpful AI assistant",
    }
    assert request["top_p"] == pytest.approx(1e-5)


def test_label_defaults_to_the_instruction_role(tmp_path: Path) -> None:
    path = write(tmp_path, "s.yaml", "messages:\n  - {role: system, content: Be brief.}\n")
    assert load_variant(path).label == "system"


def test_extends_and_derivations(tmp_path: Path) -> None:
    write(tmp_path, "a.yaml", BASE)
    path = write(
        tmp_path,
        "b.yaml",
        """\
        extends: a.yaml
        params: {seed: 7}
        derive:
          - role: system
          - preamble: {knowledge_cutoff: 2023-10, current_date: 2024-07-10}
          - append_instruction: Answer in English.
        """,
    )
    variant = load_variant(path)
    request = variant.request()
    assert request["messages"][0]["role"] == "system"
    assert request["messages"][0]["content"] == (
        "Knowledge cutoff: 2023-10\nCurrent date: 2024-07-10\n"
        "You are a helpful AI assistant\n\nAnswer in English."
    )
    assert request["seed"] == 7
    assert request["top_p"] == pytest.approx(1e-5)  # inherited
    assert variant.label.startswith("system")


def test_extends_relative_to_the_file_not_the_cwd(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    sub = tmp_path / "variants"
    sub.mkdir()
    write(sub, "a.yaml", BASE)
    path = write(sub, "b.yaml", "extends: a.yaml\nlabel: copy\n")
    monkeypatch.chdir(tmp_path)
    variant = load_variant(Path("variants/b.yaml"))
    assert variant.label == "copy"
    assert variant.request()["messages"][0]["role"] == "developer"
    assert path.exists()


def test_tool_derivations(tmp_path: Path) -> None:
    doc = {
        "messages": [
            {"role": "system", "content": "You can look up the weather."},
            {"role": "user", "content": "Weather in Paris?"},
        ],
        "derive": [
            {"tools": [TOOL]},
            {"parallel_tool_calls": False},
            {"tools_in_system_prompt": True},
        ],
    }
    path = tmp_path / "tools.json"  # JSON is YAML too
    path.write_text(json.dumps(doc), encoding="utf-8")
    request = load_variant(path).request()
    assert "tools" not in request
    assert "parallel_tool_calls" not in request
    assert "namespace functions" in request["messages"][0]["content"]
    assert "get_weather" in request["messages"][0]["content"]


def test_without_tools_and_params(tmp_path: Path) -> None:
    doc = {
        "messages": [{"role": "user", "content": "Hi"}],
        "params": {"tools": [TOOL], "tool_choice": "auto"},
        "derive": [{"without_tools": True}, {"params": {"temperature": 0.5}}],
    }
    request = variant_from_mapping(doc).request()
    assert "tools" not in request
    assert "tool_choice" not in request
    assert request["temperature"] == 0.5


def test_every_derivation_is_documented() -> None:
    from pytest_rolecheck.variants import files as _variant_files

    doc = _variant_files.__doc__ or ""
    for name in DERIVATIONS:
        assert f"- {name}:" in doc


def test_load_variant_is_public_and_loads_yaml_only_when_used() -> None:
    # The docs point users at pytest_rolecheck.load_variant / pytest_rolecheck.variants.
    code = (
        "import sys, pytest_rolecheck, pytest_rolecheck.variants as v\n"
        "assert 'yaml' not in sys.modules\n"
        "from pytest_rolecheck.variants import files\n"
        "assert pytest_rolecheck.load_variant is v.load_variant is files.load_variant\n"
        "assert v.variant_from_mapping is files.variant_from_mapping\n"
        "print(pytest_rolecheck.load_variant('docs/variants/system.yaml').label)\n"
    )
    root = Path(__file__).resolve().parents[1]
    env = {**os.environ, "PYTHONPATH": str(root)}
    result = subprocess.run(
        [sys.executable, "-c", code], cwd=root, env=env, capture_output=True, text=True
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "system"


# --------------------------------------------------------------------------- errors


@pytest.mark.parametrize(
    ("text", "key", "expected"),
    [
        ("messages:\n  - {role: sytem, content: hi}\n", "messages[0].role", "one of system"),
        ("messages: []\n", "messages", "a non-empty list"),
        ("messages: hello\n", "messages", "a non-empty list"),
        ("messages:\n  - {role: user}\n", "messages[0].content", "the message text"),
        ("messages:\n  - {role: user, content: 3}\n", "messages[0].content", "a string"),
        ("label: x\n", "messages", "a non-empty list"),
        ("messages:\n  - {role: user, content: hi}\nparams: [1]\n", "params", "a mapping"),
        (
            "messages:\n  - {role: user, content: hi}\nparams: {messages: []}\n",
            "params.messages",
            "messages at the top level",
        ),
        ("messages:\n  - {role: user, content: hi}\nlabels: x\n", "labels", "only the keys"),
        ("messages:\n  - {role: user, content: hi}\nlabel: ''\n", "label", "a non-empty string"),
        (
            "messages:\n  - {role: system, content: hi}\nderive: {role: user}\n",
            "derive",
            "a list of one-key mappings",
        ),
        (
            "messages:\n  - {role: system, content: hi}\nderive:\n  - rolee: system\n",
            "derive[0]",
            "one of role, instruction",
        ),
        (
            "messages:\n  - {role: system, content: hi}\nderive:\n  - {role: system, label: x}\n",
            "derive[0]",
            "exactly one of",
        ),
        (
            "messages:\n  - {role: system, content: hi}\nderive:\n  - role: admin\n",
            "derive[0].role",
            "one of system, developer, user-prefixed",
        ),
        (
            "messages:\n  - {role: system, content: hi}\nderive:\n  - preamble: {date: 1}\n",
            "derive[0].preamble",
            "knowledge_cutoff",
        ),
        (
            "messages:\n  - {role: system, content: hi}\nderive:\n  - parallel_tool_calls: 1\n",
            "derive[0].parallel_tool_calls",
            "true or false",
        ),
        (
            "messages:\n  - {role: user, content: hi}\nderive:\n  - role: system\n",
            "derive[0].role",
            "no instruction message",
        ),
        ("- just\n- a list\n", "", "a mapping with at least 'messages'"),
    ],
)
def test_schema_errors_name_file_key_and_expectation(
    tmp_path: Path, text: str, key: str, expected: str
) -> None:
    path = write(tmp_path, "bad.yaml", text)
    with pytest.raises(RolecheckUsageError) as info:
        load_variant(path)
    message = str(info.value)
    assert message.startswith(str(path))
    assert (f"key '{key}'" if key else "the top level") in message
    assert expected in message


def test_invalid_yaml_gives_line_and_column(tmp_path: Path) -> None:
    path = write(
        tmp_path, "broken.yaml", "messages:\n  - role: system\n    content: hi\n   - role: user\n"
    )
    with pytest.raises(RolecheckUsageError, match=r"broken\.yaml:4:4: not valid YAML"):
        load_variant(path)


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(RolecheckUsageError, match=r"no variant file at .*nope\.yaml"):
        load_variant(tmp_path / "nope.yaml")


def test_missing_extends_target(tmp_path: Path) -> None:
    path = write(tmp_path, "b.yaml", "extends: gone.yaml\n")
    with pytest.raises(RolecheckUsageError, match=r"b\.yaml: key 'extends': expected an existing"):
        load_variant(path)


def test_extends_cycle(tmp_path: Path) -> None:
    write(tmp_path, "a.yaml", "extends: b.yaml\n")
    path = write(tmp_path, "b.yaml", "extends: a.yaml\n")
    with pytest.raises(RolecheckUsageError, match="'extends' forms a cycle"):
        load_variant(path)


def test_empty_file(tmp_path: Path) -> None:
    path = write(tmp_path, "empty.yaml", "")
    with pytest.raises(RolecheckUsageError, match="the top level: expected a mapping"):
        load_variant(path)
