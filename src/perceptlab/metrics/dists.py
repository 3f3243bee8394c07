"""DISTS: Deep Image Structure and Texture Similarity (Ding et al. 2020).

::

    x, y (N,3,H,W) in [0,1]
      -> stage 0: the image itself (3 ch)
      -> VGG-16 with L2 pooling in place of max pooling: relu1_2, relu2_2, relu3_3, relu4_3, relu5_3
      -> per channel k of every stage: means mu, variances s2, covariance s_xy over space
         texture   l = (2 mu_x mu_y + c1) / (mu_x^2 + mu_y^2 + c1)
         structure s = (2 s_xy + c2) / (s2_x + s2_y + c2)             c1 = c2 = 1e-6
      -> DISTS = 1 - sum_k (alpha_k l_k + beta_k s_k) / sum(alpha + beta)    (N,)

Inputs are used at their own size (the official ``prepare_image`` resizes
only when asked; the reference values were computed without resizing).
"""

from __future__ import annotations

import functools

import torch
from torch import nn

from perceptlab._checks import check_pair, check_range, reduce
from perceptlab.features import VGG16Features
from perceptlab.weights import load_weights

DISTS_LAYERS = ("relu1_2", "relu2_2", "relu3_3", "relu4_3", "relu5_3")
_CHANNELS = (3, 64, 128, 256, 512, 512)


class DISTS(nn.Module):
    """DISTS distance (lower is more similar, in [0, 1] for natural images).

    Args:
        pretrained: load the ImageNet VGG-16 and the official alpha/beta (``False``: random, for tests).
        reduction: ``"none"`` | ``"mean"`` | ``"sum"`` over the batch.

    Shape:
        pred, target: (N, 3, H, W) RGB in [0, 1]; output (N,) or a scalar.

    Range:
        The module checks that ``target`` lies in [0, 1] and raises
        ``ValueError`` otherwise (images in [-1, 1] or [0, 255] are the usual
        mistakes). It does not check ``pred``, so that it
        can serve as a loss on unclamped network outputs; the function
        :func:`dists`, which scores images, checks both.

    Reference:
        Ding, Ma, Wang, Simoncelli. Image Quality Assessment: Unifying Structure
        and Texture Similarity. IEEE TPAMI 2020.
    """

    def __init__(self, pretrained: bool = True, reduction: str = "mean"):
        super().__init__()
        self.features = VGG16Features(DISTS_LAYERS, weights="vgg16" if pretrained else None, pooling="l2")
        if pretrained:
            w = load_weights("dists")
            alpha, beta = w["alpha"], w["beta"]
        else:
            alpha = beta = torch.full((1, sum(_CHANNELS), 1, 1), 0.1)
        total = alpha.sum() + beta.sum()
        self.register_buffer("alpha", (alpha / total).flatten())
        self.register_buffer("beta", (beta / total).flatten())
        self.reduction = reduction
        self.min_size = self.features.min_size

    def forward(self, pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        check_pair(pred, target, channels=3)
        check_range(target, "target")  # pred may be an unclamped output: the module is also a loss term
        n = pred.shape[0]
        feats = self.features(torch.cat([pred, target]))
        stages = [torch.cat([pred, target])] + [feats[name] for name in DISTS_LAYERS]
        alphas = torch.split(self.alpha, _CHANNELS)
        betas = torch.split(self.beta, _CHANNELS)
        c1 = c2 = 1e-6
        similarity = pred.new_zeros(n)
        for f, alpha, beta in zip(stages, alphas, betas):
            x, y = f[:n], f[n:]
            mx, my = x.mean(dim=(2, 3)), y.mean(dim=(2, 3))
            vx = (x - mx[..., None, None]).pow(2).mean(dim=(2, 3))
            vy = (y - my[..., None, None]).pow(2).mean(dim=(2, 3))
            cov = (x * y).mean(dim=(2, 3)) - mx * my
            texture = (2 * mx * my + c1) / (mx.pow(2) + my.pow(2) + c1)
            structure = (2 * cov + c2) / (vx + vy + c2)
            similarity = similarity + texture @ alpha + structure @ beta
        return reduce(1 - similarity, self.reduction)


@functools.lru_cache(maxsize=1)
def _shared() -> DISTS:
    return DISTS(reduction="none")


def dists(pred: torch.Tensor, target: torch.Tensor, reduction: str = "mean") -> torch.Tensor:
    """DISTS distance between ``pred`` and ``target``, both in [0, 1] (checked); see :class:`DISTS`.

    The network is built once.
    """
    check_pair(pred, target, channels=3)
    check_range(pred, "pred")
    check_range(target, "target")  # before the network is built
    metric = _shared().to(pred.device)
    return reduce(metric(pred, target), reduction)
