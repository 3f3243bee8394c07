"""GAN losses on discriminator logits, and a module that makes one a ``loss(pred, target)`` term.

Each loss is averaged over every logit (a PatchGAN gives a logit map per
image), so the result is a scalar. There is no per-image reduction: the
relativistic loss compares each logit with the mean of the whole other batch.

With ``r`` the logits of real images, ``f`` those of generated ones,
``softplus(z) = log(1 + e^z)`` and ``sigma`` the logistic function:

=================  ==========================================  ====================================
kind               discriminator loss                          generator loss
=================  ==========================================  ====================================
``nonsaturating``  ``E softplus(-r) + E softplus(f)``          ``E softplus(-f)``
``lsgan``          ``E (r - 1)^2 / 2 + E f^2 / 2``             ``E (f - 1)^2 / 2``
``hinge``          ``E relu(1 - r) + E relu(1 + f)``           ``-E f``
``ragan``          ``E softplus(-(r - E f))``                  ``E softplus(r - E f)``
                   ``+ E softplus(f - E r)``                   ``+ E softplus(-(f - E r))``
=================  ==========================================  ====================================

(``softplus(-z) = -log sigma(z)``: the ``nonsaturating`` and ``ragan`` rows are
binary cross-entropies on the logits.)
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from perceptlab._checks import check_pair

ADVERSARIAL_KINDS = ("nonsaturating", "lsgan", "hinge", "ragan")


def _check_kind(kind: str) -> None:
    if kind not in ADVERSARIAL_KINDS:
        raise ValueError(f"kind must be one of {ADVERSARIAL_KINDS}, got {kind!r}")


def discriminator_loss(
    real_logits: torch.Tensor, fake_logits: torch.Tensor, kind: str = "nonsaturating"
) -> torch.Tensor:
    """Loss the discriminator minimises: push real logits up and fake logits down.

    Args:
        real_logits: discriminator output on real images.
        fake_logits: discriminator output on generated images (detach them from
            the generator for the discriminator step).
        kind: one of :data:`ADVERSARIAL_KINDS`; the formulas are in the module docstring.

    Returns:
        A scalar.

    Shape:
        ``real_logits``, ``fake_logits``: any shape, e.g. (N, 1) or a PatchGAN's
        (N, 1, h, w); output: ().

    Example:
        >>> discriminator_loss(torch.full((4, 1), 2.0), torch.full((4, 1), -2.0), kind="hinge")
        tensor(0.)

    Reference:
        Goodfellow et al., "Generative adversarial nets", NeurIPS 2014
        (nonsaturating); Mao et al., "Least squares generative adversarial
        networks", ICCV 2017 (lsgan); Lim and Ye, "Geometric GAN", 2017, and
        Miyato et al., "Spectral normalization for GANs", ICLR 2018 (hinge);
        Jolicoeur-Martineau, "The relativistic discriminator: a key element
        missing from standard GAN", ICLR 2019, as used by Wang et al., "ESRGAN",
        ECCV Workshops 2018 (ragan).
    """
    _check_kind(kind)
    if kind == "nonsaturating":
        return F.softplus(-real_logits).mean() + F.softplus(fake_logits).mean()
    if kind == "lsgan":
        return 0.5 * (real_logits - 1).pow(2).mean() + 0.5 * fake_logits.pow(2).mean()
    if kind == "hinge":
        return F.relu(1 - real_logits).mean() + F.relu(1 + fake_logits).mean()
    return _relativistic(real_logits, fake_logits)


def generator_loss(
    fake_logits: torch.Tensor, real_logits: torch.Tensor | None = None, kind: str = "nonsaturating"
) -> torch.Tensor:
    """Loss the generator minimises: push the logits of its images up.

    Args:
        fake_logits: discriminator output on generated images.
        real_logits: discriminator output on real images; needed by ``"ragan"``
            only (its gradient does not reach the generator, so it may be detached).
        kind: one of :data:`ADVERSARIAL_KINDS`; the formulas are in the module docstring.

    Returns:
        A scalar.

    Shape:
        ``fake_logits``, ``real_logits``: any shape; output: ().

    Example:
        >>> generator_loss(torch.zeros(4, 1))  # log 2: the discriminator cannot tell
        tensor(0.6931)

    Reference:
        See :func:`discriminator_loss`.
    """
    _check_kind(kind)
    if kind == "nonsaturating":
        return F.softplus(-fake_logits).mean()
    if kind == "lsgan":
        return 0.5 * (fake_logits - 1).pow(2).mean()
    if kind == "hinge":
        return -fake_logits.mean()
    if real_logits is None:
        raise ValueError("kind='ragan' compares fake with real logits: pass real_logits to generator_loss")
    # The generator's view is the discriminator's with the roles of real and fake swapped.
    return _relativistic(fake_logits, real_logits)


def _relativistic(real_logits: torch.Tensor, fake_logits: torch.Tensor) -> torch.Tensor:
    """BCE for "real is more realistic than the average fake, fake less than the average real"."""
    real_vs_fake = real_logits - fake_logits.mean()
    fake_vs_real = fake_logits - real_logits.mean()
    return F.softplus(-real_vs_fake).mean() + F.softplus(fake_vs_real).mean()


class AdversarialLoss(nn.Module):
    """Generator-side GAN loss with the signature ``loss(pred, target)``.

    ``forward`` runs the discriminator on ``pred`` (and on ``target.detach()``
    when the kind needs real logits) and returns the generator loss, so it can be
    weighted with pixel and perceptual losses. :meth:`discriminator_step_loss`
    gives the discriminator's own loss with ``pred`` detached.

    The discriminator is a submodule: give its parameters to their own
    optimiser, keep them out of the generator's, and zero their gradients before
    the discriminator step (the generator step leaves gradients in them).

    Args:
        discriminator: maps images (N, C, H, W) to logits of any shape.
        kind: one of :data:`ADVERSARIAL_KINDS`.

    Example:
        >>> from perceptlab.nets.discriminators import PatchDiscriminator
        >>> adversarial = AdversarialLoss(PatchDiscriminator(), kind="hinge")
        >>> pred, target = torch.rand(2, 3, 64, 64), torch.rand(2, 3, 64, 64)
        >>> generator_term = adversarial(pred, target)
        >>> discriminator_term = adversarial.discriminator_step_loss(pred, target)

    Reference:
        See :func:`discriminator_loss`.
    """

    def __init__(self, discriminator: nn.Module, kind: str = "nonsaturating"):
        super().__init__()
        _check_kind(kind)
        self.discriminator = discriminator
        self.kind = kind

    def forward(self, pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        check_pair(pred, target)
        real_logits = self.discriminator(target.detach()) if self.kind == "ragan" else None
        return generator_loss(self.discriminator(pred), real_logits, self.kind)

    def discriminator_step_loss(self, pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        """The discriminator's loss on real ``target`` and generated ``pred`` (detached)."""
        check_pair(pred, target)
        return discriminator_loss(self.discriminator(target), self.discriminator(pred.detach()), self.kind)
