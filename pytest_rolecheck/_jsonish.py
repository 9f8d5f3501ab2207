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


def to_plain(obj: Any) -> Any:
    """Recursively turn numpy scalars/arrays, tuples and mappings into plain JSON types.

    Report rows travel from xdist workers through execnet, which accepts only
    builtin types, and end up in JSON files.
    """
    if obj is None or isinstance(obj, str | bool | int | float):
        return obj
    if isinstance(obj, Mapping):
        return {str(key): to_plain(value) for key, value in obj.items()}
    if isinstance(obj, list | tuple | set | frozenset):
        return [to_plain(value) for value in obj]
    tolist = getattr(obj, "tolist", None)  # numpy arrays and scalars
    if callable(tolist):
        return to_plain(tolist())
    return str(obj)
