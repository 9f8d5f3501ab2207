"""The report's plots, drawn headless with matplotlib's object API (no pyplot).

matplotlib is an optional extra: ``pip install 'pytest-rolecheck[report]'``.
Nothing here imports it at module level; :func:`require_matplotlib` does, and
raises a :class:`~pytest_rolecheck.errors.RolecheckError` that names the extra
when it is missing. Figures are ``matplotlib.figure.Figure`` objects rendered by
the Agg canvas, so no GUI backend is selected and the user's pyplot state (a
notebook's backend, open figures) is never touched.

Every plot takes plain JSON data, so it works from a live run and from a saved
JSON report alike:

* :func:`plot_distances` — a comparison's ``details`` (``Comparison.to_dict()``);
* :func:`plot_divergence`, :func:`plot_alternatives` — an insight
  (:func:`pytest_rolecheck.core.divergence.divergence_insight`);
* :func:`plot_tool_calls` — a tool-call comparison's ``details``
  (``ToolCallComparison.to_dict()``).
"""

from __future__ import annotations

import io
import math
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from typing import Any, Final

import numpy as np

from ..core.divergence import METRIC_UNITS, display_token
from ..errors import RolecheckError

__all__ = [
    "INSTALL_HINT",
    "figure_png",
    "plot_alternatives",
    "plot_distances",
    "plot_divergence",
    "plot_tool_calls",
    "require_matplotlib",
]

INSTALL_HINT: Final = "pip install 'pytest-rolecheck[report]'"

# Okabe-Ito colours: distinguishable with the common colour-vision deficiencies.
COLOR_A: Final = "#0072B2"
COLOR_B: Final = "#E69F00"
COLOR_CROSS: Final = "#009E73"
COLOR_PAIR: Final = "#9A9A9A"
COLOR_MARK: Final = "#D55E00"
DPI: Final = 110

_STYLE: Final[dict[str, Any]] = {
    "font.size": 9,
    "axes.titlesize": 10,
    "axes.labelsize": 9,
    "axes.spines.top": False,
    "axes.spines.right": False,
    "legend.frameon": False,
    "legend.fontsize": 8,
    "xtick.labelsize": 8,
    "ytick.labelsize": 8,
    "svg.fonttype": "none",
}
_MAX_LABEL: Final = 48
# A mean over fewer pairs than this is too noisy to draw.
_MIN_PAIRS: Final = 3
# Most positions the divergence plot shows (the tick labels must stay readable).
_WINDOW: Final = 40


def require_matplotlib() -> Any:
    """Import matplotlib, or explain how to install it.

    Returns
    -------
    module
        The ``matplotlib`` module.

    Raises
    ------
    RolecheckError
        matplotlib is not installed; the message names the extra to install.
    """
    try:
        import matplotlib
    except ImportError:
        raise RolecheckError(
            "plots and the HTML report need matplotlib, which is not installed; install the "
            f"report extra with: {INSTALL_HINT}"
        ) from None
    return matplotlib


@contextmanager
def _style() -> Iterator[Any]:
    matplotlib = require_matplotlib()
    with matplotlib.rc_context(_STYLE):
        yield matplotlib


def _figure(width: float, height: float) -> Any:
    from matplotlib.figure import Figure

    return Figure(figsize=(width, height), dpi=DPI, layout="constrained")


def figure_png(figure: Any) -> bytes:
    """Render a figure to PNG bytes (Agg canvas, no GUI).

    Parameters
    ----------
    figure : matplotlib.figure.Figure
        A figure returned by one of the ``plot_*`` functions.

    Returns
    -------
    bytes
        The PNG file's content.
    """
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    FigureCanvasAgg(figure)
    buffer = io.BytesIO()
    with _style():
        figure.savefig(buffer, format="png", dpi=DPI, metadata={"Software": None})
    return buffer.getvalue()


def _short(text: str, limit: int = _MAX_LABEL) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _unit(metric: str) -> str:
    return METRIC_UNITS.get(metric, "metric units")


def _labels(data: Mapping[str, Any]) -> tuple[str, str]:
    labels = data.get("labels") or ["A", "B"]
    return str(labels[0]), str(labels[1])


# --------------------------------------------------------------------------- (a) distances


