"""VGG-16 (Simonyan & Zisserman 2015) as a feature network with the papers' layer names.

::

    input (N,3,H,W) in [0,1] -> normalisation (ImageNet mean/std, or Caffe BGR 0-255)
    conv1_1 relu1_1 conv1_2 relu1_2 pool1          64 ch,  H/1
    conv2_1 relu2_1 conv2_2 relu2_2 pool2         128 ch,  H/2
    conv3_1 relu3_1 ... conv3_3 relu3_3 pool3     256 ch,  H/4
    conv4_1 relu4_1 ... conv4_3 relu4_3 pool4     512 ch,  H/8
    conv5_1 relu5_1 ... conv5_3 relu5_3 pool5     512 ch,  H/16
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from perceptlab.features.base import FeatureNet

_BLOCKS = ((64, 2), (128, 2), (256, 3), (512, 3), (512, 3))
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
CAFFE_MEAN_BGR = (103.939, 116.779, 123.68)
POOLINGS = ("max", "avg", "l2")


class L2Pool(nn.Module):
    """Hanning-windowed L2 pooling, stride 2 (Hénaff & Simoncelli 2016), as DISTS uses instead of max pooling.

    ``sqrt(conv(x**2, g) + 1e-12)`` with ``g`` the normalised outer product of
    the 3-tap window ``hanning(5)[1:-1] = (0.5, 1, 0.5)``, padding 1.
    """

    def __init__(self, channels: int):
        super().__init__()
        a = torch.from_numpy(np.hanning(5)[1:-1]).float()
        g = a[:, None] * a[None, :]
        self.register_buffer("filter", (g / g.sum()).expand(channels, 1, 3, 3).contiguous(), persistent=False)
        self.kernel_size, self.stride, self.padding = 3, 2, 1

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = F.conv2d(x * x, self.filter, stride=2, padding=1, groups=x.shape[1])
        return (out + 1e-12).sqrt()


def _pool(kind: str, channels: int) -> nn.Module:
    if kind == "max":
        return nn.MaxPool2d(2, 2)
    if kind == "avg":
        return nn.AvgPool2d(2, 2)
    if kind == "l2":
        return L2Pool(channels)
    raise ValueError(f"pooling must be one of {POOLINGS}, got {kind!r}")


def vgg16_stack(pooling: str = "max") -> list[tuple[str, nn.Module]]:
    """The 31 named layers of VGG-16's convolutional part."""
    stack: list[tuple[str, nn.Module]] = []
    cin = 3
    for b, (cout, n) in enumerate(_BLOCKS, start=1):
        for i in range(1, n + 1):
            stack += [(f"conv{b}_{i}", nn.Conv2d(cin, cout, 3, padding=1)), (f"relu{b}_{i}", nn.ReLU())]
            cin = cout
        stack.append((f"pool{b}", _pool(pooling, cout)))
    return stack


VGG16_LAYERS = tuple(name for name, _ in vgg16_stack())
VGG16_WEIGHTS = ("vgg16", "vgg16_caffe")


class VGG16Features(FeatureNet):
    """Frozen VGG-16 returning the activations of the requested layers.

    Args:
        layers: paper names, e.g. ``("relu2_2",)`` or ``("relu1_2", "relu2_2", "relu3_3", "relu4_3")``;
            see :data:`VGG16_LAYERS`. Nothing deeper than the deepest is computed.
        weights: ``"vgg16"`` (torchvision's ImageNet weights, ImageNet mean/std),
            ``"vgg16_caffe"`` (the original Caffe weights used by Johnson et al.;
            BGR, 0-255, mean subtracted inside), or ``None`` (random, for tests).
        weights_file: an explicit local weights file (see :func:`perceptlab.weights.fetch`).
        pooling: ``"max"`` (the network as trained), ``"avg"`` (Gatys et al.'s variant)
            or ``"l2"`` (DISTS).
        channels_last: run the convolutions in channels-last memory layout (default; faster on CPU).
        precision: ``"fp32"`` or ``"bf16"`` (see :class:`perceptlab.features.base.FeatureNet`).

    Shape:
        input (N, 3, H, W) RGB in [0, 1]; each output (N, C, H / 2**k, W / 2**k).

    Example:
        >>> net = VGG16Features(("relu2_2",), weights=None)
        >>> net(torch.rand(1, 3, 32, 32))["relu2_2"].shape
        torch.Size([1, 128, 16, 16])
    """

    def __init__(
        self,
        layers=("relu2_2",),
        weights: str | None = "vgg16",
        weights_file=None,
        pooling: str = "max",
        channels_last: bool = True,
        precision: str = "fp32",
    ):
        if weights is not None and weights not in VGG16_WEIGHTS:
            raise ValueError(f"VGG-16 weights must be one of {VGG16_WEIGHTS} or None, got {weights!r}")
        super().__init__(vgg16_stack(pooling), tuple(layers), channels_last, precision)
        self.caffe = weights == "vgg16_caffe"
        if self.caffe:
            mean, std = torch.tensor(CAFFE_MEAN_BGR) / 255.0, torch.full((3,), 1 / 255.0)
        else:
            mean, std = torch.tensor(IMAGENET_MEAN), torch.tensor(IMAGENET_STD)
        self.register_buffer("mean", mean.view(1, 3, 1, 1), persistent=False)
        self.register_buffer("std", std.view(1, 3, 1, 1), persistent=False)
        self.load(weights, weights_file)
        self._set_precision()

    def normalize(self, x: torch.Tensor) -> torch.Tensor:
        if self.caffe:
            x = x.flip(1)  # RGB -> BGR; mean and std are already in BGR order
        return (x - self.mean) / self.std
