"""Hand-made SVG figures: the fallback of `tocsin.audit.plots` when matplotlib is missing."""

from __future__ import annotations

import html
import math
from collections.abc import Sequence

__all__ = ["svg_bars", "svg_histogram"]


def _nice_step(span: float, target: int) -> float:
    raw = span / max(target, 1)
    magnitude = 10 ** math.floor(math.log10(raw)) if raw > 0 else 1
    for m in (1, 2, 2.5, 5, 10):
        if m * magnitude >= raw:
            return m * magnitude
    return 10 * magnitude


def svg_histogram(
    values: Sequence[float], *, title: str, unit: str, bins: int = 28,
    low: float | None = None, high: float | None = None,
) -> str:
    """A histogram as SVG; values beyond [low, high] (default 2nd..98th percentile, widened to
    include 0) are gathered in the end bins."""
    w, h, ml, mr, mt, mb = 720, 300, 56, 16, 34, 48
    e = html.escape
    if not values:
        return (f'<svg xmlns="http://www.w3.org/2000/svg" width="{w}" height="80" '
                f'viewBox="0 0 {w} 80"><text x="8" y="40" font-family="sans-serif" '
                f'font-size="14">{e(title)}: no data</text></svg>')
    ordered = sorted(values)
    lo = low if low is not None else min(0.0, ordered[int(0.02 * (len(ordered) - 1))])
    hi = high if high is not None else max(0.0, ordered[int(0.98 * (len(ordered) - 1))])
    if hi <= lo:
        hi = lo + 1
    step = _nice_step(hi - lo, bins)
    lo = math.floor(lo / step) * step
    hi = math.ceil(hi / step) * step
    n = max(1, round((hi - lo) / step))
    counts = [0] * n
    for v in values:
        i = min(n - 1, max(0, int((v - lo) // step)))
        counts[i] += 1
    top = max(counts)
    pw, ph = w - ml - mr, h - mt - mb
    bw = pw / n
    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{w}" height="{h}" '
        f'viewBox="0 0 {w} {h}" font-family="sans-serif" font-size="12">',
        f'<title>{e(title)}</title>',
        f'<text x="{ml}" y="20" font-size="14" font-weight="600">{e(title)} '
        f'(n = {len(values)})</text>',
    ]
    for i, c in enumerate(counts):
        bh = ph * c / top
        x = ml + i * bw
        colour = "#cf222e" if lo + (i + 1) * step <= 0 else "#0969da"
        parts.append(f'<rect x="{x:.1f}" y="{mt + ph - bh:.1f}" width="{max(bw - 1, 1):.1f}" '
                     f'height="{bh:.1f}" fill="{colour}"><title>{lo + i * step:g} to '
                     f'{lo + (i + 1) * step:g}: {c}</title></rect>')
    parts.append(f'<line x1="{ml}" y1="{mt + ph}" x2="{ml + pw}" y2="{mt + ph}" '
                 'stroke="#57606a"/>')
    tick = _nice_step(hi - lo, 8)
    t = math.ceil(lo / tick) * tick
    while t <= hi + 1e-9:
        x = ml + (t - lo) / (hi - lo) * pw
        parts.append(f'<line x1="{x:.1f}" y1="{mt + ph}" x2="{x:.1f}" y2="{mt + ph + 4}" '
                     'stroke="#57606a"/>')
        parts.append(f'<text x="{x:.1f}" y="{mt + ph + 17}" text-anchor="middle">{t:g}</text>')
        t += tick
    for frac in (0.5, 1.0):
        y = mt + ph - ph * frac
        parts.append(f'<text x="{ml - 6}" y="{y + 4:.1f}" text-anchor="end">'
                     f'{round(top * frac)}</text>')
        parts.append(f'<line x1="{ml}" y1="{y:.1f}" x2="{ml + pw}" y2="{y:.1f}" '
                     'stroke="#d0d7de" stroke-dasharray="3 3"/>')
    parts.append(f'<text x="{ml + pw / 2}" y="{h - 8}" text-anchor="middle">{e(unit)} '
                 '(end bins gather the tails; red: alert began after the start)</text>')
    parts.append("</svg>")
    return "\n".join(parts)


def svg_bars(items: Sequence[tuple[str, int, int]], *, title: str) -> str:
    """Horizontal bars of covered / total per label, sorted by total."""
    e = html.escape
    rows = sorted(items, key=lambda t: (-t[2], t[0]))
    w, row_h, ml, mr, mt = 720, 20, 140, 110, 34
    h = mt + row_h * max(len(rows), 1) + 12
    pw = w - ml - mr
    top = max((t for _, _, t in rows), default=1) or 1
    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{w}" height="{h}" '
        f'viewBox="0 0 {w} {h}" font-family="sans-serif" font-size="12">',
        f'<title>{e(title)}</title>',
        f'<text x="8" y="20" font-size="14" font-weight="600">{e(title)}</text>',
    ]
    for i, (label, covered, total) in enumerate(rows):
        y = mt + i * row_h
        full = pw * total / top
        part = pw * covered / top
        parts.append(f'<text x="{ml - 6}" y="{y + 14}" text-anchor="end">{e(label)}</text>')
        parts.append(f'<rect x="{ml}" y="{y + 3}" width="{full:.1f}" height="{row_h - 6}" '
                     'fill="#d0d7de"/>')
        parts.append(f'<rect x="{ml}" y="{y + 3}" width="{part:.1f}" height="{row_h - 6}" '
                     f'fill="#1a7f37"><title>{e(label)}: {covered} of {total}</title></rect>')
        pct = 100 * covered / total if total else 0
        parts.append(f'<text x="{ml + full + 6:.1f}" y="{y + 14}">{covered}/{total} '
                     f'({pct:.0f} %)</text>')
    parts.append("</svg>")
    return "\n".join(parts)
