"""MATLAB-compatible bicubic resizing, the resize that super-resolution benchmarks are made with."""

from __future__ import annotations

import math
from functools import lru_cache

import torch

from perceptlab._checks import check_image
from perceptlab.ops._separable import BOUNDARIES, apply_separable, axis_matrix

# Keys' cubic convolution kernel with a = -0.5, the one MATLAB's "bicubic" uses.
_CUBIC_WIDTH = 4.0


def cubic(d: torch.Tensor) -> torch.Tensor:
    """Keys' cubic convolution kernel (a = -0.5) at distances ``d``, zero beyond 2."""
    d = d.abs()
    d2, d3 = d.pow(2), d.pow(3)
    near = 1.5 * d3 - 2.5 * d2 + 1.0
    far = -0.5 * d3 + 2.5 * d2 - 4.0 * d + 2.0
    return torch.where(d <= 1.0, near, torch.where(d <= 2.0, far, torch.zeros_like(d)))


@lru_cache(maxsize=64)
def _resize_matrix(
    in_length: int, out_length: int, scale: float, antialias: bool, boundary: str
) -> torch.Tensor | None:
    """(out_length, in_length) float64 bicubic weights along one axis, as MATLAB computes them.

    ``None`` when the axis keeps its size at scale 1, which is the identity.
    """
    if in_length == out_length and scale == 1.0:
        # Cubic is 1 at 0 and 0 at every other integer, so the weights are the identity.
        return None
    # Output pixel k (1-based) is centred on this input coordinate: the two
    # images' outer pixel edges coincide, whatever the rounding of the size.
    centres = torch.arange(1, out_length + 1, dtype=torch.float64) / scale + 0.5 * (1.0 - 1.0 / scale)
    if scale < 1.0 and antialias:
        # Stretch the kernel by 1/scale so it low-passes to the new Nyquist rate.
        return axis_matrix(in_length, centres, lambda d: cubic(d * scale), _CUBIC_WIDTH / scale, boundary)
    return axis_matrix(in_length, centres, cubic, _CUBIC_WIDTH, boundary)


