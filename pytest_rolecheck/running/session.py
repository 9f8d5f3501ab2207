"""What a test talks to: the :class:`Rolecheck` object and the module-level asserts.

One :class:`Rolecheck` exists per test. The ``rolecheck`` fixture returns it, and
the module-level functions (``assert_roles_equivalent`` & co.) find it as the
active test that the plugin registers around each test, so both forms share the
test's cassette, call counter, token usage and summary rows. Outside pytest the
module-level functions make live calls with the default client and no cassette.

Nothing heavy is imported at module level: the plugin's autouse fixture builds a
:class:`Rolecheck` for every test, and a test that never calls it must not pay
for numpy, scipy, openai or vcrpy.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Mapping, Sequence
from contextlib import AbstractContextManager, nullcontext
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..errors import RolecheckUsageError
from ..settings import OPTIONS_BY_NAME, Settings, check_value
from ..verdicts.observers import listen

if TYPE_CHECKING:
    from ..recording.cassette import CassetteSession
    from ..reporting.row import Row
    from ..variants import Variant
    from ..verdicts.compare import Comparison
    from ..verdicts.toolcalls import ToolCallComparison
    from .client import AnyClient, CallSpec, CompletionRunner
    from .coordinator import CoordinatorClient
    from .local import LocalServer, SharedServer
    from .progress import Progress

# Messages or an already-built Variant.
VariantLike = Any

# Placeholder endpoint for replaying with --rolecheck-local (replays ignore the host):
# nothing listens on port 9, so an unexpected live call fails loudly.
LOCAL_REPLAY_BASE_URL = "http://127.0.0.1:9/v1"
# Default output budget of tool-call requests: arguments need more than 20 tokens.
TOOL_CALL_MAX_TOKENS = 200


class LocalBackend:
    """The bundled llama.cpp server, started on first live need, shared by the run.

    Under xdist, ``coordinator`` is the controller's address: the controller
    starts the one server of the run and hands out the run's call slots.
    """

    def __init__(self, coordinator: str | None = None) -> None:
        self._server: LocalServer | SharedServer | None = None
        self._lock = threading.Lock()
        self._coordinator = coordinator

    @property
    def model(self) -> str:
        from .local import DEFAULT_MODEL_ALIAS

        return DEFAULT_MODEL_ALIAS

    def ensure_started(self) -> LocalServer | SharedServer:
        with self._lock:
            if self._server is None:
                if self._coordinator is not None:
                    from .local import SharedServer

                    self._server = SharedServer(self._slots_client().server_url())
                else:
                    from .local import LocalServer

                    self._server = LocalServer().start()
            return self._server

    def slots(self) -> CoordinatorClient | None:
        """The run's shared call budget (xdist workers), else ``None``."""
        return self._slots_client() if self._coordinator is not None else None

    def _slots_client(self) -> CoordinatorClient:
        from .coordinator import CoordinatorClient

        assert self._coordinator is not None
        return CoordinatorClient(self._coordinator)

    @property
    def started(self) -> bool:
        return self._server is not None

    def stop(self) -> None:
        with self._lock:
            server, self._server = self._server, None
        if server is not None and hasattr(server, "stop"):
            server.stop()  # a SharedServer belongs to the controller


