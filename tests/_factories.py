"""Test factories for chat-completion responses (shared by the test modules).

Import from a test module as ``from _factories import make_response`` (the
``tests`` directory is on ``sys.path`` under pytest's default import mode).

Stable API:

* :func:`make_response` — an OpenAI chat-completion JSON dict with logprobs.
* :func:`make_call` — the same, already parsed into a ``ParsedCall``.
* :func:`random_response` — a realistic noisy response drawn from a toy model
  whose next-token distribution depends on the prefix (so a flipped token
  sends the continuation down another path), for properties and benchmarks.
"""

from __future__ import annotations

import zlib
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from pytest_rolecheck.core.parse import ParsedCall, parse_response

#: (generated token, its logprob, [(alternative token, logprob), ...])
TokenSpec = tuple[str, float, Sequence[tuple[str, float]]]


def _entry(token: str, logprob: float, with_bytes: bool) -> dict[str, Any]:
    return {
        "token": token,
        "logprob": logprob,
        "bytes": list(token.encode("utf-8")) if with_bytes else None,
    }


def _tool_call(i: int, call: tuple[str, str] | Mapping[str, Any]) -> dict[str, Any]:
    if isinstance(call, Mapping):
        return dict(call)
    name, arguments = call
    return {
        "id": f"call_{i}",
        "type": "function",
        "function": {"name": name, "arguments": arguments},
    }


def make_response(
    tokens: Sequence[TokenSpec],
    text: str | None = None,
    finish_reason: str | None = "stop",
    *,
    model: str = "gpt-4o-mini",
    system_fingerprint: str | None = "fp_test",
    prompt_tokens: int = 12,
    completion_tokens: int | None = None,
    tool_calls: Sequence[tuple[str, str] | Mapping[str, Any]] | None = None,
    logprobs: bool = True,
    with_bytes: bool = True,
    response_id: str = "chatcmpl-test",
) -> dict[str, Any]:
    """Build a chat-completion response dict shaped exactly like the OpenAI JSON.

    Parameters
    ----------
    tokens
        One ``(token, logprob, alternatives)`` per generated token;
        ``alternatives`` becomes ``top_logprobs`` verbatim (order, duplicates
        and omissions kept, so messy server output can be reproduced).
    text
        ``message.content``; defaults to the concatenated tokens, or null when
        there are no tokens but ``tool_calls`` are given.
    finish_reason
        ``choices[0].finish_reason``.
    model, system_fingerprint, prompt_tokens, completion_tokens
        Top-level fields / usage; ``completion_tokens`` defaults to ``len(tokens)``.
    tool_calls
        ``(name, arguments_json)`` pairs (ids ``call_0``, ``call_1``, ...) or
        ready-made tool-call dicts.
    logprobs
        False gives ``"logprobs": null`` (what a server returns when logprobs
        were not requested).
    with_bytes
        True fills ``bytes`` with the token's UTF-8 bytes, False sets it to null.
    response_id
        The response ``id``.

    Returns
    -------
    dict
        Accepted by ``parse_response`` and by ``ChatCompletion.model_validate``.
    """
    if text is None:
        content: str | None = "".join(t[0] for t in tokens) if tokens or not tool_calls else None
    else:
        content = text
    message: dict[str, Any] = {"role": "assistant", "content": content, "refusal": None}
    if tool_calls:
        message["tool_calls"] = [_tool_call(i, c) for i, c in enumerate(tool_calls)]
    content_logprobs = [
        {
            **_entry(token, logprob, with_bytes),
            "top_logprobs": [_entry(alt, alt_lp, with_bytes) for alt, alt_lp in alternatives],
        }
        for token, logprob, alternatives in tokens
    ]
    n_completion = len(tokens) if completion_tokens is None else completion_tokens
    return {
        "id": response_id,
        "object": "chat.completion",
        "created": 1_700_000_000,
        "model": model,
        "system_fingerprint": system_fingerprint,
        "choices": [
            {
                "index": 0,
                "message": message,
                "logprobs": {"content": content_logprobs, "refusal": None} if logprobs else None,
                "finish_reason": finish_reason,
            }
        ],
        "usage": {
            "prompt_tokens": prompt_tokens,
            "completion_tokens": n_completion,
            "total_tokens": prompt_tokens + n_completion,
        },
    }


def make_call(tokens: Sequence[TokenSpec], text: str | None = None, **kwargs: Any) -> ParsedCall:
    """``parse_response(make_response(tokens, text, **kwargs))``."""
    return parse_response(make_response(tokens, text, **kwargs))


def random_response(
    rng: np.random.Generator,
    *,
    n_tokens: int = 20,
    top_k: int = 20,
    vocab_size: int = 50,
    noise: float = 0.3,
    temperature: float = 2.0,
    model_seed: int = 0,
    shift: float = 0.0,
) -> dict[str, Any]:
    """Draw one response from a toy prefix-dependent model with per-call logit noise.

    The clean logits at each position depend only on ``model_seed`` and the
    prefix generated so far, so two calls agree until noise flips a greedy
    token, after which they condition on different prefixes. ``shift`` adds a
    fixed, model-wide perturbation (an "effect" between two configurations).

    Parameters
    ----------
    rng
        Source of the per-call noise.
    n_tokens, top_k, vocab_size
        Completion length, listed alternatives, toy vocabulary size.
    noise
        Standard deviation of the per-call Gaussian logit noise.
    temperature
        Scale of the clean logits (larger: more peaked distributions).
    model_seed
        Identifies the toy model.
    shift
        Standard deviation of the configuration's fixed logit perturbation.

    Returns
    -------
    dict
        See :func:`make_response`; greedy decoding, ``finish_reason="length"``.
    """
    vocab = [f" w{i}" for i in range(vocab_size)]
    prefix: list[int] = []
    tokens: list[TokenSpec] = []
    for t in range(n_tokens):
        seed = zlib.crc32(repr((model_seed, t, prefix[-3:])).encode())
        base = np.random.default_rng(seed).standard_normal(vocab_size) * temperature
        if shift:
            base = base + np.random.default_rng(seed + 1).standard_normal(vocab_size) * shift
        logits = base + rng.standard_normal(vocab_size) * noise
        logp = logits - np.logaddexp.reduce(logits)
        order = np.argsort(-logp)
        chosen = int(order[0])
        prefix.append(chosen)
        alts = [(vocab[int(j)], float(logp[j])) for j in order[:top_k]]
        tokens.append((vocab[chosen], float(logp[chosen]), alts))
    return make_response(tokens, finish_reason="length")
