"""Total variation, the smoothness prior of image inversion and style transfer."""

from __future__ import annotations

import torch
from torch import nn

from perceptlab._checks import check_image, check_min_size, reduce
from perceptlab.losses.pixel import per_image_mean

TV_KINDS = ("l2", "l1")


def total_variation(x: torch.Tensor, reduction: str = "mean", kind: str = "l2") -> torch.Tensor:
    """Total variation of each image, normalised by the number of differences.

    With ``dv = x[:, :, 1:, :] - x[:, :, :-1, :]`` (vertical neighbours) and
    ``dh = x[:, :, :, 1:] - x[:, :, :, :-1]`` (horizontal neighbours)::

        kind="l1":  TV(x) = mean(|dv|)   + mean(|dh|)      (anisotropic)
        kind="l2":  TV(x) = mean(dv ** 2) + mean(dh ** 2)

    each mean running over the C x (H-1) x W or C x H x (W-1) differences of one
    image. Dividing by the count, not summing, keeps the value independent of
    the image size: a ramp rising by ``g`` per pixel has ``TV_l1 = g`` at any size.

    Args:
        x: images.
        reduction: ``"none"`` | ``"mean"`` | ``"sum"`` over the batch.
        kind: ``"l2"`` (squared differences, smooth everywhere) or ``"l1"``
            (absolute differences, keeps edges).

    Returns:
        The total variation, one value per image for ``reduction="none"``, else a scalar.

    Shape:
        ``x``: (N, C, H, W) with H, W >= 2; output: (N,) or ().

    Example:
        >>> ramp = torch.arange(8.0).view(1, 1, 1, 8).expand(1, 1, 8, 8)
        >>> total_variation(ramp, kind="l1")
        tensor(1.)

    Reference:
        Rudin, Osher and Fatemi, "Nonlinear total variation based noise removal
        algorithms", Physica D 60, 1992 (L1); Mahendran and Vedaldi,
        "Understanding deep image representations by inverting them", CVPR 2015
        (squared differences).
    """
    check_image(x, "input")
    check_min_size(x, 2, "total variation")
    dv = x[:, :, 1:, :] - x[:, :, :-1, :]
    dh = x[:, :, :, 1:] - x[:, :, :, :-1]
    if kind == "l1":
        penalty = torch.abs
    elif kind == "l2":
        penalty = torch.square
    else:
        raise ValueError(f"kind must be one of {TV_KINDS}, got {kind!r}")
    return reduce(per_image_mean(penalty(dv)) + per_image_mean(penalty(dh)), reduction)


class TVLoss(nn.Module):
    """Module form of :func:`total_variation`.

    It takes one image; a ``target`` passed second (to sit in a combination of
    ``loss(pred, target)`` terms) is ignored.

    Example:
        >>> loss = TVLoss(kind="l1")(torch.rand(2, 3, 8, 8))
    """

    def __init__(self, reduction: str = "mean", kind: str = "l2"):
        super().__init__()
        if kind not in TV_KINDS:
            raise ValueError(f"kind must be one of {TV_KINDS}, got {kind!r}")
        self.reduction = reduction
        self.kind = kind

    def forward(self, pred: torch.Tensor, target: torch.Tensor | None = None) -> torch.Tensor:
        return total_variation(pred, self.reduction, self.kind)
