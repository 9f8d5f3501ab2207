"""How a test's calls are made: its requests, the runner, the cassette, live or replayed.

:class:`Calls` is the calling half of :class:`~pytest_rolecheck.running.session.Rolecheck`
(the other half compares and records). Nothing heavy is imported at module level.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from contextlib import AbstractContextManager, nullcontext
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..errors import RolecheckUsageError
from ..recording.paths import default_cassette_path as default_cassette_path
from ..recording.paths import drift_save_path
from ..settings import OPTIONS_BY_NAME, Settings, check_value
from .backend import LOCAL_REPLAY_BASE_URL, LocalBackend
from .logprobs import gate_for, logprobs_mode

if TYPE_CHECKING:
    from ..recording.cassette import CassetteSession
    from ..variants import Variant
    from ..variants.prompt_sets import PromptSet
    from .client import AnyClient, CallSpec, CompletionRunner
    from .logprobs import Gap, LogprobsMemory
    from .progress import Progress

# Messages or an already-built Variant (or, as an arm of a comparison, a PromptSet).
VariantLike = Any
# Responses per case id: what a prompt-set arm gives compare().
CaseResponses = dict[str, list[Any]]


class Calls:
    """Builds requests, runs them through the test's cassette, and says if they go live.

    The state is set by ``Rolecheck.__init__``; declared here for the type checker.
    """

    settings: Settings
    nodeid: str | None
    progress: Progress
    _cassette_file: Path | None
    _test_file: Path | None
    _cassette_conflict: str | None
    _command_nodeid: str | None
    _command_flags: tuple[str, ...]
    _fix_command: Callable[[str | None, Sequence[str]], str] | None
    _model_warned: bool
    _client_provider: Callable[[], AnyClient | None] | None
    _notify: Callable[[str], None] | None
    _progress_display: Callable[[Progress], AbstractContextManager[object]] | None
    _backend: LocalBackend | None
    _runner: CompletionRunner | None
    _owns_client: bool
    _cassette: CassetteSession | None
    # Drift checks: the recorded cassette, read-only, and each live response's recorded twin.
    _baseline: CassetteSession | None
    _recorded: dict[int, tuple[Any, Any]]
    # The run's findings of which servers give logprobs, and this test's answers without them.
    _logprobs_memory: LogprobsMemory
    _no_logprobs: dict[int, tuple[Any, Gap]]
    _live: bool | None
    _next_index: int
    _finished: bool
    _calls_failed: bool

    # ------------------------------------------------------------------ state
    @property
    def cassette_path(self) -> Path | None:
        """Where this test's cassette lives (``None``: no cassette, calls go live)."""
        if self._cassette_file is not None:
            return self._cassette_file
        if self.nodeid is None:
            return None
        if self._cassette_conflict is not None:
            raise RolecheckUsageError(self._cassette_conflict)
        return default_cassette_path(self.settings, self.nodeid, self._test_file)

    @property
    def live(self) -> bool:
        """Whether this test's calls go to the network (else they replay)."""
        if self._live is None:
            from ..recording.mode import goes_live

            # A drift check runs the recorded requests live, whatever the record mode.
            self._live = self.settings.drift or goes_live(
                self.settings.record_mode, self.cassette_path
            )
        return self._live

    @property
    def model(self) -> str:
        if self.settings.model:
            return self.settings.model
        if self.settings.local and self._backend is not None:
            return self._backend.model
        recorded = self._recorded_model()
        if recorded:
            return recorded
        older = (
            " This cassette predates the record of its model: replay with the options it was "
            "recorded with."
            if not self.live and self._cassette is not None and not self._cassette.stored_setup
            else ""
        )
        raise RolecheckUsageError(
            "no model given: pass model=... to the assert call, set "
            "@pytest.mark.rolecheck(model=...), --rolecheck-model, or rolecheck_model in the ini "
            f"file (or use --rolecheck-local for the bundled model).{older}"
        )

    def _recorded_model(self) -> str | None:
        """The default model a replayed cassette was recorded with (None: live, or not stored)."""
        path = self.cassette_path
        if (self.live and not self.settings.drift) or path is None or not path.is_file():
            return None
        if self._runner is None:
            self._runner = self._make_runner()
        recording = self._baseline if self.settings.drift else self._cassette
        model = recording.stored_setup.get("model") if recording is not None else None
        return model if isinstance(model, str) and model else None

    def _make_runner(self) -> CompletionRunner:
        from ..recording.cassette import CassetteSession
        from ..recording.mode import RecordMode
        from .client import (
            LOCAL_API_KEY,
            CompletionRunner,
            client_base_url,
            client_secrets,
            notify_stderr,
        )
        from .default_client import make_client

        live = self.live
        client: AnyClient | None = None
        if self._client_provider is not None:
            client = self._client_provider()
        if client is None:
            base_url = self.settings.base_url
            api_key = None
            if self.settings.local:
                api_key = LOCAL_API_KEY
                if live:
                    if self._backend is None:
                        self._backend = LocalBackend()
                    base_url = self._backend.ensure_started().base_url
                else:
                    base_url = LOCAL_REPLAY_BASE_URL
            client = make_client(base_url=base_url, live=live, api_key=api_key)
            self._owns_client = True
        before_call = None
        explain = None
        stored_json = None
        redact = None
        path = self.cassette_path
        settings = self.settings
        mode = RecordMode(settings.record_mode)
        default_model = settings.model or (
            self._backend.model if settings.local and self._backend is not None else None
        )

        def session(path: Path, mode: RecordMode, flags: Sequence[str]) -> CassetteSession:
            # A replay through our own client needs no vcrpy: its transport asks the session.
            return CassetteSession(
                path,
                mode,
                nodeid=self._command_nodeid or self.nodeid or str(path),
                secrets=client_secrets(client),
                command_flags=flags,
                command=self._fix_command,
                cassette_dir=(
                    None if self._cassette_file else settings.rootdir / settings.cassette_dir
                ),
                recorded_with={
                    "local": settings.local,
                    "endpoint": client_base_url(client),
                    "model": default_model,
                },
                direct=self._owns_client,
            )

        if settings.drift and path is not None:
            # Read only: never entered (no vcrpy), never written.
            self._baseline = session(path, RecordMode.NONE, self._command_flags)
            path, mode = drift_save_path(settings, path), RecordMode.REWRITE
        if path is not None:
            self._cassette = session(path, mode, self._command_flags)
            self._cassette.__enter__()
            cassette = self._cassette

            def before_call(spec: CallSpec) -> None:
                cassette.check_request(spec.index, spec.body())

            explain = cassette.explain
            stored_json = cassette.stored_json
            redact = cassette.redact

        return CompletionRunner(
            client,
            concurrency=self.settings.concurrency,
            before_call=before_call,
            explain=explain,
            progress=self.progress,
            stored_json=stored_json,
            redact=redact,
            timeout=self.settings.timeout,
            # A replay never waits on a server; only live calls can hang.
            notify=(self._notify or notify_stderr) if live else None,
            slots=self._backend.slots() if live and self._backend is not None else None,
        )

    def _run_specs(
        self, arms: Sequence[tuple[str, Mapping[str, Any]]], logprobs: str = "false"
    ) -> list[Any]:
        from .client import CallSpec

        if self._finished:
            raise RolecheckUsageError(
                "this Rolecheck has finished (its test is over); make calls inside the test."
            )
        if self._runner is None:
            self._runner = self._make_runner()
        specs = []
        for arm, request in arms:
            request = with_call_seed(request, self.nodeid or "", arm, self._next_index)
            specs.append(CallSpec(index=self._next_index, arm=arm, request=request))
            self._next_index += 1
        gate = gate_for(self, logprobs)
        specs = gate.prepare(specs)
        # A drift check reads every recorded twin first: a changed test fails before any call.
        recorded = (
            [self._baseline.recorded_body(spec.index, spec.body()) for spec in specs]
            if self._baseline is not None
            else None
        )
        display = self._progress_display if self.live else None
        serving = self._cassette.serving() if self._cassette is not None else nullcontext()
        try:
            with serving, display(self.progress) if display is not None else nullcontext():
                specs, responses = gate.run(self._runner, specs)
        except BaseException:
            # Calls were cut short (an error, Ctrl-C), even if the test catches it:
            # the cassette must not be written from a partial batch.
            self._calls_failed = True
            raise
        self._warn_on_model_swap(specs, responses)
        for response, gap in zip(responses, gate.gaps(specs, responses), strict=True):
            if gap is not None:  # kept with the response, so that its id stays unique
                self._no_logprobs[id(response)] = (response, gap)
        if recorded is not None:
            # Keyed by identity; the live object is kept so that its id stays unique.
            self._recorded.update(
                (id(live), (live, twin)) for live, twin in zip(responses, recorded, strict=True)
            )
        return responses

    def recorded_twins(self, responses: Sequence[Any]) -> list[Any]:
        """The recorded responses (JSON) of the same calls as ``responses`` (a drift check)."""
        return [self._recorded[id(response)][1] for response in responses]

    def _warn_on_model_swap(self, specs: Sequence[CallSpec], responses: Sequence[Any]) -> None:
        """Warn (once per test) when the server says it served another model than was sent."""
        if self._model_warned or _is_azure(self._runner.client if self._runner else None):
            return  # Azure: the request names a deployment, the response the model behind it
        # Only a client built here for --rolecheck-local is known to reach the bundled model.
        local = (
            self._backend.model
            if self.settings.local and self._owns_client and self._backend
            else None
        )
        for spec, response in zip(specs, responses, strict=True):
            sent = str(spec.request.get("model") or "")
            served = str(getattr(response, "model", None) or "")
            # The bundled server echoes any name and answers with its one model.
            swapped = bool(local and sent != local) or not _same_model(sent, served)
            if sent and served and swapped:
                import warnings

                from ..errors import RolecheckWarning

                actual = local if local and sent != local else served
                self._model_warned = True
                warnings.warn(
                    RolecheckWarning(
                        f"{self.nodeid or 'rolecheck'}: the request named model {sent!r} but "
                        f"{actual!r} answered it (call #{spec.index + 1}); the recording and "
                        f"the verdict are about {actual!r}. Name the served model (model=... / "
                        "--rolecheck-model), or drop --rolecheck-local to reach the named one."
                        if local and sent != local
                        else f"{self.nodeid or 'rolecheck'}: the request named model {sent!r} "
                        f"but the server says it served {served!r} (call #{spec.index + 1}); "
                        f"the verdict is about {served!r}. Check the model name and the "
                        "endpoint (--rolecheck-base-url / OPENAI_BASE_URL)."
                    ),
                    stacklevel=2,
                )
                return

    # --------------------------------------------------------------- variants
    def variant(self, messages: VariantLike, *, label: str | None = None, **params: Any) -> Variant:
        """Build a :class:`~pytest_rolecheck.Variant` (messages + request params)."""
        from ..variants import Variant
        from ..variants.prompt_sets import PromptSet

        if isinstance(messages, Variant):
            return messages.with_params(**params) if params else messages
        if isinstance(messages, PromptSet):
            raise RolecheckUsageError(
                f"the prompt set {messages.label!r} is many requests, not one: compare two sets "
                "with the asserts or rolecheck.compare(set_a, set_b), or run one case "
                f"(prompts[{messages.ids[0]!r}])."
            )
        return Variant.from_messages(messages, label=label, **params)

    def _logprobs_mode(self, value: bool | str | None) -> str:
        return self.settings.logprobs if value is None else logprobs_mode(value)

    def _request(
        self,
        variant: Variant,
        *,
        model: str | None,
        max_tokens: int | None,
        top_logprobs: int | None,
        temperature: float | None,
        params: Mapping[str, Any] | None,
        logprobs: str = "auto",
        api: str | None = None,
    ) -> dict[str, Any]:
        defaults: dict[str, Any] = {
            # A variant that names its model needs no default one.
            "model": model or variant.params.get("model") or self.model,
            "max_tokens": max_tokens if max_tokens is not None else self.settings.max_tokens,
            "temperature": (temperature if temperature is not None else self.settings.temperature),
        }
        if logprobs != "false":
            defaults["logprobs"] = True
            defaults["top_logprobs"] = (
                top_logprobs if top_logprobs is not None else self.settings.top_logprobs
            )
        request = variant.request(**defaults)
        # Keywords given to this call beat the variant's own parameters, which beat
        # the settings; ``params`` (any other request field) comes last.
        explicit = {
            "model": model,
            "max_tokens": max_tokens,
            "temperature": temperature,
            "top_logprobs": top_logprobs if logprobs != "false" else None,
        }
        request.update({key: value for key, value in explicit.items() if value is not None})
        if params:
            request.update(params)
        _check_request(request, logprobs=logprobs)
        return for_api(request, self.settings.api if api is None else api)

    # -------------------------------------------------------------------- run
    def run(
        self,
        variant: VariantLike,
        n: int | None = None,
        *,
        model: str | None = None,
        max_tokens: int | None = None,
        top_logprobs: int | None = None,
        temperature: float | None = None,
        params: Mapping[str, Any] | None = None,
        logprobs: bool | str | None = None,
        api: str | None = None,
    ) -> list[Any]:
        """Run ``n`` completions of ``variant`` (default: the ``trials`` setting).

        Returns the SDK's ``ChatCompletion`` (``api="responses"``: ``Response``) objects
        in call order; pass them to :func:`pytest_rolecheck.compare` to decide yourself.
        ``logprobs``: ``"auto"``, True or False (default: the ``logprobs`` setting; see
        ``--rolecheck-logprobs``).
        """
        built = self.variant(variant)
        count = self.settings.trials if n is None else n
        if isinstance(count, bool) or not isinstance(count, int) or count < 1:
            raise RolecheckUsageError(f"n={count!r} is not allowed: expected a whole number ≥ 1.")
        request = self._request(
            built,
            model=model,
            max_tokens=max_tokens,
            top_logprobs=top_logprobs,
            temperature=temperature,
            params=params,
            logprobs=(mode := self._logprobs_mode(logprobs)),
            api=api,
        )
        return self._run_specs([(built.label, request)] * count, mode)

    def run_arms(
        self,
        variant_a: VariantLike,
        variant_b: VariantLike,
        n: int | None = None,
        *,
        baseline: bool = False,
        model: str | None = None,
        max_tokens: int | None = None,
        top_logprobs: int | None = None,
        temperature: float | None = None,
        params: Mapping[str, Any] | None = None,
        logprobs: bool | str | None = None,
        api: str | None = None,
    ) -> tuple[list[Any], list[Any], Any | None]:
        """Run both arms interleaved (A, B, A, B, …), optionally after one baseline of A.

        Interleaving spreads any drift of the backend over both arms equally.
        Returns ``(responses_a, responses_b, baseline_response_or_None)``.
        """
        a, b = self.variant(variant_a), self.variant(variant_b)
        count = self.settings.trials if n is None else n
        kwargs = {
            "model": model,
            "max_tokens": max_tokens,
            "top_logprobs": top_logprobs,
            "temperature": temperature,
            "params": params,
            "logprobs": (mode := self._logprobs_mode(logprobs)),
            "api": api,
        }
        request_a = self._request(a, **kwargs)  # type: ignore[arg-type]
        request_b = self._request(b, **kwargs)  # type: ignore[arg-type]
        label_a, label_b = _distinct_labels(a.label, b.label)
        arms: list[tuple[str, Mapping[str, Any]]] = []
        if baseline:
            arms.append((f"{label_a} (baseline)", request_a))
        for _ in range(count):
            arms.append((label_a, request_a))
            arms.append((label_b, request_b))
        responses = self._run_specs(arms, mode)
        base = responses.pop(0) if baseline else None
        return responses[0::2], responses[1::2], base

    def run_sets(
        self,
        set_a: PromptSet,
        set_b: PromptSet,
        n: int,
        *,
        model: str | None = None,
        max_tokens: int | None = None,
        top_logprobs: int | None = None,
        temperature: float | None = None,
        params: Mapping[str, Any] | None = None,
        logprobs: bool | str | None = None,
        api: str | None = None,
    ) -> tuple[CaseResponses, CaseResponses]:
        """Run ``n`` calls per arm of every case: ``({case id: responses}, ...)`` per arm.

        One batch, case by case in A's order, each case's arms interleaved
        (A, B, A, B, ...), so the cassette's order is fixed and the concurrency
        limit applies across cases. Every request is built and checked first.
        """
        check_same_cases(set_a, set_b)
        label_a, label_b = _distinct_labels(set_a.label, set_b.label)
        arms: list[tuple[str, Mapping[str, Any]]] = []
        mode = self._logprobs_mode(logprobs)
        for case_id in set_a:
            pair = [
                self._request(
                    arm[case_id],
                    model=model,
                    max_tokens=max_tokens,
                    top_logprobs=top_logprobs,
                    temperature=temperature,
                    params=params,
                    logprobs=mode,
                    api=api,
                )
                for arm in (set_a, set_b)
            ]
            for _ in range(n):
                arms.append((f"{label_a} [{case_id}]", pair[0]))
                arms.append((f"{label_b} [{case_id}]", pair[1]))
        responses = self._run_specs(arms, mode)
        per_case = [responses[i : i + 2 * n] for i in range(0, len(responses), 2 * n)]
        return (
            {case_id: calls[0::2] for case_id, calls in zip(set_a, per_case, strict=True)},
            {case_id: calls[1::2] for case_id, calls in zip(set_a, per_case, strict=True)},
        )


