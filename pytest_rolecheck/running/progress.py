"""Call counters shared by the runner and whoever displays progress (no heavy imports)."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from ..core.cost import Tokens, add_tokens, minus


@dataclass
class Usage:
    """Token usage summed over calls, and per model (what a price table prices)."""

    calls: int = 0
    prompt_tokens: int = 0
    completion_tokens: int = 0
    models: dict[str, Tokens] = field(default_factory=dict)
    _taken: dict[str, Tokens] = field(default_factory=dict)

    def add(self, response: Any, model: str | None = None) -> None:
        """Count one call; ``model`` is the one requested (else the response's)."""
        self.calls += 1
        usage = getattr(response, "usage", None)
        prompt: Any = 0
        completion: Any = 0
        cached: Any = 0
        if usage is not None:
            # chat completions' names, else the Responses API's
            prompt = getattr(usage, "prompt_tokens", None) or getattr(usage, "input_tokens", 0)
            completion = getattr(usage, "completion_tokens", None) or getattr(
                usage, "output_tokens", 0
            )
            details = getattr(usage, "prompt_tokens_details", None) or getattr(
                usage, "input_tokens_details", None
            )
            cached = getattr(details, "cached_tokens", None) or 0
            self.prompt_tokens += int(prompt or 0)
            self.completion_tokens += int(completion or 0)
        name = model or getattr(response, "model", None) or "unknown model"
        call = Tokens(1, int(prompt or 0), int(completion or 0), int(cached))
        self.models = add_tokens(self.models, {str(name): call})

    def take(self) -> dict[str, Tokens]:
        """The tokens per model counted since the last ``take`` (one report row's)."""
        taken = minus(self.models, self._taken)
        self._taken = dict(self.models)
        return taken

    @property
    def total_tokens(self) -> int:
        return self.prompt_tokens + self.completion_tokens


@dataclass
class Progress:
    """Live counters, readable from another thread (e.g. a progress display)."""

    total: int = 0
    done: int = 0
    started: float = field(default_factory=time.monotonic)
    usage: Usage = field(default_factory=Usage)

    @property
    def elapsed(self) -> float:
        return time.monotonic() - self.started


def progress_line(progress: Progress) -> str:
    """The one progress line, for the CLI and the pytest run alike."""
    if progress.total == 0:
        return f"rolecheck: waiting for the backend ... {progress.elapsed:.1f} s"
    calls = f"{progress.done}/{progress.total}"
    tokens = progress.usage.total_tokens
    return f"rolecheck: calls {calls}  tokens {tokens:,}  {progress.elapsed:.1f} s"


class LiveProgress:
    """While a batch of live calls runs, shows the progress line every ``interval`` seconds.

    ``show(line, final)`` draws it (the pytest plugin redraws in place on a
    terminal, and writes one line per call elsewhere); the last call has
    ``final=True``, once the batch has ended whichever way.
    """

    def __init__(
        self, progress: Progress, show: Callable[[str, bool], None], interval: float
    ) -> None:
        self.progress = progress
        self._show = show
        self._interval = interval
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def _loop(self) -> None:
        while not self._stop.wait(self._interval):
            self._show(progress_line(self.progress), False)

    def __enter__(self) -> LiveProgress:
        self._thread = threading.Thread(target=self._loop, name="rolecheck-progress", daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
        self._show(progress_line(self.progress), True)