class Rolecheck:
    """Run completions for one test, compare them, and record what happened.

    Get it from the ``rolecheck`` fixture::

        def test_roles(rolecheck):
            rolecheck.assert_roles_equivalent(messages, roles=("developer", "system"))

    Parameters
    ----------
    settings
        The test's resolved settings (marker > command line > ini > default).
    nodeid
        The pytest node id; names the cassette. ``None`` outside pytest (no cassette).
    client_provider
        Returns the ``rolecheck_client`` fixture's value (a client, or ``None``
        for the default one built from ``OPENAI_API_KEY`` / ``OPENAI_BASE_URL``).
    backend
        The shared local backend, used when ``settings.local`` is true.
    cassette_file
        An explicit cassette path (e.g. for the ``rolecheck compare`` command);
        by default the cassette is named after ``nodeid`` and ``test_file``.
    notify
        Shows a line to the user while calls run (a live call outlasting the
        timeout); by default it goes to stderr.
    test_file
        The test's file (places the cassette of a test outside the rootdir).
    cassette_conflict
        Set when another collected test maps to the same cassette: the message
        raised instead of using it.
    progress_display
        Wraps each batch of live calls, given :attr:`progress` (the plugin shows
        the progress line with it); replayed calls go without.
    fix_command
        Builds the commands the cassette errors print, from a record mode (or
        ``None``) and extra ``--rolecheck-*`` flags; by default a pytest command.
    """

    def __init__(
        self,
        settings: Settings,
        *,
        nodeid: str | None = None,
        client_provider: Callable[[], AnyClient | None] | None = None,
        backend: LocalBackend | None = None,
        cassette_file: Path | None = None,
        command_nodeid: str | None = None,
        notify: Callable[[str], None] | None = None,
        test_file: Path | None = None,
        cassette_conflict: str | None = None,
        command_flags: Sequence[str] = (),
        fix_command: Callable[[str | None, Sequence[str]], str] | None = None,
        progress_display: Callable[[Progress], AbstractContextManager[object]] | None = None,
    ) -> None:
        from .progress import Progress

        self.settings = settings
        # Shows the progress line while live calls run (the plugin's; none in replay).
        self._progress_display = progress_display
        self.nodeid = nodeid
        self._cassette_file = cassette_file
        self._test_file = test_file
        self._cassette_conflict = cassette_conflict
        # The node id as the user can pass it back to pytest from where they ran it.
        self._command_nodeid = command_nodeid
        # The run's own options, repeated in every fix command the messages print.
        self._command_flags = tuple(command_flags)
        self._fix_command = fix_command
        self._model_warned = False
        self.progress = Progress()
        self._client_provider = client_provider
        self._notify = notify
        self._backend = backend
        self._runner: CompletionRunner | None = None
        self._owns_client = False
        self._cassette: CassetteSession | None = None
        self._live: bool | None = None
        self._next_index = 0
        self._rows: list[Row] = []
        # Usage when the last row was added: a row counts the calls made since.
        self._reported = (0, 0, 0)
        # Set while Rolecheck.compare* runs the pure comparison (not one made by hand).
        self._own_comparison = False
        self._finished = False
        self._calls_failed = False
        # Set by finish() when a replay left recorded calls unused (the message).
        self.unused_recordings: str | None = None

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

            self._live = goes_live(self.settings.record_mode, self.cassette_path)
        return self._live

    @property
    def rows(self) -> list[dict[str, Any]]:
        """Summary rows of the comparisons made so far (JSON-able dicts)."""
        return [row.to_json() for row in self._rows]

    @property
    def report_rows(self) -> list[Row]:
        """The same rows, typed."""
        return list(self._rows)

    @property
    def usage(self) -> tuple[int, int]:
        """(prompt tokens, completion tokens) summed over this test's calls."""
        usage = self.progress.usage
        return (usage.prompt_tokens, usage.completion_tokens)

    @property
    def calls(self) -> int:
        return self.progress.usage.calls

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
        if self.live or path is None or not path.is_file():
            return None
        if self._runner is None:
            self._runner = self._make_runner()
        model = self._cassette.stored_setup.get("model") if self._cassette is not None else None
        return model if isinstance(model, str) and model else None

    def _make_runner(self) -> CompletionRunner:
        from ..recording.cassette import CassetteSession
        from ..recording.mode import RecordMode
        from .client import (
            LOCAL_API_KEY,
            CompletionRunner,
            client_base_url,
            client_secrets,
            make_client,
            notify_stderr,
        )

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
        if path is not None:
            settings = self.settings
            root = settings.rootdir
            default_model = settings.model or (
                self._backend.model if settings.local and self._backend is not None else None
            )
            self._cassette = CassetteSession(
                path,
                RecordMode(settings.record_mode),
                nodeid=self._command_nodeid or self.nodeid or str(path),
                secrets=client_secrets(client),
                command_flags=self._command_flags,
                command=self._fix_command,
                cassette_dir=None if self._cassette_file else root / settings.cassette_dir,
                recorded_with={
                    "local": settings.local,
                    "endpoint": client_base_url(client),
                    "model": default_model,
                },
            )
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

    def _run_specs(self, arms: Sequence[tuple[str, Mapping[str, Any]]]) -> list[Any]:
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
        display = self._progress_display if self.live else None
        try:
            with display(self.progress) if display is not None else nullcontext():
                responses = self._runner.run(specs)
        except BaseException:
            # Calls were cut short (an error, Ctrl-C), even if the test catches it:
            # the cassette must not be written from a partial batch.
            self._calls_failed = True
            raise
        self._warn_on_model_swap(specs, responses)
        return responses

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

        if isinstance(messages, Variant):
            return messages.with_params(**params) if params else messages
        return Variant.from_messages(messages, label=label, **params)

    def _request(
        self,
        variant: Variant,
        *,
        model: str | None,
        max_tokens: int | None,
        top_logprobs: int | None,
        temperature: float | None,
        params: Mapping[str, Any] | None,
        logprobs: bool = True,
    ) -> dict[str, Any]:
        defaults: dict[str, Any] = {
            # A variant that names its model needs no default one.
            "model": model or variant.params.get("model") or self.model,
            "max_tokens": max_tokens if max_tokens is not None else self.settings.max_tokens,
            "temperature": (temperature if temperature is not None else self.settings.temperature),
        }
        if logprobs:
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
            "top_logprobs": top_logprobs if logprobs else None,
        }
        request.update({key: value for key, value in explicit.items() if value is not None})
        if params:
            request.update(params)
        _check_request(request, logprobs=logprobs)
        return request

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
        logprobs: bool = True,
    ) -> list[Any]:
        """Run ``n`` completions of ``variant`` (default: the ``trials`` setting).

        Returns the SDK's ``ChatCompletion`` objects in call order; pass them to
        :func:`pytest_rolecheck.compare` to decide yourself.
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
            logprobs=logprobs,
        )
        return self._run_specs([(built.label, request)] * count)

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
        logprobs: bool = True,
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
            "logprobs": logprobs,
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
        responses = self._run_specs(arms)
        base = responses.pop(0) if baseline else None
        return responses[0::2], responses[1::2], base

    # ---------------------------------------------------------------- compare
    def compare(
        self,
        variant_a: VariantLike,
        variant_b: VariantLike,
        *,
        trials: int | None = None,
        metric: str | None = None,
        alpha: float | None = None,
        tolerance: float | None = None,
        max_excess_tv: float | None = None,
        margin: Any = None,
        design: str | None = None,
        seed: int = 0,
        model: str | None = None,
        max_tokens: int | None = None,
        top_logprobs: int | None = None,
        temperature: float | None = None,
        params: Mapping[str, Any] | None = None,
    ) -> Comparison:
        """Run both variants and compare their behaviour; never raises on a verdict."""
        from ..verdicts.compare import check_options, compare

        a, b = self.variant(variant_a), self.variant(variant_b)
        design = design or self.settings.design
        metric = metric or self.settings.metric
        alpha = alpha if alpha is not None else self.settings.alpha
        if tolerance is None and max_excess_tv is None:
            tolerance = self.settings.tolerance
        labels = _distinct_labels(a.label, b.label)
        # Refuse bad options before paying for live calls: the same check compare() runs.
        _check_trials(self.settings.trials if trials is None else trials)
        check_options(
            metric=metric,
            alpha=alpha,
            tolerance=tolerance,
            max_excess_tv=max_excess_tv,
            margin=margin,
            design=design,
            seed=seed,
            baseline=None,
            labels=labels,
        )
        responses_a, responses_b, base = self.run_arms(
            a,
            b,
            trials,
            baseline=design == "seed",
            model=model,
            max_tokens=max_tokens,
            top_logprobs=top_logprobs,
            temperature=temperature,
            params=params,
        )
        self._own_comparison = True
        try:
            result = compare(
                responses_a,
                responses_b,
                metric=metric,
                alpha=alpha,
                tolerance=tolerance,
                max_excess_tv=max_excess_tv,
                design=design,
                seed=seed,
                baseline=base,
                labels=labels,
            )
        finally:
            self._own_comparison = False
        self._add_row(result)
        return result

    def compare_tool_calls(
        self,
        variant_a: VariantLike,
        variant_b: VariantLike,
        *,
        trials: int | None = None,
        alpha: float | None = None,
        tolerance: float | None = None,
        names_only: bool = False,
        ordered: bool = False,
        seed: int = 0,
        model: str | None = None,
        max_tokens: int | None = None,
        temperature: float | None = None,
        params: Mapping[str, Any] | None = None,
    ) -> ToolCallComparison:
        """Run both variants and compare which tools they call, with which arguments."""
        from ..verdicts.toolcalls import check_tool_options, compare_tool_calls

        a, b = self.variant(variant_a), self.variant(variant_b)
        alpha = alpha if alpha is not None else self.settings.alpha
        tolerance = tolerance if tolerance is not None else self.settings.tolerance
        labels = _distinct_labels(a.label, b.label)
        # Refuse bad options before paying for live calls: the same check as after them.
        _check_trials(self.settings.trials if trials is None else trials)
        check_tool_options(alpha=alpha, tolerance=tolerance, seed=seed, labels=labels)
        responses_a, responses_b, _ = self.run_arms(
            a,
            b,
            trials,
            model=model,
            max_tokens=max_tokens if max_tokens is not None else TOOL_CALL_MAX_TOKENS,
            temperature=temperature,
            params=params,
            logprobs=False,
        )
        self._own_comparison = True
        try:
            result = compare_tool_calls(
                responses_a,
                responses_b,
                alpha=alpha,
                tolerance=tolerance,
                names_only=names_only,
                ordered=ordered,
                seed=seed,
                labels=labels,
            )
        finally:
            self._own_comparison = False
        self._add_row(result)
        return result

    # ----------------------------------------------------------------- asserts
    def assert_variants_equivalent(
        self, variant_a: VariantLike, variant_b: VariantLike, **options: Any
    ) -> Comparison:
        """Assert that switching A→B moves behaviour by less than the tolerance."""
        __tracebackhide__ = True
        from ..verdicts.compare import refuse_blind_equivalence

        refuse_blind_equivalence(options.get("metric") or self.settings.metric)
        result = self.compare(variant_a, variant_b, **options)
        _require(result, "equivalent")
        return result

    def assert_variants_differ(
        self, variant_a: VariantLike, variant_b: VariantLike, **options: Any
    ) -> Comparison:
        """Assert that A and B behave differently (difference test significant)."""
        __tracebackhide__ = True
        result = self.compare(variant_a, variant_b, **options)
        _require(result, "different")
        return result

    def assert_roles_equivalent(
        self,
        messages: Sequence[Mapping[str, Any]],
        roles: tuple[str, str] = ("developer", "system"),
        **options: Any,
    ) -> Comparison:
        """Assert that giving the instruction message role A or role B changes nothing."""
        __tracebackhide__ = True
        a, b = self._role_variants(messages, roles)
        return self.assert_variants_equivalent(a, b, **options)

    def assert_roles_differ(
        self,
        messages: Sequence[Mapping[str, Any]],
        roles: tuple[str, str] = ("developer", "system"),
        **options: Any,
    ) -> Comparison:
        """Assert that the role of the instruction message changes behaviour."""
        __tracebackhide__ = True
        a, b = self._role_variants(messages, roles)
        return self.assert_variants_differ(a, b, **options)

    def assert_tool_calls_equivalent(
        self, variant_a: VariantLike, variant_b: VariantLike, **options: Any
    ) -> ToolCallComparison:
        """Assert that both variants call the same tools with the same arguments."""
        __tracebackhide__ = True
        result = self.compare_tool_calls(variant_a, variant_b, **options)
        _require(result, "equivalent")
        return result

    def assert_tool_calls_differ(
        self, variant_a: VariantLike, variant_b: VariantLike, **options: Any
    ) -> ToolCallComparison:
        """Assert that the variants' tool-call outcomes differ."""
        __tracebackhide__ = True
        result = self.compare_tool_calls(variant_a, variant_b, **options)
        _require(result, "different")
        return result

    def _role_variants(
        self, messages: Sequence[Mapping[str, Any]], roles: tuple[str, str]
    ) -> tuple[Variant, Variant]:
        if len(roles) != 2:
            raise RolecheckUsageError(f"roles must name two roles, got {roles!r}.")
        base = self.variant(messages)
        return base.with_role(roles[0]), base.with_role(roles[1])

    # ---------------------------------------------------------------- records
    def _usage_snapshot(self) -> tuple[int, int, int]:
        usage = self.progress.usage
        return (usage.calls, usage.prompt_tokens, usage.completion_tokens)

    def _add_row(self, result: Any, *, by_hand: bool = False) -> None:
        from ..reporting.row import Row

        after = self._usage_snapshot()
        before, self._reported = self._reported, after
        insight = None
        if hasattr(result, "calls_a") and (self.settings.report or self.settings.report_dir):
            # Only reports draw it, and it costs ~0.1 s per comparison.
            from ..core.divergence import divergence_insight
            from ..core.jsonish import to_plain

            insight = to_plain(
                divergence_insight(
                    result.calls_a, result.calls_b, metric=result.metric, labels=result.labels
                )
            )
        self._rows.append(
            Row.of_result(
                result,
                nodeid=self.nodeid,
                usage=(after[0] - before[0], after[1] - before[1], after[2] - before[2]),
                source=self._source,
                by_hand=by_hand,
                insight=insight,
            )
        )

    def record_by_hand(self, result: Any) -> None:
        """Add a row for ``compare()`` / ``compare_tool_calls()`` called inside the test.

        Only a test that ran calls through rolecheck gets one: a comparison of
        data the test built itself is none of the run's report.
        """
        if not self._own_comparison and self.calls and not self._finished:
            self._add_row(result, by_hand=True)

    @property
    def _source(self) -> str:
        return "live" if self.live else "replayed"

    def finish(self, *, save: bool) -> None:
        """End the test: write the cassette if ``save``, else leave it untouched.

        A batch of calls that failed or was interrupted (even if the test caught
        the error) overrides ``save``: a partial batch is never written.
        """
        if self._finished:
            return
        self._finished = True
        save = save and not self._calls_failed
        if self.calls and not self._rows:
            self._add_usage_row()
        # Let go of the client and the parsed cassette now: pytest keeps every item
        # (and what it stashes) to the end of the run, so only the small counters and
        # summary rows may outlive the test.
        cassette, self._cassette = self._cassette, None
        if cassette is not None and not self._calls_failed:
            self.unused_recordings = cassette.unused_recordings(self._next_index)
        runner, self._runner = self._runner, None
        self._client_provider = None
        try:
            if runner is not None and self._owns_client:
                runner.close()
        finally:
            # Whatever happened above, vcrpy's patching must be undone.
            if cassette is not None:
                if save:
                    cassette.__exit__(None, None, None)
                else:
                    error = _Discarded("test did not complete its calls")
                    cassette.__exit__(type(error), error, None)

    def _add_usage_row(self) -> None:
        # Calls run by hand (rolecheck.run + no comparison) still count in the summary.
        from ..reporting.row import Row

        self._rows.append(
            Row.of_calls(nodeid=self.nodeid, usage=self._usage_snapshot(), source=self._source)
        )


