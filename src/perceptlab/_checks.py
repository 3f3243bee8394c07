"""Input checks shared by every loss and metric.

One convention everywhere: images are NCHW float tensors in ``[0, data_range]``
(``data_range=1.0`` unless said otherwise), predictions first, targets second.
Checks raise ``ValueError``/``TypeError`` with a message that names the argument
and what was expected; they never use ``assert``.
"""

from __future__ import annotations

import torch

REDUCTIONS = ("none", "mean", "sum")


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
