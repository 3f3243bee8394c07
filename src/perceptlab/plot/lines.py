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
from dataclasses import dataclass
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


@dataclass(frozen=True)
class _Frame:
    """The plot area and its data ranges: maps data coordinates to SVG pixels."""

    x0: float
    x1: float
    y0: float
    y1: float
    xlog: bool
    ylog: bool
    left: float
    top: float
    pw: float
    ph: float

    def sx(self, x: float) -> float:
        return self.left + _fraction(x, self.x0, self.x1, self.xlog) * self.pw

    def sy(self, y: float) -> float:
        return self.top + (1 - _fraction(y, self.y0, self.y1, self.ylog)) * self.ph


def _fraction(v: float, lo: float, hi: float, log: bool) -> float:
    if log:
        return (math.log10(v) - math.log10(lo)) / (math.log10(hi) - math.log10(lo))
    return (v - lo) / (hi - lo)


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
    cleaned = _plottable(series, xlog, ylog)
    hlines = [h for h in hlines if not ylog or h["y"] > 0]
    xs = [x for _, pts in cleaned for x, _ in pts]
    ys = [y for _, pts in cleaned for _, y in pts] + [float(h["y"]) for h in hlines]
    if not xs:
        raise ValueError("nothing to plot: no finite point (positive, on a logarithmic axis)")
    top = 36 if title else 14
    frame = _Frame(*_range(xs, xlog), *_range(ys, ylog), xlog, ylog, left=72, top=top, pw=width - 72 - 16,
                   ph=height - top - 48)  # fmt: skip
    out = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
        f'viewBox="0 0 {width} {height}" font-family="sans-serif" font-size="12">',
        f'<rect width="{width}" height="{height}" fill="white"/>',
    ]
    if title:
        out.append(f'<text x="{width / 2:.1f}" y="22" text-anchor="middle" font-size="14">{escape(title)}</text>')
    out += _axes(frame, xlabel, ylabel, height)
    keys, lines = _lines(frame, cleaned, hlines)
    out += lines
    out += _legend(frame, [key for key in keys if key[0]], legend)
    out.append("</svg>")
    return "\n".join(out) + "\n"


def _plottable(series: Sequence[dict], xlog: bool, ylog: bool) -> list[tuple[dict, list[tuple[float, float]]]]:
    """Each series with its finite points (positive ones on a logarithmic axis)."""
    cleaned = []
    for i, s in enumerate(series):
        if len(s["x"]) != len(s["y"]):
            raise ValueError(f"series {s.get('label', i)!r}: x and y have different lengths")
        points = [
            (float(x), float(y)) for x, y in zip(s["x"], s["y"])
            if math.isfinite(x) and math.isfinite(y) and (not xlog or x > 0) and (not ylog or y > 0)
        ]  # fmt: skip
        cleaned.append((s, points))
    return cleaned


def _axes(f: _Frame, xlabel: str, ylabel: str, height: int) -> list[str]:
    """Grid lines, tick labels, the frame and the axis labels."""
    out = []
    xticks, xlabels = _log_ticks(f.x0, f.x1) if f.xlog else (_linear_ticks(f.x0, f.x1),) * 2
    yticks, ylabels = _log_ticks(f.y0, f.y1) if f.ylog else (_linear_ticks(f.y0, f.y1),) * 2
    for t in xticks:
        major = t in xlabels
        out.append(f'<line x1="{f.sx(t):.1f}" y1="{f.top}" x2="{f.sx(t):.1f}" y2="{f.top + f.ph}" '
                   f'stroke="{"#ddd" if major else "#f0f0f0"}"/>')  # fmt: skip
        if major:
            out.append(f'<text x="{f.sx(t):.1f}" y="{f.top + f.ph + 16}" text-anchor="middle">{_label(t)}</text>')
    for t in yticks:
        major = t in ylabels
        out.append(f'<line x1="{f.left}" y1="{f.sy(t):.1f}" x2="{f.left + f.pw}" y2="{f.sy(t):.1f}" '
                   f'stroke="{"#ddd" if major else "#f0f0f0"}"/>')  # fmt: skip
        if major:
            out.append(f'<text x="{f.left - 6}" y="{f.sy(t) + 4:.1f}" text-anchor="end">{_label(t)}</text>')
    out.append(f'<rect x="{f.left}" y="{f.top}" width="{f.pw}" height="{f.ph}" fill="none" stroke="#333"/>')
    if xlabel:
        out.append(f'<text x="{f.left + f.pw / 2:.1f}" y="{height - 10}" text-anchor="middle">{escape(xlabel)}</text>')
    if ylabel:
        out.append(f'<text x="16" y="{f.top + f.ph / 2:.1f}" text-anchor="middle" '
                   f'transform="rotate(-90 16 {f.top + f.ph / 2:.1f})">{escape(ylabel)}</text>')  # fmt: skip
    return out


