"""What LPIPS and DISTS see of a lattice and of a colour cast: controlled defects on photos, every measure.

    python experiments/metric_blindness/run.py            # measure, write the report and its figure

Issue 13 found the old default upscaler printing a pattern that repeats every 4 output pixels and
shifting colours, and LPIPS and DISTS not flagging either, so the reports did not. This experiment
puts each defect, at known strengths, on the HR photos of Set14 (no network involved) and scores the
result against the clean photo with LPIPS (AlexNet, v0.1), DISTS, PSNR and the plain measures of
``perceptlab.metrics.fidelity`` (grid, colour shift), so that a reader can see how large a defect must
be before each score moves, and compare that with the differences between the models of our SR
reports. Gaussian noise and blur, which the perceptual metrics are built to see, are the yardstick.

Defects, in 8-bit levels of the image:

- lattice: a fixed, zero-mean 4x4 pattern of unit RMS (seeded, the same for every image) tiled over
  the image and added to the three channels, of amplitude (RMS) ``a``;
- colour cast: ``+c`` levels on red, ``-c`` on blue;
- noise: Gaussian, standard deviation ``s``; blur: Gaussian, standard deviation ``r`` pixels.

Outputs: ``docs/experiments/metric_blindness.md``, ``metric_blindness.json`` and ``metric_blindness.jpg``.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
from pathlib import Path

import torch

from perceptlab.report import machine

ROOT = Path(__file__).resolve().parents[2]
DATA = ROOT.parent / "shared" / "data"
DOCS = ROOT / "docs" / "experiments"
DEFECTS = {"lattice": (1, 2, 4, 8), "colour cast": (2, 4, 8, 16), "noise": (2, 4, 8), "blur": (0.5, 1.0, 2.0)}
UNITS = {"lattice": "RMS levels", "colour cast": "levels", "noise": "sigma, levels", "blur": "sigma, px"}
MEASURES = ("lpips", "dists", "psnr", "grid", "color_shift")
# Differences between models in our SR reports, for scale: Set14 LPIPS means of the old default
# (johnson_x4_vgg_pixel, grid 0.21) and of perceptsr_x4 (grid 0.008), docs/experiments/sr_default.md.
SR_GAP = {"lpips": (0.280, 0.218), "dists": (0.201, 0.153)}
OLD_DEFAULT_GRID = 0.210  # the old default's grid, median over Set14 (issue 13; its model card)


def lattice(shape: tuple[int, int], period: int = 4, seed: int = 0) -> torch.Tensor:
    """A zero-mean ``period`` x ``period`` pattern of unit RMS, tiled to ``shape`` (H, W)."""
    g = torch.Generator().manual_seed(seed)
    tile = torch.randn(period, period, generator=g, dtype=torch.float64)
    tile = (tile - tile.mean()) / (tile - tile.mean()).pow(2).mean().sqrt()
    h, w = shape
    return tile.repeat(-(-h // period), -(-w // period))[:h, :w].float()


def apply(kind: str, x: torch.Tensor, level: float, seed: int = 0) -> torch.Tensor:
    """``x`` (1, 3, H, W) in [0, 1] with the defect ``kind`` at ``level``, rounded to 8 bits as a saved file."""
    if kind == "lattice":
        y = x + level / 255 * lattice(tuple(x.shape[-2:]), seed=seed)
    elif kind == "colour cast":
        y = x + torch.tensor([level, 0.0, -level]).view(1, 3, 1, 1) / 255
    elif kind == "noise":
        g = torch.Generator().manual_seed(seed)
        y = x + level / 255 * torch.randn(x.shape, generator=g)
    elif kind == "blur":
        from perceptlab.ops.blur import gaussian_blur

        y = gaussian_blur(x, level)
    else:
        raise ValueError(f"unknown defect {kind!r}")
    return torch.round(y.clamp(0, 1) * 255) / 255


def measure(images: list[tuple[str, torch.Tensor]]) -> dict:
    """Every defect at every level on every image: ``{"rows": [...], "median": {kind: {level: {measure}}}}``."""
    from perceptlab.metrics.fidelity import color_shift, grid_score
    from perceptlab.metrics.registry import get_metric

    lpips, dists, psnr = get_metric("lpips"), get_metric("dists"), get_metric("psnr")
    rows = []
    cases = [("none", 0)] + [(kind, level) for kind, levels in DEFECTS.items() for level in levels]
    for name, x in images:
        for kind, level in cases:
            y = x if kind == "none" else apply(kind, x, level)
            with torch.no_grad():
                row = {"image": name, "defect": kind, "level": level, "lpips": float(lpips(y, x)[0]),
                       "dists": float(dists(y, x)[0]), "grid": float(grid_score(y)[0]),
                       "color_shift": float(color_shift(y, x)[0])}  # fmt: skip
                row["psnr"] = float(psnr(y, x)[0]) if kind != "none" else None  # (infinite: no error)
            rows.append(row)
        print(f"measured {name}", file=sys.stderr)
    median: dict = {}
    for kind, level in cases:
        picked = [r for r in rows if r["defect"] == kind and r["level"] == level]
        median.setdefault(kind, {})[str(level)] = {m: statistics.median(r[m] for r in picked) if kind != "none" or
                                                   m != "psnr" else None for m in MEASURES}  # fmt: skip
    return {"rows": rows, "median": median, "images": [n for n, _ in images], "machine": machine()}


def calmest_window(x: torch.Tensor, side: int = 64, stride: int = 16) -> tuple[int, int]:
    """Top-left corner of the ``side`` square of mid-tones with the least fine detail that is not flat (where a
    defect shows, unclipped)."""
    from perceptlab.metrics.fidelity import _luma

    y = _luma(x)[0, 0]
    detail = (y - torch.nn.functional.avg_pool2d(y[None, None], 3, 1, 1, count_include_pad=False)[0, 0]).abs()
    best, corner = float("inf"), (0, 0)
    for top in range(0, y.shape[0] - side + 1, stride):
        for left in range(0, y.shape[1] - side + 1, stride):
            patch = y[top:top + side, left:left + side]
            d = float(detail[top:top + side, left:left + side].mean())
            if patch.std() > 0.02 and 0.3 < patch.mean() < 0.7 and d < best:  # mid-tones: nothing clipped
                best, corner = d, (top, left)
    return corner


def figure(x: torch.Tensor, path: Path, side: int = 64) -> None:
    """The calmest detailed square of one photo under each defect at each level, enlarged 3x (nearest neighbour):
    a defect shows where the photo itself is smooth."""
    from perceptlab.io import save_image
    from perceptlab.plot.sheets import crop_sheet

    top, left = calmest_window(x, side)
    rows = [(kind, {"clean": x} | {f"{level}": apply(kind, x, level) for level in levels})
            for kind, levels in DEFECTS.items() if kind != "blur"]  # fmt: skip
    rows = [(kind, {k: v[..., top:top + side, left:left + side] for k, v in row.items()}) for kind, row in rows]
    save_image(crop_sheet(rows, crop=side, zoom=3, focus="clean"), path)


def report(result: dict) -> str:
    m = result["median"]
    clean = m["none"]["0"]
    lines = ["# What LPIPS and DISTS see of a lattice and of a colour cast", "",
             f"Controlled defects on {len(result['images'])} HR photos of Set14 ({', '.join(result['images'])}; no "
             "network involved), each scored against the clean photo; medians over the images. Reproduce: "
             "`python experiments/metric_blindness/run.py"
             + (f" --limit {result['limit']}`" if result.get("limit") else "`")
             + " (defects and "
             "method in its docstring). Lattice: a fixed zero-mean 4x4 pattern, added to every channel; colour cast: "
             "+c on red, -c on blue; noise and blur, which the perceptual metrics are built to see, for scale. "
             f"Machine: {result['machine']}.", "",
             "| defect | level | LPIPS | DISTS | PSNR | grid | colour shift |", "|---|---:|---:|---:|---:|---:|---:|",
             f"| none | - | {clean['lpips']:.3f} | {clean['dists']:.3f} | - | {clean['grid']:.3f} | "
             f"{clean['color_shift']:.1f} |"]  # fmt: skip
    for kind, levels in DEFECTS.items():
        for level in levels:
            v = m[kind][str(level)]
            lines.append(f"| {kind} | {level} ({UNITS[kind]}) | {v['lpips']:.3f} | {v['dists']:.3f} | "
                         f"{v['psnr']:.1f} | {v['grid']:.3f} | {v['color_shift']:.1f} |")
    lat, noise, cast, blur = m["lattice"]["8"], m["noise"]["8"], m["colour cast"]["16"], m["blur"]["1.0"]
    gap = {k: a - b for k, (a, b) in SR_GAP.items()}
    like = min(DEFECTS["lattice"], key=lambda level: abs(m["lattice"][str(level)]["grid"] - OLD_DEFAULT_GRID))
    near = m["lattice"][str(like)]

    def moves(v: dict, metric: str) -> float:
        return v[metric] - clean[metric]

    def verdict(metric: str) -> str:
        seen = [f"{name} ({moves(v, metric):.3f})" for name, v in (("the lattice", lat), ("the colour cast", cast))
                if moves(v, metric) >= gap[metric]]  # fmt: skip
        hidden = [f"{name} ({moves(v, metric):.3f})" for name, v in (("the lattice", lat), ("the colour cast", cast))
                  if moves(v, metric) < gap[metric]]  # fmt: skip
        return (f"{metric.upper()}: " + (f"moves less than that gap for {' and '.join(hidden)}" if hidden else "")
                + ("; " if hidden and seen else "") + (f"moves more for {' and '.join(seen)}" if seen else ""))

    lines += ["", "![defects](metric_blindness.jpg)", "",
              "*A smooth 64-pixel square of Set14 `face` under each defect, enlarged 3x: clean, then the levels of "
              "the table (blur left out).*", "", "## What it shows", "",
              f"- At equal energy, a lattice against noise (8 levels each, PSNR {lat['psnr']:.1f} and "
              f"{noise['psnr']:.1f} dB): LPIPS moves by {moves(lat, 'lpips'):.3f} against {moves(noise, 'lpips'):.3f}, "
              f"DISTS by {moves(lat, 'dists'):.3f} against {moves(noise, 'dists'):.3f}; the grid measure reads "
              f"{lat['grid']:.3f} against {noise['grid']:.3f} (clean photos: {clean['grid']:.3f}).",
              f"- A colour cast of 16 levels against a blur of 1 pixel (PSNR {cast['psnr']:.1f} and "
              f"{blur['psnr']:.1f} dB): LPIPS {moves(cast, 'lpips'):.3f} against {moves(blur, 'lpips'):.3f}, DISTS "
              f"{moves(cast, 'dists'):.3f} against {moves(blur, 'dists'):.3f}; the colour shift measure reads "
              f"{cast['color_shift']:.1f} levels.",
              f"- For scale, the gap between the old default upscaler and ours on Set14's means: LPIPS "
              f"{gap['lpips']:.3f}, DISTS {gap['dists']:.3f} (docs/experiments/sr_default.md). A defect that moves a "
              "metric by less than such a gap can hide behind what else a model does better. "
              f"{verdict('lpips')}. {verdict('dists')}.",
              f"- The old default's lattice (grid {OLD_DEFAULT_GRID} median on Set14) is about the lattice of "
              f"{like} levels here (grid {near['grid']:.3f}), which moves LPIPS by "
              f"{moves(near, 'lpips'):.3f} and DISTS by {moves(near, 'dists'):.3f}.",
              "- Hence the grid and colour shift columns of `perceptlab eval sr` and of every model card: each reads "
              "its defect directly, on the output alone (grid) or against the reference's means (colour shift), "
              "whatever else the output does.", ""]  # fmt: skip
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--limit", type=int, help="the first N photos only")
    parser.add_argument("--report-only", action="store_true", help="write the report from the saved measurements")
    args = parser.parse_args()
    if args.report_only:
        (DOCS / "metric_blindness.md").write_text(report(json.loads((DOCS / "metric_blindness.json").read_text())))
        return 0
    from perceptlab.sr.protocol import load_benchmark

    torch.set_num_threads(1)
    items = load_benchmark(DATA / "Set14", 4)[: args.limit]
    images = [(it.name, it.hr) for it in items if not it.is_gray]
    result = measure(images) | {"limit": args.limit}
    DOCS.mkdir(parents=True, exist_ok=True)
    (DOCS / "metric_blindness.json").write_text(json.dumps(result, indent=1) + "\n")  # per image too
    figure(dict(images)["face"] if "face" in dict(images) else images[0][1], DOCS / "metric_blindness.jpg")
    (DOCS / "metric_blindness.md").write_text(report(result))
    print(f"wrote {DOCS / 'metric_blindness.md'}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
