"""What having the plugin installed costs a suite that does not use it.

Run ``python bench/import_cost.py``. In a temporary directory holding one
trivial test file, ``python -m pytest --collect-only -q`` runs in fresh
subprocesses with the plugin enabled and disabled (``-p no:rolecheck``),
interleaved (ABBA order), ``--repeats`` times each (at least 15). The
difference is the plugin's own start-up: importing ``pytest_rolecheck.plugin``,
registering its options, ini keys and marker, and its configure hook.

By default the other installed pytest plugins are not loaded in either arm
(``PYTEST_DISABLE_PLUGIN_AUTOLOAD=1``; the enabled arm loads ours with
``-p pytest_rolecheck.plugin``): some of them take a second or more to import,
and that noise would swamp a 50 ms difference. ``--all-plugins`` measures the
literal setup instead (every installed plugin autoloaded, ours through its
entry point), which is slower and much noisier (runs spread over +-100 ms on a
busy 2-core machine, so 50 ms needs far more than 15 repeats to resolve);
modules other plugins already imported are then free for ours, so the default
is the stricter measure.

Also checked: importing the plugin module loads none of numpy, scipy, openai,
vcrpy or httpx2 (they must wait until a test makes calls).

Target: median(enabled) - median(disabled) <= 50 ms, and no heavy import.
When over target (or with ``--importtime``), the modules the plugin imports
beyond pytest's own are listed from ``python -X importtime``. Exit status 1 if
a target is missed.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from importlib.metadata import entry_points
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
TARGET_MS = 50.0
MIN_REPEATS = 15
HEAVY = ("numpy", "scipy", "openai", "vcr", "httpx2")
TEST_FILE = "def test_nothing():\n    assert True\n"


def plugin_installed() -> bool:
    return any(ep.name == "rolecheck" for ep in entry_points(group="pytest11"))


def child_env(*, autoload: bool, pycache: Path | None = None) -> dict[str, str]:
    env = dict(os.environ)
    if pycache is not None:
        # an installed package has its bytecode compiled; a shell with
        # PYTHONDONTWRITEBYTECODE=1 would recompile the plugin in every process
        env.pop("PYTHONDONTWRITEBYTECODE", None)
        env["PYTHONPYCACHEPREFIX"] = str(pycache)
    # measure this checkout, whatever else is installed
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(ROOT), env.get("PYTHONPATH")) if p)
    for name in ("PYTEST_ADDOPTS", "PYTEST_PLUGINS", "PYTEST_DISABLE_PLUGIN_AUTOLOAD"):
        env.pop(name, None)
    if not autoload:
        env["PYTEST_DISABLE_PLUGIN_AUTOLOAD"] = "1"
    return env


def run(cmd: list[str], cwd: Path, env: dict[str, str]) -> tuple[float, int, str]:
    start = time.perf_counter()
    done = subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True, timeout=120)
    return time.perf_counter() - start, done.returncode, done.stdout + done.stderr


def heavy_imports(env: dict[str, str]) -> list[str]:
    code = (
        "import sys, pytest_rolecheck.plugin\n"
        f"print(' '.join(m for m in {HEAVY!r} if m in sys.modules))"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=120
    )
    if done.returncode != 0:
        raise SystemExit(f"importing the plugin failed:\n{done.stderr}")
    return done.stdout.split()


def import_offenders(env: dict[str, str], top: int = 15) -> list[tuple[int, int, str]]:
    """(self us, cumulative us, module) the plugin imports beyond ``import pytest``."""
    done = subprocess.run(
        [sys.executable, "-X", "importtime", "-c", "import pytest; import pytest_rolecheck.plugin"],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    rows: list[tuple[int, int, str]] = []
    after_pytest = False
    for line in done.stderr.splitlines():  # "import time: <self> | <cumulative> | <name>"
        if not line.startswith("import time:") or "[us]" in line:
            continue
        own, cumulative, name = line[len("import time:") :].split("|", 2)
        if not after_pytest:
            after_pytest = name.rstrip() == " pytest"  # pytest's own top-level line
            continue
        rows.append((int(own), int(cumulative), name.rstrip()))
    return sorted(rows, key=lambda row: -row[1])[:top]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--repeats", type=int, default=20, help=f"runs per arm (default 20, min {MIN_REPEATS})"
    )
    parser.add_argument("--importtime", action="store_true", help="always list slow imports")
    parser.add_argument(
        "--no-bytecode-cache",
        action="store_true",
        help="keep the environment's bytecode setting (e.g. PYTHONDONTWRITEBYTECODE=1)",
    )
    parser.add_argument(
        "--all-plugins",
        action="store_true",
        help="autoload every installed pytest plugin in both arms (slow, noisy)",
    )
    args = parser.parse_args(argv)
    if args.repeats < MIN_REPEATS:
        parser.error(f"--repeats must be >= {MIN_REPEATS}")

    tmp_dir = tempfile.TemporaryDirectory(prefix="rolecheck-import-")
    suite = Path(tmp_dir.name) / "suite"
    suite.mkdir()
    pycache = None if args.no_bytecode_cache else Path(tmp_dir.name) / "pycache"
    env = child_env(autoload=args.all_plugins, pycache=pycache)
    by_entry_point = args.all_plugins and plugin_installed()
    base = [sys.executable, "-m", "pytest", "--collect-only", "-q", "-p", "no:cacheprovider"]
    arms = {
        "plugin enabled": base + ([] if by_entry_point else ["-p", "pytest_rolecheck.plugin"]),
        "plugin disabled": [*base, "-p", "no:rolecheck"],
    }
    with tmp_dir:
        (suite / "pytest.ini").write_text("[pytest]\n", encoding="utf-8")
        (suite / "test_empty.py").write_text(TEST_FILE, encoding="utf-8")

        _check_arms(arms, suite, env)
        times = _time_arms(arms, suite, env, args.repeats)
        heavy = heavy_imports(child_env(autoload=False, pycache=pycache))
        offenders = import_offenders(child_env(autoload=False, pycache=pycache))
    if args.all_plugins:
        how = "every installed plugin autoloaded, ours " + (
            "by its entry point" if by_entry_point else "by -p (entry point not installed)"
        )
    else:
        how = "other plugins not loaded, ours by -p pytest_rolecheck.plugin"
    how += "; bytecode " + ("as the environment sets it" if pycache is None else "cached")
    within = _report(times, how)
    print(
        "heavy modules loaded by `import pytest_rolecheck.plugin`: "
        f"{', '.join(heavy) or 'none'} -> {'FAIL' if heavy else 'PASS'}"
    )
    if args.importtime or not within or heavy:
        print("\nslowest imports of pytest_rolecheck.plugin beyond `import pytest`")
        print("(python -X importtime -c 'import pytest; import pytest_rolecheck.plugin'):")
        print(f"  {'self ms':>8} {'cumul. ms':>10}  module")
        for own, cumulative, name in offenders:
            print(f"  {own / 1e3:>8.1f} {cumulative / 1e3:>10.1f}  {name}")
    return 0 if within and not heavy else 1


def _check_arms(arms: dict[str, list[str]], suite: Path, env: dict[str, str]) -> None:
    """Untimed: both arms work, and only the enabled one knows the plugin's options."""
    for name, cmd in arms.items():
        _, code, out = run([*cmd, "--rolecheck-record-mode=none"], suite, env)
        if (code == 0) != (name == "plugin enabled"):
            raise SystemExit(f"{name}: unexpected exit code {code} with a plugin option:\n{out}")
        _, code, out = run(cmd, suite, env)  # also warms the bytecode caches
        if code != 0 or "1 test collected" not in out:
            raise SystemExit(f"{name}: collection failed (exit {code}):\n{out}")


