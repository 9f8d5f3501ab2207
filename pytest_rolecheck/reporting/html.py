"""One self-contained HTML report per run: verdicts in plain words, plots, per-call numbers.

:func:`write_html_report` takes the summary rows of a run (the dicts of the JSON
report, see :mod:`pytest_rolecheck.reporting.summary`) and writes ``rolecheck-report.html``
into a directory, with every plot embedded as a base64 PNG (no network, no
scripts, no external files needed to view it) and also saved as a PNG file under
``png/`` for embedding elsewhere.

Rows of kind ``"logprobs"`` get the distance strip/box plot and, when the row
carries an ``insight`` (:func:`pytest_rolecheck.core.divergence.divergence_insight`),
the per-position divergence and the top alternatives at the first diverging
position. Rows of kind ``"tool-calls"`` get the outcome counts as bars. A
prompt-set row (``details["cases"]``) gets its per-case table instead: every
case sorted by change, with p- and q-values and each moved case's typical texts.

All text from the rows (labels, test ids, model outputs) is escaped with
:func:`html.escape`; nothing from a row can inject markup.
"""

from __future__ import annotations

import base64
import html
import re
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

import numpy as np

from .. import __version__
from ..core.divergence import display_token
from ..errors import RolecheckUsageError
from ..verdicts.numbers import fmt_p, fmt_value
from ..verdicts.wording import row_advice, row_headline, row_texts
from ..verdicts.wording.details import row_sentences
from ..verdicts.wording.sets import set_row_sentences
from .row import Row, Totals
from .summary import as_rows

__all__ = ["REPORT_FILENAME", "write_html_report"]

REPORT_FILENAME: Final = "rolecheck-report.html"
PNG_DIR: Final = "png"
_MAX_TEXT: Final = 2000

_CSS: Final = """
body { font: 14px/1.45 system-ui, -apple-system, "Segoe UI", sans-serif; color: #1d1d1d;
       max-width: 1100px; margin: 2em auto; padding: 0 1em; }
h1 { font-size: 1.5em; margin-bottom: .2em; }
h2 { font-size: 1.2em; margin-top: 2.2em; border-top: 1px solid #ddd; padding-top: 1em; }
code, pre, .mono { font-family: ui-monospace, "SFMono-Regular", Menlo, Consolas, monospace;
                   font-size: 12.5px; }
pre { background: #f6f6f6; padding: .6em .8em; white-space: pre-wrap; word-break: break-word;
      margin: .3em 0; }
table { border-collapse: collapse; margin: .6em 0; }
th, td { border-bottom: 1px solid #e4e4e4; padding: .25em .7em; text-align: left;
         vertical-align: top; }
th { background: #fafafa; font-weight: 600; }
td.num { text-align: right; font-variant-numeric: tabular-nums; }
.verdict { display: inline-block; padding: .05em .5em; border-radius: 3px; font-weight: 600;
           font-size: .9em; }
.equivalent { background: #dff3e4; color: #14532d; }
.different { background: #fde2e1; color: #7f1d1d; }
.inconclusive { background: #fdf1d6; color: #78350f; }
.meta { color: #555; }
.headline { font-size: 1.05em; }
.advice { background: #f3f7fd; border-left: 3px solid #0072B2; padding: .5em .8em; }
.warning { color: #7f1d1d; }
figure { margin: 1em 0; }
figure img { max-width: 100%; height: auto; border: 1px solid #eee; }
figcaption { color: #555; font-size: .92em; }
mark { background: #ffe0c2; }
details { margin: .6em 0; }
summary { cursor: pointer; font-weight: 600; }
"""


@dataclass(frozen=True, slots=True)
class _Image:
    path: Path
    png: bytes
    alt: str
    caption: str


# The one formatter (verdicts.numbers), escaped for HTML.
def _fmt(value: Any, digits: int = 4) -> str:
    return html.escape(fmt_value(value, digits))


def _p(value: Any) -> str:
    return html.escape(fmt_p(value))


def _e(value: Any) -> str:
    return html.escape(str(value), quote=True)


def _slug(text: str, limit: int = 60) -> str:
    slug = re.sub(r"[^A-Za-z0-9]+", "-", text).strip("-").lower()
    return (slug[:limit].rstrip("-")) or "comparison"


