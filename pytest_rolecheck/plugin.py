"""pytest hooks of pytest-rolecheck: options, fixtures, cassette lifecycle, summary.

Hooks only; the work lives in :mod:`._session` (running and comparing),
:mod:`._cassette` (vcrpy) and :mod:`._report` (the summary). Importing this
module loads no numpy, scipy, openai or vcrpy: a suite that never calls
rolecheck pays (almost) nothing for having it installed.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Generator
from contextlib import nullcontext
from pathlib import Path
from typing import Any

import pytest

from .errors import (
    CassetteUnusedError,
    RolecheckAssertionError,
    RolecheckError,
    RolecheckUsageError,
)
from .reporting.drift import DRIFT_PROPERTY, DriftReport
from .reporting.summary import USER_PROPERTY, SummaryReport
from .running.asserts import activate, deactivate, set_plugin_active
from .running.backend import LocalBackend
from .running.calls import default_cassette_path
from .running.coordinator import WORKERINPUT_KEY as COORDINATOR_INPUT
from .running.heap import freeze_once
from .running.logprobs import LogprobsMemory
from .running.progress import LiveProgress, Progress
from .running.session import Rolecheck
from .settings import (
    MARKER_KEYS,
    PYTEST_OPTIONS,
    Settings,
    apply_marker,
    check_drift,
    check_together,
    resolve_settings,
)

SETTINGS_KEY = pytest.StashKey[Settings]()
SUMMARY_KEY = pytest.StashKey[SummaryReport]()
DRIFT_KEY = pytest.StashKey[DriftReport]()
BACKEND_KEY = pytest.StashKey[LocalBackend]()
OPEN_KEY = pytest.StashKey[set[Rolecheck]]()
COORDINATOR_KEY = pytest.StashKey[Any]()
ROLECHECK_KEY = pytest.StashKey[Rolecheck]()
CONFLICT_KEY = pytest.StashKey[str]()
FLAGS_KEY = pytest.StashKey[tuple[str, ...]]()
# Which servers give no logprobs, found out once per run (per xdist worker).
LOGPROBS_KEY = pytest.StashKey[LogprobsMemory]()
# Options a fix command must not repeat: it sets its own record mode, re-running one
# test must not overwrite the run's reports, and a command that records is no drift check.
_NOT_REPEATED = ("record_mode", "report", "report_dir", "drift", "drift_save")

MARKER_HELP = (
    f"rolecheck(**options): per-test defaults for pytest-rolecheck ({', '.join(MARKER_KEYS)})."
)


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("rolecheck", "pytest-rolecheck: statistical LLM behaviour tests")
    for spec in PYTEST_OPTIONS:
        if spec.flag:
            group.addoption(
                spec.cli_name,
                action="store_true",
                default=False,
                dest=f"rolecheck_{spec.name}",
                help=spec.pytest_help,
            )
        else:
            group.addoption(
                spec.cli_name,
                action="store",
                default=None,
                dest=f"rolecheck_{spec.name}",
                metavar=spec.name.upper(),
                help=spec.pytest_help,
            )
        parser.addini(spec.ini_name, spec.pytest_help, default=None)


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", MARKER_HELP)
    cli = {spec.name: config.getoption(f"rolecheck_{spec.name}") for spec in PYTEST_OPTIONS}
    ini = {spec.name: config.getini(spec.ini_name) for spec in PYTEST_OPTIONS}
    try:
        settings = resolve_settings(cli, ini, rootdir=config.rootpath)
        # Report paths typed on the command line are relative to where pytest was
        # started (as --junitxml's); ini values stay relative to the rootdir.
        invoked = config.invocation_params.dir
        settings = settings.replace(
            **{
                name: str(invoked / cli[name])
                for name in ("report", "report_dir", "drift_save", "prices")
                if cli.get(name) and not Path(cli[name]).is_absolute()
            }
        )
        if settings.prices:  # read and checked now, before any test runs
            from .prices import price_table

            settings = settings.replace(prices=str(_under_root(config, settings.prices)))
            price_table(settings)
        _check_tolerance(settings)
        check_drift(settings, typed_record_mode=cli.get("record_mode"))
        if settings.report_dir and not _is_worker(config):
            from .reporting.plots import require_matplotlib

            require_matplotlib()  # fail now, not after every test has run
    except RolecheckError as exc:
        raise pytest.UsageError(str(exc)) from None
    config.stash[SETTINGS_KEY] = settings
    config.stash[FLAGS_KEY] = _command_flags(config)
    config.stash[SUMMARY_KEY] = summary = SummaryReport()
    drift = DriftReport(alpha=settings.alpha) if settings.drift else None
    if drift is not None:
        config.stash[DRIFT_KEY] = drift
    config.pluginmanager.register(_SummaryCollector(summary, drift), "rolecheck-summary")
    # xdist workers share the controller's local server and call budget
    worker_input = getattr(config, "workerinput", {})
    config.stash[BACKEND_KEY] = LocalBackend(worker_input.get(COORDINATOR_INPUT))
    config.stash[OPEN_KEY] = set()
    config.stash[LOGPROBS_KEY] = LogprobsMemory()
    set_plugin_active(True)


def pytest_unconfigure(config: pytest.Config) -> None:
    set_plugin_active(False)
    coordinator = config.stash.get(COORDINATOR_KEY, None)
    if coordinator is not None:
        coordinator.close()


@pytest.hookimpl(optionalhook=True)
def pytest_configure_node(node: Any) -> None:
    """xdist controller: hand every worker the address of the run's coordinator."""
    config = node.config
    if COORDINATOR_KEY not in config.stash:
        from .running.coordinator import Coordinator

        backend = config.stash[BACKEND_KEY]
        config.stash[COORDINATOR_KEY] = Coordinator(
            concurrency=config.stash[SETTINGS_KEY].concurrency,
            start_server=lambda: backend.ensure_started().base_url,
        )
    node.workerinput[COORDINATOR_INPUT] = config.stash[COORDINATOR_KEY].address


