"""The benchmarks' generated suites still replay the shipped cassettes they copy."""

from __future__ import annotations

import importlib.util
import os
import subprocess
import sys
from pathlib import Path
from types import ModuleType

import pytest

ROOT = Path(__file__).resolve().parents[1]


def _bench(name: str) -> ModuleType:
    spec = importlib.util.spec_from_file_location(f"bench_{name}", ROOT / "bench" / f"{name}.py")
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up there
    spec.loader.exec_module(module)
    return module


def test_memory_bench_suite_replays_and_passes(tmp_path: Path) -> None:
    # A re-recorded cassette whose verdict changed made every generated test fail.
    memory = _bench("memory")
    memory.make_project(tmp_path, 2)
    env = dict(os.environ, ROLECHECK_MEMORY_OUT=str(tmp_path / "memory.json"))
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), env.get("PYTHONPATH")]))
    env.pop("OPENAI_BASE_URL", None)
    result = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider"],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stdout[-2000:]
    assert "2 passed" in result.stdout


def test_speed_bench_worst_case_compares_every_position() -> None:
    # The matrix target (moved here from a timed unit test) needs calls that never diverge.
    fast_ms, slow_ms = _bench("speed")._matrix_ratio(1)
    assert fast_ms > 0
    assert slow_ms > 0


def test_text_speed_bench_times_equal_matrices() -> None:
    # measure() refuses to time an engine matrix that differs from the plain-Python one.
    text_speed = _bench("text_speed")
    fast_ms, slow_ms = text_speed.measure(text_speed.answers()[:6], 1)
    assert fast_ms >= 0
    assert slow_ms > 0


def test_replay_bench_suite_times_every_test_and_the_sdk(monkeypatch: pytest.MonkeyPatch) -> None:
    # The suite part of replay.py: a generated suite that replays, and the SDK's limit.
    monkeypatch.syspath_prepend(str(ROOT / "bench"))  # it imports memory.py
    suite = _bench("_suite_replay")
    assert min(suite.plugin_per_call_ms(2)) > 0
    assert min(suite.sdk_per_call_ms(1)) > 0


def test_cassette_size_bench_reads_both_formats_back_equal(
    capsys: pytest.CaptureFixture[str],
) -> None:
    # measure() refuses a v2 text that reads back other responses than the v1 one.
    assert _bench("cassette_size").main(["--synthetic-only", "--repeats", "1"]) == 0
    out = capsys.readouterr().out
    assert "synthetic: 20 tokens x top-20" in out
    assert "target met" in out
