"""What a test talks to: the :class:`Rolecheck` object (compare, assert, report rows).

One :class:`Rolecheck` exists per test. The ``rolecheck`` fixture returns it, and
the module-level functions (:mod:`.asserts`) find it as the active test, so both
forms share the test's cassette, call counter, token usage and summary rows. How
its calls are made (requests, runner, cassette, live or not) is :mod:`.calls`.

Nothing heavy is imported at module level: the plugin's autouse fixture builds a
:class:`Rolecheck` for every test, and a test that never calls it must not pay
for numpy, scipy, openai or vcrpy.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping, Sequence
from contextlib import AbstractContextManager
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

from ..errors import RolecheckUsageError
from ..settings import Settings, check_value
from .backend import (
    LocalBackend as LocalBackend,  # re-exported: `rolecheck compare` imports it here
)
from .calls import Calls, VariantLike, _distinct_labels, prompt_sets, trials_per_case
from .drift import check_drift

if TYPE_CHECKING:
    from ..recording.cassette import CassetteSession
    from ..reporting.row import Row
    from ..variants import Variant
    from ..variants.prompt_sets import PromptSet
    from ..verdicts.compare import Comparison
    from ..verdicts.prompt_sets import PromptSetComparison
    from ..verdicts.toolcalls import ToolCallComparison
    from .client import AnyClient, CompletionRunner
    from .logprobs import LogprobsMemory
    from .progress import Progress

# What an assertion returns: the comparison it checked.
_R = TypeVar(
    "_R",
    "Comparison",
    "ToolCallComparison",
    "Comparison | PromptSetComparison",
    "ToolCallComparison | PromptSetComparison",
)

# Default output budget of tool-call requests: arguments need more than 20 tokens.
TOOL_CALL_MAX_TOKENS = 200


class Rolecheck(Calls):
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
    logprobs_memory
        Which servers were found to give no logprobs, shared by the run's tests
        (:mod:`.logprobs`); by default the process's own.
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
        logprobs_memory: LogprobsMemory | None = None,
    ) -> None:
        from .logprobs import PROCESS_MEMORY
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
        self._baseline: CassetteSession | None = None
        self._recorded: dict[int, tuple[Any, Any]] = {}
        self._logprobs_memory = logprobs_memory or PROCESS_MEMORY
        self._no_logprobs = {}
        # Drift checks of this test's arms (JSON-able), for the session's decision.
        self.drift_arms: list[dict[str, Any]] = []
        self._live: bool | None = None
        self._next_index = 0
        self._rows: list[Row] = []
        # Set while Rolecheck.compare* runs the pure comparison (not one made by hand).
        self._own_comparison = False
        self._finished = False
        self._calls_failed = False
        # Set by finish() when a replay left recorded calls unused (the message).
        self.unused_recordings: str | None = None

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
        logprobs: bool | str | None = None,
        api: str | None = None,
    ) -> Comparison | PromptSetComparison:
        """Run both variants and compare their behaviour; never raises on a verdict.

        ``logprobs``: ``"auto"`` (ask; compare the texts when the server gives none),
        True (require them) or False (never ask); default the ``logprobs`` setting.
        ``api="responses"`` sends the requests to ``client.responses.create``.
        """
        from ..core.limits import DEFAULT_DESIGN
        from ..verdicts.compare import check_options, compare
        from .logprobs import noted, refuse_logprob_metric, texts_of, without_logprobs

        sets = prompt_sets(variant_a, variant_b)
        design = design or self.settings.design
        metric = metric or self.settings.metric
        alpha = alpha if alpha is not None else self.settings.alpha
        if tolerance is None and max_excess_tv is None:
            tolerance = self.settings.tolerance
        labels = _arm_labels(self, variant_a, variant_b, sets)
        # Refuse bad options before paying for live calls: the same check compare() runs.
        if sets is None:
            _check_trials(self.settings.trials if trials is None else trials)
        elif design != DEFAULT_DESIGN:
            raise RolecheckUsageError(
                f"design={design!r} compares one prompt against one baseline call; a prompt set "
                f"is compared with all pairs of each case's calls: pass design={DEFAULT_DESIGN!r} "
                "(or drop the design option for this test)."
            )
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
        mode = self._logprobs_mode(logprobs)
        refuse_logprob_metric(mode, metric)
        request: dict[str, Any] = {
            "model": model,
            "max_tokens": max_tokens,
            "top_logprobs": top_logprobs,
            "temperature": temperature,
            "params": params,
            "logprobs": mode,
            "api": api,
        }
        # A prompt set's arms are {case id: responses}: compare() decides over the set.
        responses_a: Any
        responses_b: Any
        if sets is None:
            responses_a, responses_b, base = self.run_arms(
                variant_a, variant_b, trials, baseline=design == "seed", **request
            )
        else:
            responses_a, responses_b = self.run_sets(*sets, trials_per_case(trials), **request)
            base = None
        # Answers without logprobs are compared by text (metric auto), and the notes say why.
        gap = without_logprobs(self._no_logprobs, (responses_a, responses_b), metric)
        prep = texts_of if gap is not None else _same
        self._own_comparison = True
        try:
            result: Comparison | PromptSetComparison = compare(
                prep(responses_a),
                prep(responses_b),
                metric=metric,
                alpha=alpha,
                tolerance=tolerance,
                max_excess_tv=max_excess_tv,
                design=design,
                seed=seed,
                baseline=base if base is None else prep([base])[0],
                labels=labels,
            )
            if self._baseline is not None:
                self._check_drift(
                    labels,
                    (responses_a, responses_b),
                    lambda recorded, live, arm: compare(
                        prep(recorded),
                        prep(live),
                        metric=metric,
                        alpha=alpha,
                        tolerance=tolerance,
                        max_excess_tv=max_excess_tv,
                        seed=seed,
                        labels=arm,
                    ),
                )
        finally:
            self._own_comparison = False
        if gap is not None:
            result, note = noted(result, gap)
        self._add_row(result)
        if gap is not None:  # the terminal summary's line
            row = self._rows[-1]
            self._rows[-1] = dataclasses.replace(row, details={**row.details, "no_logprobs": note})
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
        api: str | None = None,
    ) -> ToolCallComparison | PromptSetComparison:
        """Run both variants and compare which tools they call, with which arguments."""
        from ..verdicts.toolcalls import check_tool_options, compare_tool_calls

        sets = prompt_sets(variant_a, variant_b)
        alpha = alpha if alpha is not None else self.settings.alpha
        tolerance = tolerance if tolerance is not None else self.settings.tolerance
        labels = _arm_labels(self, variant_a, variant_b, sets)
        # Refuse bad options before paying for live calls: the same check as after them.
        if sets is None:
            _check_trials(self.settings.trials if trials is None else trials)
        check_tool_options(alpha=alpha, tolerance=tolerance, seed=seed, labels=labels)
        request: dict[str, Any] = {
            "model": model,
            "max_tokens": max_tokens if max_tokens is not None else TOOL_CALL_MAX_TOKENS,
            "temperature": temperature,
            "params": params,
            "logprobs": False,
            "api": api,
        }
        # A prompt set's arms are {case id: responses}: the comparison is over the set.
        responses_a: Any
        responses_b: Any
        if sets is None:
            responses_a, responses_b, _ = self.run_arms(variant_a, variant_b, trials, **request)
        else:
            responses_a, responses_b = self.run_sets(*sets, trials_per_case(trials), **request)
        self._own_comparison = True
        try:
            result: ToolCallComparison | PromptSetComparison = compare_tool_calls(
                responses_a,
                responses_b,
                alpha=alpha,
                tolerance=tolerance,
                names_only=names_only,
                ordered=ordered,
                seed=seed,
                labels=labels,
            )
            if self._baseline is not None:
                self._check_drift(
                    labels,
                    (responses_a, responses_b),
                    lambda recorded, live, arm: compare_tool_calls(
                        recorded,
                        live,
                        alpha=alpha,
                        tolerance=tolerance,
                        names_only=names_only,
                        ordered=ordered,
                        seed=seed,
                        labels=arm,
                    ),
                )
        finally:
            self._own_comparison = False
        self._add_row(result)
        return result

    # ----------------------------------------------------------------- asserts
    def assert_variants_equivalent(
        self, variant_a: VariantLike, variant_b: VariantLike, **options: Any
    ) -> Comparison | PromptSetComparison:
        """Assert that switching A→B moves behaviour by less than the tolerance."""
        __tracebackhide__ = True
        return self._assert(
            "assert_variants_equivalent", self.compare, variant_a, variant_b, options
        )

    def assert_variants_differ(
        self, variant_a: VariantLike, variant_b: VariantLike, **options: Any
    ) -> Comparison | PromptSetComparison:
        """Assert that A and B behave differently (difference test significant)."""
        __tracebackhide__ = True
        return self._assert("assert_variants_differ", self.compare, variant_a, variant_b, options)

    def assert_roles_equivalent(
        self,
        messages: Sequence[Mapping[str, Any]] | None = None,
        roles: tuple[str, str] = ("developer", "system"),
        *,
        prompts: PromptSet | Sequence[Sequence[Mapping[str, Any]]] | None = None,
        **options: Any,
    ) -> Comparison | PromptSetComparison:
        """Assert that giving the instruction message role A or role B changes nothing.

        ``messages`` is one prompt; ``prompts`` a prompt set (a :class:`PromptSet`, or a
        list of message lists), compared over all its cases.
        """
        __tracebackhide__ = True
        a, b = self._role_variants(messages, prompts, roles)
        return self._assert("assert_roles_equivalent", self.compare, a, b, options)

    def assert_roles_differ(
        self,
        messages: Sequence[Mapping[str, Any]] | None = None,
        roles: tuple[str, str] = ("developer", "system"),
        *,
        prompts: PromptSet | Sequence[Sequence[Mapping[str, Any]]] | None = None,
        **options: Any,
    ) -> Comparison | PromptSetComparison:
        """Assert that the role of the instruction message changes behaviour.

        ``messages`` is one prompt; ``prompts`` a prompt set (a :class:`PromptSet`, or a
        list of message lists), compared over all its cases.
        """
        __tracebackhide__ = True
        a, b = self._role_variants(messages, prompts, roles)
        return self._assert("assert_roles_differ", self.compare, a, b, options)

    def assert_tool_calls_equivalent(
        self, variant_a: VariantLike, variant_b: VariantLike, **options: Any
    ) -> ToolCallComparison | PromptSetComparison:
        """Assert that both variants call the same tools with the same arguments."""
        __tracebackhide__ = True
        return self._assert(
            "assert_tool_calls_equivalent", self.compare_tool_calls, variant_a, variant_b, options
        )

    def assert_tool_calls_differ(
        self, variant_a: VariantLike, variant_b: VariantLike, **options: Any
    ) -> ToolCallComparison | PromptSetComparison:
        """Assert that the variants' tool-call outcomes differ."""
        __tracebackhide__ = True
        return self._assert(
            "assert_tool_calls_differ", self.compare_tool_calls, variant_a, variant_b, options
        )

    def _assert(
        self,
        helper: str,
        run: Callable[..., _R],
        variant_a: VariantLike,
        variant_b: VariantLike,
        options: dict[str, Any],
    ) -> _R:
        # ``helper`` is what the user called: the failure message and the report's advice
        # name its counterpart (assert_roles_differ after assert_roles_equivalent).
        __tracebackhide__ = True
        from ..errors import RolecheckAssertionError
        from ..verdicts import wording
        from ..verdicts.assertions import refuse_blind_equivalence

        expected = wording.expected_verdict(helper)
        if expected == "equivalent" and run == self.compare:
            refuse_blind_equivalence(options.get("metric") or self.settings.metric)
        result = run(variant_a, variant_b, **options)
        self._rows[-1] = dataclasses.replace(self._rows[-1], asserted=helper)
        if result.verdict != expected:
            raise RolecheckAssertionError(wording.assertion_message(result, helper))
        return result

    def _role_variants(
        self,
        messages: Sequence[Mapping[str, Any]] | None,
        prompts: PromptSet | Sequence[Sequence[Mapping[str, Any]]] | None,
        roles: tuple[str, str],
    ) -> tuple[Variant, Variant] | tuple[PromptSet, PromptSet]:
        from ..variants.prompt_sets import PromptSet

        if len(roles) != 2:
            raise RolecheckUsageError(f"roles must name two roles, got {roles!r}.")
        if (messages is None) == (prompts is None):
            raise RolecheckUsageError(
                "pass either messages=[...] (one prompt) or prompts=... (a PromptSet or a list "
                "of message lists), not both and not neither."
            )
        if prompts is None:
            base = self.variant(messages)
            return base.with_role(roles[0]), base.with_role(roles[1])
        if not isinstance(prompts, PromptSet):
            if isinstance(prompts, Sequence) and any(isinstance(p, str) for p in prompts):
                raise RolecheckUsageError(
                    "prompts= got text, not message lists: a role check needs an instruction "
                    "message in every case; pass PromptSet.from_prompts([...], "
                    "instruction='...')."
                )
            prompts = PromptSet.from_messages(prompts)
        return prompts.with_role(roles[0]), prompts.with_role(roles[1])

    def _check_drift(
        self, labels: tuple[str, str], arms: tuple[Any, Any], compare_arm: Callable[..., Any]
    ) -> None:
        check_drift(self, labels, arms, compare_arm)  # kept short: this module is long

    # ---------------------------------------------------------------- records
    def _spent(self) -> dict[str, Any]:
        """A row's usage, per model and priced: the calls made since the last row."""
        from ..core.cost import Tokens
        from ..prices import price_table

        models = self.progress.usage.take()
        made = sum(models.values(), Tokens())
        usage = (made.calls, made.prompt, made.completion)
        return {"usage": usage, "models": models, "prices": price_table(self.settings)}

    def _add_row(self, result: Any, *, by_hand: bool = False) -> None:
        from ..reporting.row import Row

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
                source=self._source,
                by_hand=by_hand,
                insight=insight,
                **self._spent(),
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
        # A drift check's recorded calls must all be used, as a replay's must.
        recording = self._baseline or cassette
        self._baseline, self._recorded, self._no_logprobs = None, {}, {}
        if recording is not None and not self._calls_failed:
            self.unused_recordings = recording.unused_recordings(self._next_index)
        # The client stays open: the default one serves the next tests too (closed at
        # the end of the run), and a rolecheck_client fixture's belongs to the user.
        self._runner = None
        self._client_provider = None
        if cassette is not None:
            if save:
                cassette.__exit__(None, None, None)
            else:
                error = _Discarded("test did not complete its calls")
                cassette.__exit__(type(error), error, None)

    def _add_usage_row(self) -> None:
        # Calls run by hand (rolecheck.run + no comparison) still count in the summary.
        from ..reporting.row import Row

        self._rows.append(Row.of_calls(nodeid=self.nodeid, source=self._source, **self._spent()))


def _same(responses: Any) -> Any:
    return responses


def _check_trials(trials: Any) -> None:
    check_value("trials", trials)


def _arm_labels(
    rolecheck: Rolecheck,
    arm_a: VariantLike,
    arm_b: VariantLike,
    sets: tuple[PromptSet, PromptSet] | None,
) -> tuple[str, str]:
    if sets is not None:
        return _distinct_labels(sets[0].label, sets[1].label)
    return _distinct_labels(rolecheck.variant(arm_a).label, rolecheck.variant(arm_b).label)


class _Discarded(Exception):
    """Passed to the cassette on exit so that it writes nothing."""
