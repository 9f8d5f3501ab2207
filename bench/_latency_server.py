"""A loopback OpenAI-compatible server that answers after a fixed delay (for the benches).

``POST /v1/chat/completions`` returns a valid chat completion with logprobs
(``max_tokens`` tokens, each with ``top_logprobs`` alternatives; 20 x 20 by
default) after sleeping ``latency`` seconds. The content is derived from a hash
of the request body and the ``x-rolecheck-call`` header, so the same request
always gets the same bytes. ``GET /v1/models`` lists the requested model.

The server binds 127.0.0.1 on a free port and runs in a daemon thread of the
bench that started it; use it as a context manager so it always stops::

    with LatencyServer(latency=0.2) as server:
        client = openai.OpenAI(base_url=server.base_url, api_key="bench")
"""

from __future__ import annotations

import functools
import hashlib
import json
import math
import random
import socket
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType
from typing import Any

MODEL = "bench-model"
CALL_HEADER = "x-rolecheck-call"
VOCAB = (
    "Rock",
    " on",
    " kitty",
    " cat",
    " night",
    " moon",
    "!",
    " yeah",
    " purr",
    " baby",
    " with",
    " my",
    "\n",
    " stars",
    " dance",
    " tail",
    " roll",
    " loud",
    " street",
    " light",
    " whisker",
    " beat",
)
MAX_BODY = 1 << 20  # requests of the benches are a few hundred bytes


@functools.lru_cache(maxsize=256)
def completion_bytes(body: bytes, call: str) -> bytes:
    """The JSON response to one request (cached: the server must not compete for CPU)."""
    request = json.loads(body)
    seed = int.from_bytes(hashlib.sha256(body + b"#" + call.encode()).digest()[:8], "big")
    rng = random.Random(seed)
    n_tokens = int(request.get("max_tokens") or request.get("max_completion_tokens") or 16)
    top = int(request.get("top_logprobs") or 0) if request.get("logprobs") else 0
    items: list[dict[str, Any]] = []
    text = ""
    for _ in range(n_tokens):
        logits = [rng.gauss(0.0, 2.0) for _ in VOCAB]
        norm = math.log(sum(math.exp(x) for x in logits))
        ranked = sorted(zip(VOCAB, (x - norm for x in logits), strict=True), key=lambda t: -t[1])
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
    prompt_tokens = sum(len(str(m.get("content", ""))) for m in request.get("messages", [])) // 4
    document = {
        "id": f"chatcmpl-bench-{seed:016x}",
        "object": "chat.completion",
        "created": 1_700_000_000,
        "model": request.get("model", MODEL),
        "system_fingerprint": "fp_bench",
        "choices": [
            {
                "index": 0,
                "message": {"role": "assistant", "content": text},
                "logprobs": {"content": items} if top else None,
                "finish_reason": "length",
            }
        ],
        "usage": {
            "prompt_tokens": prompt_tokens,
            "completion_tokens": n_tokens,
            "total_tokens": prompt_tokens + n_tokens,
        },
    }
    return json.dumps(document).encode()


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive, as the real API
    timeout = 10  # an idle kept-alive connection ends its thread after this
    server: _Server

    def setup(self) -> None:
        super().setup()
        # headers and body go out in separate writes; without NODELAY, Nagle plus the
        # client's delayed ACK would add ~40 ms to every call
        self.request.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    def log_message(self, format: str, *args: Any) -> None:
        pass  # quiet: the benches print tables

    def _send(self, status: int, payload: bytes) -> None:
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)

    def do_GET(self) -> None:
        if self.path.rstrip("/") == "/v1/models":
            models = {"object": "list", "data": [{"id": MODEL, "object": "model"}]}
            self._send(200, json.dumps(models).encode())
        else:
            self._send(404, b'{"error": {"message": "not found"}}')

    def do_POST(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(min(length, MAX_BODY))
        if self.path.rstrip("/") != "/v1/chat/completions":
            self._send(404, b'{"error": {"message": "not found"}}')
            return
        try:
            payload = completion_bytes(body, self.headers.get(CALL_HEADER, ""))
        except (ValueError, TypeError, AttributeError) as err:
            message = json.dumps({"error": {"message": f"bad request: {err}"}})
            self._send(400, message.encode())
            return
        time.sleep(self.server.latency)
        with self.server.lock:
            self.server.served += 1
        self._send(200, payload)


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    block_on_close = False
    # socketserver's default listen backlog is 5: eight clients connecting at once
    # overflow it, and a dropped SYN is retried only after a second
    request_queue_size = 128
    latency: float
    served: int
    lock: threading.Lock


class LatencyServer:
    """Start/stop the loopback server; ``base_url`` ends with ``/v1``.

    Parameters
    ----------
    latency : float
        Seconds each chat completion waits before answering.
    """

    def __init__(self, latency: float = 0.2) -> None:
        self.latency = latency
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None

    @property
    def base_url(self) -> str:
        assert self._server is not None, "start the server first"
        host, port = self._server.server_address[:2]
        return f"http://{host!s}:{port}/v1"

    @property
    def served(self) -> int:
        """Chat completions answered so far."""
        return 0 if self._server is None else self._server.served

    def start(self) -> LatencyServer:
        server = _Server(("127.0.0.1", 0), _Handler)
        server.latency = self.latency
        server.served = 0
        server.lock = threading.Lock()
        thread = threading.Thread(
            target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )
        thread.start()
        self._server, self._thread = server, thread
        return self

    def stop(self) -> None:
        server, self._server = self._server, None
        if server is not None:
            server.shutdown()
            server.server_close()
        if self._thread is not None:
            self._thread.join(timeout=5)
            self._thread = None

    def __enter__(self) -> LatencyServer:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()


if __name__ == "__main__":  # a quick manual check: one request, timed
    import urllib.request

    with LatencyServer(latency=0.2) as running:
        request = {
            "model": MODEL,
            "messages": [{"role": "user", "content": "hi"}],
            "max_tokens": 20,
            "logprobs": True,
            "top_logprobs": 20,
        }
        started = time.perf_counter()
        req = urllib.request.Request(
            running.base_url + "/chat/completions",
            data=json.dumps(request).encode(),
            headers={"Content-Type": "application/json"},
        )
        with urllib.request.urlopen(req, timeout=10) as answer:
            data = json.loads(answer.read())
        elapsed = time.perf_counter() - started
        content = data["choices"][0]["logprobs"]["content"]
        print(
            f"{running.base_url}: {len(content)} tokens x {len(content[0]['top_logprobs'])} "
            f"alternatives in {elapsed * 1e3:.0f} ms"
        )