def distance_groups(details: Mapping[str, Any]) -> list[tuple[str, np.ndarray, str]]:
    """The groups of distances a comparison is decided on, for plots and tables.

    Parameters
    ----------
    details : mapping
        ``Comparison.to_dict()`` (or a report row's ``details``).

    Returns
    -------
    list of (label, values, colour)
        All-pairs design: within-A, within-B and cross pair distances (from
        ``matrix``). Seed design: each arm's trial distances to the baseline.
        Empty when the details carry neither.
    """
    a, b = _labels(details)
    if details.get("design") == "seed" and details.get("trial_distances_a") is not None:
        da = np.array([x for x in details["trial_distances_a"] if x is not None], dtype=float)
        db = np.array([x for x in details.get("trial_distances_b") or [] if x is not None])
        return [
            (f"{_short(a, 24)} trials\nto the baseline", da, COLOR_A),
            (f"{_short(b, 24)} trials\nto the baseline", db.astype(float), COLOR_B),
        ]
    matrix = details.get("matrix")
    n_a = details.get("n_a")
    if not matrix or not isinstance(n_a, int):
        return []
    m = np.array([[np.nan if x is None else x for x in row] for row in matrix], dtype=float)
    iu = np.triu_indices(m.shape[0], 1)
    in_a = iu[1] < n_a
    in_b = iu[0] >= n_a
    values = m[iu]
    groups = [
        (f"within\n{_short(a, 24)}", values[in_a], COLOR_A),
        (f"within\n{_short(b, 24)}", values[in_b], COLOR_B),
        (f"across\n{_short(a, 16)} ↔ {_short(b, 16)}", values[~in_a & ~in_b], COLOR_CROSS),
    ]
    return [(label, v[np.isfinite(v)], color) for label, v, color in groups]


def plot_distances(details: Mapping[str, Any]) -> Any:
    """Strip and box plot of the distances behind a comparison.

    Parameters
    ----------
    details : mapping
        ``Comparison.to_dict()``: ``matrix``, ``n_a``, ``labels``, ``metric``,
        ``design`` (and ``trial_distances_a``/``_b`` in the seed design).

    Returns
    -------
    matplotlib.figure.Figure

    Raises
    ------
    RolecheckError
        matplotlib is not installed.
    """
    groups = distance_groups(details)
    metric = str(details.get("metric", "js"))
    with _style():
        fig = _figure(6.6, 3.8)
        ax = fig.add_subplot()
        rng = np.random.default_rng(0)
        positions = np.arange(1, len(groups) + 1)
        data = [g[1] if g[1].size else np.array([np.nan]) for g in groups]
        box = ax.boxplot(
            data,
            positions=positions,
            widths=0.5,
            showfliers=False,
            patch_artist=True,
            medianprops={"color": "black", "linewidth": 1.4},
            whiskerprops={"color": "#555555"},
            capprops={"color": "#555555"},
            boxprops={"linewidth": 0.8, "edgecolor": "#555555"},
        )
        for patch, (_, _, color) in zip(box["boxes"], groups, strict=True):
            patch.set_facecolor(color)
            patch.set_alpha(0.18)
        for x, (_, values, color) in zip(positions, groups, strict=True):
            if not values.size:
                continue
            alpha = 0.75 if values.size <= 60 else max(0.2, 0.75 * math.sqrt(60 / values.size))
            jitter = rng.uniform(-0.17, 0.17, size=values.size)
            ax.scatter(x + jitter, values, s=11, color=color, alpha=alpha, linewidths=0, zorder=3)
            ax.scatter(
                [x + 0.33], [float(values.mean())], marker="<", s=36, color="black", zorder=4
            )
        if all(not g[1].size or float(np.max(g[1])) == 0.0 for g in groups):
            ax.text(
                0.5,
                0.5,
                "every distance is exactly 0: no difference this metric can see",
                transform=ax.transAxes,
                ha="center",
                va="center",
                color="#555555",
            )
        ax.set_xticks(positions, [g[0] for g in groups])
        ax.set_xlim(0.4, len(groups) + 0.6)
        ax.set_ylabel(f"{metric} distance ({_unit(metric)})")
        ax.set_ylim(bottom=0)
        what = (
            "Distance of each trial to the baseline call"
            if details.get("design") == "seed"
            else "Distance between two calls, every pair"
        )
        unit = "trials" if details.get("design") == "seed" else "calls"
        fig.suptitle(
            f"{what} ({details.get('n_a')} + {details.get('n_b')} {unit})",
            x=0.01,
            ha="left",
        )
        _distances_legend(fig, seed=details.get("design") == "seed")
    return fig


