"""Layers and initialisations shared by the networks of several tasks (SR, style, the codec)."""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn


class SplitKernelConv2d(nn.Conv2d):
    """A k x k "same" convolution to few channels, computed through 3x3 tiles of the kernel.

    A convolution to 3 channels is a matrix product with 3 rows, a shape that
    runs at a small fraction of the CPU's matrix-multiply rate. This layer
    cuts the k x k kernel into (k / 3)^2 tiles of 3x3 and computes all tiles at
    once, as one 3x3 convolution to ``out_channels * (k/3)^2`` channels
    (27 for a 9x9 kernel to RGB), then adds the tiles' maps, each shifted by
    its tile's offset (``F.fold``, a col2im)::

        x (N, C, H, W)
          |  3x3 conv, padding 2, weight (out * m * m, C, 3, 3)   m = k / 3
        z (N, out * m * m, H + 2, W + 2)     one map per (channel, tile)
          |  fold: shift each tile's map by 3 * (tile row, tile column), add
        y (N, out, H, W)                      = conv2d(x, weight, padding=k // 2)

    The parameters are those of ``nn.Conv2d(in_channels, out_channels, k,
    padding=k // 2)`` (``weight`` (out, in, k, k) and ``bias`` (out,)), so
    state dicts move freely between the two. The result equals the plain
    convolution up to float rounding, forward and backward.

    Measured on our CPUs (one thread, 64 -> 3 channels, 9x9, 1x64x256x256 and
    16x64x96x96): ``nn.Conv2d`` at 17 % of the fp32 matrix-multiply rate
    (19 % channels-last), this layer at 44-52 %; forward and backward
    together 16 % against 34 %. That is the training path; inference on
    channels-last input takes :meth:`forward_blocks`, faster still.

    Args:
        in_channels: input channels.
        out_channels: output channels (few: with many, a plain convolution is
            already a well-shaped matrix product).
        kernel_size: odd multiple of 3 (9 in the SR networks).
        bias: add a learned bias.
        block: output block side of :meth:`forward_blocks`. Measured for 9x9 to
            3 channels on channels-last input (one thread, 512x512 and 1024x1024,
            malloc keeping freed memory): from 64 channels, 2 takes 0.65 and 0.82
            of the time of 4 (the SR networks); from 32 channels the two are
            even (the style network keeps 4, what its benchmarks measured).

    Shape:
        input: (N, in_channels, H, W); output: (N, out_channels, H, W).

    Example:
        >>> conv = SplitKernelConv2d(64, 3, 9)
        >>> x = torch.rand(2, 64, 20, 20)
        >>> torch.allclose(conv(x), F.conv2d(x, conv.weight, conv.bias, padding=4), atol=1e-5)
        True
    """

    # Measured on our CPUs: 3x3 tiles as fast as 1x9 or 3x9 strips, and 2-4 times
    # faster than 1x1 or 1x3 tiles, whose fold adds 81 or 27 maps per output.
    tile = 3

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int, bias: bool = True, block: int = 2):
        if kernel_size % 2 == 0 or kernel_size % self.tile:
            raise ValueError(f"kernel_size must be an odd multiple of {self.tile}, got {kernel_size}")
        if block < 1:
            raise ValueError(f"block must be >= 1, got {block}")
        super().__init__(in_channels, out_channels, kernel_size, padding=kernel_size // 2, bias=bias)
        # Inference on channels-last input whose sides are multiples of this: :meth:`forward_blocks`.
        self.block = block

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        n, _, h, w = x.shape
        inference = not (torch.is_grad_enabled() and (x.requires_grad or self.weight.requires_grad))
        if (inference and x.device.type == "cpu" and x.is_contiguous(memory_format=torch.channels_last)
                and h % self.block == 0 and w % self.block == 0):  # fmt: skip
            return F.pixel_shuffle(self.forward_blocks(x, padding=self.padding[0]), self.block)
        t = self.tile
        m = self.kernel_size[0] // t
        # (out, in, m*t, m*t) -> (out, tile row, tile col, in, t, t). The tile order is
        # reversed because fold adds block (i, j) at an offset of -(i, j) * t from the
        # output pixel, where the convolution needs tile (i, j) at +(i, j) * t; the
        # constant part of the shift is fold's padding.
        tiles = self.weight.view(self.out_channels, self.in_channels, m, t, m, t)
        tiles = tiles.permute(0, 2, 4, 1, 3, 5).flip(1, 2).reshape(-1, self.in_channels, t, t)
        # Padding t - 1 (a "full" convolution) yields every non-zero partial sum,
        # including those of tiles that only overlap the image's border.
        z = F.conv2d(x, tiles, padding=t - 1)
        y = F.fold(z.flatten(2), (h, w), m, dilation=t, padding=self.padding[0])
        return y if self.bias is None else y + self.bias.view(1, -1, 1, 1)

    def forward_blocks(self, x: torch.Tensor, padding: int) -> torch.Tensor:
        """The convolution as one convolution of stride ``block`` to ``out * block**2`` channels.

        ``F.pixel_shuffle(result, block)`` is the k x k convolution of ``x``
        zero-padded by ``padding`` (``k // 2``: the layer's "same" output; 0:
        the valid convolution of an input padded beforehand); the output's
        sides must be multiples of ``block``. Each pixel of a ``block x block``
        output block gets its own copy of the k x k kernel at its offset inside
        a (k + block - 1)^2 window, so one strided convolution computes the
        whole block. For k = 9 it multiplies 1.23 times as much as the k x k
        convolution with block 2 (12 columns instead of 3 in its matrix
        product), 1.78 times with block 4 (48 columns): the zeros of each
        copy's window. On channels-last input it beats the split kernel, whose
        ``F.fold`` needs an NCHW copy of its maps (benchmarks/README.md). Used
        without autograd on channels-last input by :meth:`forward`, and by the
        style network's inference path
        (:class:`perceptlab.nets.style.JohnsonStyleNet`), which applies its
        tanh before the shuffle.
        """
        s = self.block
        copies = [F.pad(self.weight, (j, s - 1 - j, i, s - 1 - i)) for i in range(s) for j in range(s)]
        weight = torch.stack(copies, 1).flatten(0, 1).contiguous(memory_format=torch.channels_last)
        bias = None if self.bias is None else self.bias.repeat_interleave(s * s)
        return F.conv2d(x, weight, bias, stride=s, padding=padding)

    def extra_repr(self) -> str:
        return super().extra_repr() + f", tile={self.tile}, block={self.block}"


def init_weights(module: nn.Module, negative_slope: float = 0.0) -> None:
    """He-normal weights, zero biases (see the module docstring)."""
    nonlinearity = "leaky_relu" if negative_slope else "relu"
    for layer in module.modules():
        if isinstance(layer, (nn.Conv2d, nn.ConvTranspose2d, nn.Linear)):
            nn.init.kaiming_normal_(layer.weight, a=negative_slope, nonlinearity=nonlinearity)
            if layer.bias is not None:
                nn.init.zeros_(layer.bias)
        elif isinstance(layer, nn.BatchNorm2d):
            nn.init.ones_(layer.weight)
            nn.init.zeros_(layer.bias)


class PlainResidualBlock(nn.Module):
    """x + conv3x3(relu(conv3x3(x))): no batch norm (EDSR), so training and inference compute the same thing."""

    def __init__(self, channels: int):
        super().__init__()
        self.body = nn.Sequential(
            nn.Conv2d(channels, channels, 3, padding=1),
            nn.ReLU(inplace=True),
            nn.Conv2d(channels, channels, 3, padding=1),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.body(x)


def icnr_(weight: torch.Tensor, factor: int) -> torch.Tensor:
    """Initialise a convolution that feeds ``pixel_shuffle(factor)`` so its output is a nearest-neighbour upsampling.

    He-normal kernels are drawn for ``out / factor**2`` channels and each is
    repeated for the ``factor**2`` sub-pixel positions it feeds, so every
    position of an output block starts with the same filter: no checkerboard at
    initialisation (Aitken et al. 2017, "Checkerboard artifact free sub-pixel
    convolution", ICNR).
    """
    out_channels = weight.shape[0]
    if out_channels % factor**2:
        raise ValueError(f"{out_channels} output channels do not split into {factor}x{factor} sub-pixel positions")
    base = torch.empty(out_channels // factor**2, *weight.shape[1:])
    nn.init.kaiming_normal_(base, nonlinearity="relu")
    with torch.no_grad():
        weight.copy_(base.repeat_interleave(factor**2, dim=0))
    return weight


class _LowerBound(torch.autograd.Function):
    """``max(x, bound)`` whose gradient also passes below the bound when it would push ``x`` up."""

    @staticmethod
    def forward(ctx, x: torch.Tensor, bound: float) -> torch.Tensor:
        ctx.save_for_backward(x)
        ctx.bound = bound
        return x.clamp_min(bound)

    @staticmethod
    def backward(ctx, grad: torch.Tensor):
        (x,) = ctx.saved_tensors
        # A plain clamp would freeze a value stuck below the bound for ever; a descent step on a negative
        # gradient raises it, so that gradient is let through (Balle et al.'s reparametrisation, TF Compression).
        passes = (x >= ctx.bound) | (grad < 0)
        return grad * passes.to(grad.dtype), None


def lower_bound(x: torch.Tensor, bound: float) -> torch.Tensor:
    """``max(x, bound)``, differentiable where a gradient step would raise ``x`` back above ``bound``.

    Used for GDN's parameters and for the codec's scales and likelihoods,
    where a plain ``clamp`` would stop the gradient of everything it clips.

    Example:
        >>> x = torch.tensor([-1.0, 2.0], requires_grad=True)
        >>> (-lower_bound(x, 0.0)).sum().backward()  # descent raises x: the clipped entry gets its gradient too
        >>> x.grad
        tensor([-1., -1.])
    """
    return _LowerBound.apply(x, float(bound))


class GDN(nn.Module):
    """Generalized divisive normalization: ``y_i = x_i / sqrt(beta_i + sum_j gamma_ij x_j^2)``.

    The normalisation of Ballé et al.'s learned codecs, one 1x1 convolution of
    the squared input (``gamma``, C x C) plus a bias (``beta``). With
    ``inverse=True`` it is IGDN, the synthesis transform's approximate
    inverse, ``y_i = x_i * sqrt(beta_i + sum_j gamma_ij x_j^2)``.

    Parametrisation (Ballé 2018, "Efficient nonlinear transforms for lossy
    image compression"): the stored parameters are square roots,
    ``beta = max(beta_p, sqrt(beta_min + p))^2 - p`` and
    ``gamma = max(gamma_p, sqrt(p))^2 - p`` with the pedestal
    ``p = reparam_offset^2``, which keeps ``beta >= beta_min > 0`` and
    ``gamma >= 0`` and keeps the gradient well scaled near zero (see
    :func:`lower_bound`). Initial values: ``beta = 1``, ``gamma = gamma_init * I``.

    Args:
        channels: C, the input and output channels.
        inverse: IGDN instead of GDN.
        beta_min: the smallest ``beta`` (keeps the division finite).
        gamma_init: the diagonal of the initial ``gamma``.
        reparam_offset: the pedestal's square root.

    Shape:
        input and output: (N, C, H, W).

    Example:
        >>> gdn = GDN(8)
        >>> gdn(torch.rand(2, 8, 5, 5)).shape
        torch.Size([2, 8, 5, 5])

    Reference:
        Ballé, Laparra and Simoncelli, "Density modeling of images using a
        generalized normalization transformation", ICLR 2016.
    """

    def __init__(self, channels: int, inverse: bool = False, beta_min: float = 1e-6, gamma_init: float = 0.1,
                 reparam_offset: float = 2.0**-18):  # fmt: skip
        super().__init__()
        if isinstance(channels, bool) or not isinstance(channels, int) or channels < 1:
            raise ValueError(f"channels must be a positive int, got {channels!r}")
        self.inverse = bool(inverse)
        self.pedestal = reparam_offset**2
        self.beta_bound = (beta_min + self.pedestal) ** 0.5
        self.gamma_bound = reparam_offset
        self.beta = nn.Parameter(torch.sqrt(torch.ones(channels) + self.pedestal))
        self.gamma = nn.Parameter(torch.sqrt(gamma_init * torch.eye(channels) + self.pedestal))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        beta = lower_bound(self.beta, self.beta_bound) ** 2 - self.pedestal
        gamma = lower_bound(self.gamma, self.gamma_bound) ** 2 - self.pedestal
        norm = F.conv2d(x * x, gamma[:, :, None, None], beta)
        return x * torch.sqrt(norm) if self.inverse else x * torch.rsqrt(norm)

    def extra_repr(self) -> str:
        return f"{self.beta.numel()}, inverse={self.inverse}"


class IGDN(GDN):
    """:class:`GDN` with ``inverse=True``: ``y_i = x_i * sqrt(beta_i + sum_j gamma_ij x_j^2)``."""

    def __init__(self, channels: int, **kwargs):
        super().__init__(channels, inverse=True, **kwargs)