def with_call_seed(
    request: Mapping[str, Any], test: str, arm: str, index: int
) -> Mapping[str, Any]:
    """``request`` with a sampling ``seed`` of its own when it samples (temperature > 0).

    Each call of an arm is then a different sample, so a sampled A/A comparison
    has real call-to-call variation, and the seed (a hash of the test, the arm
    and the call index) is part of the request: stored in the cassette, matched
    on replay, and reproduced by a re-recording against a fresh server. A seed
    the user set (also in ``extra_body``) is kept; temperature 0 gets none.
    """
    import hashlib

    temperature = request.get("temperature")
    extra = request.get("extra_body")
    if (
        not isinstance(temperature, int | float)
        or temperature <= 0
        or "seed" in request
        or (isinstance(extra, Mapping) and "seed" in extra)
    ):
        return request
    digest = hashlib.sha256(f"{test}\0{arm}\0{index}".encode()).digest()
    # 31 bits: a valid seed for llama.cpp (uint32) and OpenAI (int64) alike
    return {**request, "seed": int.from_bytes(digest[:4], "big") >> 1}


def default_cassette_path(settings: Settings, nodeid: str, test_file: Path | None) -> Path:
    """The cassette of the test ``nodeid`` defined in ``test_file``."""
    from ..recording.paths import cassette_path

    return cassette_path(
        settings.rootdir / settings.cassette_dir,
        nodeid,
        test_file=test_file,
        rootdir=settings.rootdir,
    )


