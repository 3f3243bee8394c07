"""Colour preservation for style transfer: the style's texture, the content's colours.

Two methods, both applied to a finished stylisation (Gatys et al. 2016,
"Preserving color in neural artistic style transfer"):

- ``"luminance"``: luminance-only transfer. Take the luma Y of the stylised
  image and the chroma of the content. In YIQ and in (full-range, JPEG)
  YCbCr alike, Y = 0.299 R + 0.587 G + 0.114 B and both chroma components
  vanish on greys, so replacing Y while keeping the chroma adds the same
  amount to R, G and B: ``out = content + (Y(stylised) - Y(content))``.
  The two spaces therefore give the same image, and there is nothing to
  choose between them.
- ``"histogram"``: match each RGB channel's histogram of the stylised image
  to the content's (:func:`perceptlab.ops.color.match_histograms`).

Luminance transfer keeps the content's chroma exactly, except where the sum
leaves [0, 1] and is clipped (a bright stylised pixel on a saturated content
colour); histogram matching keeps the stylised image's structure of colours
and only remaps their distribution.
"""

from __future__ import annotations

import numpy as np
import torch

from perceptlab._checks import check_pair
from perceptlab.io import _to_uint8
from perceptlab.ops.color import match_histograms

COLOR_METHODS = ("luminance", "histogram")
# ITU-R BT.601 luma, the Y of YIQ and of JPEG's YCbCr.
LUMA_WEIGHTS = (0.299, 0.587, 0.114)


def luma(x: torch.Tensor) -> torch.Tensor:
    """BT.601 luma of RGB images. Shape: (N, 3, H, W) -> (N, 1, H, W)."""
    weights = torch.tensor(LUMA_WEIGHTS, dtype=x.dtype, device=x.device).view(1, 3, 1, 1)
    return (x * weights).sum(dim=1, keepdim=True)


def preserve_colors(stylized: torch.Tensor, content: torch.Tensor, method: str = "luminance") -> torch.Tensor:
    """Give a stylised image the colours of its content image.

    Args:
        stylized: the stylised images, in [0, 1].
        content: the content images they were made from, same shape, in [0, 1].
        method: ``"luminance"`` (stylised luma, content chroma) or
            ``"histogram"`` (per-channel histogram matching to the content).

    Returns:
        The recoloured images in [0, 1] (the histogram method's values are
        multiples of 1/255: it works on 8-bit values).

    Shape:
        stylized, content: (N, 3, H, W); output: (N, 3, H, W).

    Example:
        >>> out = preserve_colors(torch.rand(1, 3, 8, 8), torch.rand(1, 3, 8, 8))

    Reference:
        Gatys, Bethge, Hertzmann and Shechtman, "Preserving color in neural
        artistic style transfer", arXiv:1606.05897, 2016.
    """
    check_pair(stylized, content, channels=3)
    if method == "luminance":
        return (content + luma(stylized) - luma(content)).clamp(0.0, 1.0)
    if method == "histogram":
        out = [match_histograms(_to_uint8(s), _to_uint8(c)) for s, c in zip(stylized, content)]
        return torch.from_numpy(np.stack(out)).permute(0, 3, 1, 2).to(stylized).div(255.0)
    raise ValueError(f"method must be one of {COLOR_METHODS}, got {method!r}")
