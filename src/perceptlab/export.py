"""Exporting perceptlab's networks to ONNX, to run them without PyTorch (onnxruntime and other runtimes).

::

    path = shipped_sr_models()["perceptsr_x4_psnr"]
    export_onnx(load_sr_model("perceptsr_x4_psnr"), "perceptsr_x4.onnx", metadata=model_metadata(path))
    sr = onnx_session("perceptsr_x4.onnx").run(None, {"lr": lr.numpy()})[0]

What is exported is each network's function, not its PyTorch speed paths:

- **SR networks** (``lr`` (1, 3, h, w) -> ``sr`` (1, 3, s h, s w), not
  clamped): a :class:`~perceptlab.nets.layers.SplitKernelConv2d` becomes
  its strided block form (:class:`_BlockConv`), and the MATLAB bicubic enlargement inside SRCNN
  and PerceptSR (:func:`perceptlab.ops.resize.imresize`, which builds dense
  matrices for each size) becomes its fixed polyphase form,
  :func:`bicubic_upscale`: the same weights for every size.
- **Style networks** (:class:`~perceptlab.nets.style.JohnsonStyleNet`,
  ``image`` (1, 3, h, w) -> ``stylized``, the same size, in (0, 1)): its
  modules in order (reflection padding to a multiple of 4, the body,
  ``(tanh + 1) / 2``, the crop), not the fused channels-last inference path.
- **Codec networks** (:mod:`perceptlab.nets.codec`): two files, the
  analysis (``image`` -> the latent ``y``, and the hyper-latent ``z`` for the
  hyperprior) and the synthesis (quantised ``y_hat`` -> ``image``).
  Quantisation, the hyper-synthesis and the entropy coding stay in Python
  (:mod:`perceptlab.codec`): they run on integer tables so that the coder and
  the decoder agree bit for bit, which no float runtime promises.
- **DeePSiM generators** (:mod:`perceptlab.nets.deepsim`): an autoencoder or
  VAE as ``image`` (1, 3, h, w), sides multiples of its code's stride ->
  ``reconstruction`` (the VAE's mean code decoded); an inverter with its
  frozen comparator in the graph, ``image`` -> ``inverted`` (the image its
  features keep), same size.

Inputs are float32 NCHW RGB in [0, 1], batch 1; height and width are dynamic
unless ``dynamic=False``. The exporter is ``torch.onnx.export(...,
dynamo=True)`` (``torch.export``, then ONNX Script): it refuses a size it
cannot keep symbolic instead of freezing it. The TorchScript exporter
(``dynamo=False``) also exports these graphs correctly with torch 2.13, but
it is deprecated (torch warns that it will be removed) and freezes any
Python branch on a size at the example's value without a word. The
model's metadata (:func:`model_metadata`: the safetensors metadata and the
card's summary) goes into each file's ``metadata_props``. Files are written
atomically, after the whole export.
"""

from __future__ import annotations

import contextlib
import copy
import io
import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from unittest import mock

import torch
import torch.nn.functional as F
from torch import nn

from perceptlab import __version__
from perceptlab._files import atomic_write, check_output_file
from perceptlab.nets.layers import SplitKernelConv2d

# The opset torch's ONNX Script library is written for (lower ones go through the version converter);
# onnxruntime has run it since 1.14.
DEFAULT_OPSET = 18
INSTALL_HINT = 'pip install "perceptlab[onnx]"'
# The example input a dynamic graph is traced with (a codec's: twice its stride, so that no latent is 1 pixel
# wide, a size torch.export would specialise).
EXAMPLE_SIZE = (64, 64)
# A training configuration's keys that rebuild its network (a model file's top-level metadata).
_NET_SETTINGS = ("net", "scale", "upsample", "style", "norm", "padding", "arch", "N", "M", "kind", "network", "layer",
                 "bottleneck", "downsample", "width")
# JohnsonStyleNet's two stride-2 convolutions: it pads its input to a multiple of this.
_STYLE_STRIDE = 4


def require_onnx(*modules: str) -> None:
    """Raise ImportError naming the extra to install unless every module (default: the exporter's) imports."""
    import importlib

    for name in modules or ("onnx", "onnxscript"):
        try:
            importlib.import_module(name)
        except ImportError:
            raise ImportError(f"ONNX export needs the {name} package: {INSTALL_HINT}") from None


