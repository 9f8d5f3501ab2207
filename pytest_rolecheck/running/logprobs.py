"""Whether a server gives logprobs: found out once per endpoint and model, then remembered.

``logprobs="auto"`` (the default) asks for logprobs. The first live call of an endpoint
and model goes alone: when the server rejects the field (an HTTP 400 that names it, e.g.
OpenAI's "logprobs are not supported with reasoning models") that one call is sent again
without it; when it answers without logprobs (Anthropic's OpenAI layer, some hosted
servers), the answer is kept. Either way the run remembers it (:class:`LogprobsMemory`,
one per pytest run; each xdist worker finds out for itself, at the cost of one call), the
rest of the calls to that endpoint and model ask for none (no more 400s), and the test's
cassette records it (``recorded_with.no_logprobs``: per model, why, the server's words and
the first call sent without), so a replay builds the very requests that were sent and
says the same thing. The comparison then goes by text (``metric="auto"``
chooses ``edit`` for calls without logprobs), and its notes say why.

``logprobs="true"`` requires logprobs (an answer without them is an error that says what to
do); ``logprobs="false"`` never asks.
"""

from __future__ import annotations

import dataclasses
import threading
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Final

from ..errors import NoLogprobsError
from ..variants.responses import LOGPROBS_INCLUDE

if TYPE_CHECKING:
    from ..recording.cassette import CassetteSession
    from .calls import Calls
    from .client import CallSpec, CompletionRunner

__all__ = [
    "Gap",
    "LogprobsGate",
    "LogprobsMemory",
    "gate_for",
    "logprobs_mode",
    "noted",
    "refuse_logprob_metric",
    "rejection",
    "texts_of",
    "without_logprobs",
]

# The cassette's recorded_with key: {model: {"why": ..., "detail": ...}}.
RECORD_KEY: Final = "no_logprobs"
# Fields a request asks for logprobs with (chat completions).
_FIELDS: Final = ("logprobs", "top_logprobs")
# Statuses of a refused request field (400; some OpenAI-compatible servers say 422).
_REFUSED: Final = (400, 422)
# A server's error text, shortened for the notes and the cassette.
_DETAIL_CHARS: Final = 200


@dataclass(frozen=True)
class Gap:
    """Why calls carry no logprobs: ``rejected``, ``ignored`` or ``off``, and the evidence."""

    why: str
    detail: str = ""
    model: str | None = None

    def to_json(self) -> dict[str, Any]:
        return {"why": self.why, "detail": self.detail}

    @classmethod
    def from_json(cls, data: Any, model: str) -> Gap | None:
        if not isinstance(data, Mapping) or data.get("why") not in ("rejected", "ignored"):
            return None
        return cls(str(data["why"]), str(data.get("detail") or ""), model)


class LogprobsMemory:
    """What the run found out: (base URL and API, model) -> ``None`` (gives logprobs) or the Gap."""

    def __init__(self) -> None:
        self._known: dict[tuple[str, str], Gap | None] = {}
        self._lock = threading.Lock()

    def knows(self, key: tuple[str, str]) -> bool:
        with self._lock:
            return key in self._known

    def gap(self, key: tuple[str, str]) -> Gap | None:
        with self._lock:
            return self._known.get(key)

    def learn(self, key: tuple[str, str], gap: Gap | None) -> None:
        with self._lock:
            self._known.setdefault(key, gap)  # the first finding stands


#: The findings of a process outside pytest (each pytest run has its own).
PROCESS_MEMORY: Final = LogprobsMemory()


def logprobs_mode(value: bool | str, *, source: str = "logprobs") -> str:
    """``auto``, ``true`` or ``false`` from a keyword: ``True``/``False`` or the option's text."""
    from ..errors import RolecheckUsageError
    from ..settings import OPTIONS_BY_NAME

    spec = OPTIONS_BY_NAME["logprobs"]
    try:
        if isinstance(value, bool | str):
            return str(spec.parse(str(value)))
    except ValueError:
        pass
    raise RolecheckUsageError(
        f"{source}={value!r} is not allowed: expected True, False or {spec.parse.__doc__}. "
        "Checked before any call."
    )


