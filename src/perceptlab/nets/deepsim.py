"""The generators of DeePSiM (Dosovitskiy & Brox 2016): an autoencoder, its VAE, and a feature inverter.

Three networks, by name (:func:`build_deepsim_net`); each returns a dict with ``"x_hat"`` in ``[0, 1]``::

    autoencoder  x ─E─▶ z ─D─▶ x̂                          z: (bottleneck, H/f, W/f), f = downsample (8 or 16)
    vae          x ─E─▶ (μ, log σ²) ─z = μ + σ·ε─▶ D ─▶ x̂   also "mu", "logvar", "kl" (ε = 0 in eval mode)
    invert       φ_layer(x) ─G─▶ x̂                        φ: a frozen AlexNet or VGG-16 (the comparator)

    E: conv3x3 (3→w) lrelu, then log2(f) × [conv4x4 /2 (→ min(2w, 4·width)) lrelu], conv1x1 (→ bottleneck)
    D: conv3x3 (bottleneck→4·width) lrelu, log2(f) × [nearest ×2, conv3x3 lrelu], conv3x3 (→3), sigmoid
    G: conv3x3 (C→4·width) lrelu, log2(stride) × [nearest ×2, conv3x3 lrelu], resize to the image, conv3x3 (→3),
       sigmoid; stride: the layer's (AlexNet: 4 at conv1/relu1, 8 to relu2, 16 to relu5, 32 at pool5)

Upsampling is a nearest-neighbour resize then a convolution (Odena et al. 2016), LeakyReLU slope 0.2.
Widths (``width = 32``: 32 → 64 → 128 channels) are sized for training on a CPU at 64-128 px crops;
the paper's are wider.

Example:
    >>> net = build_deepsim_net("vae", bottleneck=8, downsample=8)
    >>> out = net(torch.rand(2, 3, 64, 64))
    >>> out["x_hat"].shape, out["mu"].shape
    (torch.Size([2, 3, 64, 64]), torch.Size([2, 8, 8, 8]))

Reference:
    Dosovitskiy and Brox, "Generating images with perceptual similarity metrics based on deep networks",
    NeurIPS 2016.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import nn

from perceptlab._checks import check_image

COMPARATORS = ("alexnet", "vgg16")
DOWNSAMPLES = (8, 16)
DEEPSIM_NETS: dict[str, Callable[..., nn.Module]] = {}


def register_deepsim_net(name: str):
    """Class decorator: add a network to :data:`DEEPSIM_NETS` under ``name``."""

    def decorator(cls):
        if name in DEEPSIM_NETS:
            raise ValueError(f"deepsim network {name!r} is already registered")
        cls.name = name
        DEEPSIM_NETS[name] = cls
        return cls

    return decorator


def build_deepsim_net(name: str, **kwargs) -> nn.Module:
    """Build the network registered as ``name`` (``autoencoder``, ``vae``, ``invert``) with its keyword arguments."""
    if name not in DEEPSIM_NETS:
        raise ValueError(f"unknown deepsim network {name!r}; choose from {', '.join(DEEPSIM_NETS)}")
    return DEEPSIM_NETS[name](**kwargs)


def comparator_stack(network: str) -> list[tuple[str, nn.Module]]:
    """The named layers of a comparator network (``alexnet`` or ``vgg16``)."""
    from perceptlab.features.alexnet import alexnet_stack
    from perceptlab.features.vgg import vgg16_stack

    stacks = {"alexnet": alexnet_stack, "vgg16": vgg16_stack}
    if network not in stacks:
        raise ValueError(f"network must be one of {', '.join(COMPARATORS)}, got {network!r}")
    return stacks[network]()


def layer_geometry(network: str, layer: str) -> tuple[int, int]:
    """``(channels, stride)`` of ``layer``'s activations in ``network`` (stride: image pixels per feature)."""
    stack = comparator_stack(network)
    names = [name for name, _ in stack]
    if layer not in names:
        raise ValueError(f"unknown {network} layer {layer!r}; choose from {', '.join(names)}")
    channels, stride = 3, 1
    for name, module in stack[: names.index(layer) + 1]:
        if isinstance(module, nn.Conv2d):
            channels = module.out_channels
        s = getattr(module, "stride", 1)
        stride *= s if isinstance(s, int) else s[0]
    return channels, stride


