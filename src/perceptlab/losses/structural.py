"""Structural losses: ``1 - SSIM`` and ``1 - MS-SSIM``, zero for identical images.

As every loss, they check the target's range but not the prediction's, which
may be an unclamped network output (:mod:`perceptlab._checks`).
"""

from __future__ import annotations

import torch

from perceptlab._checks import reduce
from perceptlab.metrics.ssim import MS_SSIM_WEIGHTS, MSSSIM, SSIM, ms_ssim_per_image, ssim_per_image


def ssim_loss(
    pred: torch.Tensor,
    target: torch.Tensor,
    data_range: float = 1.0,
    win_size: int = 11,
    sigma: float = 1.5,
    k1: float = 0.01,
    k2: float = 0.03,
    reduction: str = "mean",
) -> torch.Tensor:
    """``1 - SSIM`` of each image, reduced over the batch.

    Args:
        pred: predicted images, nominally in ``[0, data_range]`` (not checked).
        target: reference images in ``[0, data_range]``.
        data_range, win_size, sigma, k1, k2: as in :func:`perceptlab.metrics.ssim.ssim`.
        reduction: ``"none"`` | ``"mean"`` | ``"sum"`` over the batch.

    Returns:
        The loss, one value per image for ``reduction="none"``, else a scalar.

    Shape:
        ``pred``, ``target``: (N, C, H, W) with H, W >= ``win_size``; output: (N,) or ().

    Example:
        >>> x = torch.rand(2, 3, 32, 32)
        >>> ssim_loss(x, x)
        tensor(0.)

    Reference:
        Zhao, Gallo, Frosio and Kautz, "Loss functions for image restoration with
        neural networks", IEEE TCI 3(1), 2017.
    """
    per_image = ssim_per_image(pred, target, data_range, win_size, sigma, k1, k2)
    return reduce(1.0 - per_image, reduction)


def ms_ssim_loss(
    pred: torch.Tensor,
    target: torch.Tensor,
    data_range: float = 1.0,
    weights: tuple[float, ...] = MS_SSIM_WEIGHTS,
    win_size: int = 11,
    sigma: float = 1.5,
    k1: float = 0.01,
    k2: float = 0.03,
    reduction: str = "mean",
) -> torch.Tensor:
    """``1 - MS-SSIM`` of each image, reduced over the batch.

    Args:
        pred: predicted images, nominally in ``[0, data_range]`` (not checked).
        target: reference images in ``[0, data_range]``.
        data_range, weights, win_size, sigma, k1, k2: as in
            :func:`perceptlab.metrics.ssim.ms_ssim`.
        reduction: ``"none"`` | ``"mean"`` | ``"sum"`` over the batch.

    Returns:
        The loss, one value per image for ``reduction="none"``, else a scalar.

    Shape:
        ``pred``, ``target``: (N, C, H, W), at least 161x161 with the defaults;
        output: (N,) or ().

    Example:
        >>> x = torch.rand(1, 3, 192, 192)
        >>> ms_ssim_loss(x, x)
        tensor(0.)

    Reference:
        Zhao, Gallo, Frosio and Kautz, "Loss functions for image restoration with
        neural networks", IEEE TCI 3(1), 2017.
    """
    per_image = ms_ssim_per_image(pred, target, data_range, weights, win_size, sigma, k1, k2)
    return reduce(1.0 - per_image, reduction)


class SSIMLoss(SSIM):
    """Module form of :func:`ssim_loss`; takes the arguments of :class:`~perceptlab.metrics.ssim.SSIM`.

    Example:
        >>> loss = SSIMLoss()(torch.rand(2, 3, 32, 32), torch.rand(2, 3, 32, 32))
    """

    def forward(self, pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        return ssim_loss(pred, target, self.data_range, self.win_size, self.sigma, self.k1, self.k2, self.reduction)


class MSSSIMLoss(MSSSIM):
    """Module form of :func:`ms_ssim_loss`; takes the arguments of :class:`~perceptlab.metrics.ssim.MSSSIM`.

    Example:
        >>> loss = MSSSIMLoss()(torch.rand(1, 3, 192, 192), torch.rand(1, 3, 192, 192))
    """

    def forward(self, pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        return ms_ssim_loss(
            pred, target, self.data_range, self.weights, self.win_size, self.sigma, self.k1, self.k2, self.reduction
        )
