"""Line plots as standalone SVG text, for experiment reports (no plotting library needed).

::

    svg = line_plot([{"label": "L-BFGS", "x": seconds, "y": losses}], xlog=True, ylog=True,
                    xlabel="seconds", ylabel="loss", hlines=[{"label": "feed-forward", "y": 12.3}])
    atomic_write_text("plot.svg", svg)

SVG renders in browsers and in Markdown on the usual forges, stays sharp at
any zoom, diffs as text, and weighs a few kilobytes. Logarithmic axes get ticks
at 1, 2 and 5 times the powers of ten they span (labelled at the decades when
they span several); linear axes get "nice" steps of 1, 2 or 5 times a power
of ten. Non-positive values on a logarithmic axis are dropped, with the points
they belong to.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from html import escape

# A colour-blind-safe palette (Okabe and Ito), in order of use.
PALETTE = ("#0072B2", "#D55E00", "#009E73", "#CC79A7", "#E69F00", "#56B4E9", "#000000", "#F0E442")
DASHES = {"solid": "", "dashed": "6,4", "dotted": "2,3"}


def _log_ticks(lo: float, hi: float) -> tuple[list[float], list[float]]:
    """(all ticks, labelled ticks) on a log axis from ``lo`` to ``hi``."""
    first, last = math.floor(math.log10(lo)), math.ceil(math.log10(hi))
    ticks = [m * 10.0**e for e in range(first, last + 1) for m in (1, 2, 5) if lo <= m * 10.0**e <= hi * (1 + 1e-9)]
    decades = [t for t in ticks if math.isclose(t, 10.0 ** round(math.log10(t)))]
    return ticks, (decades if len(decades) >= 2 else ticks)


def _linear_ticks(lo: float, hi: float, count: int = 6) -> list[float]:
    raw = (hi - lo) / count
    power = 10.0 ** math.floor(math.log10(raw))
    step = next(m * power for m in (1, 2, 5, 10) if m * power >= raw)
    start = math.ceil(lo / step - 1e-9) * step
    return [start + i * step for i in range(int((hi - start) / step + 1e-9) + 1)]


def _label(value: float) -> str:
    if value == 0:
        return "0"
    if abs(value) >= 1e5 or abs(value) < 1e-3:
        return f"{value:.0e}".replace("e+0", "e").replace("e-0", "e-")
    return f"{value:g}"


def _range(values: list[float], log: bool) -> tuple[float, float]:
    lo, hi = min(values), max(values)
    if log:
        # Round outwards to quarter decades.
        lo = 10.0 ** (math.floor(math.log10(min(values)) * 4) / 4)
        hi = 10.0 ** (math.ceil(math.log10(max(values)) * 4) / 4)
        return (lo, hi) if hi > lo else (lo / 2, hi * 2)
    if hi == lo:
        return lo - 1, hi + 1
    pad = 0.04 * (hi - lo)
    return lo - pad, hi + pad


def line_plot(
    series: Sequence[dict],
    *,
    xlog: bool = False,
    ylog: bool = False,
    title: str = "",
    xlabel: str = "",
    ylabel: str = "",
    hlines: Sequence[dict] = (),
    legend: str = "upper right",
    width: int = 720,
    height: int = 440,
) -> str:
    """An SVG line chart of ``series``; return the SVG document as text.

    Args:
        series: ``{"label", "x", "y"}`` dicts (x and y sequences of equal
            length), with optional ``"color"``, ``"dash"`` (``solid``,
            ``dashed``, ``dotted``) and ``"markers"`` (bool: a dot at every point).
        xlog, ylog: logarithmic axes.
        title, xlabel, ylabel: texts (escaped).
        hlines: horizontal reference lines, ``{"label", "y"}`` with optional
            ``"color"`` and ``"dash"`` (default dashed).
        legend: its corner, ``"upper right"``, ``"upper left"``, ``"lower right"``
            or ``"lower left"``; the labelled series and lines are listed.
        width, height: size in pixels.

    Raises:
        ValueError: no plottable point, or x and y of different lengths.

    Example:
        >>> svg = line_plot([{"label": "a", "x": [1, 10, 100], "y": [3, 2, 1]}], xlog=True)
        >>> svg.startswith("<svg") and "</svg>" in svg
        True
    """
    if legend not in ("upper right", "upper left", "lower right", "lower left"):
        raise ValueError(f"legend must be a corner such as 'upper right', got {legend!r}")
    cleaned = []
    for i, s in enumerate(series):
        if len(s["x"]) != len(s["y"]):
            raise ValueError(f"series {s.get('label', i)!r}: x and y have different lengths")
        points = [
            (float(x), float(y)) for x, y in zip(s["x"], s["y"])
            if math.isfinite(x) and math.isfinite(y) and (not xlog or x > 0) and (not ylog or y > 0)
        ]  # fmt: skip
        cleaned.append((s, points))
    xs = [x for _, pts in cleaned for x, _ in pts]
    ys = [y for _, pts in cleaned for _, y in pts] + [float(h["y"]) for h in hlines if not ylog or h["y"] > 0]
    if not xs:
        raise ValueError("nothing to plot: no finite point (positive, on a logarithmic axis)")
    (x0, x1), (y0, y1) = _range(xs, xlog), _range(ys, ylog)
    left, right, top, bottom = 72, 16, 36 if title else 14, 48
    pw, ph = width - left - right, height - top - bottom

    def sx(x: float) -> float:
        t = (math.log10(x) - math.log10(x0)) / (math.log10(x1) - math.log10(x0)) if xlog else (x - x0) / (x1 - x0)
        return left + t * pw

    def sy(y: float) -> float:
        t = (math.log10(y) - math.log10(y0)) / (math.log10(y1) - math.log10(y0)) if ylog else (y - y0) / (y1 - y0)
        return top + (1 - t) * ph

    out = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
        f'viewBox="0 0 {width} {height}" font-family="sans-serif" font-size="12">',
        f'<rect width="{width}" height="{height}" fill="white"/>',
    ]
    if title:
        out.append(f'<text x="{width / 2:.1f}" y="22" text-anchor="middle" font-size="14">{escape(title)}</text>')
    xticks, xlabels = _log_ticks(x0, x1) if xlog else (_linear_ticks(x0, x1),) * 2
    yticks, ylabels = _log_ticks(y0, y1) if ylog else (_linear_ticks(y0, y1),) * 2
    for t in xticks:
        major = t in xlabels
        out.append(f'<line x1="{sx(t):.1f}" y1="{top}" x2="{sx(t):.1f}" y2="{top + ph}" '
                   f'stroke="{"#ddd" if major else "#f0f0f0"}"/>')  # fmt: skip
        if major:
            out.append(f'<text x="{sx(t):.1f}" y="{top + ph + 16}" text-anchor="middle">{_label(t)}</text>')
    for t in yticks:
        major = t in ylabels
        out.append(f'<line x1="{left}" y1="{sy(t):.1f}" x2="{left + pw}" y2="{sy(t):.1f}" '
                   f'stroke="{"#ddd" if major else "#f0f0f0"}"/>')  # fmt: skip
        if major:
            out.append(f'<text x="{left - 6}" y="{sy(t) + 4:.1f}" text-anchor="end">{_label(t)}</text>')
    out.append(f'<rect x="{left}" y="{top}" width="{pw}" height="{ph}" fill="none" stroke="#333"/>')
    if xlabel:
        out.append(f'<text x="{left + pw / 2:.1f}" y="{height - 10}" text-anchor="middle">{escape(xlabel)}</text>')
    if ylabel:
        out.append(f'<text x="16" y="{top + ph / 2:.1f}" text-anchor="middle" '
                   f'transform="rotate(-90 16 {top + ph / 2:.1f})">{escape(ylabel)}</text>')  # fmt: skip

    keys = []  # (label, colour, dash, dot)
    for h in hlines:
        if ylog and h["y"] <= 0:
            continue
        color = h.get("color", "#555")
        dash = DASHES[h.get("dash", "dashed")]
        out.append(f'<line x1="{left}" y1="{sy(h["y"]):.1f}" x2="{left + pw}" y2="{sy(h["y"]):.1f}" '
                   f'stroke="{color}" stroke-dasharray="{dash}"/>')  # fmt: skip
        keys.append((h.get("label", ""), color, dash, False))
    out.append(f'<defs><clipPath id="plot"><rect x="{left}" y="{top}" width="{pw}" height="{ph}"/></clipPath></defs>')
    for i, (s, points) in enumerate(cleaned):
        color = s.get("color", PALETTE[i % len(PALETTE)])
        dash = DASHES[s.get("dash", "solid")]
        keys.append((s.get("label", ""), color, dash, bool(s.get("markers")) and len(points) == 1))
        if not points:
            continue
        path = " ".join(f"{'M' if j == 0 else 'L'}{sx(x):.1f},{sy(y):.1f}" for j, (x, y) in enumerate(points))
        out.append(f'<path d="{path}" fill="none" stroke="{color}" stroke-width="1.6" '
                   f'stroke-dasharray="{dash}" clip-path="url(#plot)"/>')  # fmt: skip
        if s.get("markers"):
            out.extend(f'<circle cx="{sx(x):.1f}" cy="{sy(y):.1f}" r="2.5" fill="{color}"/>' for x, y in points)
    entries = [key for key in keys if key[0]]
    if entries:
        lw, lh = 24 + 7 * max(len(key[0]) for key in entries), 16 * len(entries) + 8
        lx = left + pw - lw - 8 if legend.endswith("right") else left + 8
        ly = top + 8 if legend.startswith("upper") else top + ph - lh - 8
        out.append(f'<rect x="{lx}" y="{ly}" width="{lw}" height="{lh}" '
                   f'fill="white" fill-opacity="0.85" stroke="#ccc"/>')  # fmt: skip
        for k, (label, color, dash, dot) in enumerate(entries):
            y = ly + 14 + 16 * k
            if dot:
                out.append(f'<circle cx="{lx + 14}" cy="{y - 4}" r="3" fill="{color}"/>')
            else:
                out.append(f'<line x1="{lx + 6}" y1="{y - 4}" x2="{lx + 22}" y2="{y - 4}" stroke="{color}" '
                           f'stroke-width="2" stroke-dasharray="{dash}"/>')  # fmt: skip
            out.append(f'<text x="{lx + 26}" y="{y}">{escape(label)}</text>')
    out.append("</svg>")
    return "\n".join(out) + "\n"
