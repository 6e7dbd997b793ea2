"""Figures of the offline reports, drawn with matplotlib as inline SVG.

matplotlib is the optional `report` extra (`pip install tocsin[report]`). Without it each figure
falls back to the small hand-made SVG of `tocsin.audit.svg` where there is one, else to a line of
text saying what to install: a report is still written, only plainer.

The SVG is made reproducible: no creation date in its metadata and a fixed hash salt for its
element ids, so the same data give the same bytes.
"""

from __future__ import annotations

import html
import io
from collections.abc import Sequence
from typing import Any

__all__ = ["available", "bars", "grouped_bars", "histogram", "timeline", "unavailable"]


def available() -> bool:
    """Whether matplotlib can be imported."""
    try:
        import matplotlib  # noqa: F401
    except ImportError:
        return False
    return True


def unavailable(title: str) -> str:
    """What stands in for a figure when matplotlib is missing."""
    return (f'<p class="note">{html.escape(title)}: figure not drawn; install the report extra '
            "(<code>pip install tocsin[report]</code>) for it.</p>")


def _figure(width: float = 7.2, height: float = 3.0) -> tuple[Any, Any]:
    import matplotlib

    matplotlib.use("Agg", force=True)
    from matplotlib import pyplot as plt

    plt.rcParams["svg.hashsalt"] = "tocsin"
    plt.rcParams["font.size"] = 9
    fig, ax = plt.subplots(figsize=(width, height), layout="constrained")
    return fig, ax


def _svg(fig: Any, title: str) -> str:
    from matplotlib import pyplot as plt

    buf = io.StringIO()
    fig.savefig(buf, format="svg", metadata={"Date": None, "Title": title})
    plt.close(fig)
    text = buf.getvalue()
    start = text.find("<svg")
    return text[start:] if start >= 0 else text


def histogram(values: Sequence[float], *, title: str, xlabel: str, bins: int = 30,
              negative_red: bool = True) -> str:
    """A histogram; bars left of zero in red when `negative_red`."""
    if not available():
        from tocsin.audit.svg import svg_histogram

        return svg_histogram(values, title=title, unit=xlabel)
    fig, ax = _figure()
    if values:
        _n, edges, patches = ax.hist(values, bins=bins, color="#0969da")
        if negative_red:
            for left, patch in zip(edges[:-1], patches, strict=False):
                if left < 0:
                    patch.set_facecolor("#cf222e")
    else:
        ax.text(0.5, 0.5, "no data", ha="center", va="center", transform=ax.transAxes)
    ax.set_title(f"{title} (n = {len(values)})")
    ax.set_xlabel(xlabel)
    ax.set_ylabel("count")
    return _svg(fig, title)


def bars(items: Sequence[tuple[str, int, int]], *, title: str) -> str:
    """Horizontal bars of part / total per label (covered of cases), largest total on top."""
    if not available():
        from tocsin.audit.svg import svg_bars

        return svg_bars(items, title=title)
    rows = sorted(items, key=lambda t: (-t[2], t[0]))
    fig, ax = _figure(height=max(1.6, 0.28 * len(rows) + 0.9))
    labels = [r[0] for r in rows][::-1]
    ax.barh(labels, [r[2] for r in rows][::-1], color="#d0d7de", label="all")
    ax.barh(labels, [r[1] for r in rows][::-1], color="#1a7f37", label="covered")
    for i, (_label, part, total) in enumerate(rows[::-1]):
        pct = 100 * part / total if total else 0
        ax.text(total, i, f" {part}/{total} ({pct:.0f} %)", va="center", fontsize=8)
    ax.set_title(title)
    ax.legend(loc="lower right", fontsize=8)
    return _svg(fig, title)


def grouped_bars(labels: Sequence[str], series: Sequence[tuple[str, Sequence[float], str]], *,
                 title: str, ylabel: str, rotate: bool = True) -> str:
    """Bars of several series side by side per label (e.g. official vs tocsin per day)."""
    if not available():
        return unavailable(title)
    fig, ax = _figure(height=3.4)
    n = max(1, len(series))
    width = 0.8 / n
    xs = range(len(labels))
    for k, (name, values, colour) in enumerate(series):
        ax.bar([x + (k - (n - 1) / 2) * width for x in xs], values, width, label=name,
               color=colour)
    ax.set_xticks(list(xs), list(labels), rotation=90 if rotate else 0, fontsize=7)
    ax.set_ylabel(ylabel)
    ax.set_title(title)
    ax.legend(fontsize=8)
    return _svg(fig, title)


def timeline(rows: Sequence[tuple[str, Sequence[tuple[float, float]]]], *, title: str,
             marks: Sequence[tuple[str, float, str]] = ()) -> str:
    """Intervals (hours from the start) per label as a Gantt chart; `marks` are (label, hour,
    colour) points drawn on the labels' rows (impacts)."""
    if not available():
        return unavailable(title)
    fig, ax = _figure(height=max(1.8, 0.26 * len(rows) + 1.0))
    index = {label: i for i, (label, _spans) in enumerate(rows)}
    for i, (_label, spans) in enumerate(rows):
        ax.broken_barh([(a, b - a) for a, b in spans], (i - 0.35, 0.7), color="#bf8700")
    for label, hour, colour in marks:
        if label in index:
            ax.plot([hour], [index[label]], marker="v", color=colour, markersize=5)
    ax.set_yticks(range(len(rows)), [r[0] for r in rows], fontsize=7)
    ax.invert_yaxis()
    ax.set_xlabel("hours from the start of the report")
    ax.set_title(title)
    return _svg(fig, title)
