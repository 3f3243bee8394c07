"""Does SRCNN + VGG loss match the Johnson network? Train four x4 models with one budget, evaluate, report.

    python experiments/sr_losses/run.py                 # train (resuming), evaluate, write the report
    python experiments/sr_losses/run.py --only johnson_x4_vgg --train-only   # one model (run two in parallel)
    python experiments/sr_losses/run.py --report-only   # evaluate the finished runs and write the report
    python experiments/sr_losses/run.py --report-only --ship   # also copy the weights into the package

Recipes: ``recipes/NAME.toml`` (paths relative to the repository root). Runs
live in ``$PERCEPTLAB_RUNS/sr_losses/NAME`` (default ``~/perceptlab-runs``, outside the checkout) and resume
where they stopped; ``--restore-shipped`` puts the package's copy of a model whose run folder is gone
there, so that the report can score it again.
Outputs: ``docs/experiments/sr_losses.md``, ``sr_losses.json`` and
``sr_losses_crops.png``; with ``--ship``, ``src/perceptlab/models/NAME.safetensors`` + ``NAME.md``.
"""

from __future__ import annotations

import argparse
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
MODELS = ("srcnn_x4_mse", "srcnn_x4_vgg", "johnson_x4_mse", "johnson_x4_vgg")
BENCHMARKS = ("Set5", "Set14", "BSD100")
DOCS = ROOT / "docs" / "experiments"
PACKAGE_MODELS = ROOT / "src" / "perceptlab" / "models"


def runs_root() -> Path:
    return Path(os.environ.get("PERCEPTLAB_RUNS", "~/perceptlab-runs")).expanduser() / "sr_losses"


def restore_shipped(runs: Path, names: tuple[str, ...] = MODELS) -> list[str]:
    """Put the package's weights (and the training log kept beside the recipes) of each shipped model whose run
    folder has no ``model.safetensors`` into that folder; return the names restored. The run folder then has no
    checkpoint: training it again starts from scratch."""
    restored = []
    for name in names:
        weights, shipped = runs / name / "model.safetensors", PACKAGE_MODELS / f"{name}.safetensors"
        if weights.is_file() or not shipped.is_file():
            continue
        weights.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(shipped, weights)
        if (HERE / "logs" / f"{name}.csv").is_file():
            shutil.copyfile(HERE / "logs" / f"{name}.csv", runs / name / "metrics.csv")
        restored.append(name)
    return restored


def recipe(name: str) -> dict:
    values = tomllib.loads((HERE / "recipes" / f"{name}.toml").read_text())
    values["data"] = [str((ROOT / p).resolve()) for p in values["data"]]
    for key in ("val_data", "init"):
        if values.get(key):
            values[key] = str((ROOT / values[key]).resolve())
    return values


def stage_one(name: str) -> dict:
    """Steps and training minutes of the first stage of a two-stage model (``recipes/NAME_12k.toml`` and its log)."""
    import csv

    first = tomllib.loads((HERE / "recipes" / f"{name}_12k.toml").read_text())
    with open(HERE / "logs" / f"{name}_12k.csv") as handle:
        rows = list(csv.DictReader(handle))
    return {"steps": first["steps"], "minutes": round(float(rows[-1]["seconds"]) / 60, 1)}


def train(name: str, runs: Path, steps: int | None) -> None:
    from perceptlab.sr.train import SRTrainConfig, train_sr

    values = recipe(name)
    if steps:
        values["steps"] = steps
    summary = train_sr(SRTrainConfig.from_dict(values), runs / name, progress=sys.stderr.isatty())
    print(f"{name}: {summary['steps']} steps, {summary['seconds'] / 60:.1f} min of training", file=sys.stderr)


