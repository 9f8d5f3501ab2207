"""Turn SDK objects or plain mappings into plain JSON-like dicts (pure)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any


def as_dict(obj: Any, *, shallow: bool = False) -> dict[str, Any]:
    """Return ``obj`` as a plain dict.

    Accepts the ``openai`` SDK's pydantic models (anything with ``model_dump``)
    and mappings, so the pure core never imports ``openai``.

    Parameters
    ----------
    obj : pydantic model or Mapping
        An SDK object (e.g. a ``ChatCompletion``) or a mapping.
    shallow : bool, default False
        Return a pydantic model's own field values (extra fields included)
        without converting nested models: they stay SDK objects, for the caller
        to pass through ``as_dict`` again. Much cheaper than a full dump when
        the caller walks the tree anyway (a top-20 completion of 20 tokens
        holds over 400 nested objects).

    Returns
    -------
    dict
        A new dict; with ``shallow=False`` nested models are plain dicts too.

    Raises
    ------
    TypeError
        ``obj`` is neither a mapping nor an object with ``model_dump``.
    """
    if shallow and hasattr(type(obj), "__pydantic_fields__"):
        # pydantic v2 keeps field values in the instance __dict__, extras apart.
        extra = getattr(obj, "__pydantic_extra__", None)
        return {**vars(obj), **extra} if extra else dict(vars(obj))
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
