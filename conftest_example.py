"""Example configuration for pytest-rolecheck: copy this file to your ``conftest.py``.

pytest-rolecheck works with no configuration at all: it builds an
``openai.AsyncOpenAI`` client from ``OPENAI_API_KEY`` / ``OPENAI_BASE_URL`` and
replays every call from ``cassettes/`` (record mode ``none``). This file shows
the knobs a team usually sets, one section each; keep what you need.

Settings, highest precedence first:

1. keyword arguments of the ``assert_*`` call (``trials=20``, ``tolerance=0.2``);
2. ``@pytest.mark.rolecheck(...)`` on the test, class or module;
3. command-line flags (``--rolecheck-record-mode=once``);
4. ini keys (``rolecheck_model = gpt-4o-mini`` under ``[pytest]`` or
   ``[tool.pytest.ini_options]``);
5. the defaults.

Record and replay::

    pytest --rolecheck-record-mode=once      # record what has no cassette yet (live)
    git add cassettes/ && git commit         # cassettes are test data: commit them
    pytest                                   # CI: replays offline, never goes live
    pytest --rolecheck-record-mode=rewrite -k test_name   # re-record after a change
"""

from __future__ import annotations

import os
from typing import Any

import pytest

# --------------------------------------------------------------------------
# 1. Defaults for every test in this directory (same keys as the ini file).
#    In pyproject.toml:
#
#    [tool.pytest.ini_options]
#    rolecheck_model = "gpt-4o-mini"
#    rolecheck_trials = "20"          # the default; 10 calls cannot certify 0.2
#    rolecheck_tolerance = "0.2"      # the default
#    rolecheck_cassette_dir = "cassettes"
#
#    Per module: pytestmark = pytest.mark.rolecheck(trials=30, metric="tv")
# --------------------------------------------------------------------------


# --------------------------------------------------------------------------
# 2. The client. Return None to keep the default (OPENAI_API_KEY and
#    OPENAI_BASE_URL from the environment), or a configured client:
#    any openai.AsyncOpenAI / openai.OpenAI instance, Azure included.
#    No secret the client holds reaches a cassette or a report: only
#    content-type and the call index are kept of the request headers, query
#    values are dropped, and the api_key and every credential-named value of
#    default_headers / default_query are scrubbed wherever they appear
#    (values shorter than 12 characters without a key prefix, such as
#    "not-needed", are not secrets: see the README's Security section).
# --------------------------------------------------------------------------
@pytest.fixture(scope="session")
def rolecheck_client() -> Any:
    import openai

    backend = os.environ.get("ROLECHECK_BACKEND", "default")

    if backend == "azure":
        # Azure OpenAI: the deployment name is what you pass as `model`.
        return openai.AsyncAzureOpenAI(
            azure_endpoint=os.environ["AZURE_OPENAI_ENDPOINT"],
            api_key=os.environ.get("AZURE_OPENAI_API_KEY", "replay-only"),
            api_version=os.environ.get("AZURE_OPENAI_API_VERSION", "2024-10-21"),
        )

    if backend == "compatible":
        # Any OpenAI-compatible server (vLLM, llama.cpp, Ollama, a gateway …).
        # It must return logprobs with top_logprobs for logprob comparisons.
        return openai.AsyncOpenAI(
            base_url=os.environ.get("COMPATIBLE_BASE_URL", "http://127.0.0.1:8000/v1"),
            api_key=os.environ.get("COMPATIBLE_API_KEY", "not-needed"),
            max_retries=3,
            timeout=120.0,
        )

    # The bundled local model needs no fixture: run `pytest --rolecheck-local`
    # (or set rolecheck_local = true in the ini file). It starts a llama.cpp
    # server with SmolLM2-135M-Instruct on 127.0.0.1 when a live call is needed.
    return None


# --------------------------------------------------------------------------
# 3. A test, in both forms (put these in a test module, not in conftest):
#
#    from pytest_rolecheck import assert_roles_equivalent
#
#    MESSAGES = [
#        {"role": "system", "content": "You are a helpful AI assistant"},
#        {"role": "user", "content": "Produce two stanza rock song lyrics"},
#    ]
#
#    def test_developer_role_matches_system():
#        assert_roles_equivalent(MESSAGES, roles=("developer", "system"),
#                                model="gpt-4o-mini", trials=20, max_tokens=20)
#
#    def test_date_line_changes_nothing(rolecheck):
#        base = rolecheck.variant(MESSAGES, label="plain")
#        dated = base.with_preamble(knowledge_cutoff="2023-10", current_date="2024-07-10")
#        rolecheck.assert_variants_equivalent(base, dated)
# --------------------------------------------------------------------------
