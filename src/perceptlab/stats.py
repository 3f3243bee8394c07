"""Agreement between two lists of scores: Pearson (PLCC), Spearman (SROCC) and RMSE.

How a learned metric is judged against the one it imitates (:mod:`perceptlab.codec.proxy`), and later a
metric against people. Plain numpy, no SciPy.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np


def _pair(a: Sequence[float], b: Sequence[float]) -> tuple[np.ndarray, np.ndarray]:
    a, b = np.asarray(a, dtype=np.float64).ravel(), np.asarray(b, dtype=np.float64).ravel()
    if a.shape != b.shape or a.size < 2:
        raise ValueError(f"need two lists of the same length, at least 2, got {a.size} and {b.size}")
    return a, b


def ranks(values: Sequence[float]) -> np.ndarray:
    """1-based ranks, ties sharing their mean rank (as SciPy's ``rankdata``)."""
    v = np.asarray(values, dtype=np.float64).ravel()
    order = np.argsort(v, kind="stable")
    sorted_v = v[order]
    out = np.empty(v.size)
    start = 0
    while start < v.size:
        end = start
        while end + 1 < v.size and sorted_v[end + 1] == sorted_v[start]:
            end += 1
        out[order[start : end + 1]] = (start + end) / 2 + 1
        start = end + 1
    return out


def plcc(a: Sequence[float], b: Sequence[float]) -> float:
    """Pearson's linear correlation; ``nan`` when either list is constant."""
    a, b = _pair(a, b)
    a, b = a - a.mean(), b - b.mean()
    denom = np.sqrt((a * a).sum() * (b * b).sum())
    return float((a * b).sum() / denom) if denom > 0 else float("nan")


def srocc(a: Sequence[float], b: Sequence[float]) -> float:
    """Spearman's rank correlation: Pearson's on the ranks (ties averaged)."""
    a, b = _pair(a, b)
    return plcc(ranks(a), ranks(b))


def rmse(a: Sequence[float], b: Sequence[float]) -> float:
    """Root mean squared difference."""
    a, b = _pair(a, b)
    return float(np.sqrt(np.mean((a - b) ** 2)))


def agreement(pred: Sequence[float], truth: Sequence[float]) -> dict[str, float]:
    """``{"srocc", "plcc", "rmse"}`` of predictions against the true scores."""
    return {"srocc": srocc(pred, truth), "plcc": plcc(pred, truth), "rmse": rmse(pred, truth)}