def _check_rows(rows: Any) -> list[Row]:
    if isinstance(rows, Mapping | str | bytes):
        raise RolecheckUsageError(
            "write_html_report needs the list of comparison rows (the 'comparisons' list of a "
            "JSON report, or Rolecheck.rows), not a single mapping or string."
        )
    checked = list(rows)
    for i, row in enumerate(checked):
        if not isinstance(row, Mapping | Row):
            raise RolecheckUsageError(
                f"row {i} is a {type(row).__name__}, not a mapping; pass the 'comparisons' rows "
                "of a JSON report (pytest --rolecheck-report=PATH.json) unchanged."
            )
    return as_rows(checked)


# --------------------------------------------------------------------------- plots


def _plots_for(row: Row, index: int, png_dir: Path) -> list[_Image]:
    from . import plots as _plots

    details = row.details
    stem = f"{index:02d}-{_slug(row.title or row.nodeid or 'comparison')}"
    images: list[_Image] = []

    def add(kind: str, figure: Any, alt: str, caption: str) -> None:
        png = _plots.figure_png(figure)
        path = png_dir / f"{stem}-{kind}.png"
        path.write_bytes(png)
        images.append(_Image(path=path, png=png, alt=alt, caption=caption))

    if row.kind == "calls":
        return images
    if row.kind == "tool-calls":
        if details.get("outcomes"):
            add(
                "tool-calls",
                _plots.plot_tool_calls(details),
                "bar chart of tool-call outcome counts per arm",
                "How often each arm produced each tool-call outcome (which function, which "
                "arguments, or no call).",
            )
        return images
    if details.get("matrix") or details.get("trial_distances_a"):
        seed = details.get("design") == "seed"
        add(
            "distances",
            _plots.plot_distances(details),
            "strip and box plot of the distances between calls",
            (
                "Each point is one trial's distance to the baseline call; if the arms behave "
                "the same, both clouds sit at the same height."
                if seed
                else "Each point is the distance between two calls. If the arms behave the "
                "same, pairs across the arms are no further apart than pairs within an arm."
            ),
        )
    insight = row.insight
    # No focus: a typical call has no tokens, so there is nothing to show per position.
    if isinstance(insight, Mapping) and insight.get("focus"):
        add(
            "divergence",
            _plots.plot_divergence(insight),
            "per-position divergence along the completion",
            "Per-token distance between a typical call of each arm, up to the first token "
            "where they differ, with the same quantity averaged over pairs of calls for "
            "comparison.",
        )
        add(
            "alternatives",
            _plots.plot_alternatives(insight),
            "top alternative tokens of both arms at the first diverging position",
            "The most likely next tokens of each arm's typical call at that position; "
            "'not listed' means the token was outside that call's top alternatives.",
        )
    return images


def _figure_html(image: _Image) -> str:
    data = base64.b64encode(image.png).decode("ascii")
    return (
        f'<figure><img src="data:image/png;base64,{data}" alt="{_e(image.alt)}">'
        f"<figcaption>{_e(image.caption)} <span class='mono'>({_e(image.path.name)})</span>"
        "</figcaption></figure>"
    )


# --------------------------------------------------------------------------- text


def _verdict(verdict: Any) -> str:
    v = str(verdict or "unknown")
    return f'<span class="verdict {_e(v)}">{_e(v.upper())}</span>'


def _plain_words_logprobs(row: Row, d: Mapping[str, Any]) -> list[str]:
    texts = row_texts(row)
    head = [_e(texts)] if texts else []
    return head + row_sentences("logprobs", d, row.labels, esc=_e, bold=_bold)


def _plain_words_tools(row: Row, d: Mapping[str, Any]) -> list[str]:
    return row_sentences("tool-calls", d, row.labels, esc=_e, bold=_bold)


def _bold(html_text: str) -> str:
    return f"<b>{html_text}</b>"


def _numbers_table(row: Row, d: Mapping[str, Any]) -> str:
    # The cells the terminal prints, so the two cannot disagree on a number.
    cells = row.cells()
    items = [("calls per arm", cells["n"])]
    if row.is_set:
        items.append(("cases, metric", f"{len(d['cases'])}, {_e(d.get('metric', '—'))}"))
        items.append(("set change [upper bound]", cells["effect"]))
    elif row.kind == "tool-calls":
        items.append(("TV distance [upper bound]", cells["effect"].removeprefix("TV ")))
    elif row.kind == "logprobs":
        items.append(("design, metric", f"{_e(d.get('design', '—'))}, {_e(d.get('metric', '—'))}"))
        items.append(("change [upper bound]", cells["effect"]))
    if row.is_comparison:
        items.append(("tolerance", cells["tolerance"]))
        items.append(("p-value", _e(cells["p"])))
    if row.kind == "logprobs":
        items.append(("Cliff's delta", _fmt(d.get("cliffs_delta"), 2)))
    items.append(("calls made, tokens", f"{cells['calls']}, {cells['tokens']}"))
    items.append(("source", _e(cells["source"] or "—")))
    if row.priced:
        items.append(("cost", _e(cells["cost"])))
    body = "".join(f"<tr><th>{k}</th><td class='num'>{v}</td></tr>" for k, v in items)
    return f"<table class='numbers'>{body}</table>"


