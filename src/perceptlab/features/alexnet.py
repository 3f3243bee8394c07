"""AlexNet (Krizhevsky et al. 2012, torchvision's single-GPU variant) as a feature network.

::

    input (N,3,H,W) in [0,1] -> ImageNet mean/std
    conv1 (64, 11x11, stride 4) relu1 pool1 (3x3, stride 2)
    conv2 (192, 5x5)            relu2 pool2
    conv3 (384, 3x3) relu3   conv4 (256) relu4   conv5 (256) relu5   pool5
"""

from __future__ import annotations

import torch
from torch import nn

from perceptlab.features.base import FeatureNet
from perceptlab.features.vgg import IMAGENET_MEAN, IMAGENET_STD


def alexnet_stack() -> list[tuple[str, nn.Module]]:
    """The 13 named layers of AlexNet's convolutional part."""
    return [
        ("conv1", nn.Conv2d(3, 64, 11, stride=4, padding=2)), ("relu1", nn.ReLU()), ("pool1", nn.MaxPool2d(3, 2)),
        ("conv2", nn.Conv2d(64, 192, 5, padding=2)), ("relu2", nn.ReLU()), ("pool2", nn.MaxPool2d(3, 2)),
        ("conv3", nn.Conv2d(192, 384, 3, padding=1)), ("relu3", nn.ReLU()),
        ("conv4", nn.Conv2d(384, 256, 3, padding=1)), ("relu4", nn.ReLU()),
        ("conv5", nn.Conv2d(256, 256, 3, padding=1)), ("relu5", nn.ReLU()), ("pool5", nn.MaxPool2d(3, 2)),
    ]  # fmt: skip


ALEXNET_LAYERS = tuple(name for name, _ in alexnet_stack())


class AlexNetFeatures(FeatureNet):
    """Frozen AlexNet returning the activations of the requested layers.

    Args:
        layers: names from :data:`ALEXNET_LAYERS`, e.g. ``("relu1", "relu2", "relu3", "relu4", "relu5")``.
        weights: ``"alexnet"`` (torchvision's ImageNet weights) or ``None`` (random, for tests).
        weights_file: an explicit local weights file.
        channels_last: run the convolutions in channels-last memory layout (default; faster on CPU).
        precision: ``"fp32"`` or ``"bf16"`` (as :class:`~perceptlab.features.base.FeatureNet` says).

    Shape:
        input (N, 3, H, W) RGB in [0, 1], H and W at least the network's minimum
        (31 px up to relu3; ``net.min_size`` says).
    """

    def __init__(self, layers=("relu1",), weights: str | None = "alexnet", weights_file=None, channels_last=True,
                 precision: str = "fp32"):  # fmt: skip
        if weights not in ("alexnet", None):
            raise ValueError(f"AlexNet weights must be 'alexnet' or None, got {weights!r}")
        super().__init__(alexnet_stack(), tuple(layers), channels_last, precision)
        self.register_buffer("mean", torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor(IMAGENET_STD).view(1, 3, 1, 1), persistent=False)
        self.load(weights, weights_file)
        self._set_precision()

    def normalize(self, x: torch.Tensor) -> torch.Tensor:
        return (x - self.mean) / self.std
