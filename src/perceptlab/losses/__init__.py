"""Losses: pixel, perceptual (feature and style), total variation, structural, adversarial, and their weighted sums.

Every loss is a function plus a thin module taking ``(pred, target)``, NCHW
float in [0, 1]. :class:`CombinedLoss` sums weighted terms and returns a dict.
"""

from perceptlab.losses.adversarial import ADVERSARIAL_KINDS, AdversarialLoss, discriminator_loss, generator_loss
from perceptlab.losses.combined import LOSS_TERMS, CombinedLoss, build_loss, parse_spec
from perceptlab.losses.grid import GridLoss, grid_loss
from perceptlab.losses.perceptual import STYLE_LAYERS, FeatureLoss, StyleLoss, gram_matrix
from perceptlab.losses.pixel import CharbonnierLoss, L1Loss, MSELoss, charbonnier_loss, l1_loss, mse_loss
from perceptlab.losses.structural import MSSSIMLoss, SSIMLoss, ms_ssim_loss, ssim_loss
from perceptlab.losses.tv import TVLoss, total_variation

__all__ = [
    "ADVERSARIAL_KINDS", "LOSS_TERMS", "STYLE_LAYERS",
    "AdversarialLoss", "CharbonnierLoss", "CombinedLoss", "FeatureLoss", "GridLoss", "L1Loss", "MSELoss", "MSSSIMLoss",
    "SSIMLoss", "StyleLoss", "TVLoss",
    "build_loss", "charbonnier_loss", "discriminator_loss", "generator_loss", "gram_matrix", "grid_loss", "l1_loss",
    "ms_ssim_loss", "mse_loss", "parse_spec", "ssim_loss", "total_variation",
]  # fmt: skip
