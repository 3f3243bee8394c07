"""VMAF on still images, computed by the optional ``vmaf-torch`` package.

``vmaf-torch`` is a float re-implementation of Netflix's libvmaf: it takes luma
planes in ``[0, 255]`` as (frames, 1, H, W) and predicts the score with the
libvmaf default model. This module adapts it to the house convention (RGB NCHW
in ``[0, 1]``, ``(pred, target)``, one score per image) and imports it only when
a score is asked for, so the package works without it.
"""

from __future__ import annotations

import torch
from torch import nn

from perceptlab._checks import check_min_size, check_pair, check_range, reduce
from perceptlab.metrics.psnr import rgb_to_y

# ADM's 4-level wavelet transform halves the image 4 times and then filters the
# coarsest sub-band with a 3x3 reflect-padded window, which needs 2 pixels:
# ceil(side / 16) >= 2. VIF's 4 scales need only 16.
VMAF_MIN_SIZE = 17

_MISSING = "VMAF needs the optional dependency vmaf-torch: pip install 'perceptlab[vmaf]'"


def vmaf(pred: torch.Tensor, target: torch.Tensor, reduction: str = "mean", neg: bool = False) -> torch.Tensor:
    """VMAF score of each image against its reference, 0 to 100, higher is better.

    What is computed, and how it relates to running libvmaf:

    - **Model**: VMAF v0.6.1 (libvmaf's default ``vmaf_v0.6.1.json``: an SVM
      on ADM2, motion2 and VIF at 4 scales), as built into vmaf-torch 1.1.0.
      With ``neg=True``, VMAF NEG ("no enhancement gain", as
      ``vmaf_v0.6.1neg``): the same SVM with ADM and VIF enhancement gain
      limited to 1, so sharpening or contrast boosts cannot raise the score.
    - **Luma**: VMAF looks at luma only. RGB is converted with BT.601 weights
      to limited ("TV") range, ``Y = 16 + 219 (0.299 R + 0.587 G + 0.114 B)``,
      which is what ffmpeg's default RGB -> YUV conversion feeds libvmaf when
      it scores PNG/JPEG files. The luma is kept in float, not rounded to
      8 bits as libvmaf's integer code would see it.
    - **Range**: ``vmaf`` checks that both images lie in ``[0, 1]``
      (``ValueError`` otherwise). The module :class:`VMAF`, a differentiable
      proxy that may see unclamped network outputs, checks only ``target`` and
      clips ``pred`` to ``[0, 1]``.
    - **Stills**: every batch item is scored as a one-frame video, on its own.
      The temporal feature (motion2) is therefore 0, which makes VMAF lower for
      a still than for the same frame inside a moving video: identical images
      score about 97.4, not 100.
    - Scores are clipped to ``[0, 100]``, as libvmaf does for this model.
      Inside that range the score is differentiable.

    Args:
        pred: distorted images in ``[0, 1]``.
        target: reference images in ``[0, 1]``.
        reduction: ``"none"`` | ``"mean"`` | ``"sum"`` over the batch.
        neg: compute VMAF NEG instead of plain VMAF.

    Returns:
        The VMAF score, one per image for ``reduction="none"``, else a scalar.

    Shape:
        ``pred``, ``target``: (N, 3, H, W) with H, W >= 17
        (:data:`VMAF_MIN_SIZE`); output: (N,) or ().

    Raises:
        ImportError: vmaf-torch is not installed.
        ValueError: shapes differ, are not RGB, are smaller than 17x17, or a
            value lies outside ``[0, 1]``.

    Example:
        >>> target = torch.rand(1, 3, 64, 64)
        >>> vmaf(target, target)  # doctest: +SKIP
        tensor(97.4278)

    Reference:
        Li, Aaron, Katsavounidis, Moorthy and Manohara, "Toward a practical
        perceptual video quality metric", Netflix Technology Blog, 2016;
        Aistov and Koroteev, vmaf-torch (https://github.com/alvitrioliks/VMAF-torch).
    """
    check_pair(pred, target, channels=3)
    check_range(pred, "pred")
    check_range(target, "target")  # before vmaf-torch is imported
    return _score(_build_model(neg), pred, target, reduction)


class VMAF(nn.Module):
    """Module form of :func:`vmaf`; see there for what is computed and the arguments.

    The vmaf-torch model is built once, at construction (which raises
    ``ImportError`` when vmaf-torch is missing), and moves with the module.

    Example:
        >>> metric = VMAF(reduction="none")  # doctest: +SKIP
        >>> metric(torch.rand(2, 3, 64, 64), torch.rand(2, 3, 64, 64)).shape  # doctest: +SKIP
        torch.Size([2])
    """

    def __init__(self, reduction: str = "mean", neg: bool = False):
        super().__init__()
        self.reduction = reduction
        self.neg = neg
        self.model = _build_model(neg)

    def forward(self, pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        return _score(self.model, pred, target, self.reduction)


def _build_model(neg: bool) -> nn.Module:
    try:
        import vmaf_torch
    except ImportError as err:
        raise ImportError(_MISSING) from err
    # Motion is off because vmaf-torch would otherwise take the batch for the
    # frames of one video and measure motion between unrelated images.
    return vmaf_torch.VMAF(enable_motion=False, clip_score=True, NEG=neg).eval()


def _score(model: nn.Module, pred: torch.Tensor, target: torch.Tensor, reduction: str) -> torch.Tensor:
    check_pair(pred, target, channels=3)
    check_range(target, "target")
    check_min_size(pred, VMAF_MIN_SIZE, "VMAF")
    # VIF sums squared 8-bit-scale values over the image: half precision overflows.
    dtype = torch.promote_types(pred.dtype, torch.float32)
    model.to(device=pred.device, dtype=dtype)
    scores = model(_luma_255(target, dtype), _luma_255(pred, dtype))  # reference first
    return reduce(scores.reshape(-1), reduction)


def _luma_255(x: torch.Tensor, dtype: torch.dtype) -> torch.Tensor:
    return 255.0 * rgb_to_y(x.to(dtype).clamp(0.0, 1.0))