def _check_tolerance(settings: Settings) -> None:
    # Only a tolerance above 1 depends on the metric: the rest pays no numpy import here.
    if settings.tolerance is None or settings.tolerance <= 1:
        return
    try:
        check_together(settings)
    except RolecheckUsageError as exc:
        raise RolecheckUsageError(f"--rolecheck-tolerance / rolecheck_tolerance: {exc}") from None


def _command_nodeid(config: pytest.Config, item: pytest.Item) -> str:
    """The test's id relative to the directory pytest was started from (for fix commands).

    Built from the test's file, not its node id: pytest makes the node id of a
    file outside the rootdir relative to the command-line argument instead.
    """
    _, sep, rest = item.nodeid.partition("::")
    try:
        relative = os.path.relpath(item.path, config.invocation_params.dir)
    except ValueError:  # another drive on Windows
        relative = str(item.path)
    return Path(relative).as_posix() + sep + rest


def _command_flags(config: pytest.Config) -> tuple[str, ...]:
    """The options of this run that a fix command must repeat to do the same thing."""
    option = config.option
    flags: list[str] = []
    if getattr(option, "inifilename", None):
        flags.append(f"--config-file={option.inifilename}")
    if getattr(option, "rootdir", None):
        flags.append(f"--rootdir={option.rootdir}")
    for plugin in getattr(option, "plugins", None) or ():
        flags += ["-p", str(plugin)]
    for override in getattr(option, "override_ini", None) or ():
        flags.append(f"--override-ini={override}")
    if getattr(option, "importmode", "prepend") != "prepend":
        flags.append(f"--import-mode={option.importmode}")
    for spec in PYTEST_OPTIONS:
        value = config.getoption(f"rolecheck_{spec.name}")
        if spec.name in _NOT_REPEATED or value in (None, False):
            continue
        flags.append(spec.cli_name if spec.flag else f"{spec.cli_name}={value}")
    return tuple(flags)


def _under_root(config: pytest.Config, path: str) -> Path:
    result = Path(path)
    return result if result.is_absolute() else config.rootpath / result


