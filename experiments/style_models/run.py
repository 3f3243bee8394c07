"""Train the shipped feed-forward style models and copy them into the package with model cards.

    python experiments/style_models/run.py --only starry_night      # train (resuming) one style
    python experiments/style_models/run.py --ship                   # train all (resuming), then ship them
    python experiments/style_models/run.py --ship-only              # ship the finished runs as they are
    python experiments/style_models/run.py --gallery                # README gallery of the shipped styles
    python experiments/style_models/run.py --look --only wave       # pictures of a run to look at before shipping

Recipes: ``recipes/NAME.toml`` (paths relative to the repository root); the
same as ``perceptlab train style --config recipes/NAME.toml --out runs/style_NAME``,
run from the repository root. Runs live in ``$PERCEPTLAB_RUNS/style_models/style_NAME``
(default ``~/perceptlab-runs``, outside the checkout) and resume where they stopped. Shipping writes ``src/perceptlab/models/style_NAME.safetensors``
(weights stored as float16: half the size, and the stylised images differ by
at most one 8-bit level, checked when shipping) with a model card
``style_NAME.md``, and copies the training log to ``logs/NAME.csv``.

Styles: paintings whose authors died more than 70 years ago (public domain in
most countries), so that the shipped weights carry no question about the
artwork. The style images themselves are not redistributed: they stay in
``../shared/data/style`` (see its PROVENANCE.txt).
"""

from __future__ import annotations

import argparse
import csv
import hashlib
import json
import os
import shutil
import sys
import tomllib
from pathlib import Path

import torch

from perceptlab.report import machine

ROOT = Path(__file__).resolve().parents[2]
HERE = Path(__file__).resolve().parent
# name -> (artwork, artist, year, why it is free to use)
STYLES = {
    "starry_night": ("The Starry Night (crop)", "Vincent van Gogh", "1889", "public domain (artist died 1890)"),
    "wave": ("The Great Wave off Kanagawa (crop)", "Katsushika Hokusai", "c. 1831",
             "public domain (artist died 1849)"),  # fmt: skip
    "udnie": ("Udnie (Young American Girl, The Dance)", "Francis Picabia", "1913",
              "public domain in the US (published 1913) and in the EU since 2024 (artist died 1953)"),  # fmt: skip
    "the_scream": ("The Scream", "Edvard Munch", "1893", "public domain (artist died 1944)"),
    "composition_vii": ("Composition VII", "Wassily Kandinsky", "1913", "public domain (artist died 1944)"),
}
MODELS_DIR = ROOT / "src" / "perceptlab" / "models"


def recipe(name: str) -> dict:
    """The recipe's settings; its paths are relative to the repository root, where main() runs."""
    return tomllib.loads((HERE / "recipes" / f"{name}.toml").read_text())


def small_images(folders: list[str], side: int) -> int:
    """How many training images the trainer skips for being smaller than the crop."""
    from PIL import Image

    from perceptlab.io import list_images

    count = 0
    for folder in folders:
        for path in list_images(folder):
            with Image.open(path) as image:
                count += min(image.size) < side
    return count


def run_dir(name: str, runs: Path) -> Path:
    return runs / f"style_{name}"


def train(name: str, runs: Path, steps: int | None) -> None:
    from perceptlab.style.train import StyleTrainConfig, train_style

    from perceptlab.features.base import native_bf16

    values = recipe(name)
    if steps:
        values["steps"] = steps
    if values.get("vgg_precision") == "bf16" and not native_bf16():
        values["vgg_precision"] = "fp32"  # bf16 is ~10x slower without bf16 units (benchmarks/README.md)
    summary = train_style(StyleTrainConfig.from_dict(values), run_dir(name, runs), progress=sys.stderr.isatty())
    print(f"{name}: {summary['steps']} steps, {summary['seconds'] / 60:.1f} min of training", file=sys.stderr)


def final_losses(metrics: Path, last: int = 10) -> dict[str, float]:
    """Mean of the loss parts over the last ``last`` log rows (each row is one batch: noisy)."""
    with open(metrics, newline="") as handle:
        rows = list(csv.DictReader(handle))[-last:]
    return {k: sum(float(r[k]) for r in rows) / len(rows) for k in ("loss", "content", "style", "tv")}