def evaluate_model(name: str, runs: Path) -> dict | None:
    """Scores of one model on the three benchmarks, cached in ``runs/NAME/eval.json`` next to its weights."""
    from perceptlab.sr.evaluate import evaluate_benchmarks
    from perceptlab.sr.models import load_sr_model
    from perceptlab.training import load_model_file

    weights = runs / name / "model.safetensors"
    cache = runs / name / "eval.json"
    if name != "bicubic" and not weights.is_file():
        print(f"skipping {name}: {weights} not found (train it first)", file=sys.stderr)
        return None
    if cache.is_file() and (name == "bicubic" or cache.stat().st_mtime > weights.stat().st_mtime):
        return json.loads(cache.read_text())
    model = load_sr_model("bicubic" if name == "bicubic" else str(weights))
    entry: dict = {"benchmarks": {}}
    if name != "bicubic":
        _, meta = load_model_file(weights)
        config = json.loads(meta["config"])
        entry |= {"steps": int(meta["steps"]), "train_minutes": round(float(meta["train_seconds"]) / 60, 1),
                  "losses": config["losses"]}  # fmt: skip
        entry["two_stage"] = bool(config.get("init"))
        if entry["two_stage"]:  # a second stage: its first stage's budget counts too (its log beside the recipes)
            first = stage_one(name)
            entry |= {"steps": f"{first['steps']} + {entry['steps']}",
                      "train_minutes": f"{first['minutes']} + {entry['train_minutes']}"}  # fmt: skip
    data = ROOT.parent / "shared" / "data"
    entry["benchmarks"] = evaluate_benchmarks(model, [data / b for b in BENCHMARKS], 4, progress=sys.stderr.isatty())
    cache.parent.mkdir(parents=True, exist_ok=True)
    cache.write_text(json.dumps(entry, indent=2) + "\n")
    print(f"evaluated {name}", file=sys.stderr)
    return entry


def evaluate_all(runs: Path, names: tuple[str, ...] = ("bicubic", *MODELS)) -> dict:
    results: dict = {"models": {}, "hardware": machine(), "torch": torch.__version__}
    for name in names:
        entry = evaluate_model(name, runs)
        if entry is not None:
            results["models"][name] = entry
    return results


def crops_figure(runs: Path, results: dict, path: Path) -> None:
    from perceptlab.io import save_image
    from perceptlab.sr.evaluate import comparison_grid
    from perceptlab.sr.models import load_sr_model
    from perceptlab.sr.protocol import load_benchmark

    items = [it for bench in ("Set5", "Set14") for it in load_benchmark(ROOT.parent / "shared" / "data" / bench, 4)]
    items = [it for it in items if it.name.split(".")[0] in ("butterfly", "baby", "bird", "comic", "zebra", "ppt3")][:5]
    trained = [m for m in MODELS if m in results["models"]]
    outputs = {}
    with torch.no_grad():
        for name in trained:
            model = load_sr_model(str(runs / name / "model.safetensors"))
            outputs[name] = [model(it.lr).clamp(0, 1) for it in items]
    first, *rest = trained
    grid = comparison_grid(items, outputs[first], 4, columns={m: outputs[m] for m in rest}, crop=80, zoom=2, label=first)
    save_image(grid, path)


def worst_image_per_model(results: dict) -> dict[str, tuple[float, str, str]]:
    """For each trained model: (PSNR-Y change against bicubic, benchmark, image) of its worst image."""
    models = results["models"]
    if "bicubic" not in models:
        return {}
    reference = {(b, r["name"]): r["psnr_y"] for b in BENCHMARKS for r in models["bicubic"]["benchmarks"][b]["images"]}
    return {
        name: min((r["psnr_y"] - reference[(b, r["name"])], b, r["name"])
                  for b in BENCHMARKS for r in models[name]["benchmarks"][b]["images"])
        for name in MODELS if name in models
    }  # fmt: skip


def failures_figure(runs: Path, results: dict, path: Path) -> None:
    """Whole images, halved: each model's worst image against bicubic (PSNR-Y), all models side by side."""
    from perceptlab.ops.resize import imresize
    from perceptlab.plot import whole_image_sheet
    from perceptlab.sr.models import load_sr_model
    from perceptlab.sr.protocol import load_benchmark

    worst = worst_image_per_model(results)
    wanted = list(dict.fromkeys((bench, image) for _, bench, image in worst.values()))
    data = ROOT.parent / "shared" / "data"
    items = [it for bench, image in wanted for it in load_benchmark(data / bench, 4) if it.name == image]
    trained = [m for m in MODELS if m in results["models"]]
    models = {m: load_sr_model(str(runs / m / "model.safetensors")) for m in trained}
    rows = []
    with torch.no_grad():
        for it in items:
            row = {"bicubic": imresize(it.lr, scale=4)} | {m: models[m](it.lr) for m in trained} | {"HR": it.hr}
            rows.append((it.name, row))
    whole_image_sheet(rows).save(path)