def _distances_legend(fig: Any, *, seed: bool) -> None:
    from matplotlib.lines import Line2D
    from matplotlib.patches import Patch

    fig.legend(
        handles=[
            Line2D([], [], marker="o", linestyle="", color="#555555", markersize=4),
            Patch(facecolor="#cccccc", edgecolor="#555555"),
            Line2D([], [], marker="<", linestyle="", color="black", markersize=6),
        ],
        labels=[
            "one trial" if seed else "one pair of calls",
            "quartiles, median (line), 1.5 IQR whiskers",
            "mean",
        ],
        loc="outside lower center",
        ncols=3,
    )


# --------------------------------------------------------------------------- (b) divergence


def _tick_label(tokens_a: Sequence[str], tokens_b: Sequence[str], i: int, d: int | None) -> str:
    ta = display_token(tokens_a[i]) if i < len(tokens_a) else "·"
    tb = display_token(tokens_b[i]) if i < len(tokens_b) else "·"
    if d is None or i < d:
        return _short(ta, 14)
    return f"{_short(ta, 10)} | {_short(tb, 10)}"


def plot_divergence(insight: Mapping[str, Any]) -> Any:
    """Per-position distance along the completion, tokens as tick labels.

    Bars: the two representative calls (one per arm) position by position, up
    to and including their first diverging position (marked). Lines: the mean
    per-position distance over pairs of calls of the same arm and of different
    arms, over the pairs still sharing their prefix at that position.

    Parameters
    ----------
    insight : mapping
        :func:`pytest_rolecheck.core.divergence.divergence_insight` output.

    Returns
    -------
    matplotlib.figure.Figure

    Raises
    ------
    RolecheckError
        matplotlib is not installed.
    """
    a, b = _labels(insight)
    profile = [float(x) for x in insight.get("profile") or []]
    reps = insight.get("representatives") or {}
    tokens_a = list((reps.get("a") or {}).get("tokens") or [])
    tokens_b = list((reps.get("b") or {}).get("tokens") or [])
    d = insight.get("divergence")
    means = insight.get("mean_profiles") or {}
    within = _pooled_within(means)
    cross = _reliable(means.get("cross") or {})
    start, end = _window(len(profile), len(within), len(cross), max(len(tokens_a), len(tokens_b)))
    metric = str(insight.get("metric", "js"))
    with _style():
        fig = _figure(max(6.4, min(0.34 * (end - start) + 2.6, 14.0)), 4.4)
        ax = fig.add_subplot()
        if profile[start:]:
            colors = [COLOR_MARK if i == d else COLOR_PAIR for i in range(start, len(profile))]
            index_a = (reps.get("a") or {}).get("index", 0) + 1
            index_b = (reps.get("b") or {}).get("index", 0) + 1
            ax.bar(
                np.arange(start, len(profile)),
                profile[start:],
                width=0.7,
                color=colors,
                label=f"two typical calls (medoids): {a} #{index_a} vs {b} #{index_b}",
                zorder=2,
            )
        _line(
            ax,
            start,
            within[start:end],
            "pairs of calls of the same arm (mean over pairs still sharing the prefix)",
            COLOR_A,
            "--",
        )
        _line(
            ax,
            start,
            cross[start:end],
            f"pairs of calls across {a} ↔ {b} (mean over pairs still sharing the prefix)",
            COLOR_CROSS,
            "-",
        )
        _mark_divergence(ax, d, end)
        _token_axis(ax, tokens_a, tokens_b, d, start, end, (a, b))
        handles, texts = ax.get_legend_handles_labels()
        if d is not None and d + 1 < end:
            from matplotlib.patches import Patch

            handles.append(Patch(facecolor="#f2f2f2"))
            texts.append("after the divergence: the typical calls no longer share the prefix")
        ax.set_ylabel(f"{metric} at this position ({_unit(metric)})")
        fig.suptitle("Where the arms start to differ, token by token", x=0.01, ha="left")
        fig.legend(handles, texts, loc="outside lower left", ncols=1)
    return fig


