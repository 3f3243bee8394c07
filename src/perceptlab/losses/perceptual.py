"""Feature reconstruction and style (Gram) losses on VGG-16 (Johnson et al. 2016, eq. 2-4).

Both compare activations of a frozen VGG-16 (:class:`perceptlab.features.VGG16Features`), or of a frozen
AlexNet (:class:`perceptlab.features.AlexNetFeatures`, ``network="alexnet"``: DeePSiM's comparator):

* feature reconstruction, eq. 2:  ``l_feat^j = ||phi_j(pred) - phi_j(target)||_2^2 / (C_j H_j W_j)``
* style, eq. 3-4:  ``G_j(x) = phi_j(x) phi_j(x)^T / (C_j H_j W_j)`` (a C_j x C_j matrix),
  ``l_style^j = ||G_j(pred) - G_j(target)||_F^2``

Each is summed over the chosen layers with per-layer weights. The target's
features are computed without a graph: only the prediction needs gradients.
The target must lie in [0, 1] (checked: VGG normalises it with the ImageNet
mean and std); the prediction is not range-checked, since network outputs
overshoot while they train (:mod:`perceptlab._checks`).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from perceptlab._checks import check_image, check_pair, check_range, reduce
from perceptlab.features import AlexNetFeatures, VGG16Features

STYLE_LAYERS = ("relu1_2", "relu2_2", "relu3_3", "relu4_3")
# The loss networks, by name; "imagenet" weights are each one's torchvision ImageNet weights.
NETWORKS = ("vgg16", "alexnet")


def _layer_weights(layers) -> dict[str, float]:
    if isinstance(layers, str):
        return {layers: 1.0}
    if isinstance(layers, dict):
        return {k: float(v) for k, v in layers.items()}
    return {name: 1.0 for name in layers}


def gram_matrix(features: torch.Tensor) -> torch.Tensor:
    """Gram matrix of each feature map, normalised by ``C*H*W``.

    Shape:
        features (N, C, H, W) -> (N, C, C)
    """
    n, c, h, w = features.shape
    f = features.reshape(n, c, h * w)
    return torch.bmm(f, f.transpose(1, 2)) / (c * h * w)


def _per_sample_mse(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Mean of ``(a - b)**2`` over (C, H, W), shape (N,).

    Channels-last features are compared through their NHWC views, which are
    contiguous: the mean does not depend on the order, and the backward of a
    reduction over a channels-last tensor otherwise takes a slow strided path
    (about 7x slower on our CPUs, benchmarks/README.md). The sum of squares is
    the squared norm of the difference, whose backward is one pass over it
    (``2 d / n``; zero where ``a == b``): forward and backward together took
    half the time of ``F.mse_loss(..., reduction="none").mean(...)`` on
    relu2_2 features of 16 crops of 96 px.
    """
    if a.is_contiguous(memory_format=torch.channels_last) and not a.is_contiguous():
        a, b = a.permute(0, 2, 3, 1), b.permute(0, 2, 3, 1)
    d = (a - b).flatten(1)
    return torch.linalg.vector_norm(d, dim=1).square() / d.shape[1]


def feature_reconstruction_loss(pred_features: dict, target_features: dict, weights: dict[str, float]) -> torch.Tensor:
    """Johnson et al. eq. 2 summed over layers with ``weights``; per sample, shape (N,)."""
    total = 0.0
    for layer, w in weights.items():
        total = total + w * _per_sample_mse(pred_features[layer], target_features[layer])
    return total


def style_loss(pred_features: dict, target_grams: dict, weights: dict[str, float]) -> torch.Tensor:
    """Johnson et al. eq. 4 summed over layers; ``target_grams`` may have batch 1 (one style image). Shape (N,)."""
    total = 0.0
    for layer, w in weights.items():
        diff = gram_matrix(pred_features[layer]) - target_grams[layer]
        total = total + w * diff.pow(2).sum(dim=(1, 2))
    return total


def loss_network(network: str, layers, weights: str | None = "imagenet", weights_file=None, pooling: str = "max",
                 channels_last: bool = True, precision: str = "fp32") -> nn.Module:  # fmt: skip
    """The frozen feature network of a loss: ``vgg16`` or ``alexnet`` returning ``layers``.

    ``weights``: ``"imagenet"`` (the network's torchvision ImageNet weights), ``None`` (random, for tests), or a
    name of :func:`perceptlab.weights.load_weights` (``"vgg16"``, ``"vgg16_caffe"``, ``"alexnet"``).
    """
    if network not in NETWORKS:
        raise ValueError(f"loss network must be one of {', '.join(NETWORKS)}, got {network!r}")
    if weights == "imagenet":
        weights = network
    if network == "alexnet":
        if pooling != "max":
            raise ValueError(f"AlexNet has max pooling only, got pooling {pooling!r}")
        return AlexNetFeatures(tuple(layers), weights=weights, weights_file=weights_file, channels_last=channels_last,
                               precision=precision)  # fmt: skip
    return VGG16Features(tuple(layers), weights=weights, weights_file=weights_file, pooling=pooling,
                         channels_last=channels_last, precision=precision)  # fmt: skip


class _NetLoss(nn.Module):
    def __init__(self, layers, weights: str | None, weights_file, pooling: str, channels_last: bool, reduction: str,
                 precision: str = "fp32", network: str = "vgg16"):  # fmt: skip
        super().__init__()
        self.layer_weights = _layer_weights(layers)
        self.network = network
        self.net = loss_network(network, self.layer_weights, weights, weights_file, pooling, channels_last, precision)
        self.reduction = reduction