def _per_call_table(row: Row) -> str:
    d = row.details
    a, b = row.labels
    if d.get("design") == "seed" and d.get("trial_distances_a") is not None:
        da = list(d.get("trial_distances_a") or [])
        db = list(d.get("trial_distances_b") or [])
        rows = [
            f"<tr><td class='num'>{i + 1}</td>"
            f"<td class='num'>{_fmt(da[i]) if i < len(da) else ''}</td>"
            f"<td class='num'>{_fmt(db[i]) if i < len(db) else ''}</td></tr>"
            for i in range(max(len(da), len(db)))
        ]
        stats: list[tuple[str, Callable[[Any], Any]]] = [
            ("mean", np.mean),
            ("std", np.std),
            ("min", np.min),
            ("max", np.max),
        ]
        rows += [
            f"<tr><th>{name}</th><td class='num'>{_stat(da, fn)}</td>"
            f"<td class='num'>{_stat(db, fn)}</td></tr>"
            for name, fn in stats
        ]
        return (
            "<details open><summary>Per-trial distances to the baseline (seed design)</summary>"
            f"<table><tr><th>trial</th><th>{_e(a)}</th><th>{_e(b)}</th></tr>"
            + "".join(rows)
            + "</table><p class='meta'>std with ddof=0, as numpy computes it (the seed's "
            "printout).</p></details>"
        )
    matrix = d.get("matrix")
    n_a = d.get("n_a")
    if not matrix or not isinstance(n_a, int):
        return ""
    m = np.array([[np.nan if x is None else x for x in r] for r in matrix], dtype=float)
    n = m.shape[0]
    rows = []
    for i in range(n):
        own = slice(0, n_a) if i < n_a else slice(n_a, n)
        other = slice(n_a, n) if i < n_a else slice(0, n_a)
        own_values = np.delete(m[i, own], i if i < n_a else i - n_a)
        arm = a if i < n_a else b
        number = i + 1 if i < n_a else i - n_a + 1
        rows.append(
            f"<tr><td>{_e(arm)} #{number}</td><td class='num'>{_fmt(np.nanmean(own_values))}</td>"
            f"<td class='num'>{_fmt(np.nanmean(m[i, other]))}</td></tr>"
        )
    return (
        "<details><summary>Per-call distances (all-pairs design)</summary>"
        "<table><tr><th>call</th><th>mean distance to the other calls of its arm</th>"
        "<th>mean distance to the calls of the other arm</th></tr>"
        + "".join(rows)
        + "</table></details>"
    )


def _per_case_table(row: Row) -> str:
    """Every case of a prompt set, largest change first; a moved case with its typical texts."""
    a, b = row.labels
    cases = sorted(
        (c for c in row.details["cases"] if isinstance(c, Mapping)),
        key=lambda c: -float(c["change"]) if isinstance(c.get("change"), int | float) else 0.0,
    )
    rows = []
    for c in cases:
        texts = ""
        if c.get("status") == "changed":
            texts = "".join(
                f"<p>{_e(label)}:</p><pre>{_e(str(c.get(key) or '')[:_MAX_TEXT])}</pre>"
                for label, key in ((a, "typical_text_a"), (b, "typical_text_b"))
            )
        rows.append(
            f"<tr class='case'><td class='mono'>{_e(c.get('id'))}</td><td>{_e(c.get('status'))}"
            f"</td><td class='num'>{_fmt(c.get('change'), 3)}</td>"
            f"<td class='num'>{_p(c.get('p_value'))}</td><td class='num'>{_p(c.get('q_value'))}"
            f"</td><td>{texts}</td></tr>"
        )
    return (
        "<details open><summary>Per case, largest change first (q: Benjamini-Hochberg "
        "adjusted p-value; a case moved when q &lt;= alpha)</summary>"
        "<table class='cases'><tr><th>case</th><th>status</th><th>change</th><th>p</th>"
        "<th>q</th><th>typical texts (moved cases)</th></tr>" + "".join(rows) + "</table></details>"
    )


def _stat(values: Sequence[Any], fn: Callable[[Any], Any]) -> str:
    clean = [float(v) for v in values if v is not None]
    return _fmt(float(fn(clean))) if clean else "—"