def half_precision_check(src: Path, dst: Path) -> int:
    """Largest 8-bit difference between the float32 and the shipped float16 model on the sample image."""
    from perceptlab.io import read_image
    from perceptlab.ops.resize import resize_longer_side
    from perceptlab.style.models import load_style_model

    image = resize_longer_side(read_image(ROOT.parent / "shared" / "data" / "style" / "johnson" / "content"
                                          / "chicago.jpg"), 512)  # fmt: skip
    with torch.no_grad():
        a, b = (load_style_model(str(p))(image).mul(255).round() for p in (src, dst))
    return int((a - b).abs().max())


def measured_lines(weights: Path, config: dict) -> list[str]:
    """Issue 14's criteria (and the blob measure) for the shipped weights, on the first 8 Kodak photos (never trained on) at 512 and 1024 px."""
    import statistics

    from perceptlab.io import read_image
    from perceptlab.metrics.fidelity import grid_score
    from perceptlab.ops.resize import resize_longer_side
    from perceptlab.style.measures import (BLOB_TARGET, CONTENT_TARGET, GRID_TARGET, STYLE_TARGET, blob_fraction,
                                           content_ratio, style_ratio)  # fmt: skip
    from perceptlab.style.models import load_style_model, stylize_feedforward

    net, style = load_style_model(str(weights)), read_image(ROOT / config["style"])
    missed: list[str] = []
    lines = ["Measured on the first 8 Kodak photos, which it never trained on (`perceptlab.style.measures`; "
             f"targets: content ratio <= {CONTENT_TARGET}, style ratio <= {STYLE_TARGET}, grid <= {GRID_TARGET}, "
             f"burnt-out blobs <= {BLOB_TARGET:.1%} of the pixels):", "",
             "| longer side | content ratio median / worst | style ratio median / worst | grid median / worst "
             "| blobs median / worst |", "|---:|---:|---:|---:|---:|"]  # fmt: skip
    for side in (512, 1024):
        photos = [resize_longer_side(read_image(p), side) for p in sorted((ROOT.parent / "shared" / "data" / "kodak")
                                                                          .glob("*.png"))[:8]]  # fmt: skip
        with torch.no_grad():
            outs = [stylize_feedforward(net, p).clamp(0, 1) for p in photos]
        c, s = content_ratio(outs, photos).tolist(), style_ratio(outs, photos, style).tolist()
        g = [float(grid_score(o)) for o in outs]
        b = blob_fraction(outs, photos).tolist()
        lines.append(f"| {side} | {statistics.median(c):.3f} / {max(c):.3f} | {statistics.median(s):.3f} / "
                     f"{max(s):.3f} | {statistics.median(g):.3f} / {max(g):.3f} | {statistics.median(b):.2%} / "
                     f"{max(b):.2%} |")
        for label, values, target in (("content ratio", c, CONTENT_TARGET), ("style ratio", s, STYLE_TARGET),
                                      ("grid", g, GRID_TARGET), ("blobs", b, BLOB_TARGET)):  # fmt: skip
            over = sum(v > target for v in values)
            if over:
                missed.append(f"{label} above {target:g} on {over} of {len(values)} photos at {side} px "
                              f"(worst {max(values):.3g})")
    verdict = ("Every target is met on every photo at both sizes." if not missed else
               "Not met: " + "; ".join(missed) + ".")
    return lines + ["", verdict, ""]


