"""Full-reference scoring of image files: files -> tensors -> metrics -> rows -> summary.

The one data path behind ``perceptlab score``. Rows are plain dicts with
fixed keys (``reference``, ``distorted`` and one key per metric name), which
:mod:`perceptlab.report` turns into a table, JSON or CSV.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from pathlib import Path

import torch
import torch.nn.functional as F

from perceptlab.io import ImageError, read_image
from perceptlab.metrics.registry import get_metric

DEFAULT_METRICS = ("psnr", "ssim", "ms_ssim", "lpips", "lpips_vgg", "dists")


def match_size(distorted: torch.Tensor, reference: torch.Tensor) -> torch.Tensor:
    """Resize ``distorted`` to the reference's size (bicubic with antialiasing, clamped to [0, 1])."""
    if distorted.shape[-2:] == reference.shape[-2:]:
        return distorted
    out = F.interpolate(distorted, size=reference.shape[-2:], mode="bicubic", align_corners=False, antialias=True)
    return out.clamp(0, 1)


@torch.no_grad()
def score_tensors(distorted: torch.Tensor, reference: torch.Tensor, metrics: Sequence[str]) -> dict[str, float]:
    """Every metric of one (1, 3, H, W) pair, as floats."""
    return {name: float(get_metric(name).compute(distorted, reference)[0]) for name in metrics}


def check_scorable(name: str) -> None:
    """Raise ValueError unless ``name`` is a metric a pair of image files is enough for."""
    info = get_metric(name)
    if info.context:
        raise ValueError(f"metric {name!r} needs {' and '.join(info.context)} besides the two images "
                         "(it scores super-resolution outputs: use perceptlab eval sr)")  # fmt: skip


def scorable_metrics() -> list[str]:
    """The registered metrics that two image files are enough for."""
    from perceptlab.metrics.registry import METRICS

    return [name for name, info in METRICS.items() if not info.context]


def _check_size(path: Path, image: torch.Tensor, metrics: Sequence[str]) -> None:
    h, w = image.shape[-2:]
    for name in metrics:
        need = get_metric(name).min_size
        if min(h, w) < need:
            raise ImageError(path, f"too small for {name} (needs at least {need}x{need} pixels, got {w}x{h})")


def score_pair(reference: Path, distorted: Path, metrics: Sequence[str], resize: bool = False) -> dict:
    """Score one pair of files.

    Args:
        reference: the reference image file.
        distorted: the distorted image file.
        metrics: registry names (:func:`perceptlab.metrics.list_metrics`).
        resize: resize the distorted image to the reference's size when they differ;
            otherwise different sizes are an error.

    Returns:
        ``{"reference": str, "distorted": str, <metric>: float, ...}``

    Raises:
        ImageError: a file cannot be read, sizes differ, or an image is too small for a metric.
    """
    ref = read_image(reference)
    dist = read_image(distorted)
    if ref.shape != dist.shape:
        if not resize:
            (rh, rw), (dh, dw) = ref.shape[-2:], dist.shape[-2:]
            raise ImageError(distorted, f"size {dw}x{dh} differs from the reference's {rw}x{rh} (use --resize)")
        dist = match_size(dist, ref)
    _check_size(reference, ref, metrics)
    return {"reference": str(reference), "distorted": str(distorted), **score_tensors(dist, ref, metrics)}


def score_pairs(
    pairs: Iterable[tuple[Path, Path]], metrics: Sequence[str], resize: bool = False, progress: bool = False
) -> list[dict]:
    """Score every ``(reference, distorted)`` pair; ``progress`` shows a bar on stderr."""
    pairs = list(pairs)
    for name in metrics:
        check_scorable(name)  # unknown names fail before any work
    if progress:
        from tqdm.auto import tqdm

        pairs = tqdm(pairs, desc="scoring", unit="pair")
    return [score_pair(ref, dist, metrics, resize) for ref, dist in pairs]


def summarize(rows: Sequence[dict], metrics: Sequence[str]) -> dict[str, float]:
    """Mean of each metric over the rows (``inf`` if any PSNR is infinite, ``nan`` without rows)."""
    return {name: (math.fsum(row[name] for row in rows) / len(rows)) if rows else math.nan for name in metrics}
