"""Tests of the HTML report and its plots, from rows built with compare() (no network)."""

from __future__ import annotations

import base64
import re
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from _factories import make_response, random_response

from pytest_rolecheck.core.divergence import divergence_insight
from pytest_rolecheck.errors import RolecheckError, RolecheckUsageError
from pytest_rolecheck.reporting.html import write_html_report
from pytest_rolecheck.verdicts.compare import compare
from pytest_rolecheck.verdicts.toolcalls import compare_tool_calls

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
IMG = re.compile(r'<img src="data:image/png;base64,([A-Za-z0-9+/=]+)"')


def row_for(
    kind: str, result: Any, *, nodeid: str = "tests/test_roles.py::test_roles", insight: bool = True
) -> dict[str, Any]:
    """A summary row shaped like the plugin's (``Rolecheck._add_row``)."""
    details = result.to_dict()
    row: dict[str, Any] = {
        "nodeid": nodeid,
        "kind": kind,
        "title": f"{result.labels[0]} vs {result.labels[1]}",
        "verdict": result.verdict,
        "n_a": result.n_a,
        "n_b": result.n_b,
        **{
            k: details.get(k)
            for k in ("p_value", "floor", "change", "change_upper", "tolerance", "tv", "tv_upper")
        },
        "deterministic": details.get("deterministic"),
        "calls": 21,
        "prompt_tokens": 120,
        "completion_tokens": 400,
        "source": "replayed",
        "details": details,
    }
    if insight and kind == "logprobs":
        row["insight"] = divergence_insight(
            result.calls_a, result.calls_b, metric=result.metric, labels=result.labels
        )
    return row


def _arms(shift: float, seed: int, n: int = 10) -> tuple[list[Any], list[Any]]:
    rng = np.random.default_rng(seed)
    a = [random_response(rng, n_tokens=12, top_k=10, noise=0.05) for _ in range(n)]
    b = [random_response(rng, n_tokens=12, top_k=10, noise=0.05, shift=shift) for _ in range(n)]
    return a, b


@pytest.fixture(scope="module")
def results() -> dict[str, Any]:
    a, b = _arms(shift=2.0, seed=1)
    same = [make_response([("Yes", -0.1, [("Yes", -0.1), ("No", -2.4)])]) for _ in range(5)]
    calls = [("get_weather", '{"city":"Paris"}')]
    tools_a = [make_response([], tool_calls=calls, logprobs=False) for _ in range(6)]
    tools_b = [make_response([], tool_calls=calls, logprobs=False) for _ in range(3)] + [
        make_response([], tool_calls=[("get_time", "{}")], logprobs=False) for _ in range(3)
    ]
    return {
        "different": compare(a, b, labels=("developer", "system")),
        "seed": compare([a[0], *a[1:]], b, design="seed", labels=("developer", "system")),
        "deterministic": compare(same, same, labels=("helpful", "helpful <b>copy</b>")),
        "tools": compare_tool_calls(tools_a, tools_b, labels=("api tools", "prompt tools")),
    }


@pytest.fixture(scope="module")
def report(results: Mapping[str, Any], tmp_path_factory: pytest.TempPathFactory) -> Path:
    pytest.importorskip("matplotlib")
    rows = [
        row_for("logprobs", results["different"]),
        row_for("logprobs", results["seed"], nodeid="tests/test_roles.py::test_seed"),
        row_for("logprobs", results["deterministic"], insight=False),
        row_for("tool-calls", results["tools"], nodeid="tests/test_tools.py::test_tools"),
    ]
    return write_html_report(rows, tmp_path_factory.mktemp("report"))


@pytest.fixture(scope="module")
def page(report: Path) -> str:
    return report.read_text(encoding="utf-8")