def prompt_sets(arm_a: Any, arm_b: Any) -> tuple[PromptSet, PromptSet] | None:
    """Both arms when they are prompt sets, ``None`` when neither is; else a usage error."""
    from ..variants.prompt_sets import PromptSet

    kinds = (isinstance(arm_a, PromptSet), isinstance(arm_b, PromptSet))
    if kinds == (True, True):
        return arm_a, arm_b
    if kinds == (False, False):
        return None
    one = "A" if kinds[0] else "B"
    raise RolecheckUsageError(
        f"arm {one} is a PromptSet but the other arm is one prompt: compare a set with a set "
        "(derive the other arm from it, e.g. prompts.with_role('system')), or a Variant with "
        "a Variant."
    )


def check_same_cases(set_a: PromptSet, set_b: PromptSet) -> None:
    """Refuse, before any call, two sets whose case ids differ."""
    missing = [case_id for case_id in set_a if case_id not in set_b]
    extra = [case_id for case_id in set_b if case_id not in set_a]
    if missing or extra:
        raise RolecheckUsageError(
            f"the prompt sets {set_a.label!r} (A) and {set_b.label!r} (B) must have the same "
            f"case ids; only in A: {missing or 'none'}, only in B: {extra or 'none'}. Build "
            "one arm from the other (B = A.with_role(...), A.map(...)) so that the ids match."
        )


