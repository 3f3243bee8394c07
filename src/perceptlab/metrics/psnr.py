"""Peak signal-to-noise ratio, on RGB or on BT.601 luma as super-resolution papers report it."""

from __future__ import annotations

import torch
from torch import nn

from perceptlab._checks import check_image, check_pair, check_range, reduce

PSNR_CHANNELS = ("rgb", "y")

# MATLAB ``rgb2ycbcr`` luma row for R, G, B in [0, 1], giving Y on the 8-bit scale [16, 235].
_Y_OFFSET = 16.0
_Y_WEIGHTS = (65.481, 128.553, 24.966)


def rgb_to_y(x: torch.Tensor, data_range: float = 1.0) -> torch.Tensor:
    """BT.601 luma of an RGB image, as MATLAB's ``rgb2ycbcr`` computes it.

    ``Y = (16 + 65.481 R + 128.553 G + 24.966 B) / 255`` for ``R, G, B`` in
    ``[0, 1]``, rescaled to ``data_range``, so the output lives in the same range
    as the input (``[16/255, 235/255]`` of it), not in ``[0, 1]``.

    Args:
        x: RGB images in ``[0, data_range]``.
        data_range: the value of full intensity (1.0 or 255).

    Returns:
        The luma channel, in the same range as ``x``.

    Shape:
        ``x``: (N, 3, H, W); output: (N, 1, H, W).

    Example:
        >>> rgb_to_y(torch.ones(2, 3, 4, 4)).shape
        torch.Size([2, 1, 4, 4])

    Reference:
        ITU-R Recommendation BT.601; MATLAB ``rgb2ycbcr`` documentation.
    """
    check_image(x, "input", channels=3)
    weights = x.new_tensor(_Y_WEIGHTS).view(1, 3, 1, 1)
    return (_Y_OFFSET * data_range + (x * weights).sum(dim=1, keepdim=True)) / 255.0


def psnr(
    pred: torch.Tensor,
    target: torch.Tensor,
    data_range: float = 1.0,
    channel: str = "rgb",
    shave: int = 0,
    reduction: str = "mean",
) -> torch.Tensor:
    """Peak signal-to-noise ratio in dB, ``10 log10(data_range^2 / MSE)``, higher is better.

    The MSE of each image is taken over all its channels and pixels. Identical
    images have zero MSE and a PSNR of ``+inf``; an ``inf`` sample makes the
    ``mean`` and ``sum`` reductions ``inf`` as well, so use ``reduction="none"``
    when a batch may hold exact copies.

    Args:
        pred: predicted images in ``[0, data_range]`` (clamp network outputs first).
        target: reference images in ``[0, data_range]``.
        data_range: the value of full intensity (1.0 or 255).
        channel: ``"rgb"`` to compare the images as they are (any number of
            channels), ``"y"`` to compare the BT.601 luma of RGB images
            (see :func:`rgb_to_y`), the super-resolution convention.
        shave: pixels cropped off every border before comparing (super-resolution
            papers shave ``scale`` pixels).
        reduction: ``"none"`` | ``"mean"`` | ``"sum"`` over the batch.

    Returns:
        PSNR in dB, one value per image for ``reduction="none"``, else a scalar.

    Raises:
        ValueError: shapes differ, or a value lies outside ``[0, data_range]``
            (:func:`perceptlab._checks.check_range`).

    Shape:
        ``pred``, ``target``: (N, C, H, W), C = 3 for ``channel="y"``;
        output: (N,) or ().

    Example:
        >>> target = torch.full((1, 3, 8, 8), 0.5)
        >>> psnr(target + 0.1, target)  # MSE 0.01
        tensor(20.0000)

    Reference:
        Huynh-Thu and Ghanbari, "Scope of validity of PSNR in image/video
        quality assessment", Electronics Letters 44(13), 2008.
    """
    check_pair(pred, target)
    check_range(pred, "pred", data_range)
    check_range(target, "target", data_range)
    if channel == "y":
        pred, target = rgb_to_y(pred, data_range), rgb_to_y(target, data_range)
    elif channel != "rgb":
        raise ValueError(f"channel must be one of {PSNR_CHANNELS}, got {channel!r}")
    pred, target = _shave(pred, shave), _shave(target, shave)
    mse = (pred - target).pow(2).flatten(1).mean(dim=1)
    return reduce(10.0 * torch.log10(data_range**2 / mse), reduction)


def _shave(x: torch.Tensor, shave: int) -> torch.Tensor:
    h, w = x.shape[-2:]
    if not isinstance(shave, int) or shave < 0:
        raise ValueError(f"shave must be a non-negative int, got {shave!r}")
    if 2 * shave >= min(h, w):
        raise ValueError(f"shave={shave} leaves no pixels of a {h}x{w} image")
    return x[..., shave : h - shave, shave : w - shave]


class PSNR(nn.Module):
    """Module form of :func:`psnr`; see there for the arguments.

    Example:
        >>> metric = PSNR(channel="y", shave=4)
        >>> value = metric(torch.rand(2, 3, 32, 32), torch.rand(2, 3, 32, 32))
    """

    def __init__(self, data_range: float = 1.0, channel: str = "rgb", shave: int = 0, reduction: str = "mean"):
        super().__init__()
        self.data_range = data_range
        self.channel = channel
        self.shave = shave
        self.reduction = reduction

    def forward(self, pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        return psnr(pred, target, self.data_range, self.channel, self.shave, self.reduction)
