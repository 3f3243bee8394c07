"""Bjøntegaard deltas: the average rate saving (BD-rate) and quality gain (BD-PSNR) between two RD curves.

BD-rate interpolates each curve's log-rate as a function of quality,
integrates the difference over the quality range both curves cover, and turns
the mean log-rate difference into a percentage: ``-20`` means the test codec
needs 20 % fewer bits than the anchor for the same quality, on average over
that range. BD-PSNR (:func:`bd_psnr`, for any quality measure) swaps the axes:
the mean quality difference over the common log-rate range.

Two interpolations:

- ``"pchip"`` (default): piecewise cubic Hermite interpolation through the
  points with monotone (Fritsch-Carlson / Fritsch-Butland) slopes, integrated
  exactly. This is the method of the JCT-VC and JVET common-test-condition
  spreadsheets, and the default of the ``bjontegaard`` package (which uses
  SciPy's ``PchipInterpolator``; the slopes here follow the same formulas, so
  the two agree to rounding). It cannot overshoot between points.
- ``"cubic"``: the original VCEG-M33 method, one least-squares cubic
  polynomial per curve. It can swing between points when they are uneven and
  is kept for comparison with older tables.

The log base does not matter (the mean difference is exponentiated back in the
same base); natural logarithms are used.

Reference:
    G. Bjøntegaard, "Calculation of average PSNR differences between
    RD-curves", ITU-T VCEG-M33, 2001; F. Bossen, "Common test conditions and
    software reference configurations", JCTVC-L1100, 2013 (piecewise cubic);
    C. Herglotz et al., "Beyond Bjøntegaard: limits of video compression
    performance comparisons", ICIP 2022 (the ``bjontegaard`` package).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

METHODS = ("pchip", "cubic")
MIN_POINTS = 4


def bd_rate(anchor_rates: Sequence[float], anchor_quality: Sequence[float], test_rates: Sequence[float],
            test_quality: Sequence[float], method: str = "pchip") -> float:  # fmt: skip
    """Bjøntegaard delta rate of the test curve against the anchor, in percent (negative: the test saves bits).

    Args:
        anchor_rates, anchor_quality: the anchor's RD points (rates > 0, in any
            unit, bpp say; quality in any unit where higher is better: dB,
            MS-SSIM, VMAF; negate a lower-is-better measure such as LPIPS).
        test_rates, test_quality: the test codec's RD points, same units.
        method: ``"pchip"`` or ``"cubic"`` (module docstring).

    Returns:
        ``100 * (exp(mean log-rate difference) - 1)`` over the common quality range.

    Raises:
        ValueError: a curve has fewer than 4 points, rates and qualities of
            different lengths, a non-finite value, a rate <= 0, two points with
            the same rate or quality, quality that does not rise with rate, or
            quality ranges that do not overlap.

    Example:
        >>> bd_rate([1, 2, 4, 8], [30, 33, 36, 39], [0.8, 1.6, 3.2, 6.4], [30, 33, 36, 39])  # doctest: +ELLIPSIS
        -20.0...
    """
    anchor = _curve(anchor_rates, anchor_quality, "anchor")
    test = _curve(test_rates, test_quality, "test")
    # Interpolate log-rate over quality.
    mean = _mean_difference((anchor[1], anchor[0]), (test[1], test[0]), method, "quality")
    return float(100.0 * np.expm1(mean))


def bd_psnr(anchor_rates: Sequence[float], anchor_quality: Sequence[float], test_rates: Sequence[float],
            test_quality: Sequence[float], method: str = "pchip") -> float:  # fmt: skip
    """Bjøntegaard delta quality: the test curve's mean quality gain over the anchor at equal rate.

    In the quality's own unit (dB for PSNR, hence the name); averaged over the
    common range of log-rates. Arguments and errors as :func:`bd_rate`.

    Example:
        >>> bd_psnr([1, 2, 4, 8], [30, 33, 36, 39], [1, 2, 4, 8], [31, 34, 37, 40])  # doctest: +ELLIPSIS
        1.0...
    """
    anchor = _curve(anchor_rates, anchor_quality, "anchor")
    test = _curve(test_rates, test_quality, "test")
    return float(_mean_difference(anchor, test, method, "log-rate"))


def _curve(rates: Sequence[float], quality: Sequence[float], name: str) -> tuple[np.ndarray, np.ndarray]:
    """``(log rates, quality)`` sorted by rate, after the checks :func:`bd_rate` documents."""
    r = np.asarray(rates, dtype=np.float64).ravel()
    q = np.asarray(quality, dtype=np.float64).ravel()
    if r.size != q.size:
        raise ValueError(f"{name}: {r.size} rates but {q.size} quality values")
    if r.size < MIN_POINTS:
        raise ValueError(f"{name}: a BD curve needs at least {MIN_POINTS} RD points, got {r.size}")
    if not (np.isfinite(r).all() and np.isfinite(q).all()):
        raise ValueError(f"{name}: rates and quality values must be finite")
    if (r <= 0).any():
        raise ValueError(f"{name}: rates must be positive, got {r.min():g}")
    order = np.argsort(r, kind="stable")
    r, q = r[order], q[order]
    if (np.diff(r) == 0).any():
        raise ValueError(f"{name}: two RD points have the same rate {r[np.flatnonzero(np.diff(r) == 0)[0]]:g}")
    if (np.diff(q) <= 0).any():
        k = int(np.flatnonzero(np.diff(q) <= 0)[0])
        raise ValueError(f"{name}: quality must rise with rate, but rate {r[k]:g} -> {r[k + 1]:g} "
                         f"gives quality {q[k]:g} -> {q[k + 1]:g}")  # fmt: skip
    return np.log(r), q


def _mean_difference(anchor: tuple[np.ndarray, np.ndarray], test: tuple[np.ndarray, np.ndarray], method: str,
                     axis: str) -> float:  # fmt: skip
    """Mean of ``f_test - f_anchor`` over the common range of x, each ``f`` interpolating one ``(x, y)`` curve."""
    if method not in METHODS:
        raise ValueError(f"method must be one of {', '.join(METHODS)}, got {method!r}")
    (xa, ya), (xt, yt) = anchor, test
    lo, hi = max(xa[0], xt[0]), min(xa[-1], xt[-1])
    if lo >= hi:
        raise ValueError(f"the curves' {axis} ranges do not overlap: anchor {_span(xa, axis)}, test {_span(xt, axis)}")
    integral = _pchip_integral if method == "pchip" else _cubic_integral
    return (integral(xt, yt, lo, hi) - integral(xa, ya, lo, hi)) / (hi - lo)


def _span(x: np.ndarray, axis: str) -> str:
    if axis == "log-rate":
        return f"rates {np.exp(x[0]):g}..{np.exp(x[-1]):g}"
    return f"{x[0]:g}..{x[-1]:g}"


def _cubic_integral(x: np.ndarray, y: np.ndarray, lo: float, hi: float) -> float:
    """Integral from ``lo`` to ``hi`` of the least-squares cubic through ``(x, y)`` (VCEG-M33)."""
    antiderivative = np.polyint(np.polyfit(x, y, 3))
    return float(np.polyval(antiderivative, hi) - np.polyval(antiderivative, lo))


def pchip_slopes(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Slopes at the points of the monotone piecewise cubic Hermite interpolant (x strictly increasing).

    Interior points: 0 where the neighbouring secants differ in sign (or one is
    0), else their weighted harmonic mean (Fritsch and Butland 1984). End
    points: the one-sided three-point estimate, set to 0 if its sign differs
    from the first secant and limited to 3 secants where the secants change
    sign (as SciPy's ``PchipInterpolator`` and MATLAB's ``pchip``).
    """
    h = np.diff(x)
    m = np.diff(y) / h
    d = np.zeros_like(y)
    w1, w2 = 2 * h[1:] + h[:-1], h[1:] + 2 * h[:-1]
    same = np.sign(m[1:]) * np.sign(m[:-1]) > 0
    with np.errstate(divide="ignore", invalid="ignore"):
        d[1:-1] = np.where(same, (w1 + w2) / (w1 / m[:-1] + w2 / m[1:]), 0.0)
    d[0] = _end_slope(h[0], h[1], m[0], m[1])
    d[-1] = _end_slope(h[-1], h[-2], m[-1], m[-2])
    return d