# ---------------------------------------------------------------- bicubic as a fixed filter


def _phase_taps(scale: int) -> torch.Tensor:
    """(scale, 5) float64: output pixel ``scale * i + j`` of MATLAB's bicubic enlargement is
    ``sum_t taps[j, t] * x[i + t - 2]`` (Keys' cubic, a = -0.5, rows normalised as ``imresize`` does)."""
    from perceptlab.ops.resize import cubic

    # Output pixel scale*i + j (0-based) samples the input at i + (j + 0.5) / scale - 0.5 (imresize's geometry).
    offsets = (torch.arange(scale, dtype=torch.float64) + 0.5) / scale - 0.5
    weights = cubic(offsets[:, None] - torch.arange(-2, 3, dtype=torch.float64))
    return weights / weights.sum(1, keepdim=True)


def _symmetric_pad2(x: torch.Tensor, dim: int) -> torch.Tensor:
    """``x`` padded by 2 on both ends of ``dim``, mirrored with the edge repeated (``x1 x0 | x0 x1 ...``)."""
    n = x.shape[dim]
    parts = [x.narrow(dim, 1, 1), x.narrow(dim, 0, 1), x, x.narrow(dim, n - 1, 1), x.narrow(dim, n - 2, 1)]
    return torch.cat(parts, dim)


def bicubic_upscale(x: torch.Tensor, scale: int) -> torch.Tensor:
    """MATLAB's ``imresize(x, scale)`` for an integer ``scale >= 2``, as one fixed convolution.

    Enlarging by an integer repeats the same ``scale`` sets of 4 weights along
    each axis, and ``imresize``'s symmetric boundary is a symmetric padding by
    2: a grouped 5x5 convolution to ``scale**2`` maps per channel, then a pixel
    shuffle. Equal to :func:`perceptlab.ops.resize.imresize` up to float
    rounding, for any size with sides of at least 2, and traceable with
    symbolic sizes (``imresize`` builds its matrices for each size).

    Shape:
        (N, C, H, W) -> (N, C, scale H, scale W).
    """
    channels = x.shape[1]
    taps = _phase_taps(scale)
    # weight[c * s^2 + a * s + b] = taps[a] (rows) x taps[b] (columns): pixel_shuffle puts it at (s i + a, s j + b).
    kernel = (taps[:, None, :, None] * taps[None, :, None, :]).reshape(scale * scale, 1, 5, 5)
    weight = kernel.repeat(channels, 1, 1, 1).to(x.dtype)
    padded = _symmetric_pad2(_symmetric_pad2(x, 2), 3)
    return F.pixel_shuffle(F.conv2d(padded, weight, groups=channels), scale)


# ---------------------------------------------------------------- what is traced


class _BlockConv(nn.Module):
    """A SplitKernelConv2d as its :meth:`~perceptlab.nets.layers.SplitKernelConv2d.forward_blocks` form: one
    convolution of stride ``block`` to ``out * block**2`` channels and a pixel shuffle (ONNX ``DepthToSpace``).

    The plain k x k convolution to 3 channels took 59 % of onnxruntime's time in the Johnson SR net (one
    thread, 128x128 input); this form made the whole net 1.8 times faster there. The weights are laid out
    here once, as ``forward_blocks`` lays them out on every call. The output sides must be multiples of
    ``block``: 2 at an SR net's output resolution (scale 2, 4 or 8), 4 in the style net's padded output.
    """

    def __init__(self, layer: SplitKernelConv2d):
        super().__init__()
        s, weight = layer.block, layer.weight.detach()
        copies = [F.pad(weight, (j, s - 1 - j, i, s - 1 - i)) for i in range(s) for j in range(s)]
        self.register_buffer("weight", torch.stack(copies, 1).flatten(0, 1).contiguous())
        self.register_buffer("bias", None if layer.bias is None else layer.bias.detach().repeat_interleave(s * s))
        self.block, self.padding = s, layer.padding[0]
        self.kernel_size = layer.kernel_size  # read by the style net's output layer

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = F.conv2d(x, self.weight, self.bias, stride=self.block, padding=self.padding)
        return F.pixel_shuffle(y, self.block)


