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


def list_metrics() -> list[str]:
    """Registered metric names, in registration order."""
    return list(METRICS)


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


def _vmaf_min_size() -> int:
    from perceptlab.metrics.vmaf import VMAF_MIN_SIZE

    return VMAF_MIN_SIZE


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
    MetricInfo("vmaf", _vmaf, True, (0.0, 100.0), _vmaf_min_size(), (),
               "VMAF v0.6.1 per frame on BT.601 luma, via vmaf-torch (Li et al., Netflix 2016); needs perceptlab[vmaf]"),
):  # fmt: skip
    register(_info)
