"""Discriminators for adversarial losses."""

from __future__ import annotations

import torch
from torch import nn

from perceptlab._checks import check_image, check_min_size
from perceptlab.nets.layers import init_weights

DISCRIMINATOR_NORMS = ("batch", "instance", "none")

_KERNEL = 4


def patch_receptive_field(n_layers: int) -> int:
    """Side of the input patch that one output logit of :class:`PatchDiscriminator` sees.

    Walking back from the output: two stride-1 4x4 convolutions (``1 -> 4 -> 7``),
    then ``n_layers`` stride-2 ones (``rf -> 2 rf + 2`` each): 70 for ``n_layers=3``.
    """
    field = 1 + 2 * (_KERNEL - 1)
    for _ in range(n_layers):
        field = 2 * field + _KERNEL - 2
    return field


class PatchDiscriminator(nn.Module):
    """PatchGAN discriminator: a fully convolutional net giving one real/fake logit per patch.

    4x4 convolutions, LeakyReLU(0.2), no normalisation on the first layer, the
    width doubling per layer up to ``8 * base_channels``. With the defaults
    (``n_layers=3``, a 256x256 input)::

        input              3 x 256 x 256
        conv 4x4 /2, lrelu               64 x 128 x 128   receptive field 70
        conv 4x4 /2, norm, lrelu        128 x  64 x  64                   34
        conv 4x4 /2, norm, lrelu        256 x  32 x  32                   16
        conv 4x4 /1, norm, lrelu        512 x  31 x  31                    7
        conv 4x4 /1                       1 x  30 x  30                    4
                                                  (pad 1 everywhere)

    (the right column is the field that one output logit sees of each layer's
    *input*.) Each of the 30x30 logits judges a 70x70 patch; see
    :func:`patch_receptive_field` for other depths.

    Args:
        in_channels: channels of the images judged.
        base_channels: width of the first layer.
        n_layers: number of stride-2 convolutions (at least 1).
        norm: ``"batch"`` (pix2pix), ``"instance"`` (CycleGAN) or ``"none"``
            (use it under spectral normalisation, or for gradient penalties).
            Convolutions followed by a normalisation have no bias, which it
            would cancel.

    Shape:
        input: (N, in_channels, H, W) with H, W >= 3 * 2 ** n_layers;
        output: (N, 1, h, w) logits, ``h = H / 2 ** n_layers - 2`` for H a
        multiple of ``2 ** n_layers``.

    Example:
        >>> logits = PatchDiscriminator()(torch.rand(2, 3, 256, 256))
        >>> logits.shape
        torch.Size([2, 1, 30, 30])

    Reference:
        Isola, Zhu, Zhou and Efros, "Image-to-image translation with conditional
        adversarial networks" (pix2pix), CVPR 2017, section 3.2.2 and appendix 6.1.2.
    """

    def __init__(self, in_channels: int = 3, base_channels: int = 64, n_layers: int = 3, norm: str = "batch"):
        super().__init__()
        if norm not in DISCRIMINATOR_NORMS:
            raise ValueError(f"norm must be one of {DISCRIMINATOR_NORMS}, got {norm!r}")
        if n_layers < 1:
            raise ValueError(f"n_layers must be at least 1, got {n_layers}")
        self.in_channels = in_channels
        self.n_layers = n_layers
        self.receptive_field = patch_receptive_field(n_layers)
        widths = [base_channels * min(2**i, 8) for i in range(n_layers + 1)]
        layers = _block(in_channels, widths[0], stride=2, norm="none")
        for i in range(1, n_layers):
            layers += _block(widths[i - 1], widths[i], stride=2, norm=norm)
        layers += _block(widths[n_layers - 1], widths[n_layers], stride=1, norm=norm)
        layers.append(nn.Conv2d(widths[n_layers], 1, _KERNEL, stride=1, padding=1))
        self.layers = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        check_image(x, "input", channels=self.in_channels)
        # Below this the last convolution has nothing left to slide over.
        check_min_size(x, 3 * 2**self.n_layers, f"PatchDiscriminator with n_layers={self.n_layers}")
        return self.layers(x)


def _block(in_channels: int, out_channels: int, stride: int, norm: str) -> list[nn.Module]:
    layers: list[nn.Module] = [
        nn.Conv2d(in_channels, out_channels, _KERNEL, stride=stride, padding=1, bias=norm == "none")
    ]
    if norm == "batch":
        layers.append(nn.BatchNorm2d(out_channels))
    elif norm == "instance":
        layers.append(nn.InstanceNorm2d(out_channels))
    layers.append(nn.LeakyReLU(0.2, inplace=True))
    return layers


# (out channels, stride) of the conv-BN-LeakyReLU blocks after the first convolution.
_SRGAN_D_BLOCKS = ((64, 2), (128, 1), (128, 2), (256, 1), (256, 2), (512, 1), (512, 2))


class SRGANDiscriminator(nn.Module):
    """The SRGAN discriminator: eight 3x3 convolutions, two dense layers, one logit per image.

    On the paper's 96x96 crops::

        input                                      3 x 96 x 96
        conv 3x3, lrelu                           64 x 96 x 96
        conv 3x3 /2, BN, lrelu                    64 x 48 x 48
        conv 3x3,    BN, lrelu                   128 x 48 x 48
        conv 3x3 /2, BN, lrelu                   128 x 24 x 24
        conv 3x3,    BN, lrelu                   256 x 24 x 24
        conv 3x3 /2, BN, lrelu                   256 x 12 x 12
        conv 3x3,    BN, lrelu                   512 x 12 x 12
        conv 3x3 /2, BN, lrelu                   512 x  6 x  6
        adaptive average pool to 6x6             512 x  6 x  6
        dense 1024, lrelu                       1024
        dense 1                                    1               -> logit

    LeakyReLU slope 0.2. The paper's dense layer saw the 6x6 map of its
    fixed 96x96 input; the adaptive pool keeps that layer's shape for any input
    size (it is the identity at 96x96), so the same weights judge other crops.
    Returns logits: pair it with a loss that applies the sigmoid.

    Args:
        in_channels: channels of the images judged.

    Shape:
        input: (N, in_channels, H, W), any size; output: (N, 1) logits.

    Example:
        >>> SRGANDiscriminator()(torch.rand(2, 3, 96, 96)).shape
        torch.Size([2, 1])

    Reference:
        Ledig et al., "Photo-realistic single image super-resolution using a
        generative adversarial network", CVPR 2017, figure 4.
    """

    def __init__(self, in_channels: int = 3):
        super().__init__()
        self.in_channels = in_channels
        layers: list[nn.Module] = [nn.Conv2d(in_channels, 64, 3, padding=1), nn.LeakyReLU(0.2, inplace=True)]
        width = 64
        for out_channels, stride in _SRGAN_D_BLOCKS:
            layers += [
                nn.Conv2d(width, out_channels, 3, stride=stride, padding=1, bias=False),
                nn.BatchNorm2d(out_channels),
                nn.LeakyReLU(0.2, inplace=True),
            ]
            width = out_channels
        self.features = nn.Sequential(*layers, nn.AdaptiveAvgPool2d(6))
        self.classifier = nn.Sequential(
            nn.Flatten(),
            nn.Linear(width * 6 * 6, 1024),
            nn.LeakyReLU(0.2, inplace=True),
            nn.Linear(1024, 1),
        )
        init_weights(self, negative_slope=0.2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        check_image(x, "input", channels=self.in_channels)
        return self.classifier(self.features(x))
