"""The short diff a cassette mismatch shows: recorded request vs the one sent now."""

from __future__ import annotations

import difflib
import json
import json.scanner
from typing import Any, Final

from .format import _canonical_json

_MAX_DIFF_LINES: Final = 30
_MAX_DIFF_LINE: Final = 160


def _diff_text(value: Any) -> str:
    if isinstance(value, str):
        return value
    return json.dumps(value, indent=2, sort_keys=True, ensure_ascii=False)


def _clip_pair(old: str, new: str) -> tuple[str, str]:
    """Shorten two long diff lines around the first character where they differ."""
    if len(old) <= _MAX_DIFF_LINE and len(new) <= _MAX_DIFF_LINE:
        return old, new
    common = 1  # skip the "-"/"+" marker
    limit = min(len(old), len(new))
    while common < limit and old[common] == new[common]:
        common += 1
    return _clip(old, common), _clip(new, common)


def _clip(line: str, focus: int = 1) -> str:
    if len(line) <= _MAX_DIFF_LINE:
        return line
    start = max(1, focus - 40)
    head = line[0] + ("…" if start > 1 else "")
    body = line[start : start + _MAX_DIFF_LINE - 2]
    tail = "…" if start + _MAX_DIFF_LINE - 2 < len(line) else ""
    return head + body + tail


def body_diff(recorded: Any, current: Any) -> str:
    """Short unified diff (sorted keys, at most 30 lines) between two request bodies."""
    lines = list(
        difflib.unified_diff(
            _diff_text(recorded).splitlines(),
            _diff_text(current).splitlines(),
            "recorded",
            "this request",
            n=1,
            lineterm="",
        )
    )
    # pair "-" runs with the "+" runs that follow them, to clip long lines in step
    out: list[str] = []
    i = 0
    while i < len(lines):
        line = lines[i]
        if line.startswith("-") and not line.startswith("---"):
            j = i
            while j < len(lines) and lines[j].startswith("-"):
                j += 1
            k = j
            while k < len(lines) and lines[k].startswith("+") and not lines[k].startswith("+++"):
                k += 1
            olds, news = lines[i:j], lines[j:k]
            for n in range(max(len(olds), len(news))):
                if n < len(olds) and n < len(news):
                    olds[n], news[n] = _clip_pair(olds[n], news[n])
                elif n < len(olds):
                    olds[n] = _clip(olds[n])
                else:
                    news[n] = _clip(news[n])
            out.extend(olds + news)
            i = k
        else:
            out.append(_clip(line))
            i += 1
    if len(out) > _MAX_DIFF_LINES:
        out = [*out[:_MAX_DIFF_LINES], f"… ({len(out) - _MAX_DIFF_LINES} more diff lines)"]
    return "\n".join(out)


def _changed_keys(recorded: Any, current: Any) -> list[str]:
    if not isinstance(recorded, dict) or not isinstance(current, dict):
        return []
    keys = list(current) + [k for k in recorded if k not in current]
    return [k for k in keys if _canonical_json(recorded.get(k)) != _canonical_json(current.get(k))]