def trials_per_case(trials: Any) -> int:
    """Calls per arm of each case: ``trials`` when given, else the prompt sets' default."""
    from ..core.limits import DEFAULT_TRIALS_PER_CASE, MIN_TRIALS_PER_CASE

    if trials is None:
        return DEFAULT_TRIALS_PER_CASE
    if isinstance(trials, bool) or not isinstance(trials, int) or trials < MIN_TRIALS_PER_CASE:
        raise RolecheckUsageError(
            f"trials={trials!r} is not allowed for a prompt set: expected a whole number "
            f"≥ {MIN_TRIALS_PER_CASE} (calls per arm of each case; default "
            f"{DEFAULT_TRIALS_PER_CASE})."
        )
    return trials


def with_call_seed(
    request: Mapping[str, Any], test: str, arm: str, index: int
) -> Mapping[str, Any]:
    """``request`` with a sampling ``seed`` of its own when it samples (temperature > 0).

    Each call of an arm is then a different sample, so a sampled A/A comparison
    has real call-to-call variation, and the seed (a hash of the test, the arm
    and the call index) is part of the request: stored in the cassette, matched
    on replay, and reproduced by a re-recording against a fresh server. A seed
    the user set (also in ``extra_body``) is kept; temperature 0 gets none, and
    so does a Responses-API request (that API has no seed).
    """
    import hashlib

    from ..variants.responses import is_responses_request

    temperature = request.get("temperature")
    extra = request.get("extra_body")
    if (
        not isinstance(temperature, int | float)
        or temperature <= 0
        or "seed" in request
        or (isinstance(extra, Mapping) and "seed" in extra)
        or is_responses_request(request)
    ):
        return request
    digest = hashlib.sha256(f"{test}\0{arm}\0{index}".encode()).digest()
    # 31 bits: a valid seed for llama.cpp (uint32) and OpenAI (int64) alike
    return {**request, "seed": int.from_bytes(digest[:4], "big") >> 1}


