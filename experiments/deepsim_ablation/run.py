"""Why each DeePSiM term is there: one autoencoder and one AlexNet inverter trained with four losses (issue 18).

    python experiments/deepsim_ablation/run.py --train autoencoder_image   # one run (resuming)
    python experiments/deepsim_ablation/run.py --train-all                 # the eight of RUNS, then SHIP_RUNS
    python experiments/deepsim_ablation/run.py                             # evaluate on Kodak, write the report
    python experiments/deepsim_ablation/run.py --train ship_invert_relu3   # a model to ship (SHIP_RUNS)
    python experiments/deepsim_ablation/run.py --ship                      # also evaluate and ship SHIP_RUNS

Dosovitskiy and Brox (2016) make three points about ``λ_feat·L_feat + λ_adv·L_adv + λ_img·L_img``:
the image loss alone over-smooths, the feature loss alone gives bad images (features are contractive:
many non-natural images share them), and the adversarial term keeps the outputs natural. Every run
here has the same network, data, crops, batch, optimiser and number of steps; only the loss differs:

    image          pixel:mse                                  (λ_img alone)
    feature        feature:alexnet:relu5                      (λ_feat alone; AlexNet conv5, the paper's comparator)
    feature_adv    feature + adversarial                      (λ_feat, λ_adv)
    all            feature + adversarial + pixel               (all three)

Measured on the 24 Kodak photos (never trained on), whole: PSNR, SSIM, LPIPS, DISTS, and the detail
ratio (:func:`perceptlab.metrics.fidelity.detail_ratio`: fine contrast over the photo's; below 1 is
smoother), which is what over-smoothing changes and what PSNR rewards. Runs live in
``$PERCEPTLAB_RUNS/deepsim_ablation/NAME`` (default ``~/perceptlab-runs``) and resume.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import sys
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[2]
HERE = Path(__file__).resolve().parent
DATA = ROOT.parent / "shared" / "data"
DOCS = ROOT / "docs" / "experiments"
TRAIN_DATA = [str(DATA / d) for d in ("T91", "BSD200", "BSDS500_test200")]
FEATURE = "feature:alexnet:relu5"
# Weights of the combined runs, set from the gradients each term sends to a blurred copy of the training
# crops (notes.md): the image term about a tenth of the feature term's, the adversarial one small at the
# start, since the discriminator's gradients grow as it learns.
ADVERSARIAL = "adversarial:nonsaturating*0.1"
PIXEL = "pixel:mse*100"
LOSSES = {
    "image": ["pixel:mse"],
    "feature": [FEATURE],
    "feature_adv": [FEATURE, ADVERSARIAL],
    "all": [FEATURE, ADVERSARIAL, PIXEL],
}
NETS = {
    # Code of 16 channels at 1/8 of the side: 12 times fewer numbers than the image.
    "autoencoder": {"kind": "autoencoder", "bottleneck": 16, "downsample": 8},
    # AlexNet's relu5 (256 channels at 1/16 of the side), the paper's conv5 after its ReLU.
    "invert": {"kind": "invert", "network": "alexnet", "layer": "relu5"},
}
COMMON = {"data": TRAIN_DATA, "width": 32, "crop": 96, "batch_size": 8, "steps": 1500, "lr": 2e-4, "d_lr": 2e-4,
          "d_channels": 32, "val_data": str(DATA / "Set5" / "HR_original"), "sample_every": 250, "ckpt_every": 50,
          "log_every": 10, "seed": 0, "threads": 1}  # fmt: skip
RUNS = [f"{net}_{loss}" for net in NETS for loss in LOSSES]
METRICS = ("psnr", "ssim", "lpips", "dists", "detail")
# The shipped models: an ablation recipe with more steps (a multiple of the ablation's budget) and its
# changes. The autoencoder goes on from the ablation's all-terms run (copied, then resumed). The ablation's
# relu5 inverter keeps too little of a whole photo to recognise the subject at this budget, so the shipped
# inverter reads a mid layer, relu3 (384 channels at 1/16 of the side, before the last two convolutions),
# with the same loss and weights, trained from scratch.
SHIP_RUNS = {
    "ship_autoencoder": {"base": "autoencoder_all", "times": 3, "changes": {}, "resume": True},
    "ship_invert_relu3": {"base": "invert_all", "times": 2, "changes": {"layer": "relu3"}, "resume": False},
}
SHIP = {"ship_autoencoder": "deepsim_autoencoder", "ship_invert_relu3": "deepsim_invert_alexnet_relu3"}
# --train-all: the ablation's all-terms runs first (the shipped autoencoder goes on from one), the other
# points, then the shipped models.
TRAIN_ORDER = sorted(RUNS, key=lambda name: (not name.endswith("_all"), RUNS.index(name))) + list(SHIP_RUNS)
FIGURE_IMAGES = ("kodim05", "kodim15", "kodim23")


def runs_root() -> Path:
    return Path(os.environ.get("PERCEPTLAB_RUNS", "~/perceptlab-runs")).expanduser() / "deepsim_ablation"


def recipe(name: str) -> dict:
    if name in SHIP_RUNS:
        run = SHIP_RUNS[name]
        values = recipe(run["base"]) | run["changes"]
        return values | {"steps": values["steps"] * run["times"]}
    net, loss = name.split("_", 1)
    return COMMON | NETS[net] | {"losses": LOSSES[loss]}


def train(name: str) -> None:
    from perceptlab.deepsim import DeepSimTrainConfig, train_deepsim

    start = SHIP_RUNS[name]["base"] if SHIP_RUNS.get(name, {}).get("resume") else None
    if start and not (runs_root() / name).exists():
        if not (runs_root() / start / "checkpoint.pt").is_file():
            raise SystemExit(f"{name} goes on from {start}: train that first (--train {start})")
        shutil.copytree(runs_root() / start, runs_root() / name, ignore=shutil.ignore_patterns("eval.json", ".lock"))
    summary = train_deepsim(DeepSimTrainConfig.from_dict(recipe(name)), runs_root() / name, progress=sys.stderr.isatty())
    print(f"{name}: {summary['steps']} steps, {summary['seconds'] / 60:.1f} min", file=sys.stderr)


def kodak() -> list[tuple[str, torch.Tensor]]:
    from perceptlab.io import list_images, read_image

    return [(p.stem, read_image(p)) for p in list_images(DATA / "kodak")]


def output(net: torch.nn.Module, x: torch.Tensor) -> torch.Tensor:
    from perceptlab.deepsim import invert, reconstruct

    return (invert if net.name == "invert" else reconstruct)(net, x).clamp(0, 1)


def evaluate(name: str, photos: list[tuple[str, torch.Tensor]]) -> dict | None:
    """Per-image scores of one run on Kodak, cached in the run folder next to its weights."""
    from perceptlab.deepsim import load_deepsim_model
    from perceptlab.metrics.registry import get_metric
    from perceptlab.training import load_model_file

    weights = runs_root() / name / "model.safetensors"
    cache = runs_root() / name / "eval.json"
    if not weights.is_file():
        print(f"skipping {name}: not trained yet", file=sys.stderr)
        return None
    if cache.is_file() and cache.stat().st_mtime > weights.stat().st_mtime:
        return json.loads(cache.read_text())
    net = load_deepsim_model(str(weights))
    _, meta = load_model_file(weights)
    images = {}
    with torch.no_grad():
        for stem, x in photos:
            y = output(net, x)
            images[stem] = {m: float(get_metric(m)(y, x)[0]) for m in METRICS}
    entry = {"steps": int(meta["steps"]), "train_minutes": round(float(meta["train_seconds"]) / 60, 1),
             "losses": recipe(name)["losses"], "images": images,
             "mean": {m: statistics.fmean(v[m] for v in images.values()) for m in METRICS}}  # fmt: skip
    cache.write_text(json.dumps(entry, indent=2) + "\n")
    print(f"evaluated {name}", file=sys.stderr)
    return entry


def figure(columns: dict[str, str], photos: list[tuple[str, torch.Tensor]], path: Path) -> None:
    """Crops of three photos, enlarged 2x: one column per run (``columns``: label -> run name), then the photo."""
    from perceptlab.deepsim import load_deepsim_model
    from perceptlab.io import save_image
    from perceptlab.plot import crop_sheet

    models = {label: load_deepsim_model(str(runs_root() / n / "model.safetensors")) for label, n in columns.items()}
    rows = []
    with torch.no_grad():
        for stem, x in photos:
            if stem in FIGURE_IMAGES:
                rows.append((stem, {label: output(net, x) for label, net in models.items()} | {"photo": x}))
    save_image(crop_sheet(rows, crop=160, zoom=2), path)


def verdicts(results: dict) -> list[str]:
    """The paper's three points, each answered from the table by a stated comparison, per network."""
    lines = []
    for net in NETS:
        r = {loss: results[f"{net}_{loss}"]["mean"] for loss in LOSSES if f"{net}_{loss}" in results}
        if len(r) < len(LOSSES):
            lines.append(f"- {net}: not answered yet ({len(r)} of {len(LOSSES)} runs trained).")
            continue
        smooth = r["image"]["detail"] < 1 and r["image"]["detail"] == min(v["detail"] for v in r.values())
        lines.append(
            f"- {net}, *the image loss alone over-smooths*: {'holds' if smooth else 'does not hold'} (detail ratio "
            f"{r['image']['detail']:.2f} with the image loss, against "
            + ", ".join(f"{r[k]['detail']:.2f} {k}" for k in LOSSES if k != "image")
            + f"; its PSNR {r['image']['psnr']:.2f} dB is {'the' if r['image']['psnr'] == max(v['psnr'] for v in r.values()) else 'not the'} highest)."
        )  # fmt: skip
        worse = [m for m in ("psnr", "ssim", "lpips", "dists") if r["feature"][m] == (
            min if m in ("psnr", "ssim") else max)(v[m] for v in r.values())]  # fmt: skip
        lines.append(
            f"- {net}, *the feature loss alone gives bad images*: {'holds' if len(worse) >= 2 else 'does not hold'} "
            f"(the feature-only run is the worst of the four on {len(worse)} of PSNR, SSIM, LPIPS, DISTS"
            + (f": {', '.join(worse)}" if worse else "") + ")."
        )
        better = [m for m in ("lpips", "dists") if r["feature_adv"][m] < r["feature"][m]]
        lines.append(
            f"- {net}, *the adversarial term keeps the images natural*: "
            f"{'holds' if len(better) == 2 else 'does not hold'} as far as LPIPS and DISTS tell (feature + "
            f"adversarial against feature alone: LPIPS {r['feature_adv']['lpips']:.3f} vs {r['feature']['lpips']:.3f}, "
            f"DISTS {r['feature_adv']['dists']:.3f} vs {r['feature']['dists']:.3f}; detail ratio "
            f"{r['feature_adv']['detail']:.2f} vs {r['feature']['detail']:.2f}). All three terms: LPIPS "
            f"{r['all']['lpips']:.3f}, DISTS {r['all']['dists']:.3f}, PSNR {r['all']['psnr']:.2f} dB."
        )  # fmt: skip
    return lines