def min_image_size(network: str, layer: str) -> int:
    """The smallest image side whose activations at ``layer`` of ``network`` are not empty."""
    stack = comparator_stack(network)
    names = [name for name, _ in stack]
    layers = [m for _, m in stack[: names.index(layer) + 1] if isinstance(m, (nn.Conv2d, nn.MaxPool2d, nn.AvgPool2d))]
    size = 1
    while True:
        side = size
        for m in layers:
            k, st, p = (v if isinstance(v, int) else v[0] for v in (m.kernel_size, m.stride, m.padding))
            side = (side + 2 * p - k) // st + 1
        if side >= 1:
            return size
        size += 1


def _act() -> nn.Module:
    return nn.LeakyReLU(0.2, inplace=True)


def _up_stages(widths: list[int]) -> list[nn.Module]:
    """Nearest ×2 then conv3x3 + LeakyReLU, from ``widths[i]`` to ``widths[i + 1]`` channels."""
    layers: list[nn.Module] = []
    for cin, cout in zip(widths, widths[1:]):
        layers += [nn.Upsample(scale_factor=2, mode="nearest"), nn.Conv2d(cin, cout, 3, padding=1), _act()]
    return layers


def _widths(width: int, stages: int) -> list[int]:
    """Encoder widths from ``width``, doubling per stride-2 stage up to ``4 * width``."""
    return [width * min(2**i, 4) for i in range(stages + 1)]


class _Coder(nn.Module):
    """Encoder and decoder shared by the autoencoder and the VAE (the VAE's encoder is twice as wide at the end)."""

    def __init__(self, bottleneck: int, downsample: int, width: int, code_channels: int):
        super().__init__()
        if downsample not in DOWNSAMPLES:
            raise ValueError(f"downsample must be one of {DOWNSAMPLES}, got {downsample!r}")
        if min(bottleneck, width) < 1:
            raise ValueError(f"bottleneck and width must be positive, got {bottleneck} and {width}")
        self.bottleneck, self.downsample, self.width = bottleneck, downsample, width
        stages = int(math.log2(downsample))
        widths = _widths(width, stages)
        encoder: list[nn.Module] = [nn.Conv2d(3, widths[0], 3, padding=1), _act()]
        for cin, cout in zip(widths, widths[1:]):
            encoder += [nn.Conv2d(cin, cout, 4, stride=2, padding=1), _act()]
        encoder.append(nn.Conv2d(widths[-1], code_channels, 1))
        self.encoder = nn.Sequential(*encoder)
        back = widths[::-1]
        self.decoder = nn.Sequential(nn.Conv2d(bottleneck, back[0], 3, padding=1), _act(), *_up_stages(back),
                                     nn.Conv2d(back[-1], 3, 3, padding=1), nn.Sigmoid())  # fmt: skip

    def encode(self, x: torch.Tensor) -> torch.Tensor:
        check_image(x, "input", channels=3)
        h, w = x.shape[-2:]
        if h % self.downsample or w % self.downsample:
            raise ValueError(f"{self.name} needs sides that are multiples of {self.downsample}, got {h}x{w}")
        return self.encoder(x)