def _window(profile: int, within: int, cross: int, longest: int) -> tuple[int, int]:
    """The positions the divergence plot shows: [start, end)."""
    end = min(max(profile, within, cross, 1), max(longest, 1))
    # Long completions: show the region that matters, up to a few tokens past the
    # divergence and at most _WINDOW positions (the divergence is always inside).
    end = min(end, max(profile + 8, 30))
    return max(0, end - _WINDOW), end


def _mark_divergence(ax: Any, d: int | None, end: int) -> None:
    """Shade what follows the first divergence and name its position."""
    if d is None:
        return
    if d + 1 < end:
        ax.axvspan(d + 0.5, end - 0.5, color="#f2f2f2", zorder=0, linewidth=0)
    ax.annotate(
        f"first divergence (position {d})",
        xy=(d, 1.0),
        xycoords=("data", "axes fraction"),
        xytext=(0, 3),
        textcoords="offset points",
        ha="center",
        va="bottom",
        color=COLOR_MARK,
        fontsize=8,
    )


def _token_axis(
    ax: Any,
    tokens_a: Sequence[str],
    tokens_b: Sequence[str],
    d: int | None,
    start: int,
    end: int,
    labels: tuple[str, str],
) -> None:
    """The tokens as tick labels (both arms' from the divergence on), and the x label."""
    ticks = [_tick_label(tokens_a, tokens_b, i, d) for i in range(start, end)]
    ax.set_xticks(np.arange(start, end), ticks, rotation=60, ha="right", rotation_mode="anchor")
    for i, tick in zip(range(start, end), ax.get_xticklabels(), strict=True):
        if d is not None and i >= d:
            tick.set_color(COLOR_MARK if i == d else "#777777")
    ax.set_xlim(start - 0.6, end - 0.4)
    ax.set_ylim(bottom=0)
    shown = f"positions {start}-{end - 1}; " if start > 0 else ""
    a, b = labels
    ax.set_xlabel(
        f"generated token of the typical calls ({shown}{a} | {b} from the divergence on)"
        if d is not None
        else f"generated token of the typical calls ({shown}identical in both)"
    )


def _pooled_within(means: Mapping[str, Any]) -> list[float | None]:
    wa = (means.get("within_a") or {}).get("mean") or []
    wb = (means.get("within_b") or {}).get("mean") or []
    ca = (means.get("within_a") or {}).get("pairs") or []
    cb = (means.get("within_b") or {}).get("pairs") or []
    out: list[float | None] = []
    for i in range(max(len(wa), len(wb))):
        total, count = 0.0, 0
        for values, counts in ((wa, ca), (wb, cb)):
            if i < len(values) and values[i] is not None:
                n = int(counts[i]) if i < len(counts) else 1
                total += float(values[i]) * n
                count += n
        out.append(total / count if count >= _MIN_PAIRS else None)
    return out


def _reliable(group: Mapping[str, Any]) -> list[float | None]:
    """A group's mean profile, blank where fewer than a few pairs still share the prefix."""
    means = group.get("mean") or []
    pairs = group.get("pairs") or []
    return [
        None if m is None or (i < len(pairs) and int(pairs[i]) < _MIN_PAIRS) else float(m)
        for i, m in enumerate(means)
    ]


def _line(
    ax: Any, start: int, values: Sequence[float | None], label: str, color: str, style: str
) -> None:
    ys = np.array([np.nan if v is None else float(v) for v in values], dtype=float)
    if not ys.size or not np.isfinite(ys).any():
        return
    ax.plot(
        np.arange(start, start + ys.size),
        ys,
        color=color,
        linestyle=style,
        linewidth=1.5,
        marker=".",
        markersize=5,
        label=label,
        zorder=3,
    )


# --------------------------------------------------------------------------- (c) alternatives


