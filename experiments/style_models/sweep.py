"""The style/content weight sweep behind the shipped styles' recipe (issue 14).

    python experiments/style_models/sweep.py --train          # train (resuming) every point of the sweep
    python experiments/style_models/sweep.py                  # measure the finished points, write the report

The shipped styles of the first release kept hardly more of the photo than the
painting does (relu2_2 ratio 0.93-1.0 on Kodak, :mod:`perceptlab.style.measures`)
and printed a grid (0.32-0.43). Here one style (The Starry Night, the worst)
is trained at several style weights (content weight 1), with the grid-free
``nearest`` upsampling, each for the same short budget, and every point is
measured on photos it never saw (the first 8 Kodak images at 512 px): the
content ratio (target <= 0.85), the style ratio (<= 0.5) and the grid
(<= 0.03). The chosen point is the largest style weight that keeps the
content ratio's worst photo and the grid at or below their targets: as much
style as the photo allows, without a lattice. The first four points (no grid
term) printed a lattice above a style weight of 3e3; the fifth adds the
``grid_weight`` penalty.

Runs: ``$PERCEPTLAB_RUNS/style_sweep/w_WEIGHT`` (default ``~/perceptlab-runs``), resumable.
Outputs: ``docs/experiments/style_sweep.md``, ``style_sweep.json``, ``style_sweep.jpg``.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
from pathlib import Path

import torch

from perceptlab.report import machine

ROOT = Path(__file__).resolve().parents[2]
DATA = ROOT.parent / "shared" / "data"
DOCS = ROOT / "docs" / "experiments"
STYLE = DATA / "style" / "johnson" / "styles" / "starry_night_crop.jpg"
# (style weight, grid weight, saturation weight); 1e5: the first release's weight. The grid term (the `grid` loss against the
# content crop) was added after the first four points printed a lattice (grid 0.15-0.21 above 3e3).
# Grid 1000 removed the lattice (0.009) but cost content and style at this budget: lighter grid weights next.
# Every point also grew black blobs (2-8 % of the pixels, `blobs` below; the instance-norm "droplet", where the
# output tanh saturates): the saturation penalty (third number, `saturation_weight`) was added against them.
POINTS = ((1e5, 0.0, 0.0), (3e4, 0.0, 0.0), (1e4, 0.0, 0.0), (3e3, 0.0, 0.0), (1e4, 1000.0, 0.0), (1e4, 100.0, 0.0),
          (1e4, 300.0, 0.0), (1e4, 100.0, 1.0))
# The budget of every point: the same for all, so that they compare.
BASE = {
    "style": str(STYLE), "data": [str(DATA / "T91"), str(DATA / "BSD200")], "steps": 400, "batch_size": 4,
    "image_size": 128, "lr": 1e-3, "style_size": 256, "upsample": "nearest", "vgg_precision": "bf16",
    "sample_every": 200, "ckpt_every": 50, "log_every": 10, "seed": 0, "threads": 1,
}  # fmt: skip
PHOTOS = sorted((DATA / "kodak").glob("*.png"))[:8]
SIDE = 512
FIGURE_PHOTOS = (2, 6)  # indices into PHOTOS shown in the figure


def run_dir(weight: float, grid: float = 0.0, saturation: float = 0.0) -> Path:
    root = Path(os.environ.get("PERCEPTLAB_RUNS", "~/perceptlab-runs")).expanduser()
    name = f"w_{weight:g}" + (f"_g{grid:g}" if grid else "") + (f"_s{saturation:g}" if saturation else "")
    return root / "style_sweep" / name


def label(weight: float, grid: float, saturation: float = 0.0) -> str:
    return f"style {weight:g}" + (f", grid {grid:g}" if grid else "") + (f", sat. {saturation:g}" if saturation else "")


def train() -> None:
    from perceptlab.features.base import native_bf16
    from perceptlab.style.train import StyleTrainConfig, train_style

    for weight, grid, saturation in POINTS:
        values = BASE | {"style_weight": weight} | ({"grid_weight": grid} if grid else {})
        values |= {"saturation_weight": saturation} if saturation else {}
        if not native_bf16():
            values["vgg_precision"] = "fp32"  # bf16 is ~10x slower without bf16 units (benchmarks/README.md)
        summary = train_style(StyleTrainConfig.from_dict(values), run_dir(weight, grid, saturation),
                              progress=sys.stderr.isatty())  # fmt: skip
        print(f"{label(weight, grid, saturation)}: {summary['steps']} steps, {summary['seconds'] / 60:.1f} min", file=sys.stderr)


@torch.no_grad()
def measure() -> dict:
    from perceptlab.io import read_image
    from perceptlab.metrics.fidelity import grid_score
    from perceptlab.ops.resize import resize_longer_side
    from perceptlab.style import load_style_model, stylize_feedforward
    from perceptlab.style.measures import blob_fraction, content_ratio, style_ratio

    photos = [resize_longer_side(read_image(p), SIDE) for p in PHOTOS]
    style = read_image(STYLE)
    points, outputs = [], {}
    for weight, grid, saturation in POINTS:
        model = run_dir(weight, grid, saturation) / "model.safetensors"
        if not model.is_file():
            print(f"{label(weight, grid, saturation)}: not trained yet ({model})", file=sys.stderr)
            continue
        net = load_style_model(str(model))
        outs = [stylize_feedforward(net, p).clamp(0, 1) for p in photos]
        c, s = content_ratio(outs, photos), style_ratio(outs, photos, style)
        g = torch.cat([grid_score(o) for o in outs])
        points.append({"style_weight": weight, "grid_weight": grid, "saturation_weight": saturation, "content_ratio": c.tolist(),
                       "style_ratio": s.tolist(), "grid": g.tolist(),
                       "blobs": blob_fraction(outs, photos).tolist()})  # fmt: skip
        outputs[label(weight, grid, saturation)] = [outs[i] for i in FIGURE_PHOTOS]
    return {"points": points, "outputs": outputs, "photos": [photos[i] for i in FIGURE_PHOTOS]}


def choose(points: list[dict]) -> dict | None:
    from perceptlab.style.measures import BLOB_TARGET, CONTENT_TARGET, GRID_TARGET, STYLE_TARGET

    keeps = [p for p in points if max(p["content_ratio"]) <= CONTENT_TARGET and max(p["grid"]) <= GRID_TARGET
             and statistics.median(p["style_ratio"]) <= STYLE_TARGET and max(p["blobs"]) <= BLOB_TARGET]
    return max(keeps, key=lambda p: p["style_weight"]) if keeps else None


def figure(result: dict, path: Path) -> None:
    from perceptlab.plot.sheets import whole_image_sheet

    rows = []
    for k, photo in enumerate(result["photos"]):
        row = {"photo": photo}
        row |= {name: outs[k] for name, outs in result["outputs"].items()}
        rows.append((PHOTOS[FIGURE_PHOTOS[k]].stem, row))
    whole_image_sheet(rows, shrink=2).save(path, quality=88)


def report(result: dict) -> str:
    import statistics

    from perceptlab.style.measures import BLOB_TARGET, CONTENT_TARGET, GRID_TARGET, STYLE_TARGET

    points, chosen = result["points"], choose(result["points"])
    lines = [
        "# The style/content weight sweep",
        "",
        f"Made by `experiments/style_models/sweep.py`; {machine()}. One style (The Starry Night, crop), "
        f"content weight 1 on relu2_2, style on relu1_2-relu4_3, nearest-neighbour upsampling, "
        f"{BASE['steps']} steps of batch {BASE['batch_size']} at {BASE['image_size']} px for every point. "
        f"Measured on the first {len(PHOTOS)} Kodak photos (never trained on) at {SIDE} px "
        "(`perceptlab.style.measures`): the **content ratio** (relu2_2 distance of a stylisation to its own photo "
        f"over that to the nearest other photo; target <= {CONTENT_TARGET}), the **style ratio** (Gram distance "
        f"to the style image over the photo's; target <= {STYLE_TARGET}), the **grid** (target <= {GRID_TARGET}) "
        f"and the **blobs**, the share of pixels burnt to pure black or white where the photo is not "
        f"(target <= {BLOB_TARGET:.1%}).",
        "",
        "| style weight | grid weight | saturation weight | content ratio median | content ratio worst "
        "| style ratio median | style ratio worst | grid median | grid worst | blobs median | blobs worst |",
        "|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for p in points:
        c, s, g, b = p["content_ratio"], p["style_ratio"], p["grid"], p["blobs"]
        lines.append(f"| {p['style_weight']:g} | {p.get('grid_weight', 0):g} | {p.get('saturation_weight', 0):g} | "
                     f"{statistics.median(c):.3f} | {max(c):.3f} | {statistics.median(s):.3f} | {max(s):.3f} | "
                     f"{statistics.median(g):.3f} | {max(g):.3f} | {statistics.median(b):.2%} | {max(b):.2%} |")  # fmt: skip
    lines += ["", "![sweep](style_sweep.jpg)", "",
              "Rows: two of the photos; columns: the photo, then each point (whole images at half size).", ""]
    if chosen:
        lines.append(f"Chosen: {label(chosen['style_weight'], chosen.get('grid_weight', 0), chosen.get('saturation_weight', 0))}, "
                     f"the largest style weight whose worst photo keeps the content ratio at or below {CONTENT_TARGET}, "
                     f"the grid at or below {GRID_TARGET} and the blobs at or below {BLOB_TARGET:.1%}, with a style "
                     f"ratio median at or below {STYLE_TARGET}.")  # fmt: skip
    else:
        lines.append(f"No point meets all four yet: every photo's content ratio at or below {CONTENT_TARGET}, grid at "
                     f"or below {GRID_TARGET} and blobs at or below {BLOB_TARGET:.1%}, with a style ratio median at or "
                     f"below {STYLE_TARGET}.")  # fmt: skip
    return "\n".join(lines) + "\n"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--train", action="store_true", help="train (or resume) every point, then stop")
    args = parser.parse_args()
    torch.set_num_threads(1)
    if args.train:
        train()
        return 0
    result = measure()
    if not result["points"]:
        print("nothing trained yet: run with --train", file=sys.stderr)
        return 1
    DOCS.mkdir(parents=True, exist_ok=True)
    figure(result, DOCS / "style_sweep.jpg")
    (DOCS / "style_sweep.json").write_text(json.dumps({"machine": machine(), "base": BASE, "photos": [p.name for p in PHOTOS],
                                                       "side": SIDE, "points": result["points"],
                                                       "chosen": {k: (choose(result["points"]) or {}).get(k)
                                                                  for k in ("style_weight", "grid_weight")}},
                                                      indent=1) + "\n")  # fmt: skip
    (DOCS / "style_sweep.md").write_text(report(result))
    print((DOCS / "style_sweep.md").read_text())
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