def _check_trials(trials: Any) -> None:
    check_value("trials", trials)


# Request fields the statistics depend on, each checked with its option's rule.
_CHECKED_FIELDS = {
    "model": "model",
    "max_tokens": "max_tokens",
    "max_completion_tokens": "max_tokens",
    "temperature": "temperature",
    "top_logprobs": "top_logprobs",
}


def _check_request(request: Mapping[str, Any], *, logprobs: bool) -> None:
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
    if logprobs and (request.get("logprobs") is not True or request.get("top_logprobs") is None):
        allowed = OPTIONS_BY_NAME["top_logprobs"].parse.__doc__
        raise RolecheckUsageError(
            f"logprobs={request.get('logprobs')!r}, top_logprobs="
            f"{request.get('top_logprobs')!r}: a logprob comparison needs logprobs=True and "
            f"top_logprobs set ({allowed}) in every request; drop them from params= (the "
            "defaults are right), or compare tool calls with assert_tool_calls_* instead. "
            "Checked before any call."
        )


class _Discarded(Exception):
    """Passed to the cassette on exit so that it writes nothing."""


def _same_model(sent: str, served: str) -> bool:
    # OpenAI answers an alias with its dated snapshot: gpt-4o-mini -> gpt-4o-mini-2024-07-18.
    sent, served = sent.lower(), served.lower()
    return not sent or not served or served == sent or served.startswith(sent + "-")


