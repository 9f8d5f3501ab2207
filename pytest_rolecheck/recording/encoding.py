"""Cassette format v2's packing of token lists: one line per token position, lossless.

A response's ``logprobs`` lists (chat ``choices[].logprobs.content``/``refusal``,
Responses ``output[].content[].logprobs``) are nine tenths of a v1 cassette. v2
writes each such list as a small table whose rows are JSON arrays, one per token
position, with that position's top logprobs on the same line::

    "content": {
      "keys": ["id", "token", "bytes", "logprob", "top_logprobs"],
      "top_keys": ["id", "token", "bytes", "logprob"],
      "bytes": "utf-8",
      "float32": true,
      "rows": [
        [504, "The", -1.91255, [[504,"The",-1.91255], [57,"I",-3.3063965]]],
        ...

``bytes`` is left out of a row when it equals the stated default (``"utf-8"``: the
UTF-8 of the token, or ``null``); a row that differs carries it as one extra, last
element. With ``"float32": true`` every float was a float32 value and is written as
the shortest text that rounds back to it; reading casts it back, so the unpacked
body equals the recorded one exactly. The response body names its packed lists:
``{"json": tree, "packed": [path, ...]}``. Stdlib only; no other module of this
package is imported here.
"""

from __future__ import annotations

import contextlib
import functools
import json
import struct
from collections.abc import Callable, Iterator
from typing import Any, Final

PACKED_KEY: Final = "packed"
_TOP: Final = "top_logprobs"
_BYTES: Final = "bytes"
_UTF8: Final = "utf-8"
_F32: Final = struct.Struct("<f")
# Where token lists live in the bodies the SDKs parse (a path step "*" is every item).
_LIST_PATHS: Final = (
    ("choices", "*", "logprobs", "content"),
    ("choices", "*", "logprobs", "refusal"),
    ("output", "*", "content", "*", "logprobs"),
)


class Malformed(ValueError):
    """A packed body that cannot be unpacked; the message says what."""


class Row(str):
    """JSON text that the cassette writer puts on a line of its own, as it is."""


def inline(value: Any) -> str:
    """JSON of ``value`` on one line; non-ASCII kept readable unless it cannot be UTF-8."""
    try:
        text = json.dumps(value, ensure_ascii=False, separators=(", ", ": "))
        text.encode("utf-8")
    except UnicodeEncodeError:  # lone surrogates: escape them so the file stays UTF-8
        text = json.dumps(value, ensure_ascii=True, separators=(", ", ": "))
    return text


# --------------------------------------------------------------------------- floats


def _to_f32(value: float) -> float:
    return float(_F32.unpack(_F32.pack(value))[0])


def float32_text(value: float) -> str | None:
    """Shortest JSON text that rounds to the float32 ``value``; ``None`` if it is none."""
    if value != value or value in (float("inf"), float("-inf")):
        return None
    try:
        if _to_f32(value) != value:
            return None
    except OverflowError:
        return None
    for digits in range(1, 10):  # 9 significant digits always round-trip a float32
        text = repr(float(f"{value:.{digits}g}"))  # repr: "20.0", not "2e+01"
        with contextlib.suppress(OverflowError):  # rounded up past the largest float32
            if _to_f32(float(text)) == value:
                return text
    return repr(value)  # pragma: no cover - unreachable by the bound above


# --------------------------------------------------------------------------- packing


def _lists(tree: Any, path: tuple[str, ...], at: tuple[str | int, ...]) -> Iterator[Any]:
    """(location, list) of every token list of ``tree`` along the pattern ``path``."""
    if not path:
        if isinstance(tree, list):
            yield at, tree
        return
    step, rest = path[0], path[1:]
    if step == "*":
        if isinstance(tree, list):
            for i, item in enumerate(tree):
                yield from _lists(item, rest, (*at, i))
    elif isinstance(tree, dict) and step in tree:
        yield from _lists(tree[step], rest, (*at, step))


