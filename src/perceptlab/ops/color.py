"""Colour correction by histogram matching: map each channel's histogram onto a reference's.

The fix our sources suggest for the colour shifts of networks trained with
feature losses: the output keeps its detail, the input decides the colours.
"""

from __future__ import annotations

import numpy as np


def match_histograms(image: np.ndarray, reference: np.ndarray) -> np.ndarray:
    """Per-channel histogram matching of an 8-bit image to an 8-bit reference of any size.

    Each channel's values are mapped through a 256-entry lookup table so that
    its cumulative histogram follows the reference's (quantile mapping); the
    images need not be the same size.

    Args:
        image: (H, W, 3) uint8.
        reference: (h, w, 3) uint8.

    Returns:
        (H, W, 3) uint8, a new array.
    """
    if image.dtype != np.uint8 or reference.dtype != np.uint8:
        raise TypeError(f"match_histograms takes uint8 images, got {image.dtype} and {reference.dtype}")
    if image.ndim != 3 or reference.ndim != 3 or image.shape[2] != reference.shape[2]:
        raise ValueError(f"images must be (H, W, C) with the same C, got {image.shape} and {reference.shape}")
    out = np.empty_like(image)
    for c in range(image.shape[2]):
        src_cdf = _cdf(image[..., c])
        ref_counts = np.bincount(reference[..., c].ravel(), minlength=256)
        present = np.flatnonzero(ref_counts)  # strictly increasing CDF: interpolation is well defined
        ref_cdf = np.cumsum(ref_counts)[present] / reference[..., c].size
        lut = np.interp(src_cdf, ref_cdf, present)
        out[..., c] = np.round(lut).astype(np.uint8)[image[..., c]]
    return out


def _cdf(channel: np.ndarray) -> np.ndarray:
    return np.cumsum(np.bincount(channel.ravel(), minlength=256)) / channel.size