def test_report_file_and_pngs(report: Path) -> None:
    assert report.name == "rolecheck-report.html"
    pngs = sorted(p.name for p in (report.parent / "png").iterdir())
    assert pngs == [
        "01-developer-vs-system-alternatives.png",
        "01-developer-vs-system-distances.png",
        "01-developer-vs-system-divergence.png",
        "02-developer-vs-system-alternatives.png",
        "02-developer-vs-system-distances.png",
        "02-developer-vs-system-divergence.png",
        "03-helpful-vs-helpful-b-copy-b-distances.png",
        "04-api-tools-vs-prompt-tools-tool-calls.png",
    ]
    for name in pngs:
        assert (report.parent / "png" / name).read_bytes().startswith(PNG_MAGIC)


def test_images_are_embedded_pngs(page: str, report: Path) -> None:
    images = IMG.findall(page)
    assert len(images) == 8
    for data in images:
        assert base64.b64decode(data).startswith(PNG_MAGIC)
    embedded = {base64.b64decode(d) for d in images}
    on_disk = {p.read_bytes() for p in (report.parent / "png").iterdir()}
    assert embedded == on_disk


def test_self_contained(page: str) -> None:
    assert "http://" not in page
    assert "https://" not in page
    assert "<script" not in page
    assert "<link" not in page


def test_verdicts_and_numbers(page: str, results: Mapping[str, Any]) -> None:
    different = results["different"]
    assert different.verdict == "different"
    assert results["deterministic"].verdict == "equivalent"
    assert page.count('<span class="verdict different">DIFFERENT</span>') >= 2
    assert '<span class="verdict equivalent">EQUIVALENT</span>' in page
    # the numbers in plain words, formatted as in the report (4 significant digits)
    assert f"{different.cross:.4g} bits on average" in page
    assert f"a change of <b>{different.change:.4g}</b>" in page
    assert f"<b>{different.change_upper:.3g}</b>; equivalence needs" in page
    assert "Deterministic backend" in page
    assert different.headline in page.replace("&lt;", "<").replace("&gt;", ">")
    tools = results["tools"]
    assert f"<b>{tools.tv:.3g}</b>" in page


def test_seed_design_per_trial_table(page: str, results: Mapping[str, Any]) -> None:
    seed = results["seed"]
    assert "Per-trial distances to the baseline (seed design)" in page
    first = seed.trial_distances_a[0]
    assert f"<td class='num'>{first:.4g}</td>" in page
    assert f"<td class='num'>{seed.summary_b.max:.4g}</td>" in page


def test_all_pairs_per_call_table(page: str, results: Mapping[str, Any]) -> None:
    different = results["different"]
    matrix = np.asarray(different.matrix)
    own = np.delete(matrix[0, :10], 0).mean()
    assert "Per-call distances (all-pairs design)" in page
    assert f"<td>developer #1</td><td class='num'>{own:.4g}</td>" in page


def test_texts_and_divergence_highlight(page: str) -> None:
    assert "<mark>" in page
    assert "Outputs of developer:" in page


def test_labels_are_escaped(page: str) -> None:
    assert "helpful &lt;b&gt;copy&lt;/b&gt;" in page
    assert "<b>copy</b>" not in page


def test_row_without_insight_says_so(page: str) -> None:
    assert "No token-level insight in this report row" in page


def test_empty_run(tmp_path: Path) -> None:
    pytest.importorskip("matplotlib")
    path = write_html_report([], tmp_path)
    assert "No comparisons were made" in path.read_text(encoding="utf-8")


def test_bad_rows(tmp_path: Path) -> None:
    with pytest.raises(RolecheckUsageError, match="list of comparison rows"):
        write_html_report({"comparisons": []}, tmp_path)  # type: ignore[arg-type]
    with pytest.raises(RolecheckUsageError, match="row 0 is a str"):
        write_html_report(["x"], tmp_path)  # type: ignore[list-item]


def test_without_matplotlib_the_error_names_the_extra(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(sys.modules, "matplotlib", None)
    with pytest.raises(RolecheckError, match=r"pip install 'pytest-rolecheck\[report\]'"):
        write_html_report([], tmp_path)
    assert not (tmp_path / "rolecheck-report.html").exists()