def _is_azure(client: Any) -> bool:
    return any("Azure" in cls.__name__ for cls in type(client).__mro__)


def _distinct_labels(a: str, b: str) -> tuple[str, str]:
    return (a, b) if a != b else (f"{a} (A)", f"{b} (B)")


def _require(result: Any, verdict: str) -> None:
    __tracebackhide__ = True
    from ..errors import RolecheckAssertionError

    if result.verdict != verdict:
        advice = getattr(result, "advice", "")
        message = f"expected {verdict!r}, got {result.verdict!r}\n\n{result}"
        if advice and advice not in message:
            message += f"\n\n{advice}"
        raise RolecheckAssertionError(message)


# ------------------------------------------------------------ module level API
# The running test's Rolecheck (a stack: pytester runs nest pytest in one
# process). Process-wide, not per context, so threads the test starts see it too.
_ACTIVE: list[Rolecheck] = []
_PLUGIN_ACTIVE: list[bool] = []


def set_plugin_active(active: bool) -> None:
    """Called by the plugin at configure/unconfigure time."""
    _PLUGIN_ACTIVE[:] = [True] if active else []


def current() -> Rolecheck | None:
    """The running test's :class:`Rolecheck`; ``None`` outside pytest.

    Raises
    ------
    RolecheckUsageError
        Inside a pytest run but outside a test (e.g. in a module- or
        session-scoped fixture), where no cassette belongs to the calls.
    """
    if _ACTIVE:
        return _ACTIVE[-1]
    if _PLUGIN_ACTIVE:
        raise RolecheckUsageError(
            "a rolecheck assert was called outside a test (e.g. in a module- or "
            "session-scoped fixture, or after the test ended): its calls would belong to no "
            "cassette and could go live in replay mode. Call it from the test itself or from "
            "a function-scoped fixture (or use the `rolecheck` fixture)."
        )
    return None