def _texts_html(row: Row) -> str:
    d, insight = row.details, row.insight
    a, b = row.labels
    parts: list[str] = []
    if insight and insight.get("representatives"):
        reps = insight["representatives"]
        div = insight.get("divergence")
        for key, label in (("a", a), ("b", b)):
            rep = reps.get(key) or {}
            tokens = [str(t) for t in rep.get("tokens") or []]
            if div is not None and tokens:
                body = _e("".join(tokens[:div])) + "<mark>" + _e("".join(tokens[div:])) + "</mark>"
            else:
                body = _e(str(rep.get("text", ""))[:_MAX_TEXT])
            parts.append(
                f"<p>Typical call of {_e(label)} (#{int(rep.get('index', 0)) + 1}"
                + (
                    f"; highlighted from the first diverging token, "
                    f"{_e(display_token(tokens[div]))}"
                    if div is not None and div < len(tokens)
                    else ""
                )
                + f"):</p><pre>{body}</pre>"
            )
    for key, label in (("texts_a", a), ("texts_b", b)):
        texts = d.get(key)
        if not texts:
            continue
        counts = Counter(str(t) for t in texts)
        items = "".join(
            f"<tr><td class='num'>{c}×</td><td><pre>{_e(t[:_MAX_TEXT])}</pre></td></tr>"
            for t, c in counts.most_common()
        )
        parts.append(
            f"<details><summary>Outputs of {_e(label)}: {len(counts)} distinct text"
            f"{'s' if len(counts) != 1 else ''} in {len(texts)} calls</summary>"
            f"<table>{items}</table></details>"
        )
    return "".join(parts)


def _section(row: Row, index: int, images: Sequence[_Image]) -> str:
    d = row.details
    if row.is_set:
        words = set_row_sentences(d, row.labels, esc=_e, bold=_bold)
    elif row.kind == "tool-calls":
        words = _plain_words_tools(row, d)
    elif row.kind == "logprobs":
        words = _plain_words_logprobs(row, d)
    else:
        words = ["The test ran calls and compared none of them with rolecheck."]
    out = [
        f"<section id='c{index}'>",
        f"<h2>{index}. {_e(row.compared or 'comparison')} {_verdict(row.verdict)}</h2>",
        f"<p class='meta mono'>{_e(row.nodeid or '(outside pytest)')}</p>",
    ]
    headline = row_headline(row)
    if headline:
        out.append(f"<p class='headline'>{_e(headline)}</p>")
    out.append("<ul>" + "".join(f"<li>{w}</li>" for w in words) + "</ul>")
    for note in d.get("notes") or []:
        out.append(f"<p>Note: {_e(note)}</p>")
    for warning in d.get("warnings") or []:
        out.append(f"<p class='warning'>Warning: {_e(warning)}</p>")
    out.append(_numbers_table(row, d))
    out.extend(_figure_html(image) for image in images)
    if row.is_set:
        out.append(_per_case_table(row))
    elif row.kind == "logprobs":
        if not row.insight:
            out.append(
                "<p class='meta'>No token-level insight in this report row, so the "
                "per-position plots are missing (they need a row['insight'] from a current "
                "pytest-rolecheck).</p>"
            )
        out.append(_per_call_table(row))
        out.append(_texts_html(row))
    advice = row_advice(row)
    if advice:
        out.append(f"<p class='advice'><b>Next:</b> {_e(advice)}</p>")
    out.append("</section>")
    return "\n".join(out)


def _summary(rows: Sequence[Row]) -> str:
    totals = Totals.of(rows)
    cost = totals.cost_text()
    head = (
        f"<p class='meta'>{_e(totals.comparisons_text())}; {_e(totals.calls_text())}"
        f"{'; ' + _e(cost) if cost else ''}. pytest-rolecheck {_e(__version__)}.</p>"
    )
    lines = [
        "<table><tr><th>#</th><th>test</th><th>compared</th><th>verdict</th><th>n</th>"
        f"<th>change [upper] / TV [upper]</th><th>p</th>{'<th>cost</th>' if cost else ''}</tr>"
    ]
    for i, row in enumerate(rows, 1):
        cells = row.cells()
        lines.append(
            f"<tr><td>{i}</td><td class='mono'>{_e(cells['test'])}</td>"
            f"<td><a href='#c{i}'>{_e(cells['compared'])}</a></td>"
            f"<td>{_verdict(row.verdict)}</td><td class='num'>{_e(cells['n'])}</td>"
            f"<td class='num'>{_e(cells['effect'])}</td><td class='num'>{_e(cells['p'])}</td>"
            f"{_cell(cells['cost']) if cost else ''}</tr>"
        )
    lines.append("</table>")
    return head + "".join(lines)


