"""The transforms of learned image codecs (Ballé et al.), one registry for them.

A codec network maps an image to latents and back; the entropy models that
price the latents, and the coding itself, are :mod:`perceptlab.codec`'s.
Two networks, by name (:func:`build_codec_net`)::

    bls2017     x ─g_a─▶ y ─Q─▶ ŷ ─g_s─▶ x̂                      ŷ priced by a factorised density
    hyperprior  x ─g_a─▶ y ─Q─▶ ŷ ─g_s─▶ x̂                      ŷ priced by N(0, σ²), σ = h_s(ẑ)
                         └─|·|─h_a─▶ z ─Q─▶ ẑ ─h_s─▶ σ           ẑ priced by a factorised density

    g_a: conv5x5/2 (3→N) GDN  conv5x5/2 (N→N) GDN  conv5x5/2 (N→N) GDN  conv5x5/2 (N→M)        ÷16
    g_s: convT5x5/2 (M→N) IGDN  convT5x5/2 (N→N) IGDN  convT5x5/2 (N→N) IGDN  convT5x5/2 (N→3)   ×16
    h_a: conv3x3 (M→N) ReLU  conv5x5/2 (N→N) ReLU  conv5x5/2 (N→N)                              ÷4
    h_s: convT5x5/2 (N→N) ReLU  convT5x5/2 (N→N) ReLU  conv3x3 (N→M) ReLU                       ×4

Image sides must be multiples of ``net.stride`` (16 and 64); the codec pads.
Upsampling is the papers' transposed convolution (padding 2, output padding
1: exactly twice the size). Weights keep PyTorch's default initialisation,
GDN starts at ``beta = 1, gamma = 0.1 I`` (:class:`~perceptlab.nets.layers.GDN`).

Channels: the papers use N = 128, M = 192 (and N = 192, M = 320 at high
rates); our defaults, N = 64 and M = 96 (:data:`DEFAULT_N`, :data:`DEFAULT_M`),
are sized for training on a CPU.

Example:
    >>> net = build_codec_net("hyperprior", N=16, M=24)
    >>> y = net.analysis(torch.rand(1, 3, 64, 64))
    >>> y.shape, net.hyper_analysis(y).shape
    (torch.Size([1, 24, 4, 4]), torch.Size([1, 16, 1, 1]))
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import nn

from perceptlab.nets.layers import GDN, IGDN

DEFAULT_N = 64
DEFAULT_M = 96


@dataclass(frozen=True)
class CodecNetInfo:
    """What a codec network is and how to build it.

    Attributes:
        name: registry key, also the network's ``name`` attribute.
        builder: ``builder(N=..., M=...) -> nn.Module``.
        stride: the factor from image to its smallest latent (image sides are padded to a multiple of it).
        hyper: whether the network has a hyperprior (``h_a``, ``h_s``).
        description: one line.
        reference: the paper.
    """

    name: str
    builder: Callable[..., nn.Module]
    stride: int
    hyper: bool
    description: str
    reference: str


CODEC_NETS: dict[str, CodecNetInfo] = {}


def register_codec_net(name: str, *, stride: int, hyper: bool, description: str, reference: str):
    """Class decorator: add a codec network to :data:`CODEC_NETS` under ``name`` (and set ``cls.name``)."""

    def decorator(cls):
        if name in CODEC_NETS:
            raise ValueError(f"codec network {name!r} is already registered")
        cls.name, cls.stride, cls.hyper = name, stride, hyper
        CODEC_NETS[name] = CodecNetInfo(name, cls, stride, hyper, description, reference)
        return cls

    return decorator


def list_codec_nets() -> list[str]:
    """Registered codec network names, in registration order."""
    return list(CODEC_NETS)


def build_codec_net(name: str, **kwargs) -> nn.Module:
    """Build the codec network registered as ``name``.

    Args:
        name: a key of :data:`CODEC_NETS`.
        **kwargs: ``N`` (channels of the transforms) and ``M`` (channels of the latent ``y``).

    Raises:
        ValueError: unknown name or bad channel counts.
    """
    try:
        info = CODEC_NETS[name]
    except KeyError:
        raise ValueError(f"unknown codec network {name!r}; choose from {', '.join(CODEC_NETS)}") from None
    return info.builder(**kwargs)


def _down(cin: int, cout: int, k: int = 5) -> nn.Conv2d:
    return nn.Conv2d(cin, cout, k, stride=2, padding=k // 2)


def _up(cin: int, cout: int, k: int = 5) -> nn.ConvTranspose2d:
    return nn.ConvTranspose2d(cin, cout, k, stride=2, padding=k // 2, output_padding=1)


@register_codec_net(
    "bls2017", stride=16, hyper=False,
    description="four stride-2 convolutions with GDN, latents priced by a factorised density",
    reference="Ballé, Laparra and Simoncelli, 'End-to-end optimized image compression', ICLR 2017",
)  # fmt: skip
class BLS2017Net(nn.Module):
    """Analysis ``g_a`` and synthesis ``g_s`` of Ballé et al. 2017 (see the module docstring).

    Args:
        N: channels between the layers.
        M: channels of the latent ``y``.

    Shape:
        :meth:`analysis`: (B, 3, H, W) -> (B, M, H/16, W/16); :meth:`synthesis` the reverse.
    """

    name: str
    stride: int
    hyper: bool

    def __init__(self, N: int = DEFAULT_N, M: int = DEFAULT_M):
        super().__init__()
        for label, value in (("N", N), ("M", M)):
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"{label} must be a positive int, got {value!r}")
        self.N, self.M = N, M
        self.g_a = nn.Sequential(_down(3, N), GDN(N), _down(N, N), GDN(N), _down(N, N), GDN(N), _down(N, M))
        self.g_s = nn.Sequential(_up(M, N), IGDN(N), _up(N, N), IGDN(N), _up(N, N), IGDN(N), _up(N, 3))

    def analysis(self, x: torch.Tensor) -> torch.Tensor:
        """The latent ``y`` of images in [0, 1]."""
        return self.g_a(x)

    def synthesis(self, y_hat: torch.Tensor) -> torch.Tensor:
        """The images of quantised latents (not clamped: a loss should see the overshoot)."""
        return self.g_s(y_hat)


@register_codec_net(
    "hyperprior", stride=64, hyper=True,
    description="bls2017's transforms plus a hyperprior: z = h_a(|y|) gives the scales of a Gaussian model of y",
    reference="Ballé, Minnen, Singh, Hwang and Johnston, 'Variational image compression with a scale "
              "hyperprior', ICLR 2018",
)  # fmt: skip
class HyperpriorNet(BLS2017Net):
    """:class:`BLS2017Net` plus the hyper-analysis ``h_a`` and hyper-synthesis ``h_s`` of Ballé et al. 2018.

    Shape:
        :meth:`hyper_analysis`: (B, M, h, w) -> (B, N, h/4, w/4); :meth:`hyper_synthesis` the reverse,
        non-negative scales before the codec's lower bound.
    """

    def __init__(self, N: int = DEFAULT_N, M: int = DEFAULT_M):
        super().__init__(N, M)
        self.h_a = nn.Sequential(nn.Conv2d(M, N, 3, padding=1), nn.ReLU(), _down(N, N), nn.ReLU(), _down(N, N))
        self.h_s = nn.Sequential(_up(N, N), nn.ReLU(), _up(N, N), nn.ReLU(), nn.Conv2d(N, M, 3, padding=1), nn.ReLU())

    def hyper_analysis(self, y: torch.Tensor) -> torch.Tensor:
        """The hyper-latent ``z`` of a latent ``y`` (of its magnitudes, as in the paper)."""
        return self.h_a(torch.abs(y))

    def hyper_synthesis(self, z_hat: torch.Tensor) -> torch.Tensor:
        """The scales (standard deviations) of ``y`` given the quantised hyper-latent."""
        return self.h_s(z_hat)
