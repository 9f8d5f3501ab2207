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
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ._errors import RolecheckUsageError
from ._options import Settings

if TYPE_CHECKING:
    from ._cassette import CassetteSession
    from ._client import AnyClient, CallSpec, CompletionRunner
    from ._compare import Comparison
    from ._local import LocalServer
    from ._toolcalls import ToolCallComparison
    from .variants import Variant

# Messages or an already-built Variant.
VariantLike = Any

# Placeholder endpoint for replaying cassettes recorded from the local model:
# the host must match the recording (127.0.0.1; ports are not matched), and
# nothing listens on port 9, so an unexpected live call fails loudly.
LOCAL_REPLAY_BASE_URL = "http://127.0.0.1:9/v1"
# Default output budget of tool-call requests: arguments need more than 20 tokens.
TOOL_CALL_MAX_TOKENS = 200


class LocalBackend:
    """The bundled llama.cpp server, started on first live need, shared by the run."""

    def __init__(self) -> None:
        self._server: LocalServer | None = None
        self._lock = threading.Lock()

    @property
    def model(self) -> str:
        from ._local import DEFAULT_MODEL_ALIAS

        return DEFAULT_MODEL_ALIAS

    def ensure_started(self) -> LocalServer:
        with self._lock:
            if self._server is None:
                from ._local import LocalServer

                server = LocalServer()
                server.start()
                self._server = server
            return self._server

    @property
    def started(self) -> bool:
        return self._server is not None

    def stop(self) -> None:
        with self._lock:
            if self._server is not None:
                self._server.stop()
                self._server = None


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
        by default the cassette is named after ``nodeid``.
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
    ) -> None:
        from ._client_progress import Progress

        self.settings = settings
        self.nodeid = nodeid
        self._cassette_file = cassette_file
        # The node id as the user can pass it back to pytest from where they ran it.
        self._command_nodeid = command_nodeid
        self.progress = Progress()
        self._client_provider = client_provider
        self._backend = backend
        self._runner: CompletionRunner | None = None
        self._owns_client = False
        self._cassette: CassetteSession | None = None
        self._live: bool | None = None
        self._next_index = 0
        self._rows: list[dict[str, Any]] = []
        self._finished = False

    # ------------------------------------------------------------------ state
    @property
    def cassette_path(self) -> Path | None:
        """Where this test's cassette lives (``None``: no cassette, calls go live)."""
        if self._cassette_file is not None:
            return self._cassette_file
        if self.nodeid is None:
            return None
        from ._cassette import cassette_path

        return cassette_path(self.settings.rootdir / self.settings.cassette_dir, self.nodeid)

    @property
    def live(self) -> bool:
        """Whether this test's calls go to the network (else they replay)."""
        if self._live is None:
            path = self.cassette_path
            mode = self.settings.record_mode
            self._live = (
                path is None or mode in ("all", "rewrite") or (mode == "once" and not path.exists())
            )
        return self._live

    @property
    def rows(self) -> list[dict[str, Any]]:
        """Summary rows of the comparisons made so far (JSON-able dicts)."""
        return list(self._rows)

    @property
    def usage(self) -> tuple[int, int]:
        """(prompt tokens, completion tokens) summed over this test's calls."""
        if self._runner is None:
            return (0, 0)
        usage = self._runner.usage
        return (usage.prompt_tokens, usage.completion_tokens)

    @property
    def calls(self) -> int:
        return 0 if self._runner is None else self._runner.usage.calls

    @property
    def model(self) -> str:
        if self.settings.model:
            return self.settings.model
        if self.settings.local and self._backend is not None:
            return self._backend.model
        raise RolecheckUsageError(
            "no model given: pass model=... to the assert call, set "
            "@pytest.mark.rolecheck(model=...), --rolecheck-model, or rolecheck_model in the ini "
            "file (or use --rolecheck-local for the bundled model)."
        )

    def _make_runner(self) -> CompletionRunner:
        from ._cassette import CassetteSession, RecordMode
        from ._client import LOCAL_API_KEY, CompletionRunner, client_secrets, make_client

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
        path = self.cassette_path
        if path is not None:
            self._cassette = CassetteSession(
                path,
                RecordMode(self.settings.record_mode),
                nodeid=self._command_nodeid or self.nodeid or str(path),
                secrets=client_secrets(client),
            )
            self._cassette.__enter__()
            cassette = self._cassette

            def before_call(spec: CallSpec) -> None:
                cassette.check_request(spec.index, spec.body())

            explain = cassette.explain

        return CompletionRunner(
            client,
            concurrency=self.settings.concurrency,
            before_call=before_call,
            explain=explain,
            progress=self.progress,
        )

    def _run_specs(self, arms: Sequence[tuple[str, Mapping[str, Any]]]) -> list[Any]:
        from ._client import CallSpec

        if self._finished:
            raise RolecheckUsageError(
                "this Rolecheck has finished (its test is over); make calls inside the test."
            )
        if self._runner is None:
            self._runner = self._make_runner()
        specs = []
        for arm, request in arms:
            specs.append(CallSpec(index=self._next_index, arm=arm, request=request))
            self._next_index += 1
        return self._runner.run(specs)

    # --------------------------------------------------------------- variants
    def variant(self, messages: VariantLike, *, label: str | None = None, **params: Any) -> Variant:
        """Build a :class:`~pytest_rolecheck.Variant` (messages + request params)."""
        from .variants import Variant

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
        if count < 1:
            raise RolecheckUsageError(f"n must be ≥ 1, got {count}.")
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
        from ._compare import check_options, compare

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
        before = self._usage_snapshot()
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
        self._add_row("logprobs", labels, result, before)
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
        from ._toolcalls import compare_tool_calls

        a, b = self.variant(variant_a), self.variant(variant_b)
        _check_trials(self.settings.trials if trials is None else trials)
        before = self._usage_snapshot()
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
        labels = _distinct_labels(a.label, b.label)
        result = compare_tool_calls(
            responses_a,
            responses_b,
            alpha=alpha if alpha is not None else self.settings.alpha,
            tolerance=tolerance if tolerance is not None else self.settings.tolerance,
            names_only=names_only,
            ordered=ordered,
            seed=seed,
            labels=labels,
        )
        self._add_row("tool-calls", labels, result, before)
        return result

    # ----------------------------------------------------------------- asserts
    def assert_variants_equivalent(
        self, variant_a: VariantLike, variant_b: VariantLike, **options: Any
    ) -> Comparison:
        """Assert that switching A→B moves behaviour by less than the tolerance."""
        __tracebackhide__ = True
        from ._compare import refuse_blind_equivalence

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
        if self._runner is None:
            return (0, 0, 0)
        usage = self._runner.usage
        return (usage.calls, usage.prompt_tokens, usage.completion_tokens)

    def _add_row(
        self, kind: str, labels: tuple[str, str], result: Any, before: tuple[int, int, int]
    ) -> None:
        from ._jsonish import to_plain

        after = self._usage_snapshot()
        details = to_plain(result.to_dict())
        self._rows.append(
            {
                "nodeid": self.nodeid,
                "kind": kind,
                "title": f"{labels[0]} vs {labels[1]}",
                "verdict": result.verdict,
                "n_a": result.n_a,
                "n_b": result.n_b,
                "p_value": details.get("p_value"),
                "floor": details.get("floor"),
                "excess": details.get("excess"),
                "change": details.get("change"),
                "change_upper": details.get("change_upper"),
                "tolerance": details.get("tolerance"),
                "tv": details.get("tv"),
                "tv_upper": details.get("tv_upper"),
                "deterministic": details.get("deterministic"),
                "calls": after[0] - before[0],
                "prompt_tokens": after[1] - before[1],
                "completion_tokens": after[2] - before[2],
                "source": "live" if self.live else "replayed",
                "details": details,
            }
        )
        if kind == "logprobs" and (self.settings.report or self.settings.report_dir):
            # Only reports draw it, and it costs ~0.1 s per comparison.
            from ._insight import divergence_insight

            self._rows[-1]["insight"] = to_plain(
                divergence_insight(
                    result.calls_a, result.calls_b, metric=result.metric, labels=result.labels
                )
            )

    def finish(self, *, save: bool) -> None:
        """End the test: write the cassette if ``save``, else leave it untouched."""
        if self._finished:
            return
        self._finished = True
        if self.calls and not self._rows:
            self._add_usage_row()
        cassette, self._cassette = self._cassette, None
        try:
            if self._runner is not None and self._owns_client:
                self._runner.close()
        finally:
            # Whatever happened above, vcrpy's patching must be undone.
            if cassette is not None:
                if save:
                    cassette.__exit__(None, None, None)
                else:
                    error = _Discarded("test did not complete its calls")
                    cassette.__exit__(type(error), error, None)

    def _add_usage_row(self) -> None:
        # Calls run by hand (rolecheck.run + compare) still count in the summary.
        prompt, completion = self.usage
        self._rows.append(
            {
                "nodeid": self.nodeid,
                "kind": "calls",
                "title": "calls run by the test (no rolecheck comparison)",
                "verdict": "—",
                "n_a": self.calls,
                "n_b": 0,
                "calls": self.calls,
                "prompt_tokens": prompt,
                "completion_tokens": completion,
                "source": "live" if self.live else "replayed",
                "details": {},
            }
        )


def _check_trials(trials: int) -> None:
    from ._stats import MIN_CALLS_PER_ARM

    if trials < MIN_CALLS_PER_ARM:
        raise RolecheckUsageError(
            f"trials={trials}: at least {MIN_CALLS_PER_ARM} calls per arm are needed (with 3 "
            "per arm no relabelling test can reach p <= 0.05). Checked before any call."
        )


class _Discarded(Exception):
    """Passed to the cassette on exit so that it writes nothing."""


def _distinct_labels(a: str, b: str) -> tuple[str, str]:
    return (a, b) if a != b else (f"{a} (A)", f"{b} (B)")


def _require(result: Any, verdict: str) -> None:
    __tracebackhide__ = True
    from ._errors import RolecheckAssertionError

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
