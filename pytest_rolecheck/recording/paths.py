"""Where a test's cassette lives, and which tests would share one."""

from __future__ import annotations

import contextlib
import hashlib
import os
import re
from collections.abc import Iterable
from pathlib import Path
from typing import TYPE_CHECKING, Final

if TYPE_CHECKING:
    from ..settings import Settings

_MAX_NAME: Final = 120
_UNSAFE_NAME: Final = re.compile(r"[^A-Za-z0-9_.,=+@\[\]-]")
_UNSAFE_DIR: Final = re.compile(r'[\x00-\x1f<>:"|?*\\]')


# --------------------------------------------------------------------------- paths


def cassette_path(
    cassette_dir: Path, nodeid: str, *, test_file: Path | None = None, rootdir: Path | None = None
) -> Path:
    """Return the cassette file of one test.

    Parameters
    ----------
    cassette_dir : Path
        Root directory of the cassettes (``--rolecheck-cassette-dir``).
    nodeid : str
        The pytest node id, e.g. ``tests/sub/test_roles.py::TestA::test_b[gpt-4o-1]``.
    test_file, rootdir : Path, optional
        The test's file and pytest's rootdir. Given both, the directories come from
        the file's path relative to the rootdir rather than from the node id, which
        pytest makes relative to the command-line argument for a file outside the
        rootdir (so ``../a/test_x.py`` and ``../b/test_x.py`` would get one name).
        Each ``..`` becomes ``__``: ``cassettes/__/a/test_x/...``.

    Returns
    -------
    Path
        ``<cassette_dir>/<module path without .py>/<test name>.json``, e.g.
        ``cassettes/tests/sub/test_roles/TestA.test_b[gpt-4o-1].json``. Class and
        function are joined with ``.``. A name with characters outside
        ``A-Za-z0-9_.,=+@[]-`` (or longer than 120 characters) has them replaced by
        ``_`` and gets a short hash of the original appended, so distinct
        parametrize ids never share a file and the result is the same on every run.
    """
    module, sep, rest = nodeid.partition("::")
    if test_file is not None and rootdir is not None:
        module = _relative_module(test_file, rootdir)
    parts = [p for p in module.replace("\\", "/").split("/") if p not in ("", ".")]
    if parts and parts[-1].endswith(".py"):
        parts[-1] = parts[-1][: -len(".py")]
    dirs = [_safe_dir(p) for p in parts]
    # class and function joined with "."; a "::" inside a parametrize id is left to _safe_name
    base, bracket, params = rest.partition("[")
    name = base.replace("::", ".") + bracket + params if sep and rest else "_module"
    return Path(cassette_dir, *dirs, _safe_name(name) + ".json")


def _relative_module(test_file: Path, rootdir: Path) -> str:
    try:
        return Path(os.path.relpath(test_file, rootdir)).as_posix()
    except ValueError:  # another drive (Windows): no relative path; name it by its location
        digest = hashlib.sha256(str(test_file.parent).encode("utf-8", "surrogatepass"))
        return f"__outside__/{test_file.parent.name}-{digest.hexdigest()[:8]}/{test_file.name}"


def cassette_conflicts(tests: Iterable[tuple[str, Path]]) -> dict[str, str]:
    """Tests that would share a cassette: ``{test: message}`` for each of them.

    ``tests`` holds ``(test as the user names it, its cassette path)`` pairs.
    Paths differing only in letter case count as one: they are one file on the
    file systems of macOS and Windows.
    """
    by_path: dict[str, list[tuple[str, Path]]] = {}
    for test, path in tests:
        by_path.setdefault(str(path).casefold(), []).append((test, path))
    found: dict[str, str] = {}
    for group in by_path.values():
        if len(group) < 2:
            continue
        names = ", ".join(test for test, _ in group)
        for test, path in group:
            found[test] = (
                f"{names} would share the cassette {_display(path)}: recording one would "
                "overwrite the other. Rename one of the test functions or test files (or a "
                "directory above it) so that their cassette paths differ."
            )
    return found


def _safe_dir(part: str) -> str:
    if part == "..":  # a test file outside rootdir must not escape cassette_dir
        return "__"
    return _UNSAFE_DIR.sub("_", part)


def _safe_name(name: str) -> str:
    cleaned = _UNSAFE_NAME.sub("_", name)
    if cleaned.startswith("."):
        cleaned = "_" + cleaned[1:]
    if cleaned != name or len(cleaned) > _MAX_NAME:
        digest = hashlib.sha256(name.encode("utf-8", "surrogatepass")).hexdigest()[:8]
        cleaned = f"{cleaned[:_MAX_NAME]}-{digest}"
    return cleaned


def _display(path: Path) -> str:
    with contextlib.suppress(ValueError):
        return str(path.resolve().relative_to(Path.cwd().resolve()))
    return str(path)


def drift_save_path(settings: Settings, cassette: Path) -> Path | None:
    """Where a drift check writes the live twin of ``cassette`` (``None``: nowhere).

    The same relative path under ``--rolecheck-drift-save`` as under the cassette
    directory, so that promoting a recording is a copy.
    """
    if not settings.drift_save:
        return None
    root = Path(settings.drift_save)
    root = root if root.is_absolute() else settings.rootdir / root
    try:
        relative = cassette.relative_to(settings.rootdir / settings.cassette_dir)
    except ValueError:
        relative = Path(cassette.name)
    return root / relative


def default_cassette_path(settings: Settings, nodeid: str, test_file: Path | None) -> Path:
    """The cassette of the test ``nodeid`` defined in ``test_file``."""
    return cassette_path(
        settings.rootdir / settings.cassette_dir,
        nodeid,
        test_file=test_file,
        rootdir=settings.rootdir,
    )
