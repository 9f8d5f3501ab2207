"""The commands the cassette errors print, pasteable as they are."""

from __future__ import annotations

import contextlib
import shlex
from collections.abc import Sequence
from urllib.parse import urlsplit, urlunsplit

# --------------------------------------------------------------------------- writing


# --------------------------------------------------------------------------- session


def _shell_quote(text: str) -> str:
    return f"'{text}'" if "'" not in text else shlex.quote(text)


def fix_command(mode: str | None, target: str | Sequence[str], flags: Sequence[str] = ()) -> str:
    """The one builder of the pytest commands that error messages tell users to run.

    ``target`` is one test id or several. ``flags`` are the run's own options
    (``--rolecheck-local``, ``-c``, ``-p`` ...), so the command works when pasted
    verbatim; ``mode`` adds ``--rolecheck-record-mode``.
    """
    parts = ["pytest", *(shlex.quote(flag) for flag in flags)]
    if mode is not None:
        parts.append(f"--rolecheck-record-mode={mode}")
    parts += [_shell_quote(t) for t in ([target] if isinstance(target, str) else target)]
    return " ".join(parts)


def endpoint_of(base_url: str) -> str | None:
    """``scheme://host[:port]/path`` of a base URL: no credentials, no query."""
    with contextlib.suppress(ValueError):
        parts = urlsplit(base_url)
        if parts.hostname:
            netloc = parts.netloc.rpartition("@")[2]
            return urlunsplit((parts.scheme, netloc, parts.path.rstrip("/"), "", ""))
    return None
