"""The serving changes of ``serving_changes.py`` on the real server: which move the answers.

What the drift tests (``test_e2e_drift.py``) rely on, checked directly on the
server's answers: each change alters temperature-0 outputs of the bundled model;
a restart on another port and another slot count give byte-identical ones. The
numbers are exact JSON of the logprobs, so equal strings mean bit-identical floats.
"""

from __future__ import annotations

import json
import os
import urllib.request
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import gguf
import pytest
from serving_changes import (
    DEFAULT_SYSTEM,
    free_port,
    other_template,
    requantize,
    shipped_model,
    start_requantized,
    start_shipped,
    start_with_template,
    template_with_default_system,
)

from pytest_rolecheck.running.local import DEFAULT_MODEL_ALIAS, backend_status

pytestmark = pytest.mark.e2e

INSTRUCTION = "You are a helpful AI assistant"
# With and without a system message: a default system line reaches only the second.
WITH_SYSTEM = [
    {"role": "system", "content": INSTRUCTION},
    {"role": "user", "content": "Name a colour."},
]
WITHOUT_SYSTEM = [{"role": "user", "content": f"{INSTRUCTION}\n\nName a colour."}]
PROMPTS = (WITH_SYSTEM, WITHOUT_SYSTEM)


def require_backend() -> None:
    installed, reason = backend_status()
    if installed:
        return
    if os.environ.get("CI") == "true":
        pytest.fail(f"CI=true and the local backend is missing: {reason}")
    pytest.skip(f"local backend not installed: {reason}")


def _post(url: str, body: dict[str, Any]) -> Any:
    request = urllib.request.Request(
        url, data=json.dumps(body).encode(), headers={"Content-Type": "application/json"}
    )
    # loopback traffic must not go through $http_proxy
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    with opener.open(request, timeout=60) as response:
        return json.loads(response.read())


def answers(base_url: str) -> list[str]:
    """Every prompt's temperature-0 answer and logprobs as exact JSON, asked all at once."""

    def ask(messages: list[dict[str, str]]) -> str:
        body = {
            "model": DEFAULT_MODEL_ALIAS,
            "messages": messages,
            "temperature": 0,
            "max_tokens": 8,
            "logprobs": True,
            "top_logprobs": 5,
        }
        choice = _post(f"{base_url}/chat/completions", body)["choices"][0]
        return json.dumps([choice["message"]["content"], choice["logprobs"]])

    with ThreadPoolExecutor(len(PROMPTS)) as pool:  # decoded together in one batch
        return list(pool.map(ask, PROMPTS))


def rendered(base_url: str, messages: list[dict[str, str]]) -> str:
    """The prompt the server renders for ``messages`` (llama-server's /apply-template)."""
    prompt: str = _post(f"{base_url.removesuffix('/v1')}/apply-template", {"messages": messages})[
        "prompt"
    ]
    return prompt


@pytest.fixture(scope="module")
def shipped() -> Iterator[tuple[int, list[str]]]:
    """The shipped server's port and answers (the baseline of every test here)."""
    require_backend()
    with start_shipped() as url:
        yield int(url.rsplit(":", 1)[1].split("/")[0]), answers(url)


def test_requantised_model_changes_the_answers(
    shipped: tuple[int, list[str]], tmp_path: Path
) -> None:
    model = requantize(shipped_model(), tmp_path / "q4_0.gguf")
    types = {t.tensor_type.name for t in gguf.GGUFReader(model).tensors}
    assert types == {"Q4_0", "F32"}  # the shipped Q4_1 and Q8_0 tensors, re-quantised
    with start_requantized(model) as url:
        moved = answers(url)
    assert all(a != b for a, b in zip(moved, shipped[1], strict=True))


def test_default_system_line_changes_only_requests_without_one(
    shipped: tuple[int, list[str]], tmp_path: Path
) -> None:
    template = template_with_default_system(shipped_model(), tmp_path / "pirate.jinja")
    with start_with_template(template) as url:
        # the quote in the line is escaped: the line is rendered whole
        assert f"system\n{DEFAULT_SYSTEM}<|im_end|>" in rendered(url, WITHOUT_SYSTEM)
        moved = answers(url)
    with_system, without_system = moved
    assert with_system == shipped[1][0]
    assert without_system != shipped[1][1]


def test_another_chat_template_changes_the_answers(
    shipped: tuple[int, list[str]], tmp_path: Path
) -> None:
    with start_with_template(other_template(tmp_path / "zephyr.jinja")) as url:
        assert rendered(url, WITHOUT_SYSTEM).startswith("<|user|>\n")
        moved = answers(url)
    assert all(a != b for a, b in zip(moved, shipped[1], strict=True))


def test_a_restart_on_another_port_answers_byte_identically(
    shipped: tuple[int, list[str]],
) -> None:
    port = free_port(avoid=shipped[0])
    with start_shipped(port=port) as url:
        assert url.endswith(f":{port}/v1")
        assert answers(url) == shipped[1]


def test_one_slot_instead_of_four_answers_byte_identically(
    shipped: tuple[int, list[str]],
) -> None:
    with start_shipped(parallel=1) as url:
        assert answers(url) == shipped[1]