def imresize(
    x: torch.Tensor,
    scale: float | None = None,
    size: tuple[int, int] | None = None,
    antialias: bool = True,
    boundary: str = "symmetric",
) -> torch.Tensor:
    """Bicubic resize that reproduces MATLAB's ``imresize(x, scale)`` / ``imresize(x, size)``.

    Give exactly one of ``scale`` and ``size``. MATLAB's choices, all kept:

    - Kernel: Keys' cubic convolution with ``a = -0.5`` (4 taps).
    - Antialiasing (MATLAB's default): when shrinking by ``scale < 1`` the
      kernel is widened by ``1 / scale``, so a 1/4 reduction averages over 16
      input pixels per axis instead of sampling 4. ``antialias=False`` keeps the
      4-tap kernel (aliasing, like most deep-learning bicubic resizes).
    - Geometry: output pixel ``k`` (1-based) samples the input at
      ``k / scale + (1 - 1 / scale) / 2``, so the image borders line up.
    - Output size: ``ceil(scale * input)`` per axis; the sampling still uses
      ``scale`` itself, not the ratio of the sizes. When ``size`` is given, each
      axis uses ``scale = out / in``. For a scale like 1/3, prefer ``size``:
      ``ceil`` of a product that lands a rounding error above an integer adds a pixel.
    - Boundary: taps outside the image take the mirrored pixel (edge repeated,
      MATLAB's ``symmetric`` padding), after the weights of each output
      pixel are normalised to sum to 1. Older MATLAB releases (the
      ``imresize.m`` of 2006) clamped the indices instead, repeating the edge pixel:
      ``boundary="replicate"``. The LR images of the Set5/Set14/BSD100
      benchmark files (SelfExSR, 2015) were made that way; the choice only
      changes the outer ``2 / scale`` pixels of a reduction, and nothing an
      x2-x4 enlargement leaves after the usual ``scale``-pixel shave.
    - The axis that shrinks most is resized first, as MATLAB does.

    Nothing is clamped or rounded: the result is a linear function of ``x``
    (it can overshoot ``[0, 1]`` near edges) and is differentiable. Clamp and
    round yourself to make an 8-bit image, in float64 to match MATLAB's
    double-precision arithmetic. MATLAB given a ``uint8`` image also rounds
    (and clamps) between the two axes; :func:`perceptlab.sr.benchmark_lr`
    does that, and reproduces the benchmark LR files bit for bit.

    Each axis is one dense weight matrix applied as a matrix product over the
    whole batch (an axis that keeps its size at scale 1 is left alone); the
    matrices are cached per (size, scale).

    Args:
        x: images, any floating dtype, any range.
        scale: factor applied to both sides (``0.25`` shrinks by 4, ``4``
            enlarges by 4).
        size: the output ``(height, width)``.
        antialias: widen the kernel when shrinking (MATLAB's default).
        boundary: ``"symmetric"`` (current MATLAB) or ``"replicate"`` (older
            MATLAB, and the benchmark LR files).

    Returns:
        The resized images, same dtype and device as ``x``.

    Shape:
        ``x``: (N, C, H, W); output: (N, C, ceil(scale H), ceil(scale W)) or (N, C, *size).

    Raises:
        ValueError: both or neither of ``scale`` and ``size``, a non-positive
            scale, an output with no pixels, or an unknown ``boundary``.

    Example:
        >>> hr = torch.rand(1, 3, 96, 96, dtype=torch.float64)
        >>> lr = imresize(hr, scale=1 / 4)
        >>> lr.shape
        torch.Size([1, 3, 24, 24])
        >>> imresize(lr, size=(96, 96)).shape
        torch.Size([1, 3, 96, 96])

    Reference:
        Keys, "Cubic convolution interpolation for digital image processing",
        IEEE Trans. ASSP 29(6), 1981; MATLAB ``imresize`` documentation.
    """
    check_image(x)
    if boundary not in BOUNDARIES:
        raise ValueError(f"boundary must be one of {BOUNDARIES}, got {boundary!r}")
    in_h, in_w = x.shape[-2:]
    scale_h, scale_w, out_h, out_w = _scales_and_size(in_h, in_w, scale, size)
    rows = _resize_matrix(in_h, out_h, scale_h, antialias, boundary)
    cols = _resize_matrix(in_w, out_w, scale_w, antialias, boundary)
    return apply_separable(x, rows, cols, rows_first=scale_h <= scale_w)


def _scales_and_size(
    in_h: int, in_w: int, scale: float | None, size: tuple[int, int] | None
) -> tuple[float, float, int, int]:
    if (scale is None) == (size is None):
        raise ValueError("give exactly one of scale and size")
    if min(in_h, in_w) < 1:
        raise ValueError(f"cannot resize an image of {in_h}x{in_w} pixels")
    if scale is not None:
        if not math.isfinite(scale) or scale <= 0:
            raise ValueError(f"scale must be a positive number, got {scale!r}")
        out_h, out_w = math.ceil(scale * in_h), math.ceil(scale * in_w)
        scale_h = scale_w = float(scale)
    else:
        if len(size) != 2 or not all(isinstance(s, int) and s > 0 for s in size):
            raise ValueError(f"size must be a (height, width) pair of positive ints, got {size!r}")
        out_h, out_w = size
        scale_h, scale_w = out_h / in_h, out_w / in_w
    return scale_h, scale_w, out_h, out_w


def resize_longer_side(image: torch.Tensor, side: int | None) -> torch.Tensor:
    """``image`` resized (bicubic, antialiased) so that its longer side is ``side``; ``None`` or 0 keeps it.

    Shape:
        (N, C, H, W) -> (N, C, H', W') with ``max(H', W') == side``.
    """
    if not side:
        return image
    h, w = image.shape[-2:]
    if max(h, w) == side:
        return image
    size = (max(1, round(h * side / max(h, w))), max(1, round(w * side / max(h, w))))
    return imresize(image, size=size).clamp(0.0, 1.0)