def verdict(results: dict) -> str:
    """A plain answer computed from the numbers, so that the text cannot drift from the table."""
    models = results["models"]
    if not {"srcnn_x4_vgg", "johnson_x4_vgg"} <= set(models):
        return "Not answered yet: both VGG-loss models must be trained and evaluated."
    lines = []
    for bench in BENCHMARKS:
        s = models["srcnn_x4_vgg"]["benchmarks"][bench]["mean"]
        j = models["johnson_x4_vgg"]["benchmarks"][bench]["mean"]
        lines.append(
            f"{bench}: LPIPS {s['lpips']:.3f} (SRCNN+VGG) vs {j['lpips']:.3f} (Johnson+VGG), "
            f"DISTS {s['dists']:.3f} vs {j['dists']:.3f}, PSNR-Y {s['psnr_y']:.2f} vs {j['psnr_y']:.2f} dB"
        )
    wins = perceptual_wins(results, "johnson_x4_vgg", "srcnn_x4_vgg")
    budget = "with the same loss, data and (small) budget"
    if wins >= 5:
        answer = f"No: {budget}, the Johnson network is better on {wins} of the 6 perceptual comparisons."
    elif wins <= 1:
        answer = (f"Yes: {budget}, SRCNN + VGG loss matches or beats the Johnson network on {6 - wins} of the 6 "
                  "perceptual comparisons (LPIPS and DISTS on three benchmarks).")
    else:
        answer = f"Not clearly: {budget}, the Johnson network wins {wins} of the 6 perceptual comparisons."
    return answer + "\n\n" + "\n".join(f"- {line}" for line in lines)


def perceptual_wins(results: dict, a: str, b: str) -> int:
    """How many of the 6 (benchmark, LPIPS/DISTS) comparisons model ``a`` wins against ``b``."""
    models = results["models"]
    return sum(
        models[a]["benchmarks"][x]["mean"][m] < models[b]["benchmarks"][x]["mean"][m]
        for x in BENCHMARKS for m in ("lpips", "dists")
    )  # fmt: skip


def worst_images(results: dict) -> list[str]:
    worst = worst_image_per_model(results)
    if not worst:
        return []
    parts = [f"{name} {drop:+.1f} dB on {bench} `{image}`" for name, (drop, bench, image) in worst.items()]
    return [
        "- The largest PSNR-Y loss against bicubic, per model: " + "; ".join(parts) + " (second figure). The "
        "Johnson networks end in a scaled tanh and do not refine a bicubic upscale as SRCNN does: trained this "
        "briefly, they saturate or tint large flat bright areas (sky, snow, Set14 `ppt3`); what removes that is "
        "measured in [sr_crop](sr_crop.md). The VGG-loss models "
        "also shift colours and brightness (hence their low PSNR-Y everywhere); `perceptlab upscale "
        "--match-colors` corrects that by histogram matching."
    ]


def default_model_line(results: dict) -> str:
    from perceptlab.sr.models import DEFAULT_SR_MODEL

    models = results["models"]
    if not {"srcnn_x4_vgg", "johnson_x4_vgg"} <= set(models):
        return f"- `perceptlab upscale` uses `{DEFAULT_SR_MODEL}` by default."
    if DEFAULT_SR_MODEL == "johnson_x4_vgg_pixel":
        return (f"- `perceptlab upscale` uses `{DEFAULT_SR_MODEL}` by default, trained in a follow-up experiment "
                "that adds a pixel term to this VGG loss ([sr_crop](sr_crop.md)).")
    if DEFAULT_SR_MODEL not in models:
        return (f"- `perceptlab upscale` uses `{DEFAULT_SR_MODEL}` by default, made to remove the grid and colour cast "
                "these models show ([sr_default](sr_default.md)).")
    wins = perceptual_wins(results, "srcnn_x4_vgg", "johnson_x4_vgg")
    worst = {m: drop for m, (drop, _, _) in worst_image_per_model(results).items()}
    safer = min(("srcnn_x4_vgg", "johnson_x4_vgg"), key=lambda m: -worst.get(m, 0.0))
    if wins == 3:
        return (f"- The two VGG-loss models split the 6 perceptual comparisons 3-3; `perceptlab upscale` uses "
                f"`{DEFAULT_SR_MODEL}` by default (`{safer}` has the smaller worst-image loss against bicubic).")
    better = "srcnn_x4_vgg" if wins > 3 else "johnson_x4_vgg"
    agree = "which is" if better == DEFAULT_SR_MODEL else "but"
    return (f"- `{better}` wins {max(wins, 6 - wins)} of the 6 perceptual comparisons between the two VGG-loss "
            f"models, {agree} what `perceptlab upscale` uses by default (`{DEFAULT_SR_MODEL}`).")


