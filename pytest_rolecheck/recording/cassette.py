"""Per-test cassettes: record the chat completions of a test once, replay them offline.

One JSON file per test holds every call the test made, in call order. Request and
response bodies are stored as JSON trees (a changed logprob is a one-line diff),
secrets and volatile headers are left out, and a file is only ever written whole:
on success, atomically, after vcrpy's patching has been undone.

vcrpy does the transport patching and the replay; this module owns the file format,
the matching rules and the error messages. It imports vcrpy only when a session is
entered, so importing this module (for ``RecordMode`` or ``cassette_path``) is cheap.

Matching: method, path, the canonical JSON body and the call index header
``x-rolecheck-call`` that the runner adds. The host and port are ignored: the cassette
says where it was recorded (its ``recorded_with`` block), and a replay in CI must not
depend on ``OPENAI_BASE_URL``. No header takes part either: the SDK's ``x-stainless-*``
and ``user-agent`` headers differ between machines.
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Callable, Mapping, Sequence
from contextlib import AbstractContextManager, nullcontext
from pathlib import Path
from types import TracebackType
from typing import Any, Final

from ..errors import (
    CassetteCorruptError,
    CassetteError,
    CassetteExhaustedError,
    CassetteMismatchError,
    CassetteNotFoundError,
    RolecheckUsageError,
)
from . import direct as _direct
from . import refusals
from .encoding import pack_body
from .files import atomic_write
from .fix_command import endpoint_of, fix_command
from .format import (
    CALL_INDEX_HEADER,
    FORMAT_KEY,
    FORMAT_VERSION,
    SETUP_KEY,
    Unreadable,
    _canonical_bytes,
    _canonical_json,
    _compact_bytes,
    _parse_json_bytes,
    _Recorded,
    _to_json_tree,
    read_cassette,
    render_json,
)
from .mode import RecordMode, goes_live
from .paths import _display
from .redaction import (
    _REQUEST_HEADERS,
    _Redactor,
    steady_uri,
    stored_call,
)

# CALL_INDEX_HEADER: the header the runner adds, re-exported for the benchmarks.
__all__ = ["CALL_INDEX_HEADER", "CassetteSession"]


def _header_index(headers: Mapping[str, Any]) -> str | None:
    value = headers.get(CALL_INDEX_HEADER)
    if isinstance(value, list | tuple):
        value = value[0] if value else None
    return None if value is None else str(value)


def _match_call(r1: Any, r2: Any) -> None:
    """vcrpy matcher: same ``x-rolecheck-call`` header."""
    a, b = _header_index(r1.headers), _header_index(r2.headers)
    if a != b:
        raise AssertionError(f"{CALL_INDEX_HEADER}: {a} != {b}")


def _match_body(r1: Any, r2: Any) -> None:
    """vcrpy matcher: same canonical JSON body (key order and whitespace do not count)."""
    if _canonical_bytes(r1.body) != _canonical_bytes(r2.body):
        raise AssertionError("the JSON bodies differ")


_match_call.__name__ = "rolecheck_call"
_match_body.__name__ = "rolecheck_body"

# vcrpy patches these HTTP clients too unless told not to; only httpx/httpx2 carry SDK calls
_FOREIGN_PATCHERS: Final = (
    "httplib",
    "requests",
    "boto3",
    "urllib3",
    "httplib2",
    "tornado",
    "aiohttp",
)


class _Persister:
    """vcrpy persister: feeds the session's parsed cassette, writes nothing.

    The session writes the file itself after vcrpy has unpatched, so a failing write
    can never leave the transports patched.
    """

    def __init__(self, session: CassetteSession) -> None:
        self._session = session

    def load_cassette(self, cassette_path: Any, serializer: Any) -> tuple[list[Any], list[Any]]:
        from vcr.persisters.filesystem import CassetteNotFoundError as VcrNotFound
        from vcr.request import Request

        if self._session.live:  # re-recording starts empty: nothing old can be appended
            raise VcrNotFound()
        try:
            recorded = self._session._interactions()
        except CassetteError:
            # check_request reports it with a proper message; vcrpy just sees no cassette
            raise VcrNotFound() from None
        ordered = sorted(recorded.values(), key=lambda r: r.index)
        requests = [Request(r.method, r.uri, r.body, dict(r.headers)) for r in ordered]
        return requests, [r.response for r in ordered]

    @staticmethod
    def save_cassette(cassette_path: Any, cassette_dict: Any, serializer: Any) -> None:
        return None


class CassetteSession:
    """Record or replay the chat-completion calls of one test.

    Parameters
    ----------
    path : Path
        The test's cassette file (see :func:`cassette_path`).
    mode : RecordMode or str
        ``none``, ``once``, ``all`` or ``rewrite`` (see :class:`RecordMode`).
    nodeid : str
        The pytest node id, used in the commands the error messages suggest.
    secrets : sequence of str
        Values (API keys) that must never reach the file; each occurrence in bodies,
        URIs and headers is replaced with ``<redacted>``, in recordings and in the
        requests compared against them. Values that do not look like a secret (see
        :func:`looks_like_secret`) are ignored.

    Notes
    -----
    Use it as a context manager around the calls. While entered, vcrpy patches the
    ``httpx2`` and ``httpx`` transports; requests carrying the ``x-rolecheck-call``
    header are recorded or replayed, all other requests pass through untouched. On a
    normal exit of a live session the cassette is written atomically (when at least
    one call was recorded); on an exception (``KeyboardInterrupt`` included) nothing
    is written and an existing cassette is left as it was. The patching is undone on
    every path. A session can be entered once.

    Call :meth:`check_request` before each replayed call: it raises the explanatory
    errors before the request reaches vcrpy.
    """

    def __init__(
        self,
        path: Path,
        mode: RecordMode | str,
        *,
        nodeid: str,
        secrets: Sequence[str] = (),
        command_flags: Sequence[str] = (),
        cassette_dir: Path | None = None,
        recorded_with: Mapping[str, Any] | None = None,
        command: Callable[[str | None, Sequence[str]], str] | None = None,
        direct: bool = False,
    ) -> None:
        try:
            self.mode = RecordMode(mode)
        except ValueError:
            allowed = ", ".join(m.value for m in RecordMode)
            raise RolecheckUsageError(
                f"--rolecheck-record-mode={mode!r} is not a record mode; use one of {allowed}"
            ) from None
        self.path = Path(path)
        self.nodeid = nodeid
        self._redactor = _Redactor.from_secrets(secrets)
        self.command_flags = tuple(command_flags)
        # Builds the fix commands from (record mode, flags); `rolecheck compare`
        # passes its own, since a pytest command cannot re-run it.
        self._command = command or (lambda mode, flags: fix_command(mode, self.nodeid, flags))
        self.cassette_dir = cassette_dir
        # This run's setup: written into a recording, compared with a replayed one's.
        self.recorded_with: dict[str, Any] = dict(recorded_with or {})
        self._stored_setup: dict[str, Any] = {}
        # decided once: a cassette written by this very session must not flip it
        self._live = goes_live(self.mode, self.path)
        # Replays answered by play() through the client's transport, not by vcrpy.
        self.direct = direct and _direct.ENABLED and not self._live
        self._played: set[int] = set()
        self._refused: list[CassetteError] = []  # raised by play(), recognised by explain()
        self._lock = threading.Lock()
        self._loaded: dict[int, _Recorded] | None = None
        self._load_error: tuple[type[CassetteError], str] | None = None
        self._context: Any = None
        self._cassette: Any = None
        self._used = False
        self._written = False

    # ----------------------------------------------------------------- state

    @property
    def live(self) -> bool:
        """True if the calls of this test go to the network (all/rewrite, or once without file)."""
        return self._live

    @property
    def recorded(self) -> int:
        """Calls recorded live in this session (successful, deduplicated by call index)."""
        return len(self._recordings()) if self._live else 0

    @property
    def replayed(self) -> int:
        """Responses replayed from the cassette so far."""
        if self._cassette is not None:
            return int(self._cassette.play_count)
        return len(self._played)

    @property
    def written(self) -> bool:
        """True once a live session has saved its cassette (on a successful exit)."""
        return self._written

    @property
    def interaction_count(self) -> int:
        """Calls stored in the cassette file (0 when live).

        Raises
        ------
        CassetteNotFoundError, CassetteCorruptError
            When replaying and the file is missing or unreadable.
        """
        return 0 if self._live else len(self._interactions())

    def will_replay(self, index: int) -> bool:
        """Whether call ``index`` will be answered from the cassette (never raises)."""
        if self._live:
            return False
        try:
            return index in self._interactions()
        except CassetteError:
            return False

    def redact(self, text: str) -> str:
        """``text`` with every secret of this session replaced (for error messages)."""
        return self._redactor.text(text)

    def stored_json(self, index: int) -> Any:
        """The response body of live call ``index`` exactly as the cassette stores it.

        Scrubbed, so the caller can hand on what a replay will give instead of the
        raw live answer (reports then hold no secret and equal the replayed ones).
        ``None`` when replaying, or when the call was not recorded as JSON.
        """
        if not self._live or self._cassette is None:
            return None
        wanted = str(index)
        for request, response in reversed(list(self._cassette.data)):
            if _header_index(request.headers) == wanted:
                body = self._stored_call(index, request, response)["response"]["body"]
                return body.get("json") if body is not None else None
        return None

    def _stored_call(self, index: int, request: Any, response: Any) -> dict[str, Any]:
        local = bool(self.recorded_with.get("local"))
        return stored_call(index, request, response, self._redactor, local=local)

    def unused_recordings(self, calls_made: int) -> str | None:
        """Why a replay that made ``calls_made`` calls left recordings unused, or ``None``.

        Fewer calls than recorded (fewer trials, a comparison removed) still replay,
        from a subset of the recording: the verdicts then rest on other data than
        the test asks for, and the cassette no longer says what the test does.
        """
        if self._live:
            return None
        try:
            recorded = self._interactions()
        except CassetteError:
            return None  # already reported by the call that could not replay
        unused = sorted(index for index in recorded if index >= calls_made)
        if not unused:
            return None
        return refusals.unused(
            self.nodeid, self.path, calls_made, len(recorded), unused, self.rewrite_command
        )

    @property
    def stored_setup(self) -> dict[str, Any]:
        """Where the replayed cassette was recorded (empty for older cassettes; never raises)."""
        if self._live:
            return {}
        with contextlib.suppress(CassetteError):
            self._interactions()
        return dict(self._stored_setup)

    @property
    def rewrite_command(self) -> str:
        """The shell command that re-records this test, against what it was recorded with."""
        flags = list(self.command_flags)
        stored, now = self._stored_setup, self.recorded_with
        if stored.get("local") and not now.get("local"):
            flags.append("--rolecheck-local")
        elif stored.get("model") and not now.get("model") and not now.get("local"):
            flags.append(f"--rolecheck-model={stored['model']}")
        return self._command("rewrite", flags)

    # ----------------------------------------------------------------- checks

    def check_request(self, index: int, body: Mapping[str, Any]) -> None:
        """Raise if call ``index`` with JSON ``body`` cannot be replayed; no-op when live.

        Parameters
        ----------
        index : int
            The call index the runner sends in the ``x-rolecheck-call`` header.
        body : Mapping
            The JSON body of the request, i.e. the keyword arguments given to
            ``chat.completions.create`` without ``extra_headers``/``timeout`` (and with
            ``extra_body`` merged in). Compared canonically: key order does not count.

        Raises
        ------
        CassetteNotFoundError
            The test has no cassette; the message gives the ``once`` command.
        CassetteCorruptError
            The cassette cannot be read; the message gives file:line and the rewrite command.
        CassetteExhaustedError
            The cassette holds no call ``index`` (the test now makes more calls).
        CassetteMismatchError
            The request differs from the recorded one; the message shows a short diff.
        """
        __tracebackhide__ = True
        if self._live:
            return
        if isinstance(index, bool) or not isinstance(index, int) or index < 0:
            raise RolecheckUsageError(f"a call index is an integer >= 0, got {index!r}")
        tree = self._redactor.tree(_to_json_tree(body))
        self._check(index, _canonical_json(tree), tree)

    def recorded_body(self, index: int, body: Mapping[str, Any]) -> Any:
        """The recorded response (parsed JSON) of call ``index``, whose request must be ``body``.

        The baseline of a drift check, read without vcrpy: the request is checked
        exactly as :meth:`check_request` checks a replay, with the same errors.
        """
        __tracebackhide__ = True
        tree = self._redactor.tree(_to_json_tree(body))
        entry = self._check(index, _canonical_json(tree), tree)
        return _parse_json_bytes(entry.response["body"]["string"])[1]

    def _check(self, index: int, canonical: str | bytes, shown: Any) -> _Recorded:
        recorded = self._interactions()
        entry = recorded.get(index)
        if entry is None:
            message = refusals.exhausted(self.path, index, len(recorded), self.rewrite_command)
            raise CassetteExhaustedError(message)
        if entry.canonical != canonical:
            if isinstance(shown, bytes):  # a body as sent: shown as JSON when it is
                ok, tree = _parse_json_bytes(shown)
                shown = tree if ok else shown.decode("utf-8", "replace")
            raise CassetteMismatchError(
                refusals.mismatch(
                    self.nodeid, self.path, index, entry.shown, shown, self.rewrite_command
                )
            )
        return entry

    def explain(self, error: BaseException) -> CassetteError | None:
        """Turn a refusal found in ``error``'s chain into a pytest-rolecheck error.

        The SDK may raise vcrpy's ``CannotOverwriteExistingCassetteException`` as is
        (openai 3.x) or wrapped in ``APIConnectionError`` after retries (openai 1.x);
        both are recognised through ``__cause__``/``__context__``, and so is an error
        :meth:`play` raised. Returns None if the chain holds no such exception.
        """
        own = _find_in_chain(error, lambda e: isinstance(e, CassetteError) and e in self._refused)
        if own is not None:
            assert isinstance(own, CassetteError)
            return own
        refusal = _find_vcr_refusal(error)
        if refusal is None:
            return None
        request = getattr(refusal, "failed_request", None)
        if request is None or getattr(refusal, "cassette", None) is not self._cassette:
            return None  # another cassette's refusal (pytest-recording, a user's own vcr)
        raw_index = _header_index(request.headers)
        if raw_index is None or not raw_index.isdigit():
            return None
        body = request.body if isinstance(request.body, bytes) else b""
        refused = self._refusal(int(raw_index), request.method, request.uri, body)
        if refused is not None:
            return refused
        message = refusals.sent_twice(self.nodeid, int(raw_index))
        return CassetteError(f"{message}. vcrpy said:\n{refusal}")

    def _refusal(self, index: int, method: str, uri: str, body: bytes) -> CassetteError | None:
        """Why call ``index`` (as scrubbed, sent) cannot replay; ``None``: it matches."""
        try:
            entry = self._check(index, _canonical_bytes(body), body)
        except CassetteError as err:
            return err
        if refusals.url_key(method, uri) != refusals.url_key(entry.method, entry.uri):
            point = self._command(
                None, [*self.command_flags, f"--rolecheck-base-url={refusals.base_of(entry.uri)}"]
            )
            return CassetteMismatchError(
                refusals.paths_differ(
                    self.nodeid,
                    index,
                    f"{entry.method} {entry.uri}",
                    f"{method} {uri}",
                    point,
                    self.rewrite_command,
                )
            )
        return None

    # ----------------------------------------------------------------- direct replay

    def serving(self) -> AbstractContextManager[None]:
        """Around a batch of calls: the client's transport asks this session (direct replay)."""
        return _direct.serving(self) if self.direct else nullcontext()

    def play(self, method: str, uri: str, raw_index: str, body: bytes) -> dict[str, Any]:
        """The recorded response (vcrpy's in-memory shape) to a request, as vcrpy would play it.

        Called by the client's transport in a direct replay, with the request as
        sent: matched like vcrpy matches it (method, path, call index, canonical
        body, after scrubbing), each recording played once; a refusal raises the
        error :meth:`explain` would have made of vcrpy's.
        """
        __tracebackhide__ = True
        uri = self._redactor.uri(uri)
        body = self._scrubbed(body)
        index = int(raw_index) if raw_index.isdigit() else -1
        with self._lock:
            entry = self._loaded.get(index) if self._loaded is not None else None
            # The common case first: the very bytes recorded (check_request saw the call).
            if (
                entry is not None
                and index not in self._played
                and entry.body == body
                and refusals.url_key(method, uri) == refusals.url_key(entry.method, entry.uri)
            ):
                self._played.add(index)
                return entry.response
        if index < 0:
            refused: CassetteError | None = CassetteError(
                f"{CALL_INDEX_HEADER}: {raw_index!r} is not a call index (an integer >= 0)"
            )
        else:
            refused = self._refusal(index, method, uri, body)
        if refused is None:
            entry = self._interactions()[index]  # loaded by _refusal: no error here
            with self._lock:  # not around _interactions(), which takes it too
                if index not in self._played:
                    self._played.add(index)
                    return entry.response
            refused = CassetteError(refusals.sent_twice(self.nodeid, index))
        self._refused.append(refused)
        raise refused

    # ----------------------------------------------------------------- loading

    def _interactions(self) -> dict[int, _Recorded]:
        with self._lock:
            if self._loaded is None and self._load_error is None:
                try:
                    self._loaded = self._read()
                except CassetteError as err:
                    self._load_error = (type(err), str(err))
            if self._load_error is not None:
                kind, message = self._load_error
                raise kind(message)
            assert self._loaded is not None
            return self._loaded

    def _read(self) -> dict[int, _Recorded]:
        try:
            found, self._stored_setup = read_cassette(self.path)
        except FileNotFoundError:
            record = self._command("once", self.command_flags)
            message = refusals.not_found(self.path, record, self.mode.value, self.cassette_dir)
            raise CassetteNotFoundError(message) from None
        except Unreadable as err:
            raise CassetteCorruptError(refusals.corrupt(str(err), self.rewrite_command)) from None
        return found

    # ----------------------------------------------------------------- vcrpy

    def _filter_request(self, request: Any) -> Any:
        """vcrpy before_record_request hook: runs on every request it sees (on a copy)."""
        index = _header_index(request.headers)
        if index is None:
            return None  # not a rolecheck call: vcrpy lets it through, unrecorded
        kept: dict[str, str] = {}
        for name in _REQUEST_HEADERS:
            value = request.headers.get(name)
            if value is not None:
                kept[name] = value[0] if isinstance(value, list | tuple) else str(value)
        request.headers = kept
        request.uri = self._redactor.uri(request.uri)
        if isinstance(request.body, bytes):
            request.body = self._scrubbed(request.body)
        return request

    def _scrubbed(self, body: bytes) -> bytes:
        """A request body with every secret replaced (as it is stored and matched)."""
        if self._redactor.needles and self._redactor.raw(body) != body:
            ok, tree = _parse_json_bytes(body)
            return _compact_bytes(self._redactor.tree(tree)) if ok else self._redactor.raw(body)
        return body

    def __enter__(self) -> CassetteSession:
        if self._used:
            raise RolecheckUsageError(
                "a CassetteSession can be entered only once; create one per test"
            )
        self._used = True
        if self.direct:
            return self  # answered by play(), through the client's transport
        import inspect

        import vcr

        config: dict[str, Any] = {
            "record_mode": "all" if self._live else "none",
            # No host: the cassette records where it came from; replay works from anywhere.
            "match_on": ("method", "path", "rolecheck_call", "rolecheck_body"),
            "before_record_request": self._filter_request,
            "record_on_exception": False,
            "decode_compressed_response": False,
        }
        parameters = inspect.signature(vcr.VCR).parameters
        if "skip_patchers" in parameters:
            config["skip_patchers"] = _FOREIGN_PATCHERS
        # our own instance: pytest-recording's vcr_config and default VCR are never used
        recorder = vcr.VCR(**config)
        recorder.register_matcher("rolecheck_call", _match_call)
        recorder.register_matcher("rolecheck_body", _match_body)
        context = recorder.use_cassette(str(self.path), persister=_Persister(self))
        self._cassette = context.__enter__()
        self._context = context
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        context, self._context = self._context, None
        if context is None:
            return
        context.__exit__(exc_type, exc, tb)  # unpatches; our persister never raises
        if exc_type is not None or not self._live:
            return
        recordings = self._recordings()
        if recordings:
            setup = dict(self.recorded_with)
            if isinstance(setup.get("endpoint"), str):
                setup["endpoint"] = endpoint_of(self._redactor.uri(setup["endpoint"]))
                if setup.get("local") and setup["endpoint"]:
                    setup["endpoint"] = steady_uri(setup["endpoint"])
            calls = [self._stored_call(i, q, r) for i, (q, r) in recordings.items()]
            for call in calls:
                call["response"]["body"] = pack_body(call["response"]["body"])
            document = {
                FORMAT_KEY: FORMAT_VERSION,
                "test": self.nodeid,
                SETUP_KEY: self._redactor.tree(setup),
                "interactions": calls,
            }
            try:
                atomic_write(self.path, (render_json(document) + "\n").encode("utf-8"))
            except OSError as err:
                raise CassetteError(
                    f"could not write the cassette {_display(self.path)}: {err}. Make the "
                    "directory writable or point --rolecheck-cassette-dir somewhere else; "
                    "the calls were made but nothing was saved"
                ) from err
            self._written = True

    def _recordings(self) -> dict[int, tuple[Any, dict[str, Any]]]:
        """Successful live recordings, one per call index (the last wins), sorted by index."""
        if self._cassette is None:
            return {}
        by_index: dict[int, tuple[Any, dict[str, Any]]] = {}
        for request, response in list(self._cassette.data):
            raw_index = _header_index(request.headers)
            if raw_index is None or not raw_index.isdigit():
                continue
            code = int((response.get("status") or {}).get("code", 0))
            if code >= 400:  # the SDK retried it, or the test fails anyway
                continue
            by_index[int(raw_index)] = (request, response)
        return dict(sorted(by_index.items()))


def _find_vcr_refusal(error: BaseException) -> BaseException | None:
    from vcr.errors import CannotOverwriteExistingCassetteException

    return _find_in_chain(error, lambda e: isinstance(e, CannotOverwriteExistingCassetteException))


def _find_in_chain(
    error: BaseException, wanted: Callable[[BaseException], bool]
) -> BaseException | None:
    seen: set[int] = set()
    stack: list[BaseException] = [error]
    while stack:
        current = stack.pop()
        if id(current) in seen:
            continue
        seen.add(id(current))
        if wanted(current):
            return current
        for linked in (current.__cause__, current.__context__):
            if linked is not None:
                stack.append(linked)
    return None