def _notify(config: pytest.Config, text: str) -> None:
    """Show ``text`` on the terminal now, while the test runs with its output captured."""
    reporter = config.pluginmanager.get_plugin("terminalreporter")
    if reporter is None:
        return
    capture = config.pluginmanager.get_plugin("capturemanager")
    with capture.global_and_fixture_disabled() if capture is not None else nullcontext():
        reporter.write_line(text, yellow=True)


def _live_progress(config: pytest.Config, progress: Progress) -> LiveProgress:
    """The progress line of a batch of live calls: redrawn in place on a terminal,
    else one line every few seconds and one at the end (CI logs stay short)."""
    reporter = config.pluginmanager.get_plugin("terminalreporter")
    tty = bool(reporter is not None and reporter.isatty)

    def show(line: str, final: bool) -> None:
        if reporter is None or _is_worker(config):
            return  # an xdist worker's terminal is nobody's
        capture = config.pluginmanager.get_plugin("capturemanager")
        with capture.global_and_fixture_disabled() if capture is not None else nullcontext():
            if tty:
                reporter.ensure_newline()
                reporter.rewrite(line)
                if final:
                    reporter.write("\n")
            else:
                reporter.write_line(line)

    return LiveProgress(progress, show, interval=0.5 if tty else 10.0)


def _is_worker(config: pytest.Config) -> bool:
    return hasattr(config, "workerinput")


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    # Two tests sharing a cassette would overwrite each other's recordings. Only
    # the tests that make calls fail (a suite that never calls rolecheck is not
    # this plugin's business), and both fail, whichever would have run first.
    from .recording.paths import cassette_conflicts

    settings = config.stash[SETTINGS_KEY]
    named = {_command_nodeid(config, item): item for item in items}
    conflicts = cassette_conflicts(
        (name, default_cassette_path(settings, item.nodeid, item.path))
        for name, item in named.items()
    )
    for name, message in conflicts.items():
        named[name].stash[CONFLICT_KEY] = message


@pytest.hookimpl(trylast=True)  # after "collected N items"
def pytest_collection_finish(session: pytest.Session) -> None:
    config = session.config
    settings = config.stash[SETTINGS_KEY]
    if _is_worker(config) or (settings.record_mode == "none" and not settings.drift):
        return
    from .prices import price_table
    from .recording.announce import planned_live_calls

    lines = planned_live_calls(
        settings.record_mode,
        [
            default_cassette_path(settings, item.nodeid, item.path)
            for item in session.items
            if _uses_rolecheck(item)
        ],
        price_table(settings),
        drift=settings.drift,
    )
    reporter = config.pluginmanager.get_plugin("terminalreporter")
    for line in lines:
        if reporter is not None:
            reporter.write_line(line, yellow=True)


def _uses_rolecheck(item: pytest.Item) -> bool:
    """Whether a test can make rolecheck calls: the fixture, the marker, or an import of ours."""
    if "rolecheck" in getattr(item, "fixturenames", ()) or item.get_closest_marker("rolecheck"):
        return True
    module = getattr(item, "module", None)
    if module is None:
        return False
    for value in vars(module).values():
        origin = getattr(value, "__module__", None) or getattr(value, "__name__", None)
        if isinstance(origin, str) and origin.startswith("pytest_rolecheck"):
            return True
    return False


@pytest.fixture(scope="session")
def rolecheck_client() -> Any:
    """Override to return an ``openai.AsyncOpenAI`` / ``openai.OpenAI`` client.

    The default (``None``) builds a client from ``OPENAI_API_KEY`` and
    ``OPENAI_BASE_URL`` (or ``--rolecheck-base-url`` / ``--rolecheck-local``).
    """
    return None


@pytest.fixture(scope="session")
def rolecheck_local_server(pytestconfig: pytest.Config) -> Any:
    """The bundled local model's server, started on first use.

    Shared with ``--rolecheck-local`` (one server for every xdist worker, started
    by the controller) and stopped at the end of the run. Use its ``base_url``
    and ``model`` to build your own client.
    """
    return pytestconfig.stash[BACKEND_KEY].ensure_started()