def _lines(f: _Frame, cleaned, hlines) -> tuple[list[tuple[str, str, str, bool]], list[str]]:
    """The reference lines and the series; and the legend keys ``(label, colour, dash, dot)``."""
    keys, out = [], []
    for h in hlines:
        color = h.get("color", "#555")
        dash = DASHES[h.get("dash", "dashed")]
        out.append(f'<line x1="{f.left}" y1="{f.sy(h["y"]):.1f}" x2="{f.left + f.pw}" y2="{f.sy(h["y"]):.1f}" '
                   f'stroke="{color}" stroke-dasharray="{dash}"/>')  # fmt: skip
        keys.append((h.get("label", ""), color, dash, False))
    out.append(f'<defs><clipPath id="plot"><rect x="{f.left}" y="{f.top}" width="{f.pw}" height="{f.ph}"/>'
               "</clipPath></defs>")  # fmt: skip
    for i, (s, points) in enumerate(cleaned):
        color = s.get("color", PALETTE[i % len(PALETTE)])
        dash = DASHES[s.get("dash", "solid")]
        keys.append((s.get("label", ""), color, dash, bool(s.get("markers")) and len(points) == 1))
        if not points:
            continue
        path = " ".join(f"{'M' if j == 0 else 'L'}{f.sx(x):.1f},{f.sy(y):.1f}" for j, (x, y) in enumerate(points))
        out.append(f'<path d="{path}" fill="none" stroke="{color}" stroke-width="1.6" '
                   f'stroke-dasharray="{dash}" clip-path="url(#plot)"/>')  # fmt: skip
        if s.get("markers"):
            out.extend(f'<circle cx="{f.sx(x):.1f}" cy="{f.sy(y):.1f}" r="2.5" fill="{color}"/>' for x, y in points)
    return keys, out


def _legend(f: _Frame, entries: list[tuple[str, str, str, bool]], corner: str) -> list[str]:
    """A box in ``corner`` listing the labelled lines."""
    if not entries:
        return []
    lw, lh = 24 + 7 * max(len(key[0]) for key in entries), 16 * len(entries) + 8
    lx = f.left + f.pw - lw - 8 if corner.endswith("right") else f.left + 8
    ly = f.top + 8 if corner.startswith("upper") else f.top + f.ph - lh - 8
    out = [f'<rect x="{lx}" y="{ly}" width="{lw}" height="{lh}" fill="white" fill-opacity="0.85" stroke="#ccc"/>']
    for k, (label, color, dash, dot) in enumerate(entries):
        y = ly + 14 + 16 * k
        if dot:
            out.append(f'<circle cx="{lx + 14}" cy="{y - 4}" r="3" fill="{color}"/>')
        else:
            out.append(f'<line x1="{lx + 6}" y1="{y - 4}" x2="{lx + 22}" y2="{y - 4}" stroke="{color}" '
                       f'stroke-width="2" stroke-dasharray="{dash}"/>')  # fmt: skip
        out.append(f'<text x="{lx + 26}" y="{y}">{escape(label)}</text>')
    return out