def _cell(text: str) -> str:
    return f"<td class='num'>{_e(text)}</td>"


def _drift(drift: Mapping[str, Any]) -> str:
    """The drift check: the rule, then every arm, drifted first (the JSON's ``drift`` block)."""
    order = {"drifted": 0, "detectable, below margin": 1}
    arms = sorted(drift.get("arms", []), key=lambda a: (order.get(a.get("status"), 2), a["arm"]))
    lines = [
        "<h2>Drift check</h2>",
        f"<p>{_e(drift.get('n_arms', len(arms)))} arms run live against their recordings; "
        f"{_e(drift.get('n_drifted', 0))} drifted. Rule: {_e(drift.get('rule', ''))}.</p>",
        "<table><tr><th>arm</th><th>status</th><th>change</th><th>lower bound</th>"
        "<th>tolerance</th><th>p</th><th>Holm p</th><th>recorded, typically</th>"
        "<th>live, typically</th></tr>",
    ]
    for a in arms:
        lines.append(
            f"<tr><td class='mono'>{_e(a['arm'])}</td><td>{_e(a.get('status'))}</td>"
            f"<td class='num'>{_e(fmt_value(a.get('change')))}</td>"
            f"<td class='num'>{_e(fmt_value(a.get('change_lower')))}</td>"
            f"<td class='num'>{_e(fmt_value(a.get('tolerance')))}</td>"
            f"<td class='num'>{_e(fmt_p(a.get('p_value')))}</td>"
            f"<td class='num'>{_e(fmt_p(a.get('adjusted_p')))}</td>"
            f"<td>{_e(a.get('typical_recorded', ''))}</td><td>{_e(a.get('typical_live', ''))}"
            "</td></tr>"
        )
    lines.append("</table>")
    return "".join(lines)


def render_html(
    rows: Sequence[Row],
    images: Sequence[Sequence[_Image]],
    drift: Mapping[str, Any] | None = None,
) -> str:
    """Assemble the report page (internal; use :func:`write_html_report`)."""
    body = [
        "<!DOCTYPE html>",
        "<html lang='en'><head><meta charset='utf-8'>",
        "<meta name='viewport' content='width=device-width, initial-scale=1'>",
        "<title>pytest-rolecheck report</title>",
        f"<style>{_CSS}</style></head><body>",
        "<h1>pytest-rolecheck report</h1>",
        _summary(rows),
    ]
    if drift is not None:
        body.append(_drift(drift))
    if not rows:
        body.append("<p>No comparisons were made in this run.</p>")
    for i, (row, imgs) in enumerate(zip(rows, images, strict=True), 1):
        body.append(_section(row, i, imgs))
    body.append("</body></html>")
    return "\n".join(body) + "\n"


def write_html_report(
    rows: Sequence[Row | Mapping[str, Any]],
    out_dir: Path,
    *,
    filename: str = REPORT_FILENAME,
    drift: Mapping[str, Any] | None = None,
) -> Path:
    """Write the HTML report of a run, plus every plot as a PNG file.

    Parameters
    ----------
    rows : sequence of mapping
        The comparison rows: ``Rolecheck.rows``, the plugin's summary rows, or
        the ``"comparisons"`` list of a JSON report. A row
        with an ``"insight"`` entry also gets the per-position plots.
    out_dir : pathlib.Path
        Directory to write into (created if missing). Receives ``filename``
        and ``png/<nn>-<title>-<plot>.png``.
    filename : str, default "rolecheck-report.html"
        Name of the HTML file.
    drift : mapping, optional
        The ``"drift"`` block of a drift check's JSON report: shown after the summary.

    Returns
    -------
    pathlib.Path
        The HTML file written.

    Raises
    ------
    RolecheckError
        matplotlib is not installed (the message names
        ``pip install 'pytest-rolecheck[report]'``).
    RolecheckUsageError
        ``rows`` is not a list of mappings.
    """
    checked = _check_rows(rows)
    from ..recording.files import write_text_atomic
    from . import plots as _plots

    _plots.require_matplotlib()
    out = Path(out_dir)
    png_dir = out / PNG_DIR
    png_dir.mkdir(parents=True, exist_ok=True)
    images = [_plots_for(row, i, png_dir) for i, row in enumerate(checked, 1)]
    path = out / filename
    write_text_atomic(path, render_html(checked, images, drift))
    return path
