"""The style transformation network of Johnson et al. (perceptual losses), for feed-forward style transfer.

One network per style, trained with :mod:`perceptlab.style.train`; ``net(x)``
maps (N, 3, H, W) images in [0, 1] to stylised images of the same size, in (0, 1).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from perceptlab._checks import check_image, check_min_size
from perceptlab.nets.sr import SplitKernelConv2d, _init_weights

STYLE_NORMS = ("instance", "batch")
STYLE_PADDINGS = ("reflect", "zeros")
# Two stride-2 convolutions: the input is padded to a multiple of this.
_STRIDE = 4
# The 9x9 reflection padding of the padded input needs at least 5 rows; 8 is the next multiple of 4.
MIN_SIZE = 8


def _norm(kind: str, channels: int) -> nn.Module:
    # Affine instance norm: a learned scale and shift per channel, as Ulyanov et al. and pytorch/examples use.
    return nn.InstanceNorm2d(channels, affine=True) if kind == "instance" else nn.BatchNorm2d(channels)


def _conv(cin: int, cout: int, kernel: int, padding: str, stride: int = 1) -> nn.Conv2d:
    # No bias: the normalisation after every one of these convolutions has its own shift.
    return nn.Conv2d(cin, cout, kernel, stride, padding=kernel // 2, padding_mode=padding, bias=False)


class _ResidualBlock(nn.Module):
    """x + [conv3x3, norm, relu, conv3x3, norm](x), no activation after the sum (Gross and Wilber's variant)."""

    def __init__(self, channels: int, norm: str, padding: str):
        super().__init__()
        self.body = nn.Sequential(
            _conv(channels, channels, 3, padding), _norm(norm, channels), nn.ReLU(inplace=True),
            _conv(channels, channels, 3, padding), _norm(norm, channels),
        )  # fmt: skip

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.body(x)


class _OutputConv(nn.Module):
    """The final 9x9 convolution 32 -> 3, as a :class:`SplitKernelConv2d` with zero or reflection padding.

    ``SplitKernelConv2d`` pads with zeros. For reflection padding the input is
    padded by 4 first and the split convolution's "same" output is cropped by
    4 on every side, which leaves exactly the valid convolution of the padded
    input: 6 % more pixels at 256x256 than a valid convolution would need, still
    faster than ``nn.Conv2d(..., padding_mode="reflect")`` (see the class note
    in :class:`JohnsonStyleNet`). The parameters are those of
    ``nn.Conv2d(32, 3, 9, padding=4)``.
    """

    def __init__(self, cin: int, cout: int, kernel: int, padding: str):
        super().__init__()
        self.conv = SplitKernelConv2d(cin, cout, kernel)
        self.reflect = padding == "reflect"

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not self.reflect:
            return self.conv(x)
        p = self.conv.kernel_size[0] // 2
        return self.conv(F.pad(x, (p, p, p, p), mode="reflect"))[..., p:-p, p:-p]


class JohnsonStyleNet(nn.Module):
    """The style transformation network of Johnson et al. (supplementary material, table 1).

    ::

        x                                              3 x  H x  W
        pad bottom/right to a multiple of 4 (reflect)  3 x H' x W'
        conv 9x9,          norm, relu                 32 x H' x W'
        conv 3x3 stride 2, norm, relu                 64 x H'/2 x W'/2
        conv 3x3 stride 2, norm, relu                128 x H'/4 x W'/4
        5 x residual block                           128 x H'/4 x W'/4
            [conv 3x3, norm, relu, conv 3x3, norm] + identity
        conv 3x3 stride 1/2, norm, relu               64 x H'/2 x W'/2
        conv 3x3 stride 1/2, norm, relu               32 x H' x W'
        conv 9x9                                       3 x H' x W'
        (tanh + 1) / 2, crop to H x W                  3 x  H x  W   -> in (0, 1)

    **Any input size (pad and crop).** The two stride-2 convolutions need a
    multiple of 4 to come back to the same size, so the input is reflected by
    0-3 rows and columns at the bottom and right, and the output is cropped
    back: output size == input size, and the top-left pixel grid is the same
    for every size (which is what lets a batch-norm network be run tile by
    tile with the same result, see :func:`perceptlab.style.models.stylize_feedforward`).

    **Normalisation.** ``"batch"`` is the paper's; ``"instance"`` (the default)
    is Ulyanov et al.'s instance normalisation, which they showed to give
    markedly better stylisations, and which Johnson's released code defaults to.
    Instance norm uses each image's own statistics, in training and at test
    time alike; batch norm uses running statistics at test time.

    **Padding.** ``"reflect"`` (default) reflects the image at the border of
    every ordinary convolution; ``"zeros"`` pads with zeros, which darkens and
    marks the borders of stylised images. The paper's own scheme, a single 40-pixel
    reflection of the input and unpadded residual convolutions, is not
    implemented: per-convolution reflection gives the same size in and out
    without that margin. The two fractionally-strided convolutions
    (``ConvTranspose2d(stride=2, padding=1, output_padding=1)``) have no
    padding to choose: their ``padding`` crops the output (PyTorch supports
    only zeros there).

    The paper's scaled tanh maps to [0, 255]; here ``(tanh + 1) / 2`` maps to
    (0, 1), the library's range, so outputs need no clamp. Convolutions before a
    normalisation have no bias. Initialisation: He normal, as the SR networks
    (:mod:`perceptlab.nets.sr`).

    **Speed.** The 9x9 output convolution (32 -> 3 channels) is a
    :class:`~perceptlab.nets.sr.SplitKernelConv2d`, reflection-padded
    explicitly when ``padding="reflect"``. The 9x9 input convolution (3 -> 32)
    stays an ``nn.Conv2d``: with 32 output channels its matrix product is
    well shaped, and splitting pays off only for few output channels.
    Channels-last layout speeds the batch-norm network up (weights converted,
    1.3 times on our CPUs once the norms are folded) but slows the
    instance-norm one down (1.3 times: PyTorch's CPU instance norm has no fast
    channels-last path), so the instance-norm network runs its input in the
    standard layout whatever it is given.

    Args:
        norm: ``"instance"`` or ``"batch"``.
        padding: ``"reflect"`` or ``"zeros"``.

    Shape:
        input: (N, 3, H, W) in [0, 1], H, W >= 8; output: (N, 3, H, W) in (0, 1).

    Example:
        >>> net = JohnsonStyleNet()
        >>> net(torch.rand(1, 3, 37, 50)).shape
        torch.Size([1, 3, 37, 50])

    Reference:
        Johnson, Alahi and Fei-Fei, "Perceptual losses for real-time style
        transfer and super-resolution", ECCV 2016, and its supplementary
        material; Ulyanov, Vedaldi and Lempitsky, "Instance normalization:
        the missing ingredient for fast stylization", arXiv:1607.08022, 2016.
    """

    name = "johnson_style"

    def __init__(self, norm: str = "instance", padding: str = "reflect"):
        super().__init__()
        if norm not in STYLE_NORMS:
            raise ValueError(f"norm must be one of {STYLE_NORMS}, got {norm!r}")
        if padding not in STYLE_PADDINGS:
            raise ValueError(f"padding must be one of {STYLE_PADDINGS}, got {padding!r}")
        self.norm = norm
        self.padding = padding
        layers: list[nn.Module] = []
        for cin, cout, kernel, stride in ((3, 32, 9, 1), (32, 64, 3, 2), (64, 128, 3, 2)):
            layers += [_conv(cin, cout, kernel, padding, stride), _norm(norm, cout), nn.ReLU(inplace=True)]
        layers += [_ResidualBlock(128, norm, padding) for _ in range(5)]
        for cin, cout in ((128, 64), (64, 32)):
            layers += [
                nn.ConvTranspose2d(cin, cout, 3, stride=2, padding=1, output_padding=1, bias=False),
                _norm(norm, cout),
                nn.ReLU(inplace=True),
            ]
        layers.append(_OutputConv(32, 3, 9, padding))
        self.body = nn.Sequential(*layers)
        _init_weights(self)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        check_image(x, "input", channels=3)
        check_min_size(x, MIN_SIZE, "JohnsonStyleNet")
        if self.norm == "instance":
            x = x.contiguous()  # see "Speed" above
        h, w = x.shape[-2:]
        pad_h, pad_w = -h % _STRIDE, -w % _STRIDE
        if pad_h or pad_w:
            x = F.pad(x, (0, pad_w, 0, pad_h), mode="reflect")
        y = 0.5 * (torch.tanh(self.body(x)) + 1.0)
        return y[..., :h, :w]