@pytest.fixture(autouse=True)
def _rolecheck_context(request: pytest.FixtureRequest) -> Generator[Rolecheck]:
    config = request.config
    settings = config.stash[SETTINGS_KEY]
    item = request.node
    markers = list(item.iter_markers("rolecheck"))
    for marker in reversed(markers):  # farthest first, so the closest marker wins
        if marker.args:
            raise RolecheckUsageError(
                f"{item.nodeid}: @pytest.mark.rolecheck takes keyword arguments only, got "
                f"{marker.args!r}."
            )
        settings = apply_marker(settings, marker.kwargs, where=item.nodeid)
    flags: tuple[str, ...] = config.stash[FLAGS_KEY]
    rolecheck = Rolecheck(
        settings,
        nodeid=item.nodeid,
        command_nodeid=_command_nodeid(config, item),
        command_flags=flags,
        client_provider=lambda: request.getfixturevalue("rolecheck_client"),
        backend=config.stash[BACKEND_KEY],
        notify=lambda text: _notify(config, text),
        test_file=item.path,
        cassette_conflict=item.stash.get(CONFLICT_KEY, None),
        progress_display=lambda progress: _live_progress(config, progress),
        logprobs_memory=config.stash[LOGPROBS_KEY],
    )
    item.stash[ROLECHECK_KEY] = rolecheck
    config.stash[OPEN_KEY].add(rolecheck)
    activate(rolecheck)
    try:
        yield rolecheck
    finally:
        deactivate(rolecheck)
        # Normally finished (and saved) by the call report; this is the safety net.
        rolecheck.finish(save=False)
        config.stash[OPEN_KEY].discard(rolecheck)
        if rolecheck.calls:  # the heavy modules are loaded now
            freeze_once()


@pytest.fixture
def rolecheck(_rolecheck_context: Rolecheck) -> Rolecheck:
    """The test's :class:`~pytest_rolecheck.Rolecheck`: run, compare and assert."""
    return _rolecheck_context


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(
    item: pytest.Item, call: pytest.CallInfo[None]
) -> Generator[None, pytest.TestReport, pytest.TestReport]:
    report = yield
    rolecheck = item.stash.get(ROLECHECK_KEY, None)
    if rolecheck is None:
        return report
    excinfo = call.excinfo
    if (
        excinfo is not None
        and excinfo.errisinstance(RolecheckError)
        and not excinfo.errisinstance(RolecheckAssertionError)
    ):
        # Our errors say what happened and what to do; internals would bury that.
        report.longrepr = f"{excinfo.typename}: {excinfo.value}"
    if call.when == "call":
        # Whatever the test did after its calls (failed an assertion, called
        # pytest.skip/fail/xfail, raised), the calls it made are complete: keep
        # them, or recording them again would cost the same calls forever. The
        # Rolecheck itself refuses to save when a batch of calls was cut short.
        interrupted = (KeyboardInterrupt, pytest.exit.Exception)
        save = excinfo is None or not excinfo.errisinstance(interrupted)
        try:
            rolecheck.finish(save=save)
        except Exception as exc:  # a hook must not crash the run (INTERNALERROR)
            report.outcome = "failed"
            report.longrepr = f"{type(exc).__name__}: {exc}"
        unused = rolecheck.unused_recordings
        if unused is not None and report.passed:
            # A pass on part of the recording is not the pass the cassette recorded.
            report.outcome = "failed"
            report.longrepr = f"{CassetteUnusedError.__name__}: {unused}"
        elif unused is not None:
            report.sections.append(("rolecheck", unused))
        for row in rolecheck.rows:
            report.user_properties.append((USER_PROPERTY, row))
        for entry in rolecheck.drift_arms:
            report.user_properties.append((DRIFT_PROPERTY, entry))
    return report