def _end_slope(h0: float, h1: float, m0: float, m1: float) -> float:
    d = ((2 * h0 + h1) * m0 - h0 * m1) / (h0 + h1)
    if np.sign(d) != np.sign(m0):
        return 0.0
    if np.sign(m0) != np.sign(m1) and abs(d) > abs(3 * m0):
        return 3 * m0
    return float(d)


def _pchip_integral(x: np.ndarray, y: np.ndarray, lo: float, hi: float) -> float:
    """Exact integral from ``lo`` to ``hi`` (inside ``[x[0], x[-1]]``) of the PCHIP interpolant of ``(x, y)``."""
    d = pchip_slopes(x, y)
    h, m = np.diff(x), np.diff(y) / np.diff(x)
    # Each piece as y_k + d_k t + c2 t^2 + c3 t^3 with t = x - x_k in [0, h_k].
    c2 = (3 * m - 2 * d[:-1] - d[1:]) / h
    c3 = (d[:-1] + d[1:] - 2 * m) / h**2

    def antiderivative(k: np.ndarray, t: np.ndarray) -> np.ndarray:
        return t * (y[:-1][k] + t * (d[:-1][k] / 2 + t * (c2[k] / 3 + t * c3[k] / 4)))

    k = np.arange(len(h))
    start = np.clip(lo - x[:-1], 0.0, h)
    stop = np.clip(hi - x[:-1], 0.0, h)
    return float(np.sum(antiderivative(k, stop) - antiderivative(k, start)))
