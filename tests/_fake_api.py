"""A fake OpenAI-compatible chat-completions (and Responses-API) handler for plugin tests.

Served through ``httpx2.MockTransport`` (unit-level HTTP; the end-to-end tests
use the real local model instead). Its logprobs depend on the request's
messages, so a role or wording change is a real behavioural change, plus
per-call noise seeded by the call-index header, so recordings are reproducible
whatever order concurrent calls arrive in.

Environment switches (read per request, so a pytester run can flip them):
``FAKE_API_DOWN=1`` fails every request (proves a replay never touched it),
``FAKE_API_NOISE=<sd>`` sets the noise, ``FAKE_API_STATUS=<code>`` answers
that HTTP status, ``FAKE_API_NO_LOGPROBS=1`` omits logprobs, ``FAKE_API_SERVED_MODEL=<name>``
answers as that model whatever was asked for, ``FAKE_API_SHIFT=<text>`` serves another model
(its logits are seeded with the text too: a drift of the whole behaviour).
"""

from __future__ import annotations

import json
import math
import os
import random
from typing import Any

import httpx2

PLANTED_KEY = "sk-test-PLANTEDKEY0123456789abcdef"
GATEWAY_KEY = "gw-PLANTEDGATEWAY0123456789"
VOCAB = ["Rock", " on", " kitty", " cat", " night", " moon", "!", " yeah", " purr", " baby"]
SERVED: list[int] = []  # call indices served live (tests read it in-process)


def completion(body: dict[str, Any], call_index: int) -> dict[str, Any]:
    messages = body["messages"]
    content_key = "|".join(f"{m['role']}:{m['content']}" for m in messages)
    base = random.Random(content_key + os.environ.get("FAKE_API_SHIFT", ""))
    noise_sd = float(os.environ.get("FAKE_API_NOISE", "0.05"))
    noise = random.Random(f"{content_key}#{call_index}")
    n_tokens = int(body.get("max_tokens") or 8)
    top = int(body.get("top_logprobs") or 0)
    items = []
    text = ""
    for _ in range(n_tokens):
        logits = [base.gauss(0.0, 2.0) + noise.gauss(0.0, noise_sd) for _ in VOCAB]
        norm = math.log(sum(math.exp(x) for x in logits))
        ranked = sorted(
            ((tok, x - norm) for tok, x in zip(VOCAB, logits, strict=True)), key=lambda t: -t[1]
        )
        token, logprob = ranked[0]
        text += token
        items.append(
            {
                "token": token,
                "logprob": logprob,
                "bytes": list(token.encode()),
                "top_logprobs": [
                    {"token": t, "logprob": lp, "bytes": list(t.encode())} for t, lp in ranked[:top]
                ],
            }
        )
    logprobs = None if os.environ.get("FAKE_API_NO_LOGPROBS") or not top else {"content": items}
    return {
        "id": f"chatcmpl-{call_index}",
        "object": "chat.completion",
        "created": 1_700_000_000,
        "model": os.environ.get("FAKE_API_SERVED_MODEL") or body["model"],
        "system_fingerprint": "fp_fake",
        "choices": [
            {
                "index": 0,
                "message": {"role": "assistant", "content": text},
                "logprobs": logprobs,
                "finish_reason": "length",
            }
        ],
        "usage": {
            "prompt_tokens": len(content_key) // 4,
            "completion_tokens": n_tokens,
            "total_tokens": len(content_key) // 4 + n_tokens,
        },
        # A careless server echoing the caller's key: it must never reach a cassette.
        "echo": f"Bearer {PLANTED_KEY}",
    }


def response(body: dict[str, Any], call_index: int) -> dict[str, Any]:
    """The Responses API's answer: the chat answer to the same messages, its text and
    logprobs split over two output_text parts; with tools, a function_call item too."""
    head = (
        [{"role": "instructions", "content": body["instructions"]}]
        if "instructions" in body
        else []
    )
    asks = "message.output_text.logprobs" in (body.get("include") or [])
    chat = completion(
        {
            "model": body["model"],
            "messages": head + [m for m in body["input"] if "role" in m],
            "max_tokens": body.get("max_output_tokens"),
            "top_logprobs": body.get("top_logprobs") if asks else 0,
        },
        call_index,
    )
    choice = chat["choices"][0]
    entries = (choice["logprobs"] or {}).get("content") or []
    half = len(entries) // 2
    cut = len("".join(e["token"] for e in entries[:half]))
    text = choice["message"]["content"]
    parts = [
        {"type": "output_text", "text": piece, "annotations": [], "logprobs": lps}
        for piece, lps in ((text[:cut], entries[:half]), (text[cut:], entries[half:]))
    ]
    output: list[dict[str, Any]] = [
        {
            "type": "message",
            "id": "msg_1",
            "role": "assistant",
            "status": "completed",
            "content": parts,
        }
    ]
    for tool in body.get("tools") or []:
        arguments = json.dumps({"about": text.split()[0] if text.split() else ""})
        output.append(
            {
                "type": "function_call",
                "id": "fc_1",
                "call_id": f"call_{call_index}",
                "name": tool["name"],
                "arguments": arguments,
            }
        )
    usage = chat["usage"]
    return {
        "id": f"resp_{call_index}",
        "object": "response",
        "created_at": 1_700_000_000,
        "model": chat["model"],
        "status": "incomplete",
        "incomplete_details": {"reason": "max_output_tokens"},
        "output": output,
        "usage": {
            "input_tokens": usage["prompt_tokens"],
            "output_tokens": usage["completion_tokens"],
            "total_tokens": usage["total_tokens"],
        },
        "echo": chat["echo"],
    }


def handler(request: httpx2.Request) -> httpx2.Response:
    if os.environ.get("FAKE_API_DOWN"):
        raise httpx2.ConnectError("fake API is down (a replay must not call it)", request=request)
    status = int(os.environ.get("FAKE_API_STATUS", "200"))
    if status != 200:
        return httpx2.Response(status, json={"error": {"message": f"fake failure {status}"}})
    body = json.loads(request.content)
    index = int(request.headers.get("x-rolecheck-call", "-1"))
    SERVED.append(index)
    answer = response if request.url.path.endswith("/responses") else completion
    payload = answer(body, index)
    gateway_key = request.url.params.get("key")
    if gateway_key:  # a careless gateway echoing its key (seen in the wild)
        payload["system_fingerprint"] = f"fp_{gateway_key}"
    return httpx2.Response(
        200,
        json=payload,
        headers={
            "openai-organization": "org-SECRETORG",
            "openai-project": "proj_SECRET",
            "x-request-id": "req_SECRET123",
            "set-cookie": "session=SECRETCOOKIE",
        },
    )


def async_client() -> Any:
    import openai

    return openai.AsyncOpenAI(
        api_key=PLANTED_KEY,
        base_url="http://fake-api.test/v1",
        max_retries=0,
        http_client=httpx2.AsyncClient(transport=httpx2.MockTransport(handler)),
    )


def sync_client() -> Any:
    import openai

    return openai.OpenAI(
        api_key=PLANTED_KEY,
        base_url="http://fake-api.test/v1",
        max_retries=0,
        http_client=httpx2.Client(transport=httpx2.MockTransport(handler)),
    )


def gateway_client() -> Any:
    """A client whose gateway key travels in the query string."""
    import openai

    return openai.AsyncOpenAI(
        api_key=PLANTED_KEY,
        base_url="http://fake-api.test/v1",
        default_query={"key": GATEWAY_KEY},
        max_retries=0,
        http_client=httpx2.AsyncClient(transport=httpx2.MockTransport(handler)),
    )
