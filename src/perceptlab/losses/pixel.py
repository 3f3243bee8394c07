"""Pixel-wise losses: L1, MSE and Charbonnier, averaged per image then reduced over the batch.

Each checks that ``target`` lies in ``[0, data_range]``; ``pred`` is not
range-checked, as network outputs overshoot during training (:mod:`perceptlab._checks`).
"""

from __future__ import annotations

import torch
from torch import nn

from perceptlab._checks import check_pair, check_range, reduce


def per_image_mean(values: torch.Tensor) -> torch.Tensor:
    """Mean of an (N, ...) tensor over everything but the batch dimension, shape (N,)."""
    return values.flatten(1).mean(dim=1)


def l1_loss(
    pred: torch.Tensor, target: torch.Tensor, reduction: str = "mean", data_range: float = 1.0
) -> torch.Tensor:
    """Mean absolute error of each image, ``mean |pred - target|``.

    Args:
        pred: predicted images (any values: network outputs are not clamped).
        target: reference images in ``[0, data_range]`` (checked).
        reduction: ``"none"`` | ``"mean"`` | ``"sum"`` over the batch.
        data_range: the value of full intensity (1.0 or 255), for the target's check.

    Returns:
        The loss, one value per image for ``reduction="none"``, else a scalar.

    Shape:
        ``pred``, ``target``: (N, C, H, W); output: (N,) or ().

    Example:
        >>> l1_loss(torch.zeros(2, 3, 4, 4), torch.full((2, 3, 4, 4), 0.5))
        tensor(0.5000)

    Reference:
        Zhao, Gallo, Frosio and Kautz, "Loss functions for image restoration with
        neural networks", IEEE TCI 3(1), 2017.
    """
    check_pair(pred, target)
    check_range(target, "target", data_range)
    return reduce(per_image_mean((pred - target).abs()), reduction)


def mse_loss(
    pred: torch.Tensor, target: torch.Tensor, reduction: str = "mean", data_range: float = 1.0
) -> torch.Tensor:
    """Mean squared error of each image, ``mean (pred - target)^2``.

    Args:
        pred: predicted images (any values: network outputs are not clamped).
        target: reference images in ``[0, data_range]`` (checked).
        reduction: ``"none"`` | ``"mean"`` | ``"sum"`` over the batch.
        data_range: the value of full intensity (1.0 or 255), for the target's check.

    Returns:
        The loss, one value per image for ``reduction="none"``, else a scalar.

    Shape:
        ``pred``, ``target``: (N, C, H, W); output: (N,) or ().

    Example:
        >>> mse_loss(torch.zeros(2, 3, 4, 4), torch.full((2, 3, 4, 4), 0.5))
        tensor(0.2500)

    Reference:
        Zhao, Gallo, Frosio and Kautz, "Loss functions for image restoration with
        neural networks", IEEE TCI 3(1), 2017.
    """
    check_pair(pred, target)
    check_range(target, "target", data_range)
    return reduce(per_image_mean((pred - target).pow(2)), reduction)


def charbonnier_loss(
    pred: torch.Tensor, target: torch.Tensor, eps: float = 1e-3, reduction: str = "mean", data_range: float = 1.0
) -> torch.Tensor:
    """Charbonnier loss of each image, ``mean sqrt((pred - target)^2 + eps^2)``.

    A differentiable L1: it behaves like ``|d|`` for ``|d| >> eps`` and like a
    quadratic near zero, so its gradient stays finite where the images agree.
    It equals ``eps`` (not 0) for identical images.

    Args:
        pred: predicted images (any values: network outputs are not clamped).
        target: reference images in ``[0, data_range]`` (checked).
        eps: smoothing scale, in the units of the images.
        reduction: ``"none"`` | ``"mean"`` | ``"sum"`` over the batch.
        data_range: the value of full intensity (1.0 or 255), for the target's check.

    Returns:
        The loss, one value per image for ``reduction="none"``, else a scalar.

    Shape:
        ``pred``, ``target``: (N, C, H, W); output: (N,) or ().

    Example:
        >>> charbonnier_loss(torch.zeros(1, 1, 2, 2), torch.full((1, 1, 2, 2), 0.3), eps=0.4)
        tensor(0.5000)

    Reference:
        Charbonnier, Blanc-Feraud, Aubert and Barlaud, "Two deterministic
        half-quadratic regularization algorithms for computed imaging", ICIP 1994;
        Lai et al., "Deep Laplacian pyramid networks for fast and accurate
        super-resolution", CVPR 2017.
    """
    check_pair(pred, target)
    check_range(target, "target", data_range)
    if eps <= 0:
        raise ValueError(f"eps must be positive, got {eps!r}")
    return reduce(per_image_mean(((pred - target).pow(2) + eps**2).sqrt()), reduction)


class L1Loss(nn.Module):
    """Module form of :func:`l1_loss`.

    Example:
        >>> loss = L1Loss()(torch.rand(2, 3, 8, 8), torch.rand(2, 3, 8, 8))
    """

    def __init__(self, reduction: str = "mean", data_range: float = 1.0):
        super().__init__()
        self.reduction = reduction
        self.data_range = data_range

    def forward(self, pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        return l1_loss(pred, target, self.reduction, self.data_range)


class MSELoss(nn.Module):
    """Module form of :func:`mse_loss`.

    Example:
        >>> loss = MSELoss()(torch.rand(2, 3, 8, 8), torch.rand(2, 3, 8, 8))
    """

    def __init__(self, reduction: str = "mean", data_range: float = 1.0):
        super().__init__()
        self.reduction = reduction
        self.data_range = data_range

    def forward(self, pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        return mse_loss(pred, target, self.reduction, self.data_range)


class CharbonnierLoss(nn.Module):
    """Module form of :func:`charbonnier_loss`.

    Example:
        >>> loss = CharbonnierLoss(eps=1e-3)(torch.rand(2, 3, 8, 8), torch.rand(2, 3, 8, 8))
    """

    def __init__(self, eps: float = 1e-3, reduction: str = "mean", data_range: float = 1.0):
        super().__init__()
        self.eps = eps
        self.reduction = reduction
        self.data_range = data_range

    def forward(self, pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        return charbonnier_loss(pred, target, self.eps, self.reduction, self.data_range)
