"""Argument checks shared by the SR protocol and the SR training data."""

from __future__ import annotations

import torch


def check_scale(scale: int, allow_zero: bool = False) -> None:
    """Raise unless ``scale`` is a positive int (or zero, when ``allow_zero``); bools are refused."""
    minimum = 0 if allow_zero else 1
    if isinstance(scale, bool) or not isinstance(scale, int) or scale < minimum:
        kind = "non-negative" if allow_zero else "positive"
        raise ValueError(f"scale must be a {kind} int, got {scale!r}")


def check_divisible(hr: torch.Tensor, scale: int) -> None:
    """Raise unless both sides of ``hr`` are multiples of ``scale``."""
    h, w = hr.shape[-2:]
    if h % scale or w % scale:
        raise ValueError(
            f"hr of {h}x{w} pixels is not a multiple of {scale}: crop it first (the benchmarks keep the top-left)"
        )
