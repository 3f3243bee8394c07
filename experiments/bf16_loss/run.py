"""Does a bfloat16 loss network train the same SR model as float32? Train, evaluate, report.

    python experiments/bf16_loss/run.py --only bf16_seed0 --train-only   # one run (run two in parallel)
    python experiments/bf16_loss/run.py                                  # train (resuming), evaluate, report
    python experiments/bf16_loss/run.py --report-only                    # evaluate finished runs, report

The recipe is ``experiments/sr_losses/recipes/johnson_x4_vgg.toml`` (the shipped
``johnson_x4_vgg``: Johnson x4, ``feature:relu2_2`` + ``tv:l2*20``, batch 8, 64 px
crops of T91 + BSD200, one thread) with 4000 steps, changed only in ``seed`` and
``vgg_precision``. Runs live in ``runs/bf16_loss/NAME`` (git-ignored) and resume
where they stopped; ``fp32_seed0`` there was copied from the ``sr_losses`` run of
``johnson_x4_vgg`` at 4000 steps (the same configuration). The seed-to-seed
spread of the float32 runs is the yardstick for the bfloat16 runs' differences.

Outputs: ``docs/experiments/bf16_loss.md``, ``bf16_loss.json``, ``bf16_loss_curves.svg``;
training logs copied to ``experiments/bf16_loss/logs/``.
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
BASE = ROOT / "experiments" / "sr_losses" / "recipes" / "johnson_x4_vgg.toml"
RUNS = {  # name -> (seed, precision)
    "fp32_seed0": (0, "fp32"),
    "fp32_seed1": (1, "fp32"),
    "bf16_seed0": (0, "bf16"),
    "bf16_seed1": (1, "bf16"),
}
BENCHMARKS = ("Set5", "Set14", "BSD100")
METRICS = ("psnr_y", "ssim_y", "lpips", "dists")
DOCS = ROOT / "docs" / "experiments"


STEPS = 4000


def run_dir(name: str) -> Path:
    return ROOT / "runs" / "bf16_loss" / name


def recipe(name: str) -> dict:
    values = tomllib.loads(BASE.read_text())
    values["steps"] = STEPS  # the budget of the shipped model when this experiment ran
    values["data"] = [str((ROOT / p).resolve()) for p in values["data"]]
    if values.get("val_data"):
        values["val_data"] = str((ROOT / values["val_data"]).resolve())
    values["seed"], values["vgg_precision"] = RUNS[name]
    return values


def train(name: str) -> None:
    from perceptlab.sr.train import SRTrainConfig, train_sr

    summary = train_sr(SRTrainConfig.from_dict(recipe(name)), run_dir(name), progress=sys.stderr.isatty())
    print(f"{name}: {summary['steps']} steps, {summary['seconds'] / 60:.1f} min of training", file=sys.stderr)


def evaluate(name: str) -> dict | None:
    """Scores on the three benchmarks (cached in the run folder) and the training log's summary."""
    from perceptlab.sr.evaluate import evaluate_run

    folder = run_dir(name)
    if not (folder / "model.safetensors").is_file():
        print(f"skipping {name}: {folder / 'model.safetensors'} not found (train it first)", file=sys.stderr)
        return None
    data = ROOT.parent / "shared" / "data"
    expected = recipe(name)
    expect = {"seed": expected["seed"], "vgg_precision": expected["vgg_precision"], "losses": expected["losses"]}
    entry = evaluate_run(folder, [data / b for b in BENCHMARKS], 4, expect, progress=sys.stderr.isatty())
    log = training_log(folder / "metrics.csv")
    steps = entry["steps"]
    return {"benchmarks": entry["benchmarks"], "steps": steps, "train_seconds": entry["train_seconds"],
            "final_loss": final_loss(log, steps), "log": log}  # fmt: skip


def training_log(path: Path) -> list[dict]:
    import csv

    with path.open() as f:
        return [{k: float(v) for k, v in row.items() if v} for row in csv.DictReader(f) if row.get("loss")]


def final_loss(log: list[dict], steps: int, window: int = 500) -> float:
    """Mean logged training loss over the last ``window`` steps (the loss is logged every 10 steps)."""
    tail = [r["loss"] for r in log if r["step"] > steps - window]
    return sum(tail) / len(tail)