def _for_export(net: nn.Module) -> nn.Module:
    """A float32 copy of ``net`` in eval mode, its SplitKernelConv2d layers as :class:`_BlockConv`."""
    net = copy.deepcopy(net).float().eval().to(memory_format=torch.contiguous_format)
    for module in list(net.modules()):
        for name, child in list(module.named_children()):
            if isinstance(child, SplitKernelConv2d):
                setattr(module, name, _BlockConv(child))
    return net.requires_grad_(False)


class _StyleGraph(nn.Module):
    """JohnsonStyleNet's function with its modules in order (its forward's autograd branch)."""

    def __init__(self, net: nn.Module):
        super().__init__()
        self.body = net.body

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h, w = x.shape[-2:]
        # The pads may be 0: no branch on the size, which is symbolic here.
        x = F.pad(x, (0, (-w) % _STYLE_STRIDE, 0, (-h) % _STYLE_STRIDE), mode="reflect")
        return (0.5 * (torch.tanh(self.body(x)) + 1.0))[..., :h, :w]


class _CodecAnalysis(nn.Module):
    def __init__(self, net: nn.Module):
        super().__init__()
        self.net = net

    def forward(self, x: torch.Tensor):
        y = self.net.analysis(x)
        return (y, self.net.hyper_analysis(y)) if self.net.hyper else y


class _CodecSynthesis(nn.Module):
    def __init__(self, net: nn.Module):
        super().__init__()
        self.net = net

    def forward(self, y_hat: torch.Tensor) -> torch.Tensor:
        return self.net.synthesis(y_hat)


class _CoderGraph(nn.Module):
    """A DeePSiM autoencoder's or VAE's reconstruction (the VAE's mean code), without the size checks."""

    def __init__(self, net: nn.Module):
        super().__init__()
        self.encoder, self.decoder = net.encoder, net.decoder
        self.bottleneck, self.vae = net.bottleneck, net.name == "vae"

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        z = self.encoder(x)
        return self.decoder(z[:, : self.bottleneck] if self.vae else z)


