"""LPIPS: Learned Perceptual Image Patch Similarity (Zhang et al. 2018), v0.1.

::

    pred, target (N,3,H,W) in [0,1]
      -> AlexNet relu1..relu5 or VGG-16 relu1_2..relu5_3 (ImageNet mean/std inside)
      -> unit-normalise each feature vector over channels
      -> squared difference -> 1x1 linear head (learned, non-negative) -> spatial mean
      -> sum over the 5 layers                                            = LPIPS (N,)

The official implementation takes inputs in [-1, 1] and applies a "scaling
layer" with shift (-.030, -.088, -.188) and scale (.458, .448, .450); on
``2x - 1`` that is exactly the ImageNet mean/std normalisation of ``x`` in
[0, 1], which our feature networks apply. The official values are reproduced
to 1e-4 (tests/test_learned_metrics.py).
"""

from __future__ import annotations

import functools

import torch
from torch import nn

from perceptlab._checks import check_pair, check_range, reduce
from perceptlab.features import AlexNetFeatures, VGG16Features
from perceptlab.weights import load_weights

LPIPS_NETS = {
    "alex": ("relu1", "relu2", "relu3", "relu4", "relu5"),
    "vgg": ("relu1_2", "relu2_2", "relu3_3", "relu4_3", "relu5_3"),
}


def _unit_normalize(x: torch.Tensor, eps: float = 1e-10) -> torch.Tensor:
    return x / (x.pow(2).sum(dim=1, keepdim=True).sqrt() + eps)


class LPIPS(nn.Module):
    """LPIPS distance (lower is more similar).

    Args:
        net: ``"alex"`` (the default of the official package) or ``"vgg"``.
        pretrained: load the ImageNet backbone and the v0.1 heads (``False``
            gives random weights, for tests).
        reduction: ``"none"`` | ``"mean"`` | ``"sum"`` over the batch.

    Shape:
        pred, target: (N, 3, H, W) RGB in [0, 1]; output (N,) or a scalar.

    Range:
        The module checks that ``target`` lies in [0, 1] and raises
        ``ValueError`` otherwise (an image in [-1, 1], the official LPIPS
        convention, is the usual mistake). It does not check ``pred``, so that it
        can serve as a loss on unclamped network outputs; the function
        :func:`lpips`, which scores images, checks both.

    Example:
        >>> metric = LPIPS("alex")  # doctest: +SKIP
        >>> metric(torch.rand(1, 3, 64, 64), torch.rand(1, 3, 64, 64))  # doctest: +SKIP

    Reference:
        Zhang, Isola, Efros, Shechtman, Wang. The Unreasonable Effectiveness of
        Deep Features as a Perceptual Metric. CVPR 2018.
    """

    def __init__(self, net: str = "alex", pretrained: bool = True, reduction: str = "mean"):
        super().__init__()
        if net not in LPIPS_NETS:
            raise ValueError(f"LPIPS net must be one of {tuple(LPIPS_NETS)}, got {net!r}")
        layers = LPIPS_NETS[net]
        if net == "alex":
            self.features = AlexNetFeatures(layers, weights="alexnet" if pretrained else None)
        else:
            self.features = VGG16Features(layers, weights="vgg16" if pretrained else None)
        heads = load_weights(f"lpips_{net}") if pretrained else None
        self.heads = nn.ParameterList()
        for i, layer in enumerate(layers):
            channels = self.features.body[layer.replace("relu", "conv")].out_channels
            weight = heads[f"lin{i}.weight"] if heads else torch.full((1, channels, 1, 1), 1.0 / channels)
            self.heads.append(nn.Parameter(weight, requires_grad=False))
        self.layers = layers
        self.reduction = reduction
        self.min_size = self.features.min_size

    def forward(self, pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        check_pair(pred, target, channels=3)
        check_range(target, "target")  # pred may be an unclamped output: the module is also a loss term
        # One pass over both images: a single batch runs faster than two.
        feats = self.features(torch.cat([pred, target]))
        n = pred.shape[0]
        total = pred.new_zeros(n)
        for layer, head in zip(self.layers, self.heads):
            f = _unit_normalize(feats[layer])
            diff = (f[:n] - f[n:]).pow(2)
            total = total + (diff * head).sum(dim=1).mean(dim=(1, 2))
        return reduce(total, self.reduction)


@functools.lru_cache(maxsize=4)
def _shared(net: str) -> LPIPS:
    return LPIPS(net, reduction="none")


def lpips(pred: torch.Tensor, target: torch.Tensor, net: str = "alex", reduction: str = "mean") -> torch.Tensor:
    """LPIPS distance between ``pred`` and ``target``, both in [0, 1] (checked); see :class:`LPIPS`.

    The network is built once per ``net``.
    """
    check_pair(pred, target, channels=3)
    check_range(pred, "pred")
    check_range(target, "target")  # before the network is built
    metric = _shared(net).to(pred.device)
    return reduce(metric(pred, target), reduction)
