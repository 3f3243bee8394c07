"""Gaussian blur with the mirrored boundary of :func:`perceptlab.ops.imresize`."""

from __future__ import annotations

import math
from functools import lru_cache

import torch

from perceptlab._checks import check_image
from perceptlab.ops._separable import apply_separable, axis_matrix

# Taps beyond 3 sigma carry under 0.3 % of the weight; cutting there is the usual choice.
_TRUNCATE = 3.0


@lru_cache(maxsize=64)
def _blur_matrix(length: int, sigma: float) -> torch.Tensor:
    radius = math.ceil(_TRUNCATE * sigma)

    def kernel(d: torch.Tensor) -> torch.Tensor:
        return torch.exp(-d.pow(2) / (2.0 * sigma**2)) * (d.abs() <= radius)

    return axis_matrix(length, torch.arange(1, length + 1, dtype=torch.float64), kernel, 2.0 * radius)


def gaussian_blur(x: torch.Tensor, sigma: float) -> torch.Tensor:
    """Blur every channel with an isotropic Gaussian of standard deviation ``sigma`` pixels.

    The kernel is cut at ``ceil(3 sigma)`` pixels from its centre and
    normalised to sum to 1; pixels beyond the border are mirrored with the edge
    repeated (MATLAB's ``symmetric`` padding, as in :func:`imresize`), so a flat
    image stays flat up to its edges. The output has the size of the input and
    is differentiable; ``sigma = 0`` returns ``x`` unchanged.

    Args:
        x: images, any floating dtype.
        sigma: standard deviation in pixels, ``>= 0``.

    Returns:
        The blurred images, same shape, dtype and device as ``x``.

    Shape:
        (N, C, H, W) -> (N, C, H, W).

    Example:
        >>> x = torch.rand(2, 3, 32, 32)
        >>> gaussian_blur(x, 1.0).shape
        torch.Size([2, 3, 32, 32])
    """
    check_image(x)
    if not math.isfinite(sigma) or sigma < 0:
        raise ValueError(f"sigma must be a non-negative number, got {sigma!r}")
    if sigma == 0:
        return x
    h, w = x.shape[-2:]
    return apply_separable(x, _blur_matrix(h, float(sigma)), _blur_matrix(w, float(sigma)))