def _on_comparison(result: object) -> None:
    if _ACTIVE:
        _ACTIVE[-1].record_by_hand(result)


listen(_on_comparison)


def activate(rolecheck: Rolecheck) -> None:
    _ACTIVE.append(rolecheck)


def deactivate(rolecheck: Rolecheck) -> None:
    if rolecheck in _ACTIVE:
        _ACTIVE.remove(rolecheck)


def _dispatch(method: str, *args: Any, **kwargs: Any) -> Any:
    __tracebackhide__ = True
    rolecheck = current()
    if rolecheck is not None:
        return getattr(rolecheck, method)(*args, **kwargs)
    # Outside pytest: live calls, no cassette; close the client afterwards.
    temporary = Rolecheck(Settings())
    try:
        return getattr(temporary, method)(*args, **kwargs)
    finally:
        temporary.finish(save=False)


def assert_roles_equivalent(
    messages: Sequence[Mapping[str, Any]],
    roles: tuple[str, str] = ("developer", "system"),
    **options: Any,
) -> Comparison:
    """Assert that the instruction message's role (e.g. developer vs system) changes nothing.

    See :meth:`Rolecheck.compare` for the options (``trials``, ``model``,
    ``max_tokens``, ``top_logprobs``, ``temperature``, ``metric``, ``alpha``,
    ``tolerance``, ``design``, ``seed``, ``params``).
    """
    __tracebackhide__ = True
    result: Comparison = _dispatch("assert_roles_equivalent", messages, roles, **options)
    return result