class FeatureLoss(_NetLoss):
    """Feature reconstruction loss on VGG-16 (or AlexNet) layers (Johnson et al. 2016, eq. 2).

    Args:
        layers: a layer name, a list of names, or ``{name: weight}``; Johnson et
            al. use ``"relu2_2"`` for super-resolution, ``"relu3_3"`` for style transfer.
        weights: ``"imagenet"`` (the network's torchvision ImageNet weights), ``"vgg16"``, ``"vgg16_caffe"`` (the
            paper's), ``"alexnet"`` or ``None`` (random).
        weights_file: explicit local weights file.
        pooling: ``"max"`` | ``"avg"`` | ``"l2"``.
        channels_last: run VGG in channels-last layout (default; 1.3-1.8x faster on our CPUs, benchmarks/README.md).
        reduction: ``"none"`` | ``"mean"`` | ``"sum"``.
        precision: ``"fp32"`` (default) or ``"bf16"``: VGG in bfloat16, the
            distances in float32; faster only on CPUs with bfloat16 units
            (:func:`perceptlab.features.base.native_bf16`, benchmarks/README.md).
        jitter: at each call, crop the same random 0..jitter-1 rows and columns off
            the top and left of both images (16 for relu5_3: its pooling stride), so
            that the loss cannot be lowered by a pattern fixed to the output's grid.
            Uses torch's global random stream (saved with training checkpoints).
        network: ``"vgg16"`` (default) or ``"alexnet"`` (layers ``relu1`` ... ``relu5``, ``pool5``: the
            comparator of Dosovitskiy & Brox 2016, whose DeePSiM losses use AlexNet's conv5).

    Shape:
        pred, target (N, 3, H, W) in [0, 1] -> (N,) or scalar.

    Example:
        >>> loss = FeatureLoss("relu2_2", weights=None)
        >>> loss(torch.rand(2, 3, 32, 32), torch.rand(2, 3, 32, 32)).shape
        torch.Size([])

    Reference:
        Johnson, Alahi, Fei-Fei. Perceptual Losses for Real-Time Style Transfer
        and Super-Resolution. ECCV 2016.
    """

    def __init__(self, layers="relu2_2", weights="imagenet", weights_file=None, pooling="max", channels_last=True,
                 reduction="mean", precision="fp32", jitter: int = 0, network: str = "vgg16"):  # fmt: skip
        super().__init__(layers, weights, weights_file, pooling, channels_last, reduction, precision, network)
        if isinstance(jitter, bool) or not isinstance(jitter, int) or jitter < 0:
            raise ValueError(f"jitter must be a non-negative int, got {jitter!r}")
        self.jitter = jitter

    def forward(self, pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        check_pair(pred, target, channels=3)
        check_range(target, "target")
        if self.jitter:
            # Both images lose the same random 0..jitter-1 top rows and left columns, so that VGG's pooling
            # grid (stride 16 at relu5_3) lands on a different phase of the output's pixel grid at every call.
            # Aligned, it lets a network that upsamples in fixed 2x2 or 4x4 phases (sub-pixel convolution)
            # lower the loss with a pattern fixed to that grid (docs/experiments/sr_default.md).
            dy, dx = (int(v) for v in torch.randint(self.jitter, (2,)))
            pred, target = pred[..., dy:, dx:], target[..., dy:, dx:]
        with torch.no_grad():
            target_features = self.net(target)
        values = feature_reconstruction_loss(self.net(pred), target_features, self.layer_weights)
        return reduce(values, self.reduction)


class StyleLoss(_NetLoss):
    """Style reconstruction loss: squared Frobenius distance of Gram matrices (Johnson et al. 2016, eq. 3-4).

    The target may have another size than the prediction and batch 1 (one
    style image for a batch of outputs): Gram matrices do not depend on size.

    Args:
        layers: as in :class:`FeatureLoss`; default ``relu1_2, relu2_2, relu3_3, relu4_3``.
        other arguments: as in :class:`FeatureLoss`.

    Shape:
        pred (N, 3, H, W), target (N or 1, 3, H', W'), both in [0, 1] -> (N,) or scalar.
    """

    def __init__(self, layers=STYLE_LAYERS, weights="vgg16", weights_file=None, pooling="max",
                 channels_last=True, reduction="mean", precision="fp32"):  # fmt: skip
        super().__init__(layers, weights, weights_file, pooling, channels_last, reduction, precision)

    def target_grams(self, target: torch.Tensor) -> dict[str, torch.Tensor]:
        """Gram matrices of ``target`` for every layer; compute once for a fixed style image."""
        check_image(target, "target", channels=3)
        check_range(target, "target")
        with torch.no_grad():
            return {k: gram_matrix(v) for k, v in self.net(target).items()}

    def forward(self, pred: torch.Tensor, target: torch.Tensor | dict) -> torch.Tensor:
        check_image(pred, "pred", channels=3)
        grams = target if isinstance(target, dict) else self.target_grams(target)
        if isinstance(target, torch.Tensor) and target.shape[0] not in (1, pred.shape[0]):
            raise ValueError(f"target batch must be 1 or {pred.shape[0]}, got {target.shape[0]}")
        return reduce(style_loss(self.net(pred), grams, self.layer_weights), self.reduction)
