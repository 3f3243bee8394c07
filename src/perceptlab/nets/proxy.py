"""A small network that imitates a full-reference quality metric (VMAF): the ProxIQA idea.

Chen, Bampis, Li, Norkin and Bovik (ProxIQA, IEEE TIP 2021) replace a
non-differentiable or costly metric in a codec's loss by a few convolutional
layers trained to predict it. :class:`QualityProxy` is that network here::

    luma of target and pred (BT.601), their difference     3 x H x W
    conv 5x5 /2, lrelu                                       w x H/2
    conv 3x3 /2, lrelu                                      2w x H/4
    conv 3x3 /2, lrelu                                      2w x H/8
    conv 3x3 /2, lrelu                                      4w x H/16
    mean over the image, linear                              1
    100 * sigmoid                                            score in (0, 100)

Four convolutions, as the source's "3-4 layers"; VMAF looks at luma only, so the
proxy does too. The mean over the image makes it take any size (at least 16
pixels) and pool as VMAF pools its features, over the whole frame.
"""

from __future__ import annotations

import torch
from torch import nn

from perceptlab._checks import check_min_size, check_pair
from perceptlab.metrics.psnr import rgb_to_y

PROXY_MIN_SIZE = 16


class QualityProxy(nn.Module):
    """``(pred, target) -> score``: RGB NCHW in ``[0, 1]`` to one estimate in ``(0, 100)`` per image.

    Args:
        width: channels of the first layer (``w`` in the module docstring).

    Shape:
        pred, target (N, 3, H, W), H and W >= 16 -> (N,).

    Example:
        >>> proxy = QualityProxy()
        >>> proxy(torch.rand(2, 3, 64, 64), torch.rand(2, 3, 64, 64)).shape
        torch.Size([2])
    """

    def __init__(self, width: int = 32):
        super().__init__()
        if isinstance(width, bool) or not isinstance(width, int) or width < 1:
            raise ValueError(f"width must be a positive int, got {width!r}")
        self.width = width
        w = width
        self.features = nn.Sequential(
            nn.Conv2d(3, w, 5, stride=2, padding=2), nn.LeakyReLU(0.2),
            nn.Conv2d(w, 2 * w, 3, stride=2, padding=1), nn.LeakyReLU(0.2),
            nn.Conv2d(2 * w, 2 * w, 3, stride=2, padding=1), nn.LeakyReLU(0.2),
            nn.Conv2d(2 * w, 4 * w, 3, stride=2, padding=1), nn.LeakyReLU(0.2),
        )  # fmt: skip
        self.head = nn.Linear(4 * w, 1)

    def forward(self, pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        check_pair(pred, target, channels=3)
        check_min_size(pred, PROXY_MIN_SIZE, "the quality proxy")
        y_pred, y_target = rgb_to_y(pred.clamp(0, 1)), rgb_to_y(target)
        x = torch.cat([y_target - 0.5, y_pred - 0.5, 4 * (y_pred - y_target)], dim=1)
        pooled = self.features(x).mean(dim=(-2, -1))
        return 100 * torch.sigmoid(self.head(pooled)[:, 0])