def asks(request: Mapping[str, Any]) -> bool:
    """Whether a request asks for logprobs (chat completions, or the Responses API's way)."""
    return request.get("logprobs") is True or LOGPROBS_INCLUDE in (request.get("include") or ())


def unasked(request: Mapping[str, Any]) -> dict[str, Any]:
    """``request`` asking for no logprobs."""
    out = {k: v for k, v in request.items() if k not in _FIELDS}
    if "include" in out:
        include = [i for i in out["include"] or () if i != LOGPROBS_INCLUDE]
        out.pop("include")
        if include:
            out["include"] = include
    return out


def rejection(exc: BaseException) -> str | None:
    """The server's words when ``exc`` is an error answer refusing logprobs, else ``None``."""
    import openai

    if not isinstance(exc, openai.APIStatusError) or exc.status_code not in _REFUSED:
        return None
    body = exc.body
    message = body.get("message") if isinstance(body, Mapping) else None
    text = str(message or exc.message)
    if "logprob" not in text.lower() and str(getattr(exc, "param", "")) not in _FIELDS:
        return None
    text = text if len(text) <= _DETAIL_CHARS else text[:_DETAIL_CHARS] + " …"
    return f"HTTP {exc.status_code}: {text!r}"


def missing(response: Any) -> str | None:
    """What shows that an answer with text has no logprobs (``None``: it has, or has no text)."""
    from ..core.parse import parse_response
    from ..errors import ResponseFormatError

    try:
        # Whether there are logprobs, not what they are: the comparison reads them.
        call = parse_response(response, require_logprobs=False, tokens=False)
    except ResponseFormatError:
        return None  # not ours to judge here; the comparison reports it
    if call.has_logprobs or not call.text:
        return None  # a tool call or an empty answer shows nothing
    return "logprobs: null in its answer"


class _Rejected(Exception):
    """Raised by the runner, instead of its own error, when the probe's logprobs are refused."""

    def __init__(self, detail: str) -> None:
        super().__init__(detail)
        self.detail = detail


