"""A penalty on patterns fixed to the output's pixel grid (what :func:`perceptlab.metrics.grid_score` measures).

A network that upsamples by sub-pixel or transposed convolutions computes
every output phase ``(y mod p, x mod p)`` with its own filters, so it can
print a lattice that repeats every ``p`` pixels. VGG feature losses teach
exactly that (docs/experiments/sr_default.md: grid median 0.15-0.22 after
500 steps of a VGG term). This term compares the phase means of the
high-passed luma of the output with the target's: natural detail averages
out over the phases of both, a lattice in the output does not.
"""

from __future__ import annotations

import torch
from torch import nn

from perceptlab._checks import check_pair, reduce
from perceptlab.metrics.fidelity import phase_means

# The high-pass energy below which a crop counts as flat: (2 / 255)^2, so a smooth sky does not blow up the ratio.
_FLAT = (2.0 / 255.0) ** 2


def grid_loss(pred: torch.Tensor, target: torch.Tensor, period: int = 4, window: int = 9,
              reduction: str = "mean") -> torch.Tensor:  # fmt: skip
    """Squared distance of the phase means of ``pred`` to those of ``target``, relative to the target's detail.

    Per image: ``mean_phases (P(pred) - P(target))^2 / max(mean H(target)^2, (2/255)^2)``,
    with ``H`` the luma minus its ``window`` x ``window`` box mean and ``P`` its mean over each of
    the ``period**2`` phases (:func:`perceptlab.metrics.fidelity.phase_means`). For a target
    without a lattice this is about the square of :func:`perceptlab.metrics.grid_score` of the output.

    Args:
        pred, target: (N, C, H, W), C = 1 or 3; ``pred`` may leave [0, 1] (not clamped).
        period: the lattice's period (the SR scale; ``train sr`` passes it).
        window: side of the box mean (odd).
        reduction: ``"none"`` | ``"mean"`` | ``"sum"`` over the batch.

    Example:
        >>> hr = torch.rand(2, 3, 32, 32)
        >>> float(grid_loss(hr, hr))
        0.0
    """
    check_pair(pred, target)
    if isinstance(period, bool) or not isinstance(period, int) or period < 2:
        raise ValueError(f"period must be an int >= 2, got {period!r}")
    if window < 1 or window % 2 == 0:
        raise ValueError(f"window must be a positive odd number, got {window}")
    p_pred, _ = phase_means(pred, period, window)
    p_target, high = phase_means(target, period, window)
    energy = high.square().mean(dim=(1, 2, 3)).clamp_min(_FLAT)
    per_image = (p_pred - p_target).square().mean(dim=(1, 2)) / energy
    return reduce(per_image, reduction)


class GridLoss(nn.Module):
    """Module form of :func:`grid_loss` (``period`` and ``window`` fixed at construction)."""

    def __init__(self, period: int = 4, window: int = 9, reduction: str = "mean"):
        super().__init__()
        self.period, self.window, self.reduction = period, window, reduction

    def forward(self, pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        return grid_loss(pred, target, self.period, self.window, self.reduction)

    def extra_repr(self) -> str:
        return f"period={self.period}, window={self.window}"