def smoothed(log: list[dict], width: int = 25) -> tuple[list[float], list[float]]:
    xs, ys = [r["step"] for r in log], [r["loss"] for r in log]
    out = []
    for i in range(len(ys)):
        part = ys[max(0, i - width + 1) : i + 1]
        out.append(sum(part) / len(part))
    return xs, out


def seconds_per_step(log: list[dict], skip: int = 100) -> float:
    """Median wall seconds per step between log rows (past the first ``skip`` steps)."""
    rows = [r for r in log if r["step"] > skip]
    rates = sorted((b["seconds"] - a["seconds"]) / (b["step"] - a["step"]) for a, b in zip(rows, rows[1:])
                   if b["step"] > a["step"] and b["seconds"] >= a["seconds"])  # fmt: skip
    return rates[len(rates) // 2]


def comparison(results: dict) -> list[dict]:
    """Per benchmark and metric: the bf16 - fp32 differences at equal seed, against the fp32 seed-to-seed spread."""
    runs = results["runs"]
    rows = []
    for bench in BENCHMARKS:
        for metric in METRICS:
            value = {name: runs[name]["benchmarks"][bench]["mean"][metric] for name in runs}
            row = {"benchmark": bench, "metric": metric, **value}
            if {"fp32_seed0", "fp32_seed1"} <= set(value):
                row["fp32 seed spread"] = abs(value["fp32_seed0"] - value["fp32_seed1"])
            for seed in (0, 1):
                if {f"fp32_seed{seed}", f"bf16_seed{seed}"} <= set(value):
                    row[f"bf16 - fp32, seed {seed}"] = value[f"bf16_seed{seed}"] - value[f"fp32_seed{seed}"]
            rows.append(row)
    return rows


def verdict(rows: list[dict]) -> str:
    """A plain answer computed from the table."""
    diffs = [(r, abs(r[k])) for r in rows for k in ("bf16 - fp32, seed 0", "bf16 - fp32, seed 1") if k in r]
    spreads = [r for r in rows if "fp32 seed spread" in r]
    if not diffs or not spreads:
        return "Not answered yet: the float32 pair and at least one bfloat16 run must be trained and evaluated."
    within = sum(d <= r["fp32 seed spread"] for r, d in diffs)
    widest = max(diffs, key=lambda rd: rd[1] / max(rd[0]["fp32 seed spread"], 1e-12))
    r, d = widest
    text = (f"{within} of {len(diffs)} bfloat16-vs-float32 differences at equal seed are within the spread between "
            f"the two float32 seeds. The largest relative to that spread: {r['metric']} on {r['benchmark']}, "
            f"{d:.4f} against a seed spread of {r['fp32 seed spread']:.4f}.")  # fmt: skip
    if within == len(diffs):
        return "Yes, as far as this budget can tell: " + text
    if within >= 0.75 * len(diffs):
        return "Mostly: " + text
    return "No: " + text


def fmt(metric: str, value: float) -> str:
    return f"{value:.2f}" if metric == "psnr_y" else f"{value:.4f}"


def write_report(results: dict) -> None:
    from perceptlab.plot import line_plot

    DOCS.mkdir(parents=True, exist_ok=True)
    runs = results["runs"]
    rows = comparison(results)
    logs = {name: run.pop("log") for name, run in runs.items()}
    colours = {"fp32_seed0": "#1f77b4", "fp32_seed1": "#17becf", "bf16_seed0": "#d62728", "bf16_seed1": "#ff7f0e"}
    series = []
    for name, log in logs.items():
        xs, ys = smoothed(log)
        series.append({"label": name, "x": xs, "y": ys, "color": colours[name],
                       "dash": "solid" if name.startswith("fp32") else "dashed"})  # fmt: skip
    svg = line_plot(series, ylog=True, title="Training loss (feature:relu2_2 + 20 tv:l2), moving mean of 25 logs",
                    xlabel="step", ylabel="loss")  # fmt: skip
    (DOCS / "bf16_loss_curves.svg").write_text(svg)
    results["comparison"] = rows
    (DOCS / "bf16_loss.json").write_text(json.dumps(results, indent=2) + "\n")
    names = list(runs)
    lines = [
        "# Does a bfloat16 loss network train the same SR model?",
        "",
        "`FeatureLoss(precision=\"bf16\")` (`train sr --vgg-precision bf16`) runs VGG-16 in bfloat16 and",
        "the distance in float32. On CPUs with bfloat16 matrix units it makes the feature-loss training step",
        "much cheaper (benchmarks/README.md, SR training step). Its loss and gradient differ from float32 by",
        "bfloat16 rounding (tests/test_bf16_loss.py bounds both). This experiment asks whether that matters",
        "for the trained model: the shipped `johnson_x4_vgg` recipe, trained with each precision and two",
        "seeds, evaluated like the shipped models.",
        "",
        "Reproduce: `python experiments/bf16_loss/run.py` (runs resume; `--only NAME --train-only` trains one).",
        "",
        f"Hardware: {results['hardware']}, one thread per run (two runs at a time on two cores); torch "
        f"{results['torch']}; bfloat16 units: {'yes' if results['native_bf16'] else 'no'}.",
        "",
        "## Answer",
        "",
        verdict(rows),
        "",
        "## Runs",
        "",
        "| run | seed | VGG precision | steps | wall time | s / step (median) | training loss, last 500 steps |",
        "|---|---:|---|---:|---:|---:|---:|",
    ]
    for name in names:
        run = runs[name]
        seed, precision = RUNS[name]
        lines.append(f"| {name} | {seed} | {precision} | {run['steps']} | {run['train_seconds'] / 60:.1f} min | "
                     f"{run['seconds_per_step']:.3f} | {run['final_loss']:.3f} |")  # fmt: skip
    lines += [
        "",
        "Wall times come from runs sharing two cores with other work (fp32_seed0 is the `sr_losses` run of",
        "`johnson_x4_vgg` at 4000 steps, trained in an earlier session on a busier machine): the step-time",
        "ratio belongs to the benchmark, not to this table.",
        "",
        "![training loss](bf16_loss_curves.svg)",
        "",
        "## Scores",
        "",
        "Protocol of `perceptlab eval sr`: the benchmarks' MATLAB-bicubic LR inputs, PSNR-Y and SSIM-Y shaved",
        "by 4 px, LPIPS (AlexNet) and DISTS on RGB; means over each benchmark.",
        "",
        "| benchmark | metric | " + " | ".join(names) + " | fp32 seed spread | bf16 - fp32, seed 0 | bf16 - fp32, seed 1 |",
        "|---|---|" + "---:|" * (len(names) + 3),
    ]
    for r in rows:
        cells = [fmt(r["metric"], r[n]) for n in names]
        extra = [fmt(r["metric"], r[k]) if k in r else "-" for k in
                 ("fp32 seed spread", "bf16 - fp32, seed 0", "bf16 - fp32, seed 1")]  # fmt: skip
        lines.append(f"| {r['benchmark']} | {r['metric']} | " + " | ".join(cells + extra) + " |")
    lines += [
        "",
        "## Limits",
        "",
        "- One recipe, a short CPU budget (4000 steps of batch 8), two seeds per precision: a small",
        "  difference hidden by the seed spread here could show in longer trainings.",
        "- The VGG weights are the torchvision ImageNet ones; other loss layers than relu2_2 were not tried",
        "  in training (the tests compare the losses and gradients of relu1_2 to relu2_2 and style Gram losses).",
        "",
    ]
    (DOCS / "bf16_loss.md").write_text("\n".join(lines))
    logs_dir = HERE / "logs"
    logs_dir.mkdir(exist_ok=True)
    for name in names:
        shutil.copyfile(run_dir(name) / "metrics.csv", logs_dir / f"{name}.csv")
    print(f"wrote {DOCS / 'bf16_loss.md'}", file=sys.stderr)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--only", choices=list(RUNS), action="append", help="these runs only (repeatable)")
    parser.add_argument("--train-only", action="store_true", help="train, do not evaluate or report")
    parser.add_argument("--report-only", action="store_true", help="evaluate the finished runs and report")
    args = parser.parse_args(argv)
    os.chdir(ROOT)
    names = args.only or list(RUNS)
    if not args.report_only:
        for name in names:
            train(name)
    if args.train_only:
        return 0
    from perceptlab.features.base import native_bf16

    results = {"hardware": machine(), "torch": torch.__version__, "native_bf16": native_bf16(), "runs": {}}
    for name in RUNS:
        entry = evaluate(name)
        if entry is not None:
            entry["seconds_per_step"] = seconds_per_step(entry["log"])
            results["runs"][name] = entry
    write_report(results)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