def ship(name: str, runs: Path) -> None:
    from safetensors.torch import save_file

    from perceptlab._files import atomic_write
    from perceptlab.training import load_model_file

    folder = run_dir(name, runs)
    weights = folder / "model.safetensors"
    if not weights.is_file():
        print(f"skipping {name}: {weights} not found (finish its training first)", file=sys.stderr)
        return
    tensors, meta = load_model_file(weights)
    config = json.loads(meta["config"])
    target = MODELS_DIR / f"style_{name}.safetensors"
    half = {k: (v.half() if v.is_floating_point() else v).contiguous() for k, v in tensors.items()}
    atomic_write(target, lambda tmp: save_file(half, str(tmp), metadata={**meta, "dtype": "float16"}))
    worst = half_precision_check(weights, target)
    if worst > 1:
        target.unlink()
        raise SystemExit(f"{name}: float16 weights change the output by {worst} levels; not shipped")
    (HERE / "logs").mkdir(exist_ok=True)
    shutil.copyfile(folder / "metrics.csv", HERE / "logs" / f"{name}.csv")
    losses = final_losses(folder / "metrics.csv")
    artwork, artist, year, rights = STYLES[name]
    card = [
        f"# style_{name}",
        "",
        f"Feed-forward style transfer (Johnson et al. 2016) in the style of *{artwork}*, {artist}, {year}; "
        f"trained by perceptlab's own trainer (`perceptlab.style.train_style`).",
        "",
        f"- use: `perceptlab stylize photo.jpg -o out.png --model style_{name}`",
        f"- network: `JohnsonStyleNet`, {config['norm']} norm, {config['padding']} padding, "
        f"{config.get('upsample', 'transpose')} upsampling; weights stored as "
        f"float16 (outputs within {worst} 8-bit level of the float32 weights)",
        f"- style image: `{config['style']}` "
        f"(sha256 {meta['style_sha256'][:16]}...), longer side resized to {config['style_size']} px; the artwork is "
        f"{rights}; the image itself is not distributed with perceptlab",
        "- loss: content relu2_2 (weight {content_weight:g}), Gram style relu1_2, relu2_2, relu3_3, relu4_3 "
        "(weight {style_weight:g}), total variation (weight {tv_weight:g}), grid penalty (weight {grid:g}), "
        "tanh saturation penalty (weight {sat:g}), "
        "ImageNet VGG-16 (`perceptlab.style.StyleTransferLoss`)".format(grid=config.get("grid_weight", 0),
                                                                        sat=config.get("saturation_weight", 0), **config),
        f"- content data: {' + '.join(Path(d).name for d in config['data'])} (the SR training photos; "
        f"{small_images(config['data'], config['image_size'])} images smaller than the crop skipped), "
        f"random {config['image_size']} px crops with flips and 90-degree rotations",
        f"- optimiser: Adam lr {config['lr']}, batch {config['batch_size']}, seed {config['seed']}",
        f"- steps: {meta['steps']} (the paper: 40 000 of 256 px crops); training wall time: "
        f"{float(meta['train_seconds']) / 60:.0f} min",
        f"- hardware: {machine()}, 1 thread per run, sharing the machine with other work "
        "(the wall time is an upper bound); torch " + torch.__version__,
        f"- final training losses (mean of the last 10 logged batches): total {losses['loss']:.3g}, "
        f"content {losses['content']:.3g}, style {losses['style']:.3g}, tv {losses['tv']:.3g}",
        f"- recipe: `experiments/style_models/recipes/{name}.toml`; log: `experiments/style_models/logs/{name}.csv`; "
        f"reproduce with `python experiments/style_models/run.py --only {name}`",
        f"- picture: `docs/style_gallery/style_{name}.jpg` (Kodak {GALLERY_PHOTO}, never trained on; README gallery)",
        "",
        "",
        *measured_lines(target, config),
    ]  # fmt: skip
    (MODELS_DIR / f"style_{name}.md").write_text("\n".join(card) + "\n")
    digest = hashlib.sha256(target.read_bytes()).hexdigest()[:16]
    print(f"shipped style_{name} ({target.stat().st_size / 1e6:.1f} MB, sha256 {digest}...)", file=sys.stderr)


GALLERY_PHOTO = "kodim23"  # a Kodak photo: never trained on, colourful, with fine detail and flat areas
GALLERY_SIDE = 256
GALLERY_BEGIN, GALLERY_END = "<!-- style gallery: experiments/style_models/run.py --gallery -->", "<!-- /style gallery -->"


