"""The style transformation network of Johnson et al. (perceptual losses), for feed-forward style transfer.

One network per style, trained with :mod:`perceptlab.style.train`; ``net(x)``
maps (N, 3, H, W) images in [0, 1] to stylised images of the same size, in (0, 1).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from perceptlab._checks import check_image, check_min_size
from perceptlab.nets.layers import SplitKernelConv2d, init_weights

STYLE_NORMS = ("instance", "batch")
STYLE_PADDINGS = ("reflect", "zeros")
# How the decoder doubles the resolution: the paper's fractionally-strided convolutions, or a
# nearest-neighbour resize then a 3x3 convolution (Odena et al. 2016), which leaves no checkerboard.
STYLE_UPSAMPLES = ("transpose", "nearest")
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


# ---------------------------------------------------------------- inference path (see JohnsonStyleNet, "Speed")

# Rows of an activation are normalised in blocks of about this many bytes: a block read from
# memory by the first operation on it stays in the core's L2 cache for the next ones.
_BLOCK_BYTES = 1 << 19
# The instance norm's provisional mean (see _instance_stats) is taken over every this-many-th row.
_SHIFT_ROW_STEP = 8


def _autocast_on() -> bool:
    try:
        return torch.is_autocast_enabled("cpu")
    except TypeError:  # torch < 2.4
        return torch.is_autocast_cpu_enabled()


def _known_norm(norm: nn.Module) -> bool:
    """A normalisation :func:`_normalize` handles: instance norm, eval-mode batch norm, a folded one's identity."""
    if type(norm) is nn.Identity:
        return True
    if type(norm) is nn.InstanceNorm2d:
        return not norm.track_running_stats  # with running statistics, eval mode would use them
    if type(norm) is nn.BatchNorm2d:  # training mode updates the running statistics: PyTorch's module does that
        return not norm.training and norm.track_running_stats and norm.running_var is not None
    return False