def _time_arms(
    arms: dict[str, list[str]], suite: Path, env: dict[str, str], repeats: int
) -> dict[str, list[float]]:
    """Milliseconds per run of each arm, alternating which runs first."""
    names = list(arms)
    times: dict[str, list[float]] = {name: [] for name in names}
    for repeat in range(repeats):
        for name in names if repeat % 2 == 0 else names[::-1]:
            elapsed, code, out = run(arms[name], suite, env)
            if code != 0:
                raise SystemExit(f"{name}: exit {code}:\n{out}")
            times[name].append(elapsed * 1e3)
    return times


def _report(times: dict[str, list[float]], how: str) -> bool:
    """Print the table and the added time; return whether it is within the target."""
    medians = {name: statistics.median(values) for name, values in times.items()}
    added = medians["plugin enabled"] - medians["plugin disabled"]
    paired = statistics.median(
        a - b for a, b in zip(times["plugin enabled"], times["plugin disabled"], strict=True)
    )
    print(
        f"pytest --collect-only -q on a one-test suite, fresh process each, "
        f"{len(times['plugin enabled'])} runs per arm, interleaved; {how}"
    )
    header = f"{'':<18} {'median ms':>10} {'min ms':>8} {'max ms':>8}"
    print(header)
    print("-" * len(header))
    for name, values in times.items():
        print(f"{name:<18} {medians[name]:>10.1f} {min(values):>8.1f} {max(values):>8.1f}")
    print()
    within = added <= TARGET_MS
    ratio = medians["plugin enabled"] / medians["plugin disabled"]
    print(
        f"added by the plugin: {added:.1f} ms (difference of medians; median of paired "
        f"differences {paired:.1f} ms; ratio {ratio:.3f}); "
        f"target <= {TARGET_MS:.0f} ms -> {'PASS' if within else 'FAIL'}"
    )
    return within


if __name__ == "__main__":
    sys.exit(main())