def gallery(photo: Path, docs: Path, readme: Path) -> list[Path]:
    """One photo through every shipped style, small JPEGs in ``docs``, and their table in ``readme`` between
    the gallery markers (added at the end of its style section's code block the first time)."""
    from perceptlab.io import read_image, write_image
    from perceptlab.ops.resize import resize_longer_side
    from perceptlab.style.models import load_style_model, shipped_style_models, stylize_feedforward

    docs.mkdir(parents=True, exist_ok=True)
    x = resize_longer_side(read_image(photo), GALLERY_SIDE)
    written = [docs / "photo.jpg"]
    write_image(x, written[0])
    cells = [("photo", "photo.jpg")]
    for name in sorted(shipped_style_models()):
        with torch.no_grad():
            y = stylize_feedforward(load_style_model(name), x).clamp(0, 1)
        written.append(docs / f"{name}.jpg")
        write_image(y, written[-1])
        cells.append((f"`{name}`", written[-1].name))
    rel = docs.relative_to(readme.parent).as_posix()
    table = [GALLERY_BEGIN, "",
             f"Kodak `{photo.stem}` (never trained on), {GALLERY_SIDE} px, through every shipped style:", "",
             "| " + " | ".join(label for label, _ in cells) + " |", "|" + "---|" * len(cells),
             "| " + " | ".join(f"![{label.strip('`')}]({rel}/{file})" for label, file in cells) + " |", "",
             GALLERY_END]  # fmt: skip
    text = readme.read_text()
    if GALLERY_BEGIN in text:
        start, end = text.index(GALLERY_BEGIN), text.index(GALLERY_END) + len(GALLERY_END)
        text = text[:start] + "\n".join(table) + text[end:]
    else:
        anchor = text.index("## Style transfer")
        block_end = text.index("```\n", text.index("```bash", anchor) + 7) + 4
        text = text[:block_end] + "\n" + "\n".join(table) + "\n" + text[block_end:]
    readme.write_text(text)
    return written


LOOK_PHOTOS = ("kodim05", "kodim15", "kodim23")  # motorbikes (detail), a face, parrots (colour); never trained on


def look(name: str, runs: Path, side: int = 384) -> list[Path]:
    """Pictures to check a run by eye before shipping it: each of :data:`LOOK_PHOTOS` at ``side`` px next to its
    stylisation (``RUN/look.png``), and the busiest 96 px square of each enlarged 3x (``RUN/look_crops.png``)."""
    from perceptlab.io import read_image
    from perceptlab.ops.resize import resize_longer_side
    from perceptlab.plot.sheets import crop_sheet, whole_image_sheet
    from perceptlab.style.models import load_style_model, stylize_feedforward

    folder = run_dir(name, runs)
    weights = max((p for p in (folder / "model.safetensors", folder / "checkpoint.pt") if p.is_file()),
                  key=lambda p: p.stat().st_mtime)  # the later of the finished model and the run's checkpoint
    net = load_style_model(str(weights))
    rows = []
    for photo in LOOK_PHOTOS:
        x = resize_longer_side(read_image(ROOT.parent / "shared" / "data" / "kodak" / f"{photo}.png"), side)
        with torch.no_grad():
            rows.append((photo, {"photo": x, name: stylize_feedforward(net, x).clamp(0, 1)}))
    written = [folder / "look.png", folder / "look_crops.png"]
    whole_image_sheet(rows, shrink=1).save(written[0])
    crop_sheet(rows, crop=96, zoom=3, focus=name).save(written[1])
    return written


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--only", choices=STYLES, action="append", help="only these styles")
    parser.add_argument("--steps", type=int, help="override the recipes' step budget (resumed runs go further)")
    parser.add_argument("--runs", type=Path, default=Path(os.environ.get("PERCEPTLAB_RUNS", "~/perceptlab-runs"))
                        .expanduser() / "style_models")  # fmt: skip
    parser.add_argument("--ship", action="store_true", help="after training, copy the models into the package")
    parser.add_argument("--ship-only", action="store_true", help="ship the finished runs without training")
    parser.add_argument("--gallery", action="store_true", help="only write the README gallery of the shipped styles")
    parser.add_argument("--look", action="store_true", help="only write pictures of the --only runs (finished or "
                        "at their last checkpoint) to look at: RUN/look.png and RUN/look_crops.png")  # fmt: skip
    args = parser.parse_args()
    if args.look:
        for name in args.only or list(STYLES):
            if (run_dir(name, args.runs) / "checkpoint.pt").is_file():
                for path in look(name, args.runs.resolve()):
                    print(f"wrote {path}", file=sys.stderr)
        return 0
    if args.gallery:
        for path in gallery(ROOT.parent / "shared" / "data" / "kodak" / f"{GALLERY_PHOTO}.png",
                            ROOT / "docs" / "style_gallery", ROOT / "README.md"):  # fmt: skip
            print(f"wrote {path}", file=sys.stderr)
        return 0
    # The recipes' paths are relative to the repository root, as for `perceptlab train style --config`.
    args.runs = args.runs.resolve()
    os.chdir(ROOT)
    names = args.only or list(STYLES)
    if not args.ship_only:
        for name in names:
            train(name, args.runs, args.steps)
    if args.ship or args.ship_only:
        for name in names:
            ship(name, args.runs)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