def _uniform(entries: list[Any]) -> list[str] | None:
    """The key order every entry shares, or ``None`` (not all objects, or mixed keys)."""
    if not entries or not all(isinstance(e, dict) for e in entries):
        return None
    keys = list(entries[0])
    return keys if all(list(e) == keys for e in entries) else None


def _utf8(token: Any) -> list[int] | None:
    if not isinstance(token, str):
        return None
    try:
        return list(token.encode("utf-8"))
    except UnicodeEncodeError:
        return None


class _Table:
    """Packs one token list; ``rows`` is None when the list does not fit a table."""

    def __init__(self, entries: list[Any]) -> None:
        self.keys = _uniform(entries)
        self.top_keys: list[str] | None = None
        self.rows: list[Row] | None = None
        if self.keys is None:
            return
        tops: list[Any] = []
        if _TOP in self.keys:
            for entry in entries:
                value = entry[_TOP]
                if value is not None and not isinstance(value, list):
                    return
                tops.extend(value or ())
            self.top_keys = _uniform(tops) or []
            if tops and not self.top_keys:
                return
            if _TOP in self.top_keys:
                return  # nested deeper than a table row: keep the list as it is
        everything = [*entries, *tops]
        self.bytes_default: Any = None
        if _BYTES in self.keys or _BYTES in (self.top_keys or ()):
            derived = sum(e.get(_BYTES) == _utf8(e.get("token")) for e in everything)
            nulls = sum(e.get(_BYTES, 0) is None for e in everything)
            self.bytes_default = _UTF8 if derived >= nulls else None
        floats = [v for e in everything for v in e.values() if isinstance(v, float)]
        self.float32 = all(float32_text(v) is not None for v in floats)
        self.rows = [Row(self._row(entry, self.keys)) for entry in entries]

    def _bytes_is_default(self, entry: dict[str, Any]) -> bool:
        value = entry[_BYTES]
        if self.bytes_default == _UTF8:
            return value is not None and value == _utf8(entry.get("token"))
        return value is None

    def _cell(self, value: Any) -> str:
        if isinstance(value, float) and self.float32:
            return float32_text(value) or inline(value)
        return inline(value)

    def _row(self, entry: dict[str, Any], keys: list[str], sep: str = ", ") -> str:
        cells: list[str] = []
        for key in keys:
            if key == _BYTES:
                continue
            if key == _TOP and entry[key] is not None:
                assert self.top_keys is not None
                top_keys = self.top_keys
                # no spaces inside a top entry: 20 of them share the line (-6% of the file)
                tops = (self._row(t, top_keys, ",") for t in entry[key])
                cells.append("[" + ", ".join(tops) + "]")
            else:
                cells.append(self._cell(entry[key]))
        if _BYTES in keys and not self._bytes_is_default(entry):
            cells.append(inline(entry[_BYTES]))  # the exception travels at the row's end
        return "[" + sep.join(cells) + "]"

    def stored(self) -> dict[str, Any]:
        out: dict[str, Any] = {"keys": self.keys}
        if self.top_keys is not None:
            out["top_keys"] = self.top_keys
        if _BYTES in (self.keys or ()) or _BYTES in (self.top_keys or ()):
            out[_BYTES] = self.bytes_default
        if self.float32:
            out["float32"] = True
        out["rows"] = self.rows
        return out


def pack_body(stored: dict[str, Any] | None) -> dict[str, Any] | None:
    """A stored response body (``{"json": tree}``, ...) with its token lists packed."""
    if stored is None or "json" not in stored:
        return stored
    tree = stored["json"]
    packed: list[list[str | int]] = []
    replacements: list[tuple[tuple[str | int, ...], dict[str, Any]]] = []
    for pattern in _LIST_PATHS:
        for at, entries in _lists(tree, pattern, ()):
            table = _Table(entries)
            if table.rows is not None:
                replacements.append((at, table.stored()))
                packed.append(list(at))
    if not packed:
        return stored
    copy = json.loads(json.dumps(tree))  # the caller's tree stays as it was
    for at, value in replacements:
        parent = copy
        for step in at[:-1]:
            parent = parent[step]
        parent[at[-1]] = value
    return {PACKED_KEY: packed, "json": copy}