def _instance_stats(h: torch.Tensor, block: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Mean and (biased) variance over the pixels of one image ``h`` (H, W, C), per channel, (C,) each.

    One pass over ``h``, in blocks of ``len(block)`` rows: each block minus a
    provisional mean ``k`` goes into ``block`` (which stays in L2 cache), is
    summed, squared in place and summed again; the sums of the blocks add up
    in float64. Then ``mean = k + S1 / n`` and ``var = S2 / n - (S1 / n)**2``.
    Shifting by ``k`` is what keeps that difference exact enough: its
    relative error is about the summation error times ``1 + (mean - k)**2 / var``,
    and ``k``, the mean of every eighth row, is at most ``sqrt(7)`` standard
    deviations from the mean (the mean of a fraction f of the pixels is
    within ``sqrt((1 - f) / f)`` of it), so the factor is at most 8.

    PyTorch's own options read the activation more often or lose accuracy
    on a channels-last tensor: ``var_mean`` (Welford) has no vectorised path
    there (3 to 9 times slower); the mean, then the mean of the squared
    deviations written out, read it three times and write it once (here: one
    read, plus every eighth row); a batch norm in training mode, the same
    statistics for one image, sums in single precision without cascading
    (errors of 1e-4 in the normalised maps at 512x512).
    """
    height, width, channels = h.shape
    sample = h[::_SHIFT_ROW_STEP]  # a strided view; summing its rows first (W * C long) is fast, (0, 1) at once is not
    k = sample.flatten(1).sum(0).view(width, channels).sum(0) / (len(sample) * width)
    s1 = torch.zeros(channels, dtype=torch.float64, device=h.device)
    s2 = torch.zeros_like(s1)
    rows = len(block)
    for r0 in range(0, height, rows):
        d = block[: min(rows, height - r0)]
        torch.sub(h[r0 : r0 + rows], k, out=d)
        flat = d.view(-1, channels)
        s1 += flat.sum(0)
        d.square_()
        s2 += flat.sum(0)
    m1 = s1 / (height * width)
    var = (s2 / (height * width) - m1 * m1).clamp_min_(0.0)
    return (k + m1).to(h.dtype), var.to(h.dtype)


def _scale_shift(norm: nn.Module, h: torch.Tensor, block: torch.Tensor | None):
    """``norm(h) == h * scale + shift`` for one image ``h`` (H, W, C): ``(scale, shift)`` of shape (C,), or None.

    ``norm`` is an instance norm (statistics of ``h``, ``block`` its scratch rows),
    an eval-mode batch norm (running statistics) or the identity a folded batch norm leaves.
    """
    if type(norm) is nn.Identity:
        return None
    if type(norm) is nn.InstanceNorm2d:
        mean, var = _instance_stats(h, block)
    else:
        mean, var = norm.running_mean, norm.running_var
    scale = torch.rsqrt(var + norm.eps)
    if norm.affine:
        scale = scale * norm.weight
    shift = -mean * scale
    return (scale, shift + norm.bias) if norm.affine else (scale, shift)


def _normalize(norm: nn.Module, h: torch.Tensor, out: torch.Tensor, relu: bool = False,
               residual: torch.Tensor | None = None) -> None:  # fmt: skip
    """``out = relu(norm(h))``, ``norm(h)`` or ``residual + norm(h)``, block of rows by block of rows.

    ``h``: (N, C, H, W) channels-last and contiguous, changed in place when
    ``residual`` is given; ``out`` and ``residual``: the same shape,
    channels-last, rows possibly strided (the interior of a padded buffer);
    ``out`` may be ``h``. Each block of rows (about ``_BLOCK_BYTES``) goes
    through the scale-and-shift and the ReLU or the sum while it is in cache:
    the activation is read once and written once after its statistics.
    """
    n, c, height, width = h.shape
    rows = max(1, _BLOCK_BYTES // (width * c * h.element_size()))
    block = torch.empty((rows, width, c), dtype=h.dtype, device=h.device) if type(norm) is nn.InstanceNorm2d else None
    # (N, H, W, C) views: each image's rows are contiguous blocks of W * C values.
    hv, ov = h.permute(0, 2, 3, 1), out.permute(0, 2, 3, 1)
    rv = None if residual is None else residual.permute(0, 2, 3, 1)
    for i in range(n):
        factors = _scale_shift(norm, hv[i], block)
        for r0 in range(0, height, rows):
            hc, oc = hv[i, r0 : r0 + rows], ov[i, r0 : r0 + rows]
            if factors is not None:
                scale, shift = factors
                if residual is None:
                    torch.addcmul(shift, hc, scale, out=oc)
                    if relu:
                        oc.relu_()
                    continue
                torch.addcmul(shift, hc, scale, out=hc)
            if residual is not None:
                torch.add(rv[i, r0 : r0 + rows], hc, out=oc)
            elif relu:
                torch.clamp(hc, min=0.0, out=oc)
            elif out.data_ptr() != h.data_ptr():
                oc.copy_(hc)


class _Buffers:
    """Padded channels-last buffers for one inference call, placed in the memory of buffers already released.

    With glibc's default settings a block over 32 MiB is a fresh mapping whose
    pages fault in, zeroed by the kernel, when first written; the second use
    of a block costs nothing more. (At 1024x1024 a call took 2.3 s with
    those settings, 2.0 s with malloc keeping freed memory.)
    """

    def __init__(self) -> None:
        self.free: list[torch.Tensor] = []
        self.flat: dict[int, torch.Tensor] = {}

    def padded(self, h: torch.Tensor, p: int, reserve: int = 0) -> torch.Tensor:
        """Uninitialised (N, C, H + 2p, W + 2p), ``h``'s batch, channels and size, channels-last.

        ``reserve``: elements to allocate at least, when nothing released is large enough.
        """
        n, c, height, width = h.shape
        shape = (n, height + 2 * p, width + 2 * p, c)
        need = shape[0] * shape[1] * shape[2] * shape[3]
        index = next((i for i, flat in enumerate(self.free) if flat.numel() >= need), None)
        if index is None:
            flat = torch.empty(max(need, reserve), dtype=h.dtype, device=h.device)
        else:
            flat = self.free.pop(index)
        buffer = flat[:need].view(shape).permute(0, 3, 1, 2)
        self.flat[buffer.data_ptr()] = flat
        return buffer

    def release(self, buffer: torch.Tensor) -> None:
        """Give ``buffer``'s memory back for later buffers (its contents are dead)."""
        flat = self.flat.pop(buffer.data_ptr(), None)
        if flat is not None:
            self.free.append(flat)


def _interior(buffer: torch.Tensor, p: int) -> torch.Tensor:
    return buffer[..., p:-p, p:-p] if p else buffer


def _reflect_border(buffer: torch.Tensor, p: int) -> None:
    """Fill the ``p``-pixel border of ``buffer`` with the reflection of its interior, as ``F.pad(mode="reflect")``.

    Rows first, then columns over the whole height, so that the corners are
    reflected in both directions, as ``F.pad`` does.
    """
    if not p:
        return
    height, width = buffer.shape[-2] - 2 * p, buffer.shape[-1] - 2 * p
    cols = slice(p, p + width)
    buffer[..., :p, cols] = buffer[..., p + 1 : 2 * p + 1, cols].flip(-2)
    buffer[..., p + height :, cols] = buffer[..., height - 1 : height + p - 1, cols].flip(-2)
    buffer[..., :p] = buffer[..., p + 1 : 2 * p + 1].flip(-1)
    buffer[..., p + width :] = buffer[..., width - 1 : width + p - 1].flip(-1)


def _nearest2(a: torch.Tensor, p: int) -> torch.Tensor:
    """``a`` enlarged twice by nearest neighbour, channels-last, reflection-padded by ``p`` (for the next conv)."""
    up = F.interpolate(a, scale_factor=2, mode="nearest").contiguous(memory_format=torch.channels_last)
    return F.pad(up, (p, p, p, p), mode="reflect") if p else up


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
        self.conv = SplitKernelConv2d(cin, cout, kernel, block=4)
        self.reflect = padding == "reflect"

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not self.reflect:
            return self.conv(x)
        p = self.conv.kernel_size[0] // 2
        return self.conv(F.pad(x, (p, p, p, p), mode="reflect"))[..., p:-p, p:-p]

    @property
    def block(self) -> int:
        return self.conv.block

    def forward_blocks(self, x: torch.Tensor, padded: bool) -> torch.Tensor:
        """The same convolution for inference, before the pixel shuffle (:meth:`SplitKernelConv2d.forward_blocks`).

        Args:
            x: (N, cin, H, W) channels-last, H and W multiples of ``block``;
                already reflection-padded by k // 2 on every side when ``padded``.

        Returns:
            (N, cout * block**2, H' / block, W' / block), H' x W' the unpadded size,
            the map of channel ``c * block**2 + i * block + j`` holding output
            pixels (block * y + i, block * x + j) of channel c.
        """
        return self.conv.forward_blocks(x, padding=0 if padded else self.conv.kernel_size[0] // 2)


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
        conv 3x3 stride 1/2, norm, relu               64 x H'/2 x W'/2   (upsample="nearest": nearest x2,
        conv 3x3 stride 1/2, norm, relu               32 x H' x W'        then conv 3x3 stride 1)
        conv 9x9                                       3 x H' x W'
        (tanh + 1) / 2, crop to H x W                  3 x  H x  W   -> in (0, 1)

    **Any input size (pad and crop).** The two stride-2 convolutions need a
    multiple of 4 to come back to the same size, so the input is reflected by
    0-3 rows and columns at the bottom and right, and the output is cropped
    back: output size == input size, and the top-left pixel grid is the same
    for every size (which is what lets a batch-norm network be run tile by
    tile with the same result, see :func:`perceptlab.style.models.stylize_feedforward`).

    **Upsampling.** ``"transpose"`` (default) is the paper's fractionally-strided
    convolutions. Their kernel overlaps unevenly at stride 2, which prints a
    pattern repeating every 4 output pixels (Odena, Dumoulin and Olah, 2016,
    "Deconvolution and checkerboard artifacts"); ``"nearest"`` resizes by
    nearest neighbour and then convolves (3x3, stride 1, padded like the other
    convolutions), which cannot. The two have different parameter names
    (``body.15`` instead of ``body.14`` for the first stage), so a model file
    records which one it holds.

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

    **Speed.** Two ways through the same layers compute the same function.
    *With autograd* (training, or any call where the input or a parameter
    needs a gradient) the modules run in order. The 9x9 output convolution
    (32 -> 3 channels) is then a :class:`~perceptlab.nets.sr.SplitKernelConv2d`,
    reflection-padded explicitly; the 9x9 input convolution (3 -> 32) stays an
    ``nn.Conv2d`` (with 32 output channels its matrix product is well
    shaped). An instance-norm network runs its input in the standard layout
    whatever it is given: PyTorch's CPU instance norm has no fast
    channels-last path (channels-last made it 1.3 times slower).
    *Without autograd* on the CPU (under ``torch.no_grad()``, or a network
    whose parameters need no gradient, as
    :func:`~perceptlab.style.models.load_style_model` returns it),
    :meth:`_forward_inference` runs the layers channels-last, whatever the
    layout of the weights:

    - normalisations by hand (:func:`_normalize`): an instance norm's
      statistics in one pass over the activation (:func:`_instance_stats`),
      then scale, shift and ReLU, or the residual sum, applied block of rows
      by block of rows while the block is in cache and written straight
      into the reflection-padded input of the next convolution, so that no
      padding pass is left; an eval-mode batch norm the same way with its
      running statistics, a folded one not at all;
    - the convolutions on those padded buffers, without padding of their
      own; the residual blocks take turns with two buffers, and later
      buffers reuse the memory of released ones (:class:`_Buffers`);
    - the output convolution as one stride-4 convolution to 48 channels and
      a pixel shuffle (:meth:`_OutputConv.forward_blocks`).

    On one thread of our CPUs (convolution FLOPs over the fp32 matmul rate)
    this took the instance-norm network from 0.43 to 0.68 at 512x512 and
    from 0.33 to 0.66 at 1024x1024, the folded batch-norm one from 0.67 to
    0.78 and from 0.57 to 0.71; with malloc keeping freed memory, as the
    command-line tool runs, the instance-norm network reached 0.77 and 0.79
    (``benchmarks/bench_stylize.py``, ``benchmarks/README.md``). The two
    paths agree to float rounding, within 1e-5 (``tests/test_style_speed.py``).

    Args:
        norm: ``"instance"`` or ``"batch"``.
        padding: ``"reflect"`` or ``"zeros"``.
        upsample: ``"transpose"`` or ``"nearest"``.

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

    def __init__(self, norm: str = "instance", padding: str = "reflect", upsample: str = "transpose"):
        super().__init__()
        if norm not in STYLE_NORMS:
            raise ValueError(f"norm must be one of {STYLE_NORMS}, got {norm!r}")
        if padding not in STYLE_PADDINGS:
            raise ValueError(f"padding must be one of {STYLE_PADDINGS}, got {padding!r}")
        if upsample not in STYLE_UPSAMPLES:
            raise ValueError(f"upsample must be one of {STYLE_UPSAMPLES}, got {upsample!r}")
        self.norm = norm
        self.padding = padding
        self.upsample = upsample
        layers: list[nn.Module] = []
        for cin, cout, kernel, stride in ((3, 32, 9, 1), (32, 64, 3, 2), (64, 128, 3, 2)):
            layers += [_conv(cin, cout, kernel, padding, stride), _norm(norm, cout), nn.ReLU(inplace=True)]
        layers += [_ResidualBlock(128, norm, padding) for _ in range(5)]
        for cin, cout in ((128, 64), (64, 32)):
            if upsample == "nearest":
                up = [nn.Upsample(scale_factor=2, mode="nearest"), _conv(cin, cout, 3, padding)]
            else:
                up = [nn.ConvTranspose2d(cin, cout, 3, stride=2, padding=1, output_padding=1, bias=False)]
            layers += [*up, _norm(norm, cout), nn.ReLU(inplace=True)]
        layers.append(_OutputConv(32, 3, 9, padding))
        self.body = nn.Sequential(*layers)
        init_weights(self)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        check_image(x, "input", channels=3)
        check_min_size(x, MIN_SIZE, "JohnsonStyleNet")
        inference = self._inference_path_applies(x)
        if self.norm == "instance" and not inference:
            x = x.contiguous()  # see "Speed" above
        h, w = x.shape[-2:]
        pad_h, pad_w = -h % _STRIDE, -w % _STRIDE
        if pad_h or pad_w:
            x = F.pad(x, (0, pad_w, 0, pad_h), mode="reflect")
        if inference:
            z = self._forward_inference(x)
            y = F.pixel_shuffle(z.tanh_().add_(1.0).mul_(0.5), self.body[-1].block)
        else:
            z = self.body(x)
            # Kept for a training loss that keeps the tanh out of saturation (perceptlab.style.train's
            # saturation_weight): where it saturates, no gradient can bring a burnt-out pixel back.
            self.preactivation = z[..., :h, :w]
            y = 0.5 * (torch.tanh(z) + 1.0)
        return y[..., :h, :w]

    def _inference_path_applies(self, x: torch.Tensor) -> bool:
        """Whether :meth:`_forward_inference` computes this call: CPU, no gradient wanted, a body it knows."""
        if x.device.type != "cpu" or _autocast_on():
            return False
        if torch.is_grad_enabled() and (x.requires_grad or any(p.requires_grad for p in self.parameters())):
            return False
        body = self.body
        up_layers = {"transpose": 3, "nearest": 4}[self.upsample]
        n = 14 + 2 * up_layers
        if len(body) != n + 1 or not isinstance(body[n], _OutputConv):
            return False
        ups = [14, 14 + up_layers]
        for i, layer in enumerate(body[:n]):
            if i in (2, 5, 8, *(u + up_layers - 1 for u in ups)) and type(layer) is not nn.ReLU:
                return False
            if i in (0, 3, 6) and type(layer) is not nn.Conv2d:
                return False
            if self.upsample == "transpose" and i in ups and type(layer) is not nn.ConvTranspose2d:
                return False
            if self.upsample == "nearest" and i in ups and not (
                type(layer) is nn.Upsample and layer.mode == "nearest" and layer.scale_factor in (2, 2.0)
                and type(body[i + 1]) is nn.Conv2d):
                return False
            if 9 <= i < 14:
                if not isinstance(layer, _ResidualBlock) or len(layer.body) != 5 or type(layer.body[2]) is not nn.ReLU:
                    return False
                if not all(type(conv) is nn.Conv2d for conv in layer.body[::3]):
                    return False
                if not all(_known_norm(norm) for norm in layer.body[1::3]):
                    return False
            if i in (1, 4, 7, *(u + up_layers - 2 for u in ups)) and not _known_norm(layer):
                return False
        return True

    def _forward_inference(self, x: torch.Tensor) -> torch.Tensor:
        """The body without autograd, channels-last, fused where PyTorch's modules cannot be (see "Speed").

        Returns the output convolution's space-to-depth maps
        (:meth:`_OutputConv.forward_blocks`), before the tanh.
        """
        body = self.body
        reflect = self.padding == "reflect"
        pad = 1 if reflect else 0  # of every 3x3 convolution's input

        def conv(layer: nn.Conv2d, a: torch.Tensor) -> torch.Tensor:
            # ``a`` is already reflection-padded by the layer's padding; zero padding is the convolution's own.
            padding = 0 if reflect else layer.padding
            return F.conv2d(a, layer.weight, layer.bias, layer.stride, padding, layer.dilation, layer.groups)

        def normalized(h, norm, p, relu=True, out=None, residual=None, reserve=0):
            # norm(h) (+ ReLU or residual) in the interior of ``out``, padded by p (reflected); in h when p == 0.
            h = h.contiguous(memory_format=torch.channels_last)  # what the convolutions return already
            if p and out is None:
                out = buffers.padded(h, p, reserve)
            _normalize(norm, h, _interior(out, p) if p else h, relu, residual)
            _reflect_border(out, p)
            return out if p else h

        buffers = _Buffers()
        out_conv = body[-1]
        p_out = out_conv.conv.kernel_size[0] // 2 if reflect else 0
        n, _, height, width = x.shape
        # The output convolution's padded input, at the end, takes the memory of the first padded buffer.
        reserve = n * out_conv.conv.in_channels * (height + 2 * p_out) * (width + 2 * p_out)
        # Down: each convolution's result goes, normalised, into the padded input of the next.
        a = body[0](x.contiguous(memory_format=torch.channels_last))  # the 9x9 input conv pads its 3 channels
        a = normalized(a, body[1], pad, reserve=reserve)
        for conv_layer, norm in ((body[3], body[4]), (body[6], body[7])):
            h = conv(conv_layer, a)
            buffers.release(a)
            a = normalized(h, norm, pad)
        # Residual blocks: two padded buffers in turn; a block's sum goes into the one its second convolution
        # has just read. The last sum stays unpadded: the transposed convolution after it takes no border.
        spare = None
        for index, block in enumerate(body[9:14]):
            conv1, norm1, _, conv2, norm2 = block.body
            t = normalized(conv(conv1, a), norm1, pad, out=spare)
            p = 0 if index == 4 else pad
            out = normalized(conv(conv2, t), norm2, p, relu=False, out=t, residual=_interior(a, pad))
            a, spare = out, a
        buffers.release(spare)
        buffers.release(t)
        # Up: two transposed convolutions (or nearest x2 and a 3x3 convolution each), then the output convolution.
        if self.upsample == "transpose":
            a = normalized(body[14](a), body[15], 0)
            a = normalized(body[17](a), body[18], p_out)
        else:
            a = normalized(conv(body[15], _nearest2(a, pad)), body[16], 0)
            a = normalized(conv(body[19], _nearest2(a, pad)), body[20], p_out)
        return out_conv.forward_blocks(a, padded=reflect)