@register_deepsim_net("autoencoder")
class DeepSimAutoencoder(_Coder):
    """Convolutional autoencoder: an image to a ``(bottleneck, H/f, W/f)`` code and back.

    Args:
        bottleneck: channels of the code.
        downsample: ``f``, 8 or 16.
        width: channels of the first layer (the widest has ``4 * width``).

    Shape:
        input (N, 3, H, W) in [0, 1], H and W multiples of ``downsample``;
        output ``{"x_hat": (N, 3, H, W), "z": (N, bottleneck, H/f, W/f)}``.
    """

    def __init__(self, bottleneck: int = 16, downsample: int = 8, width: int = 32):
        super().__init__(bottleneck, downsample, width, bottleneck)

    def forward(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        z = self.encode(x)
        return {"x_hat": self.decoder(z), "z": z}


@register_deepsim_net("vae")
class DeepSimVAE(_Coder):
    """Variational autoencoder (Kingma & Welling 2014) with the autoencoder's layers.

    The encoder gives the mean and log-variance of a diagonal Gaussian per code element; in train mode
    ``z = μ + exp(log σ² / 2) · ε`` with ``ε ~ N(0, 1)`` from torch's global stream, in eval mode ``z = μ``.
    ``kl`` is ``KL(N(μ, σ²) ‖ N(0, 1))`` in nats per code element, averaged over the batch and the code
    (the trainer adds ``kl_weight · kl``). :meth:`decode` of ``N(0, 1)`` codes samples new images.

    Shape:
        as :class:`DeepSimAutoencoder`; output ``{"x_hat", "z", "mu", "logvar", "kl"}`` (``kl`` a scalar).
    """

    def __init__(self, bottleneck: int = 16, downsample: int = 8, width: int = 32):
        super().__init__(bottleneck, downsample, width, 2 * bottleneck)

    def forward(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        mu, logvar = self.encode(x).chunk(2, dim=1)
        logvar = logvar.clamp(-30.0, 20.0)  # exp() stays finite early in training
        z = mu + torch.exp(0.5 * logvar) * torch.randn_like(mu) if self.training else mu
        kl = 0.5 * torch.mean(mu**2 + logvar.exp() - 1.0 - logvar)
        return {"x_hat": self.decoder(z), "z": z, "mu": mu, "logvar": logvar, "kl": kl}

    def decode(self, z: torch.Tensor) -> torch.Tensor:
        """Images ``(N, 3, h·f, w·f)`` from codes ``(N, bottleneck, h, w)``."""
        return self.decoder(z)


@register_deepsim_net("invert")
class DeepSimInverter(nn.Module):
    """A generator from a comparator's features at ``layer`` back to the image.

    The comparator itself (frozen, :mod:`perceptlab.features`) is not part of this module: the trainer
    runs it and feeds its activations here.

    Args:
        network: ``alexnet`` or ``vgg16``.
        layer: a layer name of that network (``relu5``, ``conv3``, ``relu2_2``, ...).
        width: the last stage's channels; the first has ``4 * width`` (halving per ×2 stage).

    Shape:
        input (N, C, h, w), the activations of ``layer``; ``size``: the image's (H, W), default
        ``(h·stride, w·stride)``; output ``{"x_hat": (N, 3, H, W)}``.
    """

    def __init__(self, network: str = "alexnet", layer: str = "relu5", width: int = 32):
        super().__init__()
        if width < 1:
            raise ValueError(f"width must be positive, got {width}")
        self.network, self.layer, self.width = network, layer, width
        self.in_channels, self.stride = layer_geometry(network, layer)
        stages = int(math.ceil(math.log2(self.stride)))
        widths = _widths(width, stages)[::-1]
        self.head = nn.Sequential(nn.Conv2d(self.in_channels, widths[0], 3, padding=1), _act(), *_up_stages(widths))
        self.tail = nn.Sequential(nn.Conv2d(widths[-1], 3, 3, padding=1), nn.Sigmoid())

    def forward(self, features: torch.Tensor, size: tuple[int, int] | None = None) -> dict[str, torch.Tensor]:
        if features.ndim != 4 or features.shape[1] != self.in_channels:
            raise ValueError(f"input must be {self.network} {self.layer} features (N, {self.in_channels}, h, w), "
                             f"got {tuple(features.shape)}")  # fmt: skip
        y = self.head(features)
        size = tuple(size) if size is not None else (features.shape[-2] * self.stride, features.shape[-1] * self.stride)
        if tuple(y.shape[-2:]) != size:  # AlexNet's kernels make its maps slightly smaller than H/stride
            y = F.interpolate(y, size=size, mode="bilinear", align_corners=False)
        return {"x_hat": self.tail(y)}
