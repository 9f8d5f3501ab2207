"""Turn SDK objects or plain mappings into plain JSON-like dicts (pure)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any


def as_dict(obj: Any) -> dict[str, Any]:
    """Return ``obj`` as a plain dict.

    Accepts the ``openai`` SDK's pydantic models (anything with ``model_dump``)
    and mappings, so the pure core never imports ``openai``.
    """
    if isinstance(obj, Mapping):
        return dict(obj)
    dump = getattr(obj, "model_dump", None)
    if callable(dump):
        result = dump(mode="python")
        if isinstance(result, dict):
            return result
    raise TypeError(
        f"expected a chat-completion response (an openai ChatCompletion or a dict of the "
        f"same JSON), got {type(obj).__name__}"
    )