def note_section(title: str) -> list[str]:
    """The lines of the section ``## title`` of notes.md (empty if it has none)."""
    text = "\n" + (HERE / "notes.md").read_text()
    if f"\n## {title}\n" not in text:
        return []
    return text.split(f"\n## {title}\n", 1)[1].split("\n## ", 1)[0].strip().splitlines()


def write_report(results: dict, photos: list[tuple[str, torch.Tensor]]) -> None:
    from perceptlab.report import machine

    DOCS.mkdir(parents=True, exist_ok=True)
    (DOCS / "deepsim_ablation.json").write_text(json.dumps(results, indent=2) + "\n")
    for net in NETS:
        columns = {loss: f"{net}_{loss}" for loss in LOSSES if f"{net}_{loss}" in results["runs"]}
        if columns:
            figure(columns, photos, DOCS / f"deepsim_ablation_{net}.jpg")
    if results.get("shipped"):
        figure({SHIP[n]: n for n in results["shipped"]}, photos, DOCS / "deepsim_shipped.jpg")
    lines = [
        "# DeePSiM: what each of the three loss terms does",
        "",
        "Made by `experiments/deepsim_ablation/run.py`. Dosovitskiy and Brox (2016) train generators with "
        "`λ_feat·L_feat + λ_adv·L_adv + λ_img·L_img` and make three points: the image loss alone over-smooths, the "
        "feature loss alone gives bad images, the adversarial term keeps the images on the natural-image manifold. "
        "We train the same two networks with four losses each, one budget for all, and measure.",
        "",
        "## Set-up",
        "",
        f"- networks (`perceptlab.nets.deepsim`, width {COMMON['width']}): an autoencoder (code of "
        f"{NETS['autoencoder']['bottleneck']} channels at 1/{NETS['autoencoder']['downsample']} of the side) and an "
        "inverter of AlexNet's relu5 (256 channels at 1/16 of the side)",
        f"- losses: image `pixel:mse`; feature `{FEATURE}` (AlexNet conv5 after its ReLU, the paper's comparator); "
        f"adversarial `{ADVERSARIAL}` with a PatchGAN discriminator ({COMMON['d_channels']} channels) and its own "
        f"Adam step; the combined runs weight the image term `{PIXEL}`",
        f"- data: T91 + BSD200 + BSDS500_test200, random {COMMON['crop']} px crops, flips and rotations; batch "
        f"{COMMON['batch_size']}; Adam lr {COMMON['lr']} (betas 0.5, 0.999); {COMMON['steps']} steps; seed "
        f"{COMMON['seed']}; one CPU thread per run",
        f"- evaluation: the 24 Kodak photos, whole (768x512), never trained on; {results['hardware']}, torch "
        f"{results['torch']}",
        "",
        "| network | loss | steps | train min | PSNR | SSIM | LPIPS | DISTS | detail |",
        "|---|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for name, entry in results["runs"].items():
        net, loss = name.split("_", 1)
        m = entry["mean"]
        lines.append(f"| {net} | {loss}: `{' + '.join(entry['losses'])}` | {entry['steps']} | {entry['train_minutes']} "
                     f"| {m['psnr']:.2f} | {m['ssim']:.4f} | {m['lpips']:.3f} | {m['dists']:.3f} | {m['detail']:.2f} |")  # fmt: skip
    lines += [
        "",
        "Means over the 24 photos. PSNR (dB), SSIM: higher is better; LPIPS (AlexNet), DISTS: lower is better; "
        "detail: RMS of the high-passed luma over the photo's (1: as much fine contrast as the photo; below 1: "
        "smoother).",
        "",
    ]
    for net in NETS:
        if any(n.startswith(net) for n in results["runs"]):
            lines += [f"![{net}](deepsim_ablation_{net}.jpg)", "",
                      f"*{net}: crops of Kodak {', '.join(FIGURE_IMAGES)} (160 px, enlarged 2x): the four losses "
                      "(image, feature, feature + adversarial, all three), then the photo.*", ""]  # fmt: skip
    lines += ["## The three points in our runs", "", *verdicts(results["runs"]), ""]
    if results.get("shipped"):
        lines += ["## The shipped models", "",
                  "The all-terms recipe with a larger budget: the autoencoder goes on from the ablation's run to "
                  f"{SHIP_RUNS['ship_autoencoder']['times']}x its steps; the relu5 inverter keeps too little of a whole "
                  "photo to recognise its subject at this budget (the crops above), so the shipped inverter reads "
                  "AlexNet's relu3 (384 channels at 1/16 of the side), with the same loss, trained "
                  f"{SHIP_RUNS['ship_invert_relu3']['times']}x the ablation's steps.", "",
                  "| model | network | steps | train min | PSNR | SSIM | LPIPS | DISTS | detail |",
                  "|---|---|---:|---:|---:|---:|---:|---:|---:|"]  # fmt: skip
        for name, entry in results["shipped"].items():
            values, m = recipe(name), entry["mean"]
            what = "autoencoder" if values["kind"] == "autoencoder" else f"inverter of {values['network']} {values['layer']}"
            lines.append(f"| `{SHIP[name]}` | {what} | {entry['steps']} | {entry['train_minutes']} | {m['psnr']:.2f} "
                         f"| {m['ssim']:.4f} | {m['lpips']:.3f} | {m['dists']:.3f} | {m['detail']:.2f} |")  # fmt: skip
        lines += ["", "![shipped](deepsim_shipped.jpg)", "",
                  f"*Crops of Kodak {', '.join(FIGURE_IMAGES)} (160 px, enlarged 2x): "
                  + ", ".join(SHIP[n] for n in results["shipped"]) + ", then the photo.*", ""]
    seen = note_section("What the crops show")
    if seen:
        lines += ["## What the crops show (by eye)", "", *seen, ""]
    lines += ["## What a larger budget would change", "", *note_section("Budget"), ""]
    (DOCS / "deepsim_ablation.md").write_text("\n".join(lines) + "\n")


def model_card(shipped: str, name: str, entry: dict, hardware: str) -> str:
    values = recipe(name)
    net = values["kind"]
    use = (f"`perceptlab reconstruct photo.png -o out.png --model {shipped}`" if net == "autoencoder"
           else f"`perceptlab invert photo.png -o out.png --model {shipped}`")  # fmt: skip
    what = (f"An autoencoder (code of {values['bottleneck']} channels at 1/{values['downsample']} of the side) "
            "trained with DeePSiM's three terms" if net == "autoencoder" else
            f"An inverter of AlexNet's {values['layer']} features (the image a network's features keep) trained with "
            "DeePSiM's three terms")  # fmt: skip
    m = entry["mean"]
    return "\n".join([
        f"# {shipped}", "",
        f"{what}; trained by perceptlab's own trainer (`perceptlab.deepsim.train_deepsim`, Dosovitskiy & Brox 2016).",
        "",
        f"- use: {use}",
        f"- losses: {', '.join(values['losses'])}",
        f"- training data: T91 + BSD200 + BSDS500_test200, random {values['crop']} px crops, flips and 90-degree "
        "rotations",
        f"- optimiser: Adam lr {values['lr']} (betas 0.5, 0.999), batch {values['batch_size']}, seed {values['seed']}; "
        f"discriminator: PatchGAN, {values['d_channels']} channels, Adam lr {values['d_lr']}",
        f"- steps: {entry['steps']}; training wall time: {entry['train_minutes']} min",
        f"- hardware: 2-core CPU machines of our sessions, one thread, sharing the machine with other runs (the "
        f"wall time is an upper bound); evaluated on {hardware}",
        f"- Kodak (24 photos, whole): PSNR {m['psnr']:.2f} dB, SSIM {m['ssim']:.4f}, LPIPS {m['lpips']:.3f}, "
        f"DISTS {m['dists']:.3f}, detail ratio {m['detail']:.2f}",
        f"- picture: docs/experiments/deepsim_shipped.jpg (the column `{shipped}`: crops of Kodak photos)",
        f"- recipe: `experiments/deepsim_ablation/run.py` (run `{name}`); log: "
        f"`experiments/deepsim_ablation/logs/{name}.csv`; reproduce with "
        f"`python experiments/deepsim_ablation/run.py --train {name}`",
        "",
        f"Trained on a CPU for {entry['steps']} steps at {values['crop']} px: a demonstration of the method, far from the paper's "
        "budget (docs/experiments/deepsim_ablation.md says what that changes).",
    ]) + "\n"  # fmt: skip


def ship(results: dict) -> None:
    target = ROOT / "src" / "perceptlab" / "models"
    (HERE / "logs").mkdir(exist_ok=True)
    for name, shipped in SHIP.items():
        entry = results.get("shipped", {}).get(name)
        if entry is None or entry["steps"] < recipe(name)["steps"]:
            print(f"not shipping {shipped}: {name} has not finished its {recipe(name)['steps']} steps", file=sys.stderr)
            continue
        shutil.copyfile(runs_root() / name / "model.safetensors", target / f"{shipped}.safetensors")
        shutil.copyfile(runs_root() / name / "metrics.csv", HERE / "logs" / f"{name}.csv")
        (target / f"{shipped}.md").write_text(model_card(shipped, name, entry, results["hardware"]))
        print(f"shipped {shipped}", file=sys.stderr)


def main() -> int:
    from perceptlab.report import machine

    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--train", choices=RUNS + list(SHIP_RUNS), help="train (or resume) one run")
    parser.add_argument("--train-all", action="store_true", help="train (or resume) every run in turn")
    parser.add_argument("--ship", action="store_true", help="after the report, ship the finished SHIP_RUNS")
    args = parser.parse_args()
    os.chdir(ROOT)
    if args.train or args.train_all:
        for name in [args.train] if args.train else TRAIN_ORDER:
            train(name)
        return 0
    photos = kodak()
    results = {"hardware": machine(), "torch": torch.__version__, "runs": {}}
    for name in RUNS:
        entry = evaluate(name, photos)
        if entry is not None:
            results["runs"][name] = entry
    shipped = {name: evaluate(name, photos) for name in SHIP_RUNS}
    results["shipped"] = {name: entry for name, entry in shipped.items() if entry is not None}
    write_report(results, photos)
    if args.ship:
        ship(results)
    return 0


if __name__ == "__main__":
    sys.exit(main())