# Request fields the statistics depend on, each checked with its option's rule.
_CHECKED_FIELDS = {
    "model": "model",
    "max_tokens": "max_tokens",
    "max_completion_tokens": "max_tokens",
    "temperature": "temperature",
    "top_logprobs": "top_logprobs",
}


def _check_request(request: Mapping[str, Any], *, logprobs: str) -> None:
    """Refuse, before any call, a request whose answers the statistics cannot use.

    A field may come from the assert's keywords, ``params=``, the variant or the
    settings; whichever set it, the rule is the option's.
    """
    for field, option in _CHECKED_FIELDS.items():
        if request.get(field) is not None:
            check_value(option, request[field], source=field)
    if request.get("n") not in (None, 1):
        raise RolecheckUsageError(
            f"n={request['n']!r} is not allowed: each call must return one choice (n=1); ask "
            "for more calls with trials= instead. Checked before any call."
        )
    if request.get("stream"):
        raise RolecheckUsageError(
            "stream=True is not allowed: the comparison reads whole chat completions; drop "
            "stream from params=. Checked before any call."
        )
    # auto asks by default but may be told otherwise in params=; only true requires them
    if logprobs == "true" and (
        request.get("logprobs") is not True or request.get("top_logprobs") is None
    ):
        allowed = OPTIONS_BY_NAME["top_logprobs"].parse.__doc__
        raise RolecheckUsageError(
            f"logprobs={request.get('logprobs')!r}, top_logprobs="
            f"{request.get('top_logprobs')!r}: a logprob comparison needs logprobs=True and "
            f"top_logprobs set ({allowed}) in every request, and logprobs=true requires them; "
            "drop them from params= (the defaults are right), compare tool calls with "
            "assert_tool_calls_* instead, or let logprobs=auto compare the texts. Checked "
            "before any call."
        )


def for_api(request: dict[str, Any], api: str) -> dict[str, Any]:
    """``request`` as the keyword arguments of the ``api``'s create call (checked first)."""
    from ..variants.messages import INSTRUCTIONS

    if check_value("api", api) == "responses":
        from ..variants.responses import responses_request

        return responses_request(request)
    if INSTRUCTIONS in request:
        raise RolecheckUsageError(
            "a variant with the instruction in 'instructions' (with_role('instructions')) needs "
            "the Responses API: pass api='responses' (or set --rolecheck-api=responses / "
            "rolecheck_api); chat completions have no such parameter. Checked before any call."
        )
    return request


def _same_model(sent: str, served: str) -> bool:
    # OpenAI answers an alias with its dated snapshot: gpt-4o-mini -> gpt-4o-mini-2024-07-18.
    sent, served = sent.lower(), served.lower()
    return not sent or not served or served == sent or served.startswith(sent + "-")


def _is_azure(client: Any) -> bool:
    return any("Azure" in cls.__name__ for cls in type(client).__mro__)


def _distinct_labels(a: str, b: str) -> tuple[str, str]:
    return (a, b) if a != b else (f"{a} (A)", f"{b} (B)")