DEFECTS_TEXT = ("grid: a pattern fixed to the output's 4x4 lattice (HR photos score about 0.007; visible from "
                "about 0.05); LR-PSNR: the output shrunk x4 against its LR input, dB (does the output keep its "
                "input's content); colour shift: the largest per-channel difference of image means to the HR, "
                "in 8-bit levels (columns of `perceptlab eval sr`)")


def defects_table(models: dict) -> list[str]:
    """What LPIPS and DISTS miss, per model and benchmark: grid median / worst, LR-PSNR and colour shift medians
    (``not measured`` for an entry scored before these measures existed)."""
    lines = ["| model | " + " | ".join(f"{b} grid median / worst | {b} LR-PSNR | {b} colour shift" for b in BENCHMARKS)
             + " |", "|---|" + "---:|" * (3 * len(BENCHMARKS))]  # fmt: skip
    for name, entry in models.items():
        cells = []
        for b in BENCHMARKS:
            if "grid" not in entry["benchmarks"][b].get("median", {}):
                cells += ["not measured"] * 3
                continue
            median, worst = entry["benchmarks"][b]["median"], entry["benchmarks"][b]["worst"]
            cells += [f"{median['grid']:.3f} / {worst['grid']:.3f}", f"{median['lr_psnr']:.1f}",
                      f"{median['color_shift']:.1f}"]  # fmt: skip
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    return lines