class _InvertGraph(nn.Module):
    """A comparator's layers up to the inverted one (frozen, float32, unfused), then the inverter's generator."""

    def __init__(self, net: nn.Module):
        from perceptlab.losses.perceptual import loss_network

        super().__init__()
        comparator = loss_network(net.network, (net.layer,), channels_last=False).float()
        self.normalize = comparator.normalize
        self.comparator = nn.Sequential(*comparator.body.values())
        for module in self.comparator:
            if isinstance(module, nn.ReLU):
                module.inplace = False
        self.head, self.tail = net.head, net.tail
        self.register_buffer("mean", comparator.mean, persistent=False)
        self.register_buffer("std", comparator.std, persistent=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.head(self.comparator((x - self.mean) / self.std))
        # To the image's size in every case (an identity where the generator already gives it).
        return self.tail(F.interpolate(y, size=x.shape[-2:], mode="bilinear", align_corners=False))


def _kind(net: nn.Module) -> str:
    from perceptlab.nets.codec import BLS2017Net
    from perceptlab.nets.deepsim import DeepSimInverter, _Coder
    from perceptlab.nets.style import JohnsonStyleNet

    if isinstance(net, JohnsonStyleNet):
        return "style"
    if isinstance(net, BLS2017Net):
        return "codec"
    if isinstance(net, _Coder):
        return "coder"
    if isinstance(net, DeepSimInverter):
        return "invert"
    if isinstance(getattr(net, "scale", None), int):
        return "sr"
    raise TypeError(f"cannot export {type(net).__name__}: not a perceptlab SR, style, codec or DeePSiM network "
                    "(for a CodecModel pass its .net)")  # fmt: skip


# ---------------------------------------------------------------- export


@dataclass
class _Graph:
    """One ONNX file to write: what is traced, on what example, with which names."""

    part: str  # "sr", "style", "analysis", "synthesis", "reconstruct", "invert"
    module: nn.Module
    example: torch.Tensor
    input: str
    outputs: list[str]
    min_side: int  # the smallest height and width the graph accepts
    signature: str


def _graphs(kind: str, net: nn.Module, size: tuple[int, int] | None) -> list[_Graph]:
    """What to trace; ``size``: the fixed input size, or None for a dynamic graph's example."""
    from perceptlab.nets.style import MIN_SIZE

    plain = _for_export(net)
    height, width = size or ((2 * plain.stride,) * 2 if kind == "codec" else EXAMPLE_SIZE)
    image = torch.rand(1, 3, height, width)
    if kind == "coder":
        f = plain.downsample
        if height % f or width % f:
            raise ValueError(f"a {plain.name} takes sides that are multiples of {f}, got {height}x{width} "
                             "(perceptlab reconstruct pads images to them)")  # fmt: skip
        return [_Graph("reconstruct", _CoderGraph(plain), image, "image", ["reconstruction"], f,
                       f"image: float32 (1, 3, h, w) RGB in [0, 1], h and w multiples of {f} -> reconstruction: "
                       "float32 (1, 3, h, w) in (0, 1)")]  # fmt: skip
    if kind == "invert":
        from perceptlab.nets.deepsim import min_image_size

        side = min_image_size(plain.network, plain.layer)
        return [_Graph("invert", _InvertGraph(plain), image, "image", ["inverted"], side,
                       f"image: float32 (1, 3, h, w) RGB in [0, 1], h, w >= {side} -> inverted: float32 (1, 3, h, w) "
                       f"in (0, 1), from its {plain.network} {plain.layer} features")]  # fmt: skip
    if kind == "sr":
        s = plain.scale
        return [_Graph("sr", plain, image, "lr", ["sr"], 2,
                       f"lr: float32 (1, 3, h, w) RGB in [0, 1] -> sr: float32 (1, 3, {s}h, {s}w), not clamped")]
    if kind == "style":
        return [_Graph("style", _StyleGraph(plain), image, "image", ["stylized"], MIN_SIZE,
                       f"image: float32 (1, 3, h, w) RGB in [0, 1], h, w >= {MIN_SIZE} -> "
                       "stylized: float32 (1, 3, h, w) in (0, 1)")]
    stride, factor = plain.stride, 16  # the analysis halves four times; the hyper-analysis twice more
    if height % stride or width % stride:
        raise ValueError(f"a {plain.name} codec takes sides that are multiples of {stride}, got {height}x{width} "
                         "(perceptlab compress pads images to them)")  # fmt: skip
    latents = "y: float32 (1, M, h/16, w/16)" + (", z: float32 (1, N, h/64, w/64)" if plain.hyper else "")
    return [
        _Graph("analysis", _CodecAnalysis(plain), image, "image", ["y", "z"] if plain.hyper else ["y"], stride,
               f"image: float32 (1, 3, h, w) RGB in [0, 1], h and w multiples of {stride} -> {latents}; "
               "quantisation and entropy coding: perceptlab.codec"),
        _Graph("synthesis", _CodecSynthesis(plain), torch.zeros(1, plain.M, height // factor, width // factor),
               "y_hat", ["image"], 1, "y_hat: float32 (1, M, h, w), the quantised latent -> "
               "image: float32 (1, 3, 16h, 16w), not clamped"),
    ]  # fmt: skip


@contextlib.contextmanager
def _bicubic_as_convolution():
    """The SR networks' ``imresize`` of an integer enlargement as :func:`bicubic_upscale` while tracing."""
    from perceptlab.nets import sr

    original = sr.imresize

    def imresize(x, scale=None, size=None, antialias=True, boundary="symmetric"):
        if size is None and boundary == "symmetric" and isinstance(scale, int) and scale >= 2:
            return bicubic_upscale(x, scale)
        return original(x, scale=scale, size=size, antialias=antialias, boundary=boundary)

    with mock.patch.object(sr, "imresize", imresize):
        yield


@contextlib.contextmanager
def _quiet():
    """The exporter's progress lines, and its warnings (torchvision absent, deprecations), kept off the console."""
    import logging
    import warnings

    loggers = [logging.getLogger(name) for name in ("torch.onnx", "torch._dynamo", "torch.export", "onnxscript")]
    levels = [logger.level for logger in loggers]
    with warnings.catch_warnings(), contextlib.redirect_stdout(io.StringIO()):
        warnings.simplefilter("ignore")
        for logger in loggers:
            logger.setLevel(logging.ERROR)
        try:
            yield
        finally:
            for logger, level in zip(loggers, levels):
                logger.setLevel(level)


def _trace(graph: _Graph, dynamic: bool, opset: int) -> bytes:
    from torch.export import Dim

    shapes = None
    if dynamic:
        shapes = ({2: Dim("height", min=graph.min_side), 3: Dim("width", min=graph.min_side)},)
    with _quiet():
        # Captured here rather than by torch.onnx.export's own strategies, so that no fallback (strict
        # tracing, draft_export) can stand in for it. A size condition that holds for every size but that the
        # tracer cannot prove (the style net's crop: h <= the padded size) becomes a run-time assertion of the
        # traced program instead of failing the export.
        program = torch.export.export(graph.module, (graph.example,), dynamic_shapes=shapes, strict=False,
                                      prefer_deferred_runtime_asserts_over_guards=True)  # fmt: skip
        onnx_program = torch.onnx.export(program, dynamo=True, opset_version=opset, input_names=[graph.input],
                                         output_names=graph.outputs, external_data=False, verbose=False)  # fmt: skip
    buffer = io.BytesIO()
    onnx_program.save(buffer)
    return buffer.getvalue()


def _with_metadata(data: bytes, metadata: Mapping[str, str], opset: int) -> bytes:
    import onnx

    model = onnx.load_from_string(data)
    written = next(o.version for o in model.opset_import if o.domain in ("", "ai.onnx"))
    if written != opset:  # the exporter keeps its own opset when it cannot convert the graph down
        raise ValueError(f"opset {opset}: the exporter could convert this network only to opset {written}; "
                         f"use {written} or higher")  # fmt: skip
    del model.metadata_props[:]
    for key, value in metadata.items():
        entry = model.metadata_props.add()
        entry.key, entry.value = str(key), str(value)
    model.producer_name, model.producer_version = "perceptlab", __version__
    onnx.checker.check_model(model)
    return model.SerializeToString()


def _write_together(files: list[tuple[Path, bytes]]) -> None:
    """Each file atomically, all renamed only once all are written (a codec's two files stay a pair)."""
    if files:
        (path, data), rest = files[0], files[1:]
        atomic_write(path, lambda tmp: (tmp.write_bytes(data), _write_together(rest)))


def codec_paths(path: str | os.PathLike) -> dict[str, Path]:
    """The two files of a codec export for ``FILE.onnx``: ``FILE.analysis.onnx`` and ``FILE.synthesis.onnx``."""
    path = Path(path)
    stem = path.name.removesuffix(".onnx")
    return {part: path.with_name(f"{stem}.{part}.onnx") for part in ("analysis", "synthesis")}


def export_onnx(net: nn.Module, path: str | os.PathLike, opset: int = DEFAULT_OPSET, dynamic: bool = True,
                size: tuple[int, int] | None = None, metadata: Mapping[str, str] | None = None) -> dict:  # fmt: skip
    """Write ``net`` (one of perceptlab's SR, style, codec or DeePSiM networks) as ONNX.

    Args:
        net: an SR network (:func:`perceptlab.sr.models.load_sr_model`, :func:`perceptlab.nets.sr.build_sr_net`),
            a style network (:func:`perceptlab.style.models.load_style_model`) or a codec
            network (a ``CodecModel``'s ``.net``) or a DeePSiM generator
            (:func:`perceptlab.deepsim.load_deepsim_model`); it is not changed.
        path: the ``.onnx`` file; for a codec, ``FILE.onnx`` stands for the two files
            ``FILE.analysis.onnx`` and ``FILE.synthesis.onnx`` (:func:`codec_paths`).
        opset: the ONNX operator set (the exporter's own are 18 and up).
        dynamic: height and width dynamic (the batch is 1); ``False`` fixes them to ``size``.
        size: the fixed (height, width) of the input, with ``dynamic=False`` only (a codec's:
            the image's, multiples of its stride).
        metadata: string pairs for each file's ``metadata_props`` (:func:`model_metadata`
            gives a model file's); ``perceptlab_version``, ``exporter`` and ``signature``
            (the inputs and outputs in words) are added, and ``codec_part`` for a codec.

    Returns:
        ``{"kind": "sr" | "style" | "codec" | "coder" | "invert", "files": [path, ...], "opset", "dynamic",
        "input_size": [h, w] or None, "graphs": {path: {"input", "outputs", "signature"}},
        "metadata": {...}}``.

    Raises:
        ImportError: onnx or onnxscript is missing (the message says ``pip install "perceptlab[onnx]"``).
        TypeError: ``net`` is not one of perceptlab's networks.
        ValueError: an opset the exporter cannot write, or a size the network does not take.
        OutputError: a file that cannot be written (checked before the export).

    Example:
        >>> from perceptlab.nets.sr import build_sr_net
        >>> info = export_onnx(build_sr_net("srcnn", scale=2), "srcnn_x2.onnx")  # doctest: +SKIP
        >>> lr = np.random.rand(1, 3, 64, 48).astype(np.float32)  # doctest: +SKIP
        >>> onnx_session("srcnn_x2.onnx").run(None, {"lr": lr})[0].shape  # doctest: +SKIP
        (1, 3, 128, 96)
    """
    require_onnx()
    import onnx

    if not 7 <= opset <= onnx.defs.onnx_opset_version():
        raise ValueError(f"opset must be between 7 and {onnx.defs.onnx_opset_version()} (this onnx), got {opset}")
    if dynamic != (size is None):
        raise ValueError("give a size with dynamic=False, and only then")
    if size is not None and min(size) < 1:
        raise ValueError(f"size must be positive, got {size}")
    kind = _kind(net)
    graphs = _graphs(kind, net, size)
    targets = codec_paths(path) if kind == "codec" else {graphs[0].part: Path(path)}
    for target in targets.values():
        check_output_file(target)
    common = {**(metadata or {}), "perceptlab_version": __version__,
              "exporter": f"torch {torch.__version__}, torch.onnx.export(dynamo=True), opset {opset}"}  # fmt: skip
    files = []
    with _bicubic_as_convolution():
        for graph in graphs:
            part = {"codec_part": graph.part} if kind == "codec" else {}
            meta = {**common, **part, "signature": graph.signature}
            files.append((targets[graph.part], _with_metadata(_trace(graph, dynamic, opset), meta, opset)))
    _write_together(files)
    return {
        "kind": kind, "files": [str(p) for p, _ in files], "opset": opset, "dynamic": dynamic,
        "input_size": None if dynamic else list(size),
        "graphs": {str(targets[g.part]): {"input": g.input, "outputs": g.outputs, "signature": g.signature}
                   for g in graphs},
        "metadata": common,
    }  # fmt: skip


def model_metadata(weights_file: str | os.PathLike) -> dict[str, str]:
    """What a model file says about itself, as strings: its safetensors metadata (``task``, ``net``,
    ``scale`` or ``style``, ``steps``, ``config``, ...), ``name`` and the model card's ``summary``
    (:func:`perceptlab.training.model_info`); for a ``checkpoint.pt``, the settings of its ``config`` that
    rebuild the network, the whole ``config`` and ``steps``."""
    import json

    from perceptlab.training import load_checkpoint, load_model_file, model_info

    path = Path(weights_file)
    name = path.parent.name if path.stem in ("model", "checkpoint") else path.stem
    if path.suffix == ".pt":
        state = load_checkpoint(path)
        config = state.get("config", {})
        # What a model file would hold at its top level: the settings that rebuild the network.
        settings = {k: str(v) for k, v in config.items() if k in _NET_SETTINGS and v is not None}
        return {"name": name, **settings, "config": json.dumps(config), "steps": str(state.get("step", ""))}
    _, metadata = load_model_file(path)
    summary = model_info(path)["summary"]
    return {"name": name, **metadata} | ({"summary": summary} if summary else {})


def onnx_session(path: str | os.PathLike, threads: int = 1):
    """An onnxruntime ``InferenceSession`` on the CPU with ``threads`` intra-op threads (one inter-op thread)."""
    require_onnx("onnxruntime")
    import onnxruntime

    options = onnxruntime.SessionOptions()
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    return onnxruntime.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