# --------------------------------------------------------------------------- unpacking


class _Layout:
    """How to turn the rows of one packed table (or of its top logprobs) back into objects.

    Built once per table: replay reads every row of every call, so the row loop
    does no string work and names no path unless a row is broken.
    """

    def __init__(self, keys: list[str], table: dict[str, Any], top: _Layout | None) -> None:
        self.keys = keys
        cells = [k for k in keys if k != _BYTES]
        self.width = len(cells)
        self.bytes_at = keys.index(_BYTES) if _BYTES in keys else -1
        self.token_at = cells.index("token") if "token" in cells else -1
        self.top_at = cells.index(_TOP) if top is not None and _TOP in cells else -1
        self.top = top
        self.utf8 = table.get(_BYTES) == _UTF8
        self.float32 = table.get("float32") is True
        self.fast: Callable[[Any], dict[str, Any]] = _fast_entry(
            tuple(keys), self.utf8, self.float32, None if top is None else top.fast
        )

    def entry(self, row: Any) -> dict[str, Any]:
        width = self.width
        if type(row) is not list or not width <= len(row) <= width + (self.bytes_at >= 0):
            raise Malformed(f"must be an array of {width} values (or {width + 1} with bytes)")
        values = row[:width]
        if self.float32:
            try:
                values = [_to_f32(v) if type(v) is float else v for v in values]
            except OverflowError:
                raise Malformed("holds a number too large for a float32") from None
        if self.top_at >= 0 and values[self.top_at] is not None:
            tops, top = values[self.top_at], self.top
            if type(tops) is not list or top is None:
                raise Malformed(f"{_TOP} must be an array of rows")
            values[self.top_at] = list(map(top.entry, tops))
        if self.bytes_at >= 0:
            raw: Any = None
            if len(row) > width:
                raw = row[width]
            elif self.utf8 and self.token_at >= 0:
                raw = _utf8(values[self.token_at])
            values.insert(self.bytes_at, raw)
        return dict(zip(self.keys, values, strict=True))


# A vocabulary's tokens recur in every call and position: their UTF-8 is worked out once.
# The lists are shared between entries, which are only ever written out as JSON.
_UTF8_SEEN: dict[str, list[int]] = {}
_UTF8_SEEN_MAX: Final = 200_000


def _utf8_of(token: str) -> list[int]:
    found = _UTF8_SEEN.get(token)
    if found is None:
        found = list(token.encode("utf-8"))  # a lone surrogate raises: the checked way
        if len(_UTF8_SEEN) < _UTF8_SEEN_MAX:
            _UTF8_SEEN[token] = found
    return found


class _Slow(Exception):
    """A row the fast reader leaves to :meth:`_Layout.entry` (which checks and names it)."""


def _cast32(value: Any) -> Any:
    return _F32.unpack(_F32.pack(value))[0] if type(value) is float else value


def _fast_entry(
    keys: tuple[str, ...],
    utf8: bool,
    float32: bool,
    top: Callable[[Any], dict[str, Any]] | None,
) -> Callable[[Any], dict[str, Any]]:
    """:meth:`_Layout.entry` for well-formed rows without a ``bytes`` cell, as one expression.

    Nine tenths of reading a cassette is turning top-logprob rows into objects;
    a generated function does it in a third of the time of the general loop.
    Anything unusual raises (``_Slow`` or another error) and the caller goes the
    checked way. Keys enter the source only through ``repr``: string literals.
    """
    return _compile_entry(keys, utf8, float32, top)