def write_report(results: dict, runs: Path) -> None:
    DOCS.mkdir(parents=True, exist_ok=True)
    (DOCS / "sr_losses.json").write_text(json.dumps(results, indent=2) + "\n")
    crops_figure(runs, results, DOCS / "sr_losses_crops.png")
    failures_figure(runs, results, DOCS / "sr_losses_failures.png")
    from perceptlab.sr.evaluate import PROTOCOL

    recipe_text = {m: recipe(m) for m in MODELS}
    any_recipe = recipe_text["srcnn_x4_vgg"]  # the first stage of every model: one data, crop, batch, optimiser
    lines = [
        "# Super-resolution x4: pixel loss vs VGG feature loss, SRCNN vs Johnson et al.",
        "",
        "Question (from a practitioner reading Johnson et al. 2016): *would a plain SRCNN give as good a "
        "result by simply swapping its MSE loss for a VGG loss?* We train the four combinations with the same "
        "data, crops, batch, optimiser and number of steps, and evaluate them on the standard benchmarks. "
        + ("The pixel-loss SRCNN, the baseline, was then trained on (a second stage at a lower learning rate, "
           "`recipes/srcnn_x4_mse.toml`) towards the published SRCNN's PSNR; its steps column shows both stages."
           if results["models"].get("srcnn_x4_mse", {}).get("two_stage") else
           "The pixel-loss SRCNN, the baseline, is to be trained on towards the published SRCNN's PSNR (a second "
           "stage at a lower learning rate, `recipes/srcnn_x4_mse.toml`, not finished: the table shows its first)."),
        "",
        "Reproduce: `python experiments/sr_losses/run.py` (recipes in `experiments/sr_losses/recipes/`).",
        "",
        "## Set-up",
        "",
        f"- training data: T91 + BSD200 (290 images), random {any_recipe['hr_crop']}px HR crops with flips and "
        f"rotations, LR by bicubic downsampling with antialiasing (MATLAB-compatible `imresize`), no blur",
        f"- optimiser: Adam, lr {any_recipe['lr']}, batch {any_recipe['batch_size']}; VGG loss = feature "
        f"reconstruction on VGG-16 relu2_2 (torchvision ImageNet weights) plus a small total-variation term",
        "- hardware: 2-core CPU machines, one thread per run, resumed across sessions; evaluated on "
        f"{results['hardware']}, torch {results['torch']}",
        f"- evaluation protocol: {PROTOCOL}",
        "",
        "| model | loss | steps | train min | " + " | ".join(f"{b} PSNR-Y | {b} SSIM-Y | {b} LPIPS | {b} DISTS" for b in BENCHMARKS) + " |",
        "|---|---|---:|---:|" + "---:|" * (4 * len(BENCHMARKS)),
    ]
    for name, entry in results["models"].items():
        cells = []
        for b in BENCHMARKS:
            m = entry["benchmarks"][b]["mean"]
            cells += [f"{m['psnr_y']:.2f}", f"{m['ssim_y']:.4f}", f"{m['lpips']:.3f}", f"{m['dists']:.3f}"]
        loss = ", ".join(entry.get("losses", ["-"]))
        lines.append(f"| {name} | {loss} | {entry.get('steps', '-')} | {entry.get('train_minutes', '-')} | " + " | ".join(cells) + " |")
    lines += [
        "",
        "PSNR-Y/SSIM-Y: higher is better; LPIPS/DISTS: lower is better. For scale: the published SRCNN "
        "(trained far longer) reaches 30.48 / 27.50 / 26.90 dB PSNR-Y on Set5 / Set14 / BSD100.",
        "",
        "Defects the perceptual scores do not see (medians over each benchmark's images; grid also its worst "
        "image): " + DEFECTS_TEXT + ".",
        "",
        *defects_table(results["models"]),
        "",
        "![crops](sr_losses_crops.png)",
        "",
        "*Crops where the HR image has most detail, enlarged 2x: bicubic, the four models, HR.*",
        "",
        "![failures](sr_losses_failures.png)",
        "",
        "*Each model's worst image against bicubic (PSNR-Y), whole, at half size: bicubic, the four models, HR.*",
        "",
        "## Answer",
        "",
        verdict(results),
        "",
        "## Limits",
        "",
        "- The budget is what our 2-core CPU allows in a session, orders of magnitude below the papers' "
        "(Johnson et al.: 200k iterations of batch 4 at 288 px on a GPU). The comparison is fair between the "
        "four models, but absolute numbers are far from converged; runs resume, so longer budgets can be "
        "added and this report regenerated.",
        "- No checkpoint is selected on the test sets (Set5 is only shown during training as a sample).",
        *worst_images(results),
        default_model_line(results),
    ]
    (DOCS / "sr_losses.md").write_text("\n".join(lines) + "\n")


TRAINED_ON = ("2-core CPU machines of our sessions, 1 thread, resumed across sessions (the machines were shared "
              "with other jobs: the wall time is an upper bound)")


