"""Low-resolution consistency: an SR output, shrunk back, should give its input again.

A super-resolved image ``sr`` of an input ``lr = D(hr)`` (``D``: bicubic
reduction by the scale) is faithful to its input when ``D(sr) = lr``. A
perceptual loss alone does not ask for that: it tolerates colour casts and
shifted brightness that LPIPS and DISTS hardly see (docs/experiments/sr_default.md).
This loss compares ``D(sr)`` with ``D(hr)``, which is the training input
itself when the input was made by ``D`` without blur (:func:`perceptlab.sr.data.degrade`),
so the term needs only the usual ``(pred, target)`` pair and the scale.
"""

from __future__ import annotations

import torch
from torch import nn

from perceptlab._checks import check_pair, reduce
from perceptlab.ops.resize import imresize


def lr_consistency_loss(pred: torch.Tensor, target: torch.Tensor, scale: int, kind: str = "mse",
                        reduction: str = "mean") -> torch.Tensor:  # fmt: skip
    """Pixel distance between ``pred`` and ``target`` after both are shrunk by ``scale``.

    Args:
        pred: SR outputs (not clamped: the loss should see overshoot).
        target: the HR images.
        scale: the SR factor; both images are reduced by MATLAB's bicubic with
            antialiasing (:func:`perceptlab.ops.imresize`), as the inputs are made.
        kind: ``"mse"`` or ``"l1"``, averaged per image.
        reduction: ``"none"`` | ``"mean"`` | ``"sum"`` over the batch.

    Shape:
        ``pred``, ``target``: (N, C, H, W) with H and W multiples of ``scale``; output (N,) or ().

    Example:
        >>> hr = torch.rand(2, 3, 16, 16)
        >>> float(lr_consistency_loss(hr, hr, scale=4))
        0.0
    """
    check_pair(pred, target)
    if isinstance(scale, bool) or not isinstance(scale, int) or scale < 1:
        raise ValueError(f"scale must be a positive int, got {scale!r}")
    h, w = target.shape[-2:]
    if h % scale or w % scale:
        raise ValueError(f"image size {h}x{w} is not a multiple of the scale {scale}")
    if kind not in ("mse", "l1"):
        raise ValueError(f"kind must be 'mse' or 'l1', got {kind!r}")
    diff = imresize(pred, scale=1 / scale) - imresize(target, scale=1 / scale)
    per_image = (diff.square() if kind == "mse" else diff.abs()).flatten(1).mean(1)
    return reduce(per_image, reduction)


class LRConsistencyLoss(nn.Module):
    """Module form of :func:`lr_consistency_loss` (``scale`` and ``kind`` fixed at construction)."""

    def __init__(self, scale: int, kind: str = "mse", reduction: str = "mean"):
        super().__init__()
        self.scale, self.kind, self.reduction = scale, kind, reduction

    def forward(self, pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        return lr_consistency_loss(pred, target, self.scale, self.kind, self.reduction)

    def extra_repr(self) -> str:
        return f"scale={self.scale}, kind={self.kind!r}"