class LogprobsGate:
    """One batch's requests and answers, as ``mode`` says (see the module docstring).

    Parameters
    ----------
    mode
        ``auto``, ``true`` or ``false``.
    memory
        The run's findings, keyed by ``(base_url and API, model)``; used when ``detect``.
    base_url
        The endpoint the calls go to.
    detect
        Whether this batch may find out (live calls, not a drift check).
    recorded
        The ``recorded_with`` block of the cassette being replayed (or a drift check's
        baseline): its findings, not the run's, say how its requests were built.
    cassette
        The cassette being recorded, which is told every finding it relies on.
    redact
        Scrubs the server's words before they are kept anywhere.
    """

    def __init__(
        self,
        mode: str,
        *,
        memory: LogprobsMemory,
        base_url: str,
        detect: bool,
        recorded: Mapping[str, Any] | None,
        cassette: CassetteSession | None,
        redact: Callable[[str], str] | None,
    ) -> None:
        self.mode = mode
        self._memory = memory
        self._base = base_url
        self._detect = detect
        stored = (recorded or {}).get(RECORD_KEY)
        self._recorded = dict(stored) if isinstance(stored, Mapping) else None
        self._replaying = recorded is not None
        self._cassette = cassette
        self._redact = redact or (lambda text: text)

    # ----------------------------------------------------------------- findings
    def _key(self, spec: CallSpec) -> tuple[str, str]:
        # per API too: one server may give logprobs on chat completions and not on responses
        return (f"{self._base} {spec.api}", str(spec.request.get("model") or ""))

    def known_gap(self, spec: CallSpec) -> Gap | None:
        """The finding that this call's model gives no logprobs, if there is one."""
        model = str(spec.request.get("model") or "")
        if self._replaying:
            return Gap.from_json((self._recorded or {}).get(model), model)
        return self._memory.gap(self._key(spec))

    def _strips(self, spec: CallSpec) -> bool:
        """Whether this call asks for no logprobs, by a finding.

        A replay strips exactly the calls that were sent without: those from the first
        one the recording says was (before it, the calls asked, e.g. the first call that
        found out that the server ignores them).
        """
        if not self._replaying:
            return self._memory.gap(self._key(spec)) is not None
        entry = (self._recorded or {}).get(str(spec.request.get("model") or ""))
        first = entry.get("from_call") if isinstance(entry, Mapping) else None
        return isinstance(first, int) and spec.index >= first

    def _learn(self, spec: CallSpec, gap: Gap | None) -> None:
        if self._detect:
            self._memory.learn(self._key(spec), gap)

    # ----------------------------------------------------------------- the batch
    def prepare(self, specs: Sequence[CallSpec]) -> list[CallSpec]:
        """``specs``, asking for no logprobs where a finding says the server gives none."""
        if self.mode != "auto":
            return list(specs)
        return [
            dataclasses.replace(spec, request=unasked(spec.request))
            if asks(spec.request) and self._strips(spec)
            else spec
            for spec in specs
        ]

    def run(
        self, runner: CompletionRunner, specs: Sequence[CallSpec]
    ) -> tuple[list[CallSpec], list[Any]]:
        """Send ``specs``: the requests as sent, and the answers.

        In auto mode, one call per endpoint and model not yet known goes first, alone.
        """
        specs = self.prepare(specs)
        done: dict[int, tuple[CallSpec, Any]] = {}  # by position: the request as sent, its answer
        if self.mode == "auto" and self._detect:
            tried: set[tuple[str, str]] = set()
            for position, spec in enumerate(specs):
                key = self._key(spec)
                if asks(spec.request) and key not in tried and not self._memory.knows(key):
                    tried.add(key)
                    done[position] = self._probe(runner, spec)
            specs = [done[p][0] if p in done else s for p, s in enumerate(self.prepare(specs))]
        rest = [spec for position, spec in enumerate(specs) if position not in done]
        answers = iter(runner.run(rest) if rest else [])
        return specs, [done[p][1] if p in done else next(answers) for p in range(len(specs))]

    def _probe(self, runner: CompletionRunner, spec: CallSpec) -> tuple[CallSpec, Any]:
        own = runner.explain

        def explain(exc: BaseException) -> Exception | None:
            detail = rejection(exc)
            if detail is not None:
                return _Rejected(detail)
            return own(exc) if own is not None else None

        runner.explain = explain
        try:
            (answer,) = runner.run([spec])
        except _Rejected as refused:
            runner.progress.total -= 1  # the call is made again below; count it once
            gap = Gap("rejected", self._redact(refused.detail), str(spec.request.get("model")))
            self._learn(spec, gap)
            runner.explain = own
            again = dataclasses.replace(spec, request=unasked(spec.request))
            (answer,) = runner.run([again])
            return again, answer
        finally:
            runner.explain = own
        what = missing(answer)
        if what is not None:
            self._learn(spec, Gap("ignored", what, str(spec.request.get("model"))))
        elif answer is not None and _has_text(answer):
            self._learn(spec, None)
        return spec, answer

    def gaps(self, specs: Sequence[CallSpec], answers: Sequence[Any]) -> list[Gap | None]:
        """Per answer, why it carries no logprobs (``None``: it has them, or they were required).

        ``true`` mode raises here, before any comparison, when an answer has none.
        """
        out: list[Gap | None] = []
        for spec, answer in zip(specs, answers, strict=True):
            model = str(spec.request.get("model") or "")
            gap: Gap | None = None
            if self.mode == "false":
                gap = Gap("off", "", model)
            elif self.mode == "auto" and not asks(spec.request):
                gap = self.known_gap(spec) or Gap("off", "", model)
            elif (what := missing(answer)) is not None:
                if self.mode == "true":
                    from ..verdicts.wording.logprobs import required_but_missing

                    where = f"call #{spec.index + 1} ({spec.arm})"
                    raise NoLogprobsError(required_but_missing(where, model, what))
                gap = Gap("ignored", what, model)
                self._learn(spec, gap)
            if gap is not None and gap.why != "off" and self._cassette is not None:
                found = self._cassette.recorded_with.setdefault(RECORD_KEY, {})
                entry = found.setdefault(model, gap.to_json())
                if not asks(spec.request):  # where a replay starts to ask for none
                    entry["from_call"] = min(entry.get("from_call", spec.index), spec.index)
            out.append(gap)
        return out


