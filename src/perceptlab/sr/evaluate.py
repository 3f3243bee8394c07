"""Evaluating an SR model on a benchmark: per-image rows, means, a markdown/JSON report, a comparison grid.

Protocol (the one of the EDSR/ESRGAN tables; see :mod:`perceptlab.sr.protocol`):
the benchmark's own MATLAB-bicubic LR images are the inputs; outputs are
clamped to [0, 1]; PSNR-Y and SSIM-Y on 8-bit BT.601 luma with ``scale``
border pixels shaved; LPIPS (AlexNet) and DISTS on the whole RGB images.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Sequence
from pathlib import Path

import torch
from PIL import Image

from perceptlab._files import atomic_write_text

SR_METRICS = ("psnr_y", "ssim_y", "lpips", "dists", "grid", "lr_psnr", "color_shift")
PROTOCOL = (
    "inputs: the benchmark's MATLAB-bicubic LR images; outputs clamped to [0, 1] and rounded to 8 bits; "
    "PSNR-Y / SSIM-Y: BT.601 luma (MATLAB rgb2ycbcr) rounded to 8 bits, `scale` border pixels shaved, "
    "grayscale references compared on raw intensity; LPIPS (AlexNet, v0.1) and DISTS on whole RGB images; "
    "grid: RMS of the 4x4 phase means of the luma minus its 9x9 box mean, over that high-pass's RMS "
    "(period 4, or the scale above 4); lr_psnr: the output shrunk by the scale (MATLAB bicubic, antialiased) "
    "against the LR input, RGB PSNR in dB; color_shift: largest per-channel difference of image means to "
    "the HR image, in 8-bit levels (perceptlab.metrics.fidelity)"
)


@torch.no_grad()
def evaluate_sr(
    model: Callable[[torch.Tensor], torch.Tensor],
    root: str | Path,
    scale: int,
    metrics: Sequence[str] = SR_METRICS,
    progress: bool = False,
) -> tuple[list[dict], dict, list[torch.Tensor]]:
    """Run ``model`` on every LR image of the benchmark at ``root`` and score it.

    Besides the published protocol's PSNR-Y, SSIM-Y, LPIPS and DISTS, three
    plain measures of defects those miss (:mod:`perceptlab.metrics.fidelity`):
    ``grid`` (a pattern fixed to the output grid), ``lr_psnr`` (does the output
    shrink back to its input) and ``color_shift`` (a colour cast). Summarise
    them by the median over images (:func:`summary`): one failed image
    should not hide or dominate.

    Returns:
        ``(rows, mean, outputs)``: one dict per image (``name`` and each metric),
        the mean of each metric, and the clamped outputs (for pictures).
    """
    from perceptlab.metrics.registry import get_metric
    from perceptlab.sr.protocol import load_benchmark

    infos = [get_metric(m) for m in metrics]  # unknown names fail before any work
    items = load_benchmark(root, scale)
    iterator = items
    if progress:
        from tqdm.auto import tqdm

        iterator = tqdm(items, desc=f"eval {Path(root).name}", unit="img")
    rows, outputs = [], []
    for item in iterator:
        sr = model(item.lr).clamp(0, 1)
        sr = torch.round(sr * 255) / 255  # what a saved PNG holds, for every metric alike
        context = {"scale": scale, "is_gray": item.is_gray, "lr": item.lr}
        row = {"name": item.name} | {info.name: float(info(sr, item.hr, **context)[0]) for info in infos}
        rows.append({k: v for k, v in row.items() if k == "name" or k in metrics})
        outputs.append(sr)
    mean = {m: math.fsum(r[m] for r in rows) / len(rows) for m in metrics}
    return rows, mean, outputs


def evaluate_benchmarks(model: Callable[[torch.Tensor], torch.Tensor], roots: Sequence[str | Path], scale: int,
                        progress: bool = False) -> dict[str, dict]:  # fmt: skip
    """:func:`evaluate_sr` on several benchmarks: ``{folder name: {"mean", "median", "worst", "images"}}``."""
    results = {}
    for root in roots:
        rows, mean, _ = evaluate_sr(model, root, scale, progress=progress)
        stats = summary(rows, SR_METRICS)
        results[Path(root).name] = {"mean": mean, "median": stats["median"], "worst": stats["worst"], "images": rows}
    return results


def evaluate_run(folder: str | Path, roots: Sequence[str | Path], scale: int, expect: dict | None = None,
                 progress: bool = False) -> dict:  # fmt: skip
    """Scores of a finished ``train sr`` run on several benchmarks, cached in the run's ``eval.json``.

    ``expect`` maps config keys to the values the run must have been trained with
    (a :class:`ValueError` otherwise). Returns ``{"benchmarks": ..., "steps", "train_seconds", "config"}``.
    """
    from perceptlab.sr.models import load_sr_model
    from perceptlab.training import load_model_file

    folder = Path(folder)
    weights, cache = folder / "model.safetensors", folder / "eval.json"
    _, meta = load_model_file(weights)
    from dataclasses import MISSING, fields

    from perceptlab.sr.train import SRTrainConfig

    # Keys added to the config after a run was trained hold their defaults there.
    config = {f.name: f.default for f in fields(SRTrainConfig) if f.default is not MISSING} | json.loads(meta["config"])
    wrong = {k: (config.get(k), v) for k, v in (expect or {}).items() if config.get(k) != v}
    if wrong:
        raise ValueError(f"{folder} was trained with other settings: " +
                         ", ".join(f"{k} = {got!r}, expected {want!r}" for k, (got, want) in wrong.items()))  # fmt: skip
    benchmarks = None
    if cache.is_file() and cache.stat().st_mtime > weights.stat().st_mtime:
        benchmarks = json.loads(cache.read_text())["benchmarks"]
        # Scores cached before a metric was added are computed again.
        if any(set(SR_METRICS) - set(b.get("median", {})) for b in benchmarks.values()):
            benchmarks = None
    if benchmarks is None:
        benchmarks = evaluate_benchmarks(load_sr_model(str(weights)), roots, scale, progress=progress)
        atomic_write_text(cache, json.dumps({"benchmarks": benchmarks}, indent=2) + "\n")
    return {"benchmarks": benchmarks, "steps": int(meta["steps"]), "train_seconds": float(meta["train_seconds"]),
            "config": config}  # fmt: skip


def summary(rows: Sequence[dict], metrics: Sequence[str]) -> dict[str, dict[str, float]]:
    """``{"mean": ..., "median": ..., "worst": ...}`` of each metric over the rows (worst: by the metric's direction)."""
    import statistics

    from perceptlab.metrics.registry import get_metric
    import perceptlab.sr.protocol  # noqa: F401  (registers psnr_y and ssim_y)

    out: dict[str, dict[str, float]] = {"mean": {}, "median": {}, "worst": {}}
    for m in metrics:
        values = [r[m] for r in rows]
        out["mean"][m] = math.fsum(values) / len(values)
        out["median"][m] = statistics.median(values)
        out["worst"][m] = min(values) if get_metric(m).higher_is_better else max(values)
    return out


def markdown_table(rows: Sequence[dict], mean: dict, metrics: Sequence[str]) -> str:
    """Per-image rows, then mean, median and worst rows, as a markdown table."""
    lines = ["| image | " + " | ".join(metrics) + " |", "|---|" + "---:|" * len(metrics)]
    lines += [f"| {r['name']} | " + " | ".join(f"{r[m]:.4f}" for m in metrics) + " |" for r in rows]
    stats = summary(rows, metrics)
    stats["mean"] = {m: mean[m] for m in metrics}
    for label, values in stats.items():
        lines.append(f"| **{label}** | " + " | ".join(f"**{values[m]:.4f}**" for m in metrics) + " |")
    return "\n".join(lines) + "\n"


def write_report(out_dir: str | Path, title: str, rows: Sequence[dict], mean: dict, metrics: Sequence[str],
                 info: dict) -> None:  # fmt: skip
    """``results.md`` and ``results.json`` (same numbers, fixed schema) in ``out_dir``."""
    out_dir = Path(out_dir)
    stats = summary(rows, metrics)
    doc = {**info, "protocol": PROTOCOL, "metrics": list(metrics), "images": list(rows), "mean": mean,
           "median": stats["median"], "worst": stats["worst"]}  # fmt: skip
    atomic_write_text(out_dir / "results.json", json.dumps(doc, indent=2) + "\n")
    text = f"# {title}\n\n" + "".join(f"- {k}: {v}\n" for k, v in info.items())
    text += f"- protocol: {PROTOCOL}\n\n" + markdown_table(rows, mean, metrics)
    atomic_write_text(out_dir / "results.md", text)


def comparison_grid(items, outputs: Sequence[torch.Tensor], scale: int, columns: dict | None = None,
                    crop: int = 96, zoom: int = 3, label: str = "model") -> Image.Image:  # fmt: skip
    """One row per benchmark image: enlarged crops of bicubic | model | HR (plus any extra ``columns``).

    Args:
        items: benchmark images (with ``lr``, ``hr``, ``name``).
        outputs: the model's outputs, one per item.
        columns: extra ``{label: [outputs]}`` shown between the model and HR.
        crop: side of the HR crop, taken where the HR image has most detail.
        zoom: enlargement of the crops (nearest neighbour, so pixels stay visible).
    """
    from perceptlab.ops.resize import imresize
    from perceptlab.plot import crop_sheet

    columns = {"bicubic": [imresize(it.lr, scale=scale).clamp(0, 1) for it in items], label: list(outputs),
               **(columns or {}), "HR": [it.hr for it in items]}  # fmt: skip
    rows = [(item.name, {name: images[r] for name, images in columns.items()}) for r, item in enumerate(items)]
    return crop_sheet(rows, crop=crop, zoom=zoom, focus="HR")
