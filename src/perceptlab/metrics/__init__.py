"""Image quality metrics: functions, thin modules and a registry (:data:`METRICS`).

All take ``(pred, target)`` as RGB NCHW float tensors in [0, 1] unless a
``data_range`` says otherwise.
"""

from perceptlab.metrics.dists import DISTS, dists
from perceptlab.metrics.lpips import LPIPS, lpips
from perceptlab.metrics.psnr import PSNR, psnr, rgb_to_y
from perceptlab.metrics.registry import METRICS, MetricInfo, get_metric, list_metrics, register
from perceptlab.metrics.ssim import MSSSIM, SSIM, ms_ssim, ssim
from perceptlab.metrics.vmaf import VMAF, vmaf

__all__ = [
    "DISTS", "LPIPS", "METRICS", "MSSSIM", "PSNR", "SSIM", "VMAF", "MetricInfo",
    "dists", "get_metric", "list_metrics", "lpips", "ms_ssim", "psnr", "register", "rgb_to_y", "ssim", "vmaf",
]  # fmt: skip