@functools.lru_cache(maxsize=64)
def _compile_entry(
    keys: tuple[str, ...],
    utf8: bool,
    float32: bool,
    top: Callable[[Any], dict[str, Any]] | None,
) -> Callable[[Any], dict[str, Any]]:
    cells = [k for k in keys if k != _BYTES]
    items = []
    for key in keys:
        if key == _BYTES:
            expr = f"_utf8_of(row[{cells.index('token')}])" if utf8 and "token" in cells else "None"
        elif key == _TOP and top is not None:
            at = cells.index(key)
            expr = f"None if row[{at}] is None else list(map(_top, row[{at}]))"
        elif key in ("token", "id") or not float32:  # text and token ids: checked below
            expr = f"row[{cells.index(key)}]"
        else:
            expr = f"_cast32(row[{cells.index(key)}])"
        items.append(f"{key!r}: {expr}")
    text = f" or type(row[{cells.index('token')}]) is not str" if "token" in cells else ""
    if float32 and "id" in cells:  # an id that is not an int goes the way that casts floats
        text += f" or type(row[{cells.index('id')}]) is not int"
    source = (
        "def entry(row):\n"
        f"    if type(row) is not list or len(row) != {len(cells)}{text}:\n"
        "        raise _Slow\n"
        f"    return {{{', '.join(items)}}}\n"
    )
    scope: dict[str, Any] = {"_Slow": _Slow, "_utf8_of": _utf8_of, "_cast32": _cast32, "_top": top}
    exec(source, scope)  # generated from repr()'d keys only
    entry: Callable[[Any], dict[str, Any]] = scope["entry"]
    return entry


def _layout(value: Any, where: str) -> _Layout:
    if not isinstance(value, dict) or not isinstance(value.get("rows"), list):
        raise Malformed(f"{where} must be an object with keys and rows")
    keys, top_keys = value.get("keys"), value.get("top_keys")
    if not (isinstance(keys, list) and all(isinstance(k, str) for k in keys)):
        raise Malformed(f"{where}.keys must be a list of strings")
    if top_keys is not None and not (
        isinstance(top_keys, list) and all(isinstance(k, str) for k in top_keys)
    ):
        raise Malformed(f"{where}.top_keys must be a list of strings")
    if top_keys is None and _TOP in keys:
        raise Malformed(f"{where} has {_TOP} but no top_keys")
    if len(set(keys)) < len(keys) or len(set(top_keys or ())) < len(top_keys or ()):
        raise Malformed(f"{where} names a key twice")
    top = None if top_keys is None else _Layout(top_keys, value, None)
    return _Layout(keys, value, top)


def _unpack_table(value: Any, where: str) -> list[dict[str, Any]]:
    layout = _layout(value, where)
    rows: list[Any] = value["rows"]
    try:
        return list(map(layout.fast, rows))
    except Exception:  # an unusual row: the checked way says what is wrong
        pass
    try:
        return list(map(layout.entry, rows))
    except Malformed as err:  # find the row again, only to name it
        for i, row in enumerate(rows):
            try:
                layout.entry(row)
            except Malformed:
                raise Malformed(f"{where}.rows[{i}] {err}") from None
        raise  # pragma: no cover - the same row fails again


def _tables(stored: Any) -> list[tuple[Any, Any, str]] | None:
    """(container, key, shown path) of each packed table of a v2 body; None: nothing packed."""
    if not isinstance(stored, dict) or PACKED_KEY not in stored:
        return None
    paths, tree = stored[PACKED_KEY], stored.get("json")
    if not isinstance(paths, list) or set(stored) != {PACKED_KEY, "json"}:
        raise Malformed(f'a packed body is {{"{PACKED_KEY}": [path, ...], "json": tree}}')
    found = []
    for path in paths:
        shown = ".".join(map(str, path)) if isinstance(path, list) else repr(path)
        parent: Any = tree
        try:
            for step in path[:-1]:
                parent = parent[step]
            parent[path[-1]]  # there, or the error below
        except (KeyError, IndexError, TypeError):
            raise Malformed(f"the packed list {shown} is not in the body") from None
        found.append((parent, path[-1], shown))
    return found


def unpack_body(stored: Any) -> Any:
    """The v1 form (``{"json": tree}``) of a v2 response body; other bodies as they are.

    Raises
    ------
    Malformed
        The body names packed lists that are not there or not tables.
    """
    tables = _tables(stored)
    if tables is None:
        return stored
    for parent, key, shown in tables:
        parent[key] = _unpack_table(parent[key], shown)
    return {"json": stored["json"]}