def model_card(name: str, values: dict, entry: dict, hardware: str, recipe_line: str,
               worst: tuple[float, str, str] | None = None, report: str = "docs/experiments/sr_losses.md",
               trained_on: str = TRAINED_ON) -> str:  # fmt: skip
    """The model card of a shipped SR model: recipe, data, budget, hardware, evaluation, worst image."""
    table = ["| benchmark | PSNR-Y | SSIM-Y | LPIPS | DISTS | grid median / worst | LR-PSNR | colour shift |",
             "|---|---:|---:|---:|---:|---:|---:|---:|"]
    for b in BENCHMARKS:
        m, median, bad = (entry["benchmarks"][b][k] for k in ("mean", "median", "worst"))
        table.append(f"| {b} | {m['psnr_y']:.2f} | {m['ssim_y']:.4f} | {m['lpips']:.3f} | {m['dists']:.3f} | "
                     f"{median['grid']:.3f} / {bad['grid']:.3f} | {median['lr_psnr']:.1f} | "
                     f"{median['color_shift']:.1f} |")  # fmt: skip
    card = [
        f"# {name}",
        "",
        f"x4 super-resolution, network `{values['net']}`, trained by perceptlab's own trainer.",
        "",
        f"- losses: {', '.join(values['losses'])}",
        "- training data: T91 + BSD200 (the SR '291' set without BSD200's 302003), random "
        f"{values['hr_crop']}px HR crops, flips and 90-degree rotations; LR = MATLAB-style bicubic x1/4",
        f"- optimiser: Adam lr {values['lr']}, batch {values['batch_size']}, seed {values['seed']}",
        f"- steps: {entry['steps']}; training wall time: {entry['train_minutes']} min",
        f"- hardware: {trained_on}; evaluated on {hardware}",
        f"- recipe: {recipe_line}",
        "",
        "Evaluation (protocol of `perceptlab eval sr`: benchmark LR inputs, PSNR-Y/SSIM-Y shaved by 4 px, "
        "LPIPS-alex and DISTS on RGB, means over the images; " + DEFECTS_TEXT + ", medians):",
        "",
        *table,
        "",
        *([f"Worst image against bicubic: {worst[0]:+.1f} dB PSNR-Y on {worst[1]} `{worst[2]}` "
           f"(shown in {report})."] if worst else []),
        "",
        f"Trained on a CPU with a small budget: far from converged; see {report}.",
    ]
    return "\n".join(card) + "\n"


def ship(results: dict, runs: Path) -> None:
    """Copy each trained model into the package with a model card."""
    target = ROOT / "src" / "perceptlab" / "models"
    target.mkdir(parents=True, exist_ok=True)
    worst = worst_image_per_model(results)
    for name in MODELS:
        if name not in results["models"]:
            continue
        entry = results["models"][name]
        shutil.copyfile(runs / name / "model.safetensors", target / f"{name}.safetensors")
        (HERE / "logs").mkdir(exist_ok=True)
        if (runs / name / "metrics.csv").is_file():  # (a run restored from the package may have none)
            shutil.copyfile(runs / name / "metrics.csv", HERE / "logs" / f"{name}.csv")
        # a two-stage model not trained past its first stage yet ships with that stage's recipe and log
        made_by = name if entry.get("two_stage") or not (HERE / "recipes" / f"{name}_12k.toml").is_file() else f"{name}_12k"
        recipe_line = (f"`experiments/sr_losses/recipes/{made_by}.toml`, training log `experiments/sr_losses/logs/{made_by}.csv`; "
                       + (f"reproduce with `python experiments/sr_losses/run.py --only {name}`" if made_by == name else
                          f"reproduce with `perceptlab train sr --config experiments/sr_losses/recipes/{made_by}.toml`"))  # fmt: skip
        card = model_card(name, recipe(made_by), entry, results["hardware"], recipe_line, worst.get(name))
        (target / f"{name}.md").write_text(card)
        print(f"shipped {name}", file=sys.stderr)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--only", choices=MODELS, action="append", help="train only these models")
    parser.add_argument("--steps", type=int, help="override the recipes' step budget (resumed runs go further)")
    parser.add_argument("--runs", type=Path, default=runs_root())
    parser.add_argument("--restore-shipped", action="store_true",
                        help="first put the package's copy of each shipped model whose run folder is gone there")
    parser.add_argument("--train-only", action="store_true")
    parser.add_argument("--report-only", action="store_true")
    parser.add_argument("--ship", action="store_true", help="copy the weights into src/perceptlab/models with cards")
    parser.add_argument("--eval-only", action="store_true", help="evaluate (and cache) the models trained so far")
    args = parser.parse_args()
    if args.restore_shipped:
        print(f"restored from the package: {', '.join(restore_shipped(args.runs)) or 'none'}", file=sys.stderr)
    if not (args.report_only or args.eval_only):
        for name in args.only or MODELS:
            train(name, args.runs, args.steps)
    if args.train_only:
        return 0
    if args.eval_only:
        evaluate_all(args.runs, tuple(args.only) if args.only else ("bicubic", *MODELS))
        return 0
    results = evaluate_all(args.runs)
    write_report(results, args.runs)
    if args.ship:
        ship(results, args.runs)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