class _SummaryCollector:
    """Per-run plugin object (like junitxml's): gathers rows from every test report.

    Registered at configure time so its hooks see the config; under xdist the
    controller's instance receives the workers' reports, rows included.
    """

    def __init__(self, summary: SummaryReport, drift: DriftReport | None) -> None:
        self.summary = summary
        self.drift = drift

    def pytest_runtest_logreport(self, report: pytest.TestReport) -> None:
        if report.when != "call":
            return
        # Plain dicts only: they crossed from a worker as JSON.
        self.summary.extend(
            value
            for key, value in report.user_properties
            if key == USER_PROPERTY and isinstance(value, dict)
        )
        if self.drift is not None:
            self.drift.extend(
                value
                for key, value in report.user_properties
                if key == DRIFT_PROPERTY and isinstance(value, dict)
            )


def pytest_terminal_summary(terminalreporter: Any, config: pytest.Config) -> None:
    if _is_worker(config):
        return
    summary = config.stash.get(SUMMARY_KEY, None)
    if summary:
        terminalreporter.section("rolecheck")
        # The full table with -v (and always in the JSON and HTML reports).
        full = config.get_verbosity() > 0
        width = config.get_terminal_writer().fullwidth
        for line in summary.lines(width=width, full=full):
            terminalreporter.write_line(line)
    drift = config.stash.get(DRIFT_KEY, None)
    if drift is not None:
        terminalreporter.section("rolecheck drift", red=drift.drifted, green=not drift.drifted)
        for line in drift.lines(**_drift_commands(config, drift)):
            terminalreporter.write_line(line)


def _drift_commands(config: pytest.Config, drift: DriftReport) -> dict[str, Any]:
    """Where the live calls were saved, and the commands that make them the new baseline."""
    import shlex

    from .recording.fix_command import fix_command

    settings = config.stash[SETTINGS_KEY]
    save = _under_root(config, settings.drift_save) if settings.drift_save else None
    cassettes = _under_root(config, settings.cassette_dir)
    flags: tuple[str, ...] = config.stash[FLAGS_KEY]
    return {
        "save_dir": str(save) if save else None,
        "promote": f"cp -R {shlex.quote(str(save))}/. {shlex.quote(str(cassettes))}/"
        if save
        else None,
        "rewrite": fix_command("rewrite", drift.targets(), flags),
    }


def pytest_sessionfinish(session: pytest.Session) -> None:
    config = session.config
    backend = config.stash.get(BACKEND_KEY, None)
    try:
        still_open: set[Rolecheck] = config.stash.get(OPEN_KEY, set())
        for rolecheck in list(still_open):
            rolecheck.finish(save=False)  # interrupted tests: leave their cassettes alone
        if not _is_worker(config):
            drift = config.stash.get(DRIFT_KEY, None)
            if drift is not None and drift.drifted and session.exitstatus == pytest.ExitCode.OK:
                # Every test may pass on the live calls; the suite still changed.
                session.exitstatus = pytest.ExitCode.TESTS_FAILED
            _write_reports(config)
    finally:
        # Imported only if a test built a default client (importing it loads openai).
        default_clients = sys.modules.get("pytest_rolecheck.running.default_client")
        if default_clients is not None:
            default_clients.close_default_clients()
        if backend is not None:
            backend.stop()


def _write_reports(config: pytest.Config) -> None:
    settings = config.stash.get(SETTINGS_KEY, None)
    summary = config.stash.get(SUMMARY_KEY, None)
    if settings is None or summary is None:
        return
    drift = config.stash.get(DRIFT_KEY, None)
    drift_json = drift.to_json() if drift is not None else None
    try:
        if settings.report:
            summary.write_json(_under_root(config, settings.report), drift=drift_json)
        if settings.report_dir and (summary or drift_json):
            from .reporting.html import write_html_report

            write_html_report(
                summary.rows, _under_root(config, settings.report_dir), drift=drift_json
            )
    except (OSError, RolecheckError) as exc:
        # Reported once, plainly: the tests themselves already ran.
        reporter = config.pluginmanager.get_plugin("terminalreporter")
        message = f"rolecheck: could not write the report: {exc}"
        if reporter is not None:
            reporter.write_line(message, red=True)