def gate_for(calls: Calls, mode: str) -> LogprobsGate:
    """The gate of a batch of ``calls``: live or replayed, recorded or not, as they are now."""
    from .client import client_base_url

    runner = calls._runner
    assert runner is not None
    # A replay (or a drift check) builds its requests as its recording says they were sent.
    recording = calls._baseline or (None if calls.live else calls._cassette)
    cassette = calls._cassette
    return LogprobsGate(
        mode,
        memory=calls._logprobs_memory,
        base_url=client_base_url(runner.client),
        detect=calls.live and calls._baseline is None,
        recorded=recording.stored_setup if recording is not None else None,
        cassette=cassette if cassette is not None and cassette.live else None,
        redact=runner.redact,
    )


def _has_text(answer: Any) -> bool:
    from ..core.parse import parse_response

    try:
        return bool(parse_response(answer, require_logprobs=False).text)
    except Exception:
        return False


def texts_of(responses: Any) -> Any:
    """An arm's calls (a prompt set's ``{case: responses}``) as texts without logprobs.

    Every call of the comparison loses its logprobs, not only those that came without:
    the calls of both arms are then compared by one text distance, whatever mix came back.
    """
    from ..core.parse import parse_response

    if isinstance(responses, Mapping):
        return {case: texts_of(calls) for case, calls in responses.items()}
    return [
        dataclasses.replace(
            parse_response(r, require_logprobs=False), positions=(), has_logprobs=False
        )
        for r in responses
    ]


def without_logprobs(
    marks: Mapping[int, tuple[Any, Gap]], arms: Sequence[Any], metric: Any
) -> Gap | None:
    """Why the comparison of ``arms`` goes by text (``None``: it does not).

    ``marks`` holds the answers made without logprobs (by id); when any answer of the
    comparison is one, every call is compared as text. A logprob metric named by the
    user cannot compare texts: that is an error that says why and what to pass instead.
    """
    flat = [r for arm in arms for r in _flatten(arm)]
    gap = next((marks[id(r)][1] for r in flat if id(r) in marks), None)
    if gap is not None and _reads_logprobs(metric):
        from ..verdicts.wording.logprobs import metric_needs_logprobs

        raise NoLogprobsError(metric_needs_logprobs(metric, gap.why, gap.detail, gap.model))
    return gap


def refuse_logprob_metric(mode: str, metric: Any) -> None:
    """``logprobs=false`` with a logprob metric named by the user: refused before any call."""
    if mode == "false" and _reads_logprobs(metric):
        from ..errors import RolecheckUsageError
        from ..verdicts.wording.logprobs import metric_needs_logprobs

        raise RolecheckUsageError(metric_needs_logprobs(metric, "off", "", None))


def noted(result: Any, gap: Gap) -> tuple[Any, str]:
    """``result`` with the sentence saying why it went by text, and that sentence."""
    from ..verdicts.wording.logprobs import compared_by_text

    note = compared_by_text(gap.why, gap.detail, gap.model, str(result.metric))
    if hasattr(result, "notes"):
        return dataclasses.replace(result, notes=(note, *result.notes)), note
    return dataclasses.replace(result, warnings=(*result.warnings, note)), note  # a prompt set


def _flatten(arm: Any) -> list[Any]:
    if isinstance(arm, Mapping):
        return [r for calls in arm.values() for r in calls]
    return list(arm)


def _reads_logprobs(metric: Any) -> bool:
    """Whether ``metric`` is a built-in metric of token logprobs (not ``auto``, not a text one)."""
    from ..core.distances import AUTO, get_metric, uses_text

    if not isinstance(metric, str) or metric == AUTO or uses_text(metric):
        return False
    try:
        fn = get_metric(metric)
    except Exception:
        return False  # an unknown name: the comparison's own check says so
    return fn.__module__.startswith("pytest_rolecheck.core")
