"""Super-resolution networks, one registry for all of them, and the SRGAN discriminator.

Every network has the same interface: ``net(lr) -> sr`` with ``lr`` an
(N, 3, h, w) RGB batch in [0, 1] and ``sr`` of shape (N, 3, scale h, scale w).
Networks that work on a pre-enlarged image (SRCNN) do the bicubic enlargement
inside, so callers never have to. Each network has the attributes ``scale``
and ``name``; build one by name with :func:`build_sr_net`::

    net = build_sr_net("srresnet", scale=4)
    sr = net(lr).clamp(0, 1)

Outputs are not clamped: bicubic, SRCNN and SRResNet end linearly and can
overshoot [0, 1] near edges (the Johnson net's tanh stays inside), and a loss
should see the overshoot. Clamp (and round) to make an image.

Initialisation: every convolution and linear layer is drawn from He et al.'s
normal distribution (fan-in mode, ReLU gain; LeakyReLU(0.2) gain in the
discriminator) and has zero bias; batch-norm scales are 1 and shifts 0,
PReLU slopes 0.25. The papers used a narrow Gaussian (SRCNN: std 0.001) or
did not say; He initialisation keeps the scale of the activations from layer
to layer, where a fixed small std shrinks it at every layer of a deep network
like SRResNet (37 convolutions).

The large output convolutions (64 -> 3 channels, 9x9) of the Johnson net and
SRResNet are :class:`SplitKernelConv2d`: the same parameters as an
``nn.Conv2d``, computed in a form the CPU runs 2-2.5 times faster.

Speed on CPU: give the networks a channels-last input
(``lr.contiguous(memory_format=torch.channels_last)``); oneDNN's NHWC
convolutions made the Johnson net 1.6-2 times faster and SRResNet 1.2-1.3 times
on our CPUs. The output is NCHW either way.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from perceptlab._checks import check_image
from perceptlab.nets.layers import PlainResidualBlock, SplitKernelConv2d, icnr_, init_weights
from perceptlab.ops.resize import imresize


@dataclass(frozen=True)
class SRNetInfo:
    """What an SR network is and how to build it.

    Attributes:
        name: registry key, also the network's ``name`` attribute.
        builder: ``builder(scale=..., **kwargs) -> nn.Module``.
        scales: the enlargement factors the network supports; ``None`` for
            any integer of at least 2.
        description: one line.
        reference: the paper.
    """

    name: str
    builder: Callable[..., nn.Module]
    scales: tuple[int, ...] | None
    description: str
    reference: str

    def supports(self, scale: int) -> bool:
        """Whether the network can be built for ``scale``."""
        return scale >= 2 if self.scales is None else scale in self.scales

    def scales_text(self) -> str:
        """The supported scales in words, for messages and listings."""
        return "any integer >= 2" if self.scales is None else ", ".join(map(str, self.scales))


SR_NETS: dict[str, SRNetInfo] = {}


def register_sr_net(name: str, *, scales: tuple[int, ...] | None, description: str, reference: str):
    """Class decorator: add an SR network to :data:`SR_NETS` under ``name``.

    The class gets ``name`` as a class attribute, so the registry stays the one
    place that names a network and lists its scales.
    """

    def decorator(cls):
        if name in SR_NETS:
            raise ValueError(f"SR network {name!r} is already registered")
        cls.name = name
        SR_NETS[name] = SRNetInfo(name, cls, scales, description, reference)
        return cls

    return decorator


def list_sr_nets() -> list[str]:
    """Registered SR network names, in registration order."""
    return list(SR_NETS)


def build_sr_net(name: str, scale: int = 4, **kwargs) -> nn.Module:
    """Build the SR network registered as ``name`` for an enlargement of ``scale``.

    Args:
        name: a key of :data:`SR_NETS` (``list_sr_nets()``).
        scale: enlargement factor; each network supports its own set
            (``SR_NETS[name].scales``).
        **kwargs: passed to the network's constructor (e.g. ``n_blocks`` for SRResNet).

    Raises:
        ValueError: unknown name or unsupported scale.
        TypeError: a scale that is not an int.

    Example:
        >>> net = build_sr_net("johnson", scale=4)
        >>> net(torch.rand(1, 3, 24, 24)).shape
        torch.Size([1, 3, 96, 96])
    """
    try:
        info = SR_NETS[name]
    except KeyError:
        raise ValueError(f"unknown SR network {name!r}; choose from {', '.join(SR_NETS)}") from None
    return info.builder(scale=scale, **kwargs)


def _n_doublings(scale: int) -> int:
    return int(math.log2(scale))


class _SRNet(nn.Module):
    """Base of the registered networks: checks ``scale`` against the registry and keeps it."""

    name: str  # set by register_sr_net
    # Input pixels of context a tile needs for tiled inference to equal whole-image inference
    # (the receptive field's radius, in LR pixels); subclasses set their own.
    tile_context: int = 16

    def __init__(self, scale: int):
        super().__init__()
        # bool is an int subclass; True as a scale is a bug at the call site.
        if not isinstance(scale, int) or isinstance(scale, bool):
            raise TypeError(f"scale must be an int, got {scale!r}")
        info = SR_NETS[self.name]
        if not info.supports(scale):
            raise ValueError(f"SR network {self.name!r} supports scales {info.scales_text()}, got {scale}")
        self.scale = scale


@register_sr_net(
    "bicubic",
    scales=None,
    description="MATLAB-compatible bicubic enlargement, no parameters (the baseline of every SR table)",
    reference="Keys, Cubic convolution interpolation for digital image processing, IEEE Trans. ASSP 1981",
)
class Bicubic(_SRNet):
    """Bicubic enlargement as an SR network with no parameters.

    MATLAB's ``imresize(lr, scale)`` (:func:`perceptlab.ops.resize.imresize`),
    the baseline row of SR benchmark tables. Not clamped: bicubic overshoots
    [0, 1] near sharp edges; clamp to make an image.

    Args:
        scale: enlargement factor, any integer >= 2.

    Shape:
        input: (N, 3, h, w) in [0, 1]; output: (N, 3, scale h, scale w).

    Example:
        >>> Bicubic(scale=2)(torch.rand(1, 3, 16, 16)).shape
        torch.Size([1, 3, 32, 32])

    Reference:
        Keys, "Cubic convolution interpolation for digital image processing",
        IEEE Trans. ASSP 29(6), 1981.
    """

    def __init__(self, scale: int = 4):
        super().__init__(scale)
        self.tile_context = 2  # the cubic kernel's reach

    def forward(self, lr: torch.Tensor) -> torch.Tensor:
        check_image(lr, "lr", channels=3)
        return imresize(lr, scale=self.scale)


@register_sr_net(
    "srcnn",
    scales=None,
    description="SRCNN 9-5-5 on the bicubic-enlarged RGB image (Dong et al. 2016)",
    reference="Dong, Loy, He and Tang, Image super-resolution using deep convolutional networks, TPAMI 2016",
)
class SRCNN(_SRNet):
    """SRCNN, the 9-5-5 network of the journal paper, on RGB.

    Three convolutions on the bicubic-enlarged image: patch extraction,
    non-linear mapping, reconstruction::

        lr                        3 x  h x  w
        bicubic x scale           3 x  H x  W      H = scale h
        conv 9x9, relu           64 x  H x  W
        conv 5x5, relu           32 x  H x  W
        conv 5x5                  3 x  H x  W      -> sr (linear, not clamped)

    The convolutions are zero-padded so the output keeps the size of the
    enlarged image; the paper used valid convolutions, whose output is 16
    pixels smaller on each axis, and computed the loss on that centre only.
    The paper's main model works on the luma channel; this is its RGB
    variant, trained on all three channels at once.

    Args:
        scale: enlargement factor, any integer >= 2.

    Shape:
        input: (N, 3, h, w) in [0, 1]; output: (N, 3, scale h, scale w).

    Example:
        >>> SRCNN(scale=3)(torch.rand(1, 3, 16, 16)).shape
        torch.Size([1, 3, 48, 48])

    Reference:
        Dong, Loy, He and Tang, "Image super-resolution using deep convolutional
        networks", IEEE TPAMI 38(2), 2016 (first version: ECCV 2014).
    """

    def __init__(self, scale: int = 3):
        super().__init__(scale)
        # The cubic kernel's 2 input pixels, plus the 9-5-5 convolutions' 8 output pixels in input pixels.
        self.tile_context = 2 + -(-8 // scale)
        self.body = nn.Sequential(
            nn.Conv2d(3, 64, 9, padding=4),
            nn.ReLU(inplace=True),
            nn.Conv2d(64, 32, 5, padding=2),
            nn.ReLU(inplace=True),
            # Not a SplitKernelConv2d: 5 has no 3x3 tiling, and this layer is 3 % of the net's FLOPs.
            nn.Conv2d(32, 3, 5, padding=2),
        )
        init_weights(self)

    def forward(self, lr: torch.Tensor) -> torch.Tensor:
        check_image(lr, "lr", channels=3)
        return self.body(imresize(lr, scale=self.scale))


class _ResidualBlock(nn.Module):
    """x + [conv3x3, BN, activation, conv3x3, BN](x): no activation after the sum."""

    def __init__(self, channels: int, activation: Callable[[], nn.Module]):
        super().__init__()
        self.body = nn.Sequential(
            nn.Conv2d(channels, channels, 3, padding=1, bias=False),
            nn.BatchNorm2d(channels),
            activation(),
            nn.Conv2d(channels, channels, 3, padding=1, bias=False),
            nn.BatchNorm2d(channels),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.body(x)


@register_sr_net(
    "johnson",
    scales=(2, 4, 8),
    description="Johnson et al. 2016 SR transformation net: 4 residual blocks, fractionally-strided upsampling",
    reference="Johnson, Alahi and Fei-Fei, Perceptual losses for real-time style transfer and super-resolution, "
    "ECCV 2016 (supplementary material)",
)
class JohnsonSRNet(_SRNet):
    """The super-resolution transformation network of Johnson et al. (perceptual losses).

    From the paper's supplementary material, for ``scale = 4`` (``log2(scale)``
    upsampling layers in general)::

        lr                                   3 x  h x  w
        conv 9x9, BN, relu                  64 x  h x  w
        4 x residual block                  64 x  h x  w
            [conv 3x3, BN, relu, conv 3x3, BN] + identity
        conv 3x3 stride 1/2, BN, relu       64 x 2h x 2w
        conv 3x3 stride 1/2, BN, relu       64 x 4h x 4w
        conv 9x9                             3 x 4h x 4w
        (tanh + 1) / 2                       3 x 4h x 4w   -> sr in (0, 1)

    A stride-1/2 convolution is ``ConvTranspose2d(64, 64, 3, stride=2,
    padding=1, output_padding=1)``. The paper's scaled tanh maps to [0, 255];
    this one maps to [0, 1], the library's range, so the output needs no clamp.
    The paper's ``x4`` and ``x8`` models (``johnson_x4``, ``johnson_x8``
    elsewhere) are this network with ``scale=4`` and ``scale=8``.

    Args:
        scale: 2, 4 or 8.
        channels: width of every hidden layer (64 in the paper).
        n_blocks: residual blocks (4 in the paper).

    Shape:
        input: (N, 3, h, w) in [0, 1]; output: (N, 3, scale h, scale w) in (0, 1).

    Example:
        >>> JohnsonSRNet(scale=4)(torch.rand(1, 3, 24, 24)).shape
        torch.Size([1, 3, 96, 96])

    Reference:
        Johnson, Alahi and Fei-Fei, "Perceptual losses for real-time style
        transfer and super-resolution", ECCV 2016, and its supplementary material.
    """

    def __init__(self, scale: int = 4, channels: int = 64, n_blocks: int = 4):
        super().__init__(scale)
        layers: list[nn.Module] = [
            nn.Conv2d(3, channels, 9, padding=4, bias=False),
            nn.BatchNorm2d(channels),
            nn.ReLU(inplace=True),
        ]
        layers += [_ResidualBlock(channels, lambda: nn.ReLU(inplace=True)) for _ in range(n_blocks)]
        for _ in range(_n_doublings(scale)):
            layers += [
                nn.ConvTranspose2d(channels, channels, 3, stride=2, padding=1, output_padding=1, bias=False),
                nn.BatchNorm2d(channels),
                nn.ReLU(inplace=True),
            ]
        layers.append(SplitKernelConv2d(channels, 3, 9))
        self.body = nn.Sequential(*layers)
        self._n_head = 3 + n_blocks  # the layers at input resolution
        # The tail's reach in input pixels (tiling_stages), measured with an impulse: a feature pixel
        # changes outputs from 2 input pixels before to 1 after it at x4 and x8, 3 before to 2 after at x2.
        self._tail_context = 3 if scale == 2 else 2
        # 9x9 conv (4) + 2 convs per block at input resolution, then the tail.
        self.tile_context = 4 + 2 * n_blocks + self._tail_context
        init_weights(self)

    def forward(self, lr: torch.Tensor) -> torch.Tensor:
        check_image(lr, "lr", channels=3)
        return 0.5 * (torch.tanh(self.body(lr)) + 1.0)

    def tiling_stages(self):
        """(head, tail, tail context) for two-level tiling (:mod:`perceptlab.tiling`).

        The head is everything at input resolution (9x9 conv, residual blocks).
        The tail reaches one pixel further in each stride-1/2 convolution
        (towards larger coordinates only; half an input pixel less at every
        doubling) and 4 output pixels in the 9x9 output convolution: a context
        of 2 input pixels at x4 and x8, 3 at x2 (tests check both are enough
        and that one less is not).
        """
        head, tail = self.body[: self._n_head], self.body[self._n_head :]
        return head, lambda features: 0.5 * (torch.tanh(tail(features)) + 1.0), self._tail_context


@register_sr_net(
    "srresnet",
    scales=(2, 4, 8),
    description="SRResNet: 16 residual blocks, sub-pixel upsampling (the SRGAN generator, Ledig et al. 2017)",
    reference="Ledig et al., Photo-realistic single image super-resolution using a generative adversarial "
    "network, CVPR 2017",
)
class SRResNet(_SRNet):
    """SRResNet, the generator of SRGAN.

    For ``scale = 4`` (``log2(scale)`` sub-pixel stages in general)::

        lr                                  3 x  h x  w
        conv 9x9, prelu                    64 x  h x  w  ---------------+
        16 x residual block                64 x  h x  w                 |
            [conv 3x3, BN, prelu, conv 3x3, BN] + identity              |
        conv 3x3, BN                       64 x  h x  w                 |
        + long skip                        64 x  h x  w  <--------------+
        conv 3x3 to 256, pixel shuffle 2, prelu    64 x 2h x 2w
        conv 3x3 to 256, pixel shuffle 2, prelu    64 x 4h x 4w
        conv 9x9                            3 x 4h x 4w  -> sr (linear, not clamped)

    The paper scales its targets to [-1, 1]; here they are in [0, 1] like
    everything else in the library, an affine change that the linear output
    layer absorbs.
    PReLU slopes are per channel.

    Args:
        scale: 2, 4 or 8.
        n_blocks: residual blocks (16 in the paper).
        channels: width of the trunk (64 in the paper).

    Shape:
        input: (N, 3, h, w) in [0, 1]; output: (N, 3, scale h, scale w).

    Example:
        >>> SRResNet(scale=4, n_blocks=2)(torch.rand(1, 3, 24, 24)).shape
        torch.Size([1, 3, 96, 96])

    Reference:
        Ledig, Theis, Huszar, Caballero, Cunningham, Acosta, Aitken, Tejani,
        Totz, Wang and Shi, "Photo-realistic single image super-resolution using
        a generative adversarial network", CVPR 2017, figure 4.
    """

    def __init__(self, scale: int = 4, n_blocks: int = 16, channels: int = 64):
        super().__init__(scale)
        # 9x9 head (4) + 2 convs per block + the trunk conv, at input resolution; the tail adds 3.
        self.tile_context = 4 + 2 * n_blocks + 1 + 3
        self.head = nn.Sequential(nn.Conv2d(3, channels, 9, padding=4), nn.PReLU(channels))
        self.trunk = nn.Sequential(
            *(_ResidualBlock(channels, lambda: nn.PReLU(channels)) for _ in range(n_blocks)),
            nn.Conv2d(channels, channels, 3, padding=1, bias=False),
            nn.BatchNorm2d(channels),
        )
        upsampling: list[nn.Module] = []
        for _ in range(_n_doublings(scale)):
            upsampling += [nn.Conv2d(channels, 4 * channels, 3, padding=1), nn.PixelShuffle(2), nn.PReLU(channels)]
        self.tail = nn.Sequential(*upsampling, SplitKernelConv2d(channels, 3, 9))
        init_weights(self)

    def forward(self, lr: torch.Tensor) -> torch.Tensor:
        check_image(lr, "lr", channels=3)
        features = self.head(lr)
        return self.tail(features + self.trunk(features))

    def tiling_stages(self):
        """(head, tail, tail context) for two-level tiling (:mod:`perceptlab.tiling`).

        The head is the trunk with its long skip, at input resolution; the tail's
        3x3 convolutions reach one pixel at input resolution and half a pixel
        less at every doubling, the 9x9 output convolution 4 output pixels: 3
        input pixels in all for scales 2 to 8.
        """

        def head(lr: torch.Tensor) -> torch.Tensor:
            features = self.head(lr)
            return features + self.trunk(features)

        return head, self.tail, 3


# How PerceptSRNet's tail doubles the resolution.
SR_UPSAMPLES = ("subpixel", "nearest")


@register_sr_net(
    "perceptsr",
    scales=(2, 4, 8),
    description="perceptlab's SR net: residual blocks at input resolution, ICNR sub-pixel upsampling, "
    "bicubic skip (no transposed convolutions)",
    reference="Shi et al. 2016 (sub-pixel convolution); Aitken et al. 2017 (ICNR); Lim et al. 2017 (EDSR blocks); "
    "Kim et al. 2016 (VDSR, global residual)",
)
class PerceptSRNet(_SRNet):
    """A fast SR network whose output is bicubic plus a learned residual, upsampled without a grid.

    For ``scale = 4`` (``log2(scale)`` sub-pixel stages in general)::

        lr ----------------------------------------------------+  3 x  h x  w
        conv 3x3                            64 x  h x  w --+   |
        8 x residual block (no BN)          64 x  h x  w   |   |
            [conv 3x3, relu, conv 3x3] + identity          |   |
        conv 3x3, + long skip               64 x  h x  w <-+   |
        conv 3x3 to 128, pixel shuffle 2, relu   32 x 2h x 2w  |
        conv 3x3 to 128, pixel shuffle 2, relu   32 x 4h x 4w  |
        conv 3x3                             3 x 4h x 4w       |
        + bicubic x4 of lr                   3 x 4h x 4w  <----+  -> sr (not clamped)

    Why this shape (docs/experiments/sr_default.md): the Johnson net's
    transposed convolutions leave a pattern repeating every 4 output pixels
    and its tanh output drifts in colour. Here the colours come from the
    bicubic image, the network adds detail only; the sub-pixel convolutions
    start as a nearest-neighbour upsampling (:func:`icnr_`), the last
    convolution starts 1000 times smaller than He and every residual branch 10 times, so the network starts
    as bicubic. Most of the work runs at input resolution: about 54 000
    multiply-adds per output pixel at x4, two thirds of the Johnson net's.

    Args:
        scale: 2, 4 or 8.
        channels: width at input resolution.
        n_blocks: residual blocks.
        up_channels: width of the upsampling stages.
        upsample: ``"subpixel"`` (a convolution to 4x the channels, then pixel shuffle, ICNR-initialised)
            or ``"nearest"`` (nearest-neighbour doubling, then a convolution: Odena et al. 2016's
            resize-convolution, every output phase made by the same filters; as many multiply-adds).

    Shape:
        input: (N, 3, h, w) in [0, 1]; output: (N, 3, scale h, scale w).

    Example:
        >>> PerceptSRNet(scale=4)(torch.rand(1, 3, 24, 24)).shape
        torch.Size([1, 3, 96, 96])
    """

    def __init__(self, scale: int = 4, channels: int = 64, n_blocks: int = 8, up_channels: int = 32,
                 upsample: str = "subpixel"):  # fmt: skip
        super().__init__(scale)
        if upsample not in SR_UPSAMPLES:
            raise ValueError(f"upsample must be one of {', '.join(SR_UPSAMPLES)}, got {upsample!r}")
        self.upsample = upsample
        self.head = nn.Conv2d(3, channels, 3, padding=1)
        self.trunk = nn.Sequential(*(PlainResidualBlock(channels) for _ in range(n_blocks)),
                                   nn.Conv2d(channels, channels, 3, padding=1))  # fmt: skip
        upsampling: list[nn.Module] = []
        width = channels
        for _ in range(_n_doublings(scale)):
            if upsample == "subpixel":
                upsampling += [nn.Conv2d(width, 4 * up_channels, 3, padding=1), nn.PixelShuffle(2)]
            else:  # the same multiply-adds: the convolution runs at the doubled size with a quarter of the outputs
                upsampling += [nn.Upsample(scale_factor=2, mode="nearest"), nn.Conv2d(width, up_channels, 3, padding=1)]
            upsampling.append(nn.ReLU(inplace=True))
            width = up_channels
        self.tail = nn.Sequential(*upsampling, nn.Conv2d(width, 3, 3, padding=1))
        # The tail reaches 2 input pixels: the bicubic skip, and its convolutions (1 pixel at the
        # input's resolution, half a pixel at 2x, a quarter at 4x...). The head reaches one pixel per
        # convolution (head conv, 2 per block, trunk conv); the features the tail reads need that much
        # context beyond theirs. With nearest resizing the tail's convolutions read only 1 input pixel of
        # features (half at 2x, a quarter at 4x, ...), so the head needs one pixel less (tests check both
        # are enough and that one less is not).
        self._tail_context = 2
        feature_reach = 2 if upsample == "subpixel" else 1
        self.tile_context = (1 + 2 * n_blocks + 1) + feature_reach
        init_weights(self)
        with torch.no_grad():
            for layer in self.tail:
                if upsample == "subpixel" and isinstance(layer, nn.Conv2d) and layer.out_channels == 4 * up_channels:
                    icnr_(layer.weight, 2)
            for block in self.trunk[:-1]:
                block.body[-1].weight.mul_(0.1)
            self.tail[-1].weight.mul_(1e-3)

    def forward(self, lr: torch.Tensor) -> torch.Tensor:
        check_image(lr, "lr", channels=3)
        features = self.head(lr)
        return self.tail(features + self.trunk(features)) + imresize(lr, scale=self.scale)

    def tiling_stages(self):
        """(head, tail, tail context) for two-level tiling (:mod:`perceptlab.tiling`).

        The head returns the trunk's features with the input appended as three
        more channels, so that the tail can add the bicubic enlargement of its
        own piece of the input.
        """

        def head(lr: torch.Tensor) -> torch.Tensor:
            features = self.head(lr)
            return torch.cat([features + self.trunk(features), lr], 1)

        def tail(z: torch.Tensor) -> torch.Tensor:
            return self.tail(z[:, :-3]) + imresize(z[:, -3:], scale=self.scale)

        return head, tail, self._tail_context
