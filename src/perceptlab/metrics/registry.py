"""The metric registry: one entry per metric name, with what a caller needs to know about it.

Names are the keys used everywhere (``perceptlab score --metrics``, JSON
results, reports). Learned metrics build their networks on first use only.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import torch



@dataclass(frozen=True)
class MetricInfo:
    """What a metric is and how to call it.

    Attributes:
        name: registry key.
        compute: ``compute(pred, target) -> (N,)``, NCHW RGB float in [0, 1].
        higher_is_better: direction of "better".
        value_range: (low, high) of possible values.
        min_size: smallest image side the metric accepts.
        weights: pretrained weights it loads (``perceptlab weights list``).
        needs_reference: full-reference metric.
        description: one line, with the reference paper.
        input: the input convention.
        context: keyword arguments ``compute`` also needs, from the caller's
            task (``scale``, ``is_gray``, ``lr`` for the SR measures); metrics with
            a context are not offered by ``perceptlab score``, which has none.
        group: ``"image"`` (any pair of images) or ``"sr"`` (super-resolution outputs).
    """

    name: str
    compute: Callable[[torch.Tensor, torch.Tensor], torch.Tensor]
    higher_is_better: bool
    value_range: tuple[float, float]
    min_size: int
    weights: tuple[str, ...]
    description: str
    needs_reference: bool = True
    input: str = "RGB, NCHW float in [0, 1]"
    context: tuple[str, ...] = ()
    group: str = "image"

    def __call__(self, pred: torch.Tensor, target: torch.Tensor, **context) -> torch.Tensor:
        """``compute(pred, target)`` with the keyword arguments of :attr:`context` taken from ``context``."""
        missing = [k for k in self.context if k not in context]
        if missing:
            raise ValueError(f"metric {self.name!r} needs {', '.join(missing)}")
        return self.compute(pred, target, **{k: context[k] for k in self.context})


METRICS: dict[str, MetricInfo] = {}


def register(info: MetricInfo) -> MetricInfo:
    """Add ``info`` to :data:`METRICS` (names are unique)."""
    if info.name in METRICS:
        raise ValueError(f"metric {info.name!r} is already registered")
    METRICS[info.name] = info
    return info


def get_metric(name: str) -> MetricInfo:
    """The registry entry for ``name``, or a ValueError listing the known names."""
    try:
        return METRICS[name]
    except KeyError:
        raise ValueError(f"unknown metric {name!r}; choose from {', '.join(METRICS)}") from None


def list_metrics(group: str | None = None) -> list[str]:
    """Registered metric names, in registration order; only those of ``group`` when given."""
    return [name for name, info in METRICS.items() if group is None or info.group == group]


def _psnr(pred, target):
    from perceptlab.metrics.psnr import psnr

    return psnr(pred, target, data_range=1.0, reduction="none")


def _ssim(pred, target):
    from perceptlab.metrics.ssim import ssim

    return ssim(pred, target, data_range=1.0, reduction="none")


def _ms_ssim(pred, target):
    from perceptlab.metrics.ssim import ms_ssim

    return ms_ssim(pred, target, data_range=1.0, reduction="none")


def _lpips(net: str):
    def compute(pred, target):
        from perceptlab.metrics.lpips import lpips

        return lpips(pred, target, net=net, reduction="none")

    return compute


def _dists(pred, target):
    from perceptlab.metrics.dists import dists

    return dists(pred, target, reduction="none")


def _vmaf(pred, target):
    from perceptlab.metrics.vmaf import vmaf

    return vmaf(pred, target, reduction="none")


def _vmaf_neg(pred, target):
    from perceptlab.metrics.vmaf import vmaf

    return vmaf(pred, target, reduction="none", neg=True)


def _vmaf_min_size() -> int:
    from perceptlab.metrics.vmaf import VMAF_MIN_SIZE

    return VMAF_MIN_SIZE


def _grid(pred, target, scale):
    from perceptlab.metrics.fidelity import grid_score

    return grid_score(pred, period=max(4, scale))  # period 4 also catches 2; larger scales their own


def _lr_psnr(pred, target, scale, lr):
    from perceptlab.metrics.fidelity import lr_psnr

    return lr_psnr(pred, lr, scale)


def _detail(pred, target):
    from perceptlab.metrics.fidelity import detail_ratio

    return detail_ratio(pred, target)


def _chroma_psnr(pred, target):
    from perceptlab.metrics.fidelity import chroma_psnr

    return chroma_psnr(pred, target)


def _color_shift(pred, target):
    from perceptlab.metrics.fidelity import color_shift

    return color_shift(pred, target)


# Smallest inputs of the backbones up to their last LPIPS layer (AlexNet relu5, VGG-16 relu5_3);
# tests check them against the networks' own ``min_size``.
_ALEX_MIN_SIZE = 31
_VGG_MIN_SIZE = 16

for _info in (
    MetricInfo("psnr", _psnr, True, (0.0, math.inf), 1, (),
               "Peak signal-to-noise ratio in dB over RGB, data range 1 (+inf for identical images)"),
    MetricInfo("ssim", _ssim, True, (-1.0, 1.0), 11, (),
               "SSIM, 11x11 Gaussian window sigma 1.5, mean over RGB channels (Wang et al. 2004)"),
    MetricInfo("ms_ssim", _ms_ssim, True, (0.0, 1.0), 161, (),
               "MS-SSIM, 5 scales (Wang, Simoncelli & Bovik 2003)"),
    MetricInfo("lpips", _lpips("alex"), False, (0.0, math.inf),
               _ALEX_MIN_SIZE, ("alexnet", "lpips_alex"),
               "LPIPS v0.1, AlexNet backbone (Zhang et al. 2018)"),
    MetricInfo("lpips_vgg", _lpips("vgg"), False, (0.0, math.inf),
               _VGG_MIN_SIZE, ("vgg16", "lpips_vgg"),
               "LPIPS v0.1, VGG-16 backbone (Zhang et al. 2018)"),
    MetricInfo("dists", _dists, False, (0.0, 1.0), 1, ("vgg16", "dists"),
               "DISTS structure and texture similarity (Ding et al. 2020)"),
    MetricInfo("detail", _detail, True, (0.0, math.inf), 9, (),
               "fine contrast against the reference: RMS of the high-passed luma, output over reference (below 1: "
               "smoother, the over-smoothing of pixel losses; above 1: added texture or noise; perceptlab.metrics."
               "fidelity)"),
    MetricInfo("vmaf", _vmaf, True, (0.0, 100.0), _vmaf_min_size(), (),
               "VMAF v0.6.1 per frame on BT.601 luma, via vmaf-torch (Li et al., Netflix 2016); needs perceptlab[vmaf]"),
    MetricInfo("vmaf_neg", _vmaf_neg, True, (0.0, 100.0), _vmaf_min_size(), (),
               "VMAF NEG (no enhancement gain: sharpening and contrast boosts cannot raise it), v0.6.1 as vmaf; "
               "needs perceptlab[vmaf]"),
    # Super-resolution: three plain measures of what LPIPS and DISTS miss (PSNR-Y and SSIM-Y of the published
    # protocol are registered by perceptlab.sr.protocol).
    MetricInfo("grid", _grid, False, (0.0, 1.0), 16, (),
               "a pattern fixed to the output's pixel grid: RMS of the phase means of the high-passed luma over "
               "its RMS (perceptlab.metrics.fidelity)", needs_reference=False, context=("scale",), group="sr"),
    MetricInfo("lr_psnr", _lr_psnr, True, (0.0, math.inf), 1, (),
               "the output shrunk back by the scale (MATLAB bicubic) against its LR input, RGB PSNR in dB",
               needs_reference=False, context=("scale", "lr"), group="sr"),
    MetricInfo("chroma_psnr", _chroma_psnr, True, (0.0, math.inf), 1, (),
               "PSNR over the BT.601 Cb and Cr channels alone, in dB: colour that a luma-only measure (VMAF) misses",
               input="RGB, NCHW float in [0, 1] (3 channels)"),
    MetricInfo("color_shift", _color_shift, False, (0.0, 255.0), 1, (),
               "largest per-channel difference of image means to the reference, in 8-bit levels", group="sr"),
):  # fmt: skip
    register(_info)