def plot_alternatives(insight: Mapping[str, Any]) -> Any:
    """Top alternatives of both arms at the focus position, as grouped horizontal bars.

    Parameters
    ----------
    insight : mapping
        :func:`pytest_rolecheck.core.divergence.divergence_insight` output with a
        ``focus`` entry.

    Returns
    -------
    matplotlib.figure.Figure

    Raises
    ------
    RolecheckError
        matplotlib is not installed.
    ValueError
        The insight has no focus position (a representative call has no tokens).
    """
    focus = insight.get("focus")
    if not focus:
        raise ValueError("the insight has no focus position (a call without tokens)")
    a, b = _labels(insight)
    rows = list(focus.get("union") or [])
    n = len(rows)
    with _style():
        fig = _figure(6.4, max(2.4, 0.42 * n + 1.3))
        ax = fig.add_subplot()
        y = np.arange(n)[::-1].astype(float)
        height = 0.38
        for offset, key, label, color in (
            (height / 2, "a", a, COLOR_A),
            (-height / 2, "b", b, COLOR_B),
        ):
            values = [r.get(key) for r in rows]
            shown = [0.0 if v is None else float(v) for v in values]
            ax.barh(y + offset, shown, height=height, color=color, label=label, zorder=2)
            for yi, v, r in zip(y + offset, values, rows, strict=True):
                text = "not listed" if v is None else f"{v:.3f}"
                if r.get(f"generated_{key}"):
                    text += "  ◀ generated"
                ax.annotate(
                    text,
                    xy=(0.0 if v is None else float(v), yi),
                    xytext=(3, 0),
                    textcoords="offset points",
                    va="center",
                    fontsize=7,
                    color="#444444" if v is not None else "#999999",
                )
        ax.set_yticks(y, [_short(display_token(str(r.get("token", ""))), 24) for r in rows])
        largest = max([0.05, *(float(r.get(k) or 0.0) for r in rows for k in ("a", "b"))])
        # Room on the right for the value labels; never beyond what a probability can be.
        ax.set_xlim(0, min(1.0, largest) * 1.32 + 0.02)
        ax.set_xlabel("probability of the token at this position")
        position = focus.get("position")
        reason = focus.get("reason", "")
        ax.set_title(
            f"Top alternatives at position {position} ({reason}), typical call of each arm",
            loc="left",
        )
        fig.legend(loc="outside lower center", ncols=2)
    return fig


# --------------------------------------------------------------------------- (d) tool calls


def _outcome_label(outcome: str) -> str:
    return "no tool call (text answer)" if outcome == "<text>" else outcome


def plot_tool_calls(details: Mapping[str, Any]) -> Any:
    """Tool-call outcome counts of both arms as grouped horizontal bars.

    Parameters
    ----------
    details : mapping
        ``ToolCallComparison.to_dict()``: ``outcomes`` (``outcome``,
        ``count_a``, ``count_b``), ``labels``, ``n_a``, ``n_b``.

    Returns
    -------
    matplotlib.figure.Figure

    Raises
    ------
    RolecheckError
        matplotlib is not installed.
    """
    a, b = _labels(details)
    rows = list(details.get("outcomes") or [])
    n = len(rows)
    with _style():
        fig = _figure(6.8, max(2.2, 0.5 * n + 1.2))
        ax = fig.add_subplot()
        y = np.arange(n)[::-1].astype(float)
        height = 0.38
        top = max([1, *(int(r.get("count_a", 0)) for r in rows)])
        top = max(top, *(int(r.get("count_b", 0)) for r in rows)) if rows else top
        for offset, key, label, color in (
            (height / 2, "count_a", f"{a} ({details.get('n_a')} calls)", COLOR_A),
            (-height / 2, "count_b", f"{b} ({details.get('n_b')} calls)", COLOR_B),
        ):
            counts = [int(r.get(key, 0)) for r in rows]
            ax.barh(y + offset, counts, height=height, color=color, label=label, zorder=2)
            for yi, c in zip(y + offset, counts, strict=True):
                ax.annotate(
                    str(c),
                    xy=(c, yi),
                    xytext=(3, 0),
                    textcoords="offset points",
                    va="center",
                    fontsize=7,
                    color="#444444",
                )
        ax.set_yticks(y, [_short(_outcome_label(str(r.get("outcome", ""))), 44) for r in rows])
        ax.set_xlim(0, top * 1.12)
        from matplotlib.ticker import MaxNLocator

        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.set_xlabel("number of calls with this outcome")
        ax.set_title("Tool-call outcomes per arm", loc="left")
        fig.legend(loc="outside lower center", ncols=2)
    return fig