def assert_roles_differ(
    messages: Sequence[Mapping[str, Any]],
    roles: tuple[str, str] = ("developer", "system"),
    **options: Any,
) -> Comparison:
    """Assert that the instruction message's role changes behaviour."""
    __tracebackhide__ = True
    result: Comparison = _dispatch("assert_roles_differ", messages, roles, **options)
    return result


def assert_variants_equivalent(
    variant_a: VariantLike, variant_b: VariantLike, **options: Any
) -> Comparison:
    """Assert that two variants (messages + params) behave the same, within the tolerance."""
    __tracebackhide__ = True
    result: Comparison = _dispatch("assert_variants_equivalent", variant_a, variant_b, **options)
    return result


def assert_variants_differ(
    variant_a: VariantLike, variant_b: VariantLike, **options: Any
) -> Comparison:
    """Assert that two variants behave differently."""
    __tracebackhide__ = True
    result: Comparison = _dispatch("assert_variants_differ", variant_a, variant_b, **options)
    return result


def assert_tool_calls_equivalent(
    variant_a: VariantLike, variant_b: VariantLike, **options: Any
) -> ToolCallComparison:
    """Assert that two variants call the same tools with the same arguments."""
    __tracebackhide__ = True
    result: ToolCallComparison = _dispatch(
        "assert_tool_calls_equivalent", variant_a, variant_b, **options
    )
    return result


def assert_tool_calls_differ(
    variant_a: VariantLike, variant_b: VariantLike, **options: Any
) -> ToolCallComparison:
    """Assert that two variants' tool-call outcomes differ."""
    __tracebackhide__ = True
    result: ToolCallComparison = _dispatch(
        "assert_tool_calls_differ", variant_a, variant_b, **options
    )
    return result
