"""Input checks shared by every loss and metric.

One convention everywhere: images are NCHW float tensors in ``[0, data_range]``
(``data_range=1.0`` unless said otherwise), predictions first, targets second.
Checks raise ``ValueError``/``TypeError`` with a message that names the argument
and what was expected; they never use ``assert``.

Value range (:func:`check_range`): what is checked depends on whether a value
scores images or trains a network.

* The **target** (the reference image) is checked everywhere, in every metric
  and every loss that compares two images: it is data, read from files, and a
  target in ``[-1, 1]`` or ``[0, 255]`` is the classic silent mistake (LPIPS's
  own convention is ``[-1, 1]``; ours is ``[0, 1]``).
* The **prediction** is checked only where a value scores images: the metric
  functions (``psnr``, ``ssim``, ``ms_ssim``, ``lpips``, ``dists``, ``vmaf``),
  their ``PSNR``/``SSIM``/``MSSSIM`` modules and the metric registry. Losses,
  and the modules of the learned metrics (``LPIPS``, ``DISTS``, ``VMAF``),
  which serve as loss terms, leave it alone: untrained networks that end
  linearly output far outside ``[0, 1]`` (measured at initialisation on
  uniform noise: SRResNet about -8..8, SRCNN -2..2, bicubic itself
  -0.15..1.15), and the loss must see that overshoot to correct it. Scores
  are for images: clamp network outputs first (``sr.evaluate`` does).

Both allow :data:`RANGE_TOLERANCE` times ``data_range`` beyond each end, for
values that went through float arithmetic (a colour conversion, a resize of
the data) without being clamped.
"""

from __future__ import annotations

import torch

REDUCTIONS = ("none", "mean", "sum")
RANGE_TOLERANCE = 1e-3


def check_image(x: torch.Tensor, name: str = "input", channels: int | None = None) -> None:
    """Raise unless ``x`` is a floating NCHW tensor (optionally with ``channels`` channels)."""
    if not isinstance(x, torch.Tensor):
        raise TypeError(f"{name} must be a torch.Tensor, got {type(x).__name__}")
    if x.dim() != 4:
        raise ValueError(f"{name} must be NCHW (4 dimensions), got shape {tuple(x.shape)}")
    if not x.is_floating_point():
        raise TypeError(f"{name} must be a floating-point tensor, got {x.dtype}")
    if channels is not None and x.shape[1] != channels:
        raise ValueError(f"{name} must have {channels} channels, got shape {tuple(x.shape)}")


def check_pair(pred: torch.Tensor, target: torch.Tensor, channels: int | None = None) -> None:
    """Raise unless ``pred`` and ``target`` are NCHW float tensors of the same shape."""
    check_image(pred, "pred", channels)
    check_image(target, "target", channels)
    if pred.shape != target.shape:
        raise ValueError(
            f"pred and target must have the same shape, got {tuple(pred.shape)} and {tuple(target.shape)}"
        )


def check_range(x: torch.Tensor, name: str, data_range: float = 1.0) -> None:
    """Raise unless every value of ``x`` lies in ``[0, data_range]``, up to :data:`RANGE_TOLERANCE` of the range.

    One min/max reduction and one read of two numbers; NaN fails the check.
    See the module docstring for which arguments are checked where.

    Example:
        >>> check_range(torch.tensor([[[[-1.0, 0.5]]]]), "target")
        Traceback (most recent call last):
        ...
        ValueError: target must be in [0, 1] (data_range=1), got min -1, max 0.5; images in [-1, 1] convert with (x + 1) / 2
    """
    if x.numel() == 0:
        return
    low, high = torch.stack(torch.aminmax(x.detach())).tolist()
    slack = RANGE_TOLERANCE * data_range
    if low >= -slack and high <= data_range + slack:  # False for NaN
        return
    hint = ""
    if -1.0 - slack <= low < 0.0 and high <= 1.0 + slack:
        hint = "; images in [-1, 1] convert with (x + 1) / 2"
    elif data_range == 1.0 and 1.0 < high <= 255.0 + slack and low >= -slack:
        hint = "; 8-bit values convert with x / 255 (or pass data_range=255 where there is one)"
    raise ValueError(
        f"{name} must be in [0, {data_range:g}] (data_range={data_range:g}), got min {low:.4g}, max {high:.4g}{hint}"
    )


def check_min_size(x: torch.Tensor, min_size: int, what: str) -> None:
    """Raise unless both spatial sides of ``x`` are at least ``min_size``."""
    h, w = x.shape[-2:]
    if min(h, w) < min_size:
        raise ValueError(f"{what} needs images of at least {min_size}x{min_size} pixels, got {h}x{w}")


def reduce(values: torch.Tensor, reduction: str) -> torch.Tensor:
    """Apply ``reduction`` (``none``, ``mean`` or ``sum``) to a per-sample tensor."""
    if reduction == "none":
        return values
    if reduction == "mean":
        return values.mean()
    if reduction == "sum":
        return values.sum()
    raise ValueError(f"reduction must be one of {REDUCTIONS}, got {reduction!r}")
