"""Perceptual optimisation of our codec with VMAF and a learned VMAF proxy (issue 17; Chen et al., ProxIQA).

    python experiments/perceptual_compression/run.py --train proxy_vmaf      # the proxy (train proxy)
    python experiments/perceptual_compression/run.py --train frozen_q3       # codec against the frozen proxy
    python experiments/perceptual_compression/run.py --train alternate_q3    # proxy and codec alternately
    python experiments/perceptual_compression/run.py --train vmaf_q3         # codec against true VMAF
    python experiments/perceptual_compression/run.py --train-all             # all of the above, in that order
    python experiments/perceptual_compression/run.py                         # evaluate on Kodak, write the report

Every codec run fine-tunes the same MSE-trained model (``hyperprior_q3`` of
experiments/compression, the base of our MSE curve) at the same λ, with
``D = α·L_p + (1-α)·255²·MSE``: the three differ only in what ``L_p`` is.
The proxy learns from distorted crops of the training photos (JPEG, WebP,
JPEG 2000, blur, noise, sharpening and our eight MSE codecs' outputs),
labelled with true VMAF. Runs live in ``$PERCEPTLAB_RUNS/perceptual_compression``
(default ``~/perceptlab-runs``) and resume.

The standard codecs' per-image points are not measured again: they come from the
last evaluation of experiments/compression (``runs/compression/eval/results.json``),
made with the same protocol on the same images.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import statistics
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
HERE = Path(__file__).resolve().parent
DATA = ROOT.parent / "shared" / "data"
DOCS = ROOT / "docs" / "experiments"
TRAIN_DATA = [str(DATA / d) for d in ("T91", "BSD200", "BSDS500_test200")]
# The MSE codecs' runs and their evaluation, loaded under a name of its own (both scripts are called run.py).
_spec = importlib.util.spec_from_file_location("compression_run", ROOT / "experiments" / "compression" / "run.py")
mse_runs = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(mse_runs)

ALPHA = 0.8
BASE = "hyperprior_q3"
FINE_STEPS = 2000
PROXY = {
    "data": TRAIN_DATA, "kinds": ["jpeg", "webp", "jpeg2000", "blur", "noise", "sharpen", "codec", "none"],
    "width": 32, "crop": 128, "steps": 3000, "batch_size": 16, "lr": 1e-3, "holdout": 10, "val_patches": 256,
    "sample_every": 500, "ckpt_every": 100, "log_every": 20, "seed": 0, "threads": 1,
}  # fmt: skip
# The three codec runs: what L_p is.
CODEC_RUNS = {
    "frozen": {"distortion": "vmaf_proxy", "alternate": False},
    "alternate": {"distortion": "vmaf_proxy", "alternate": True},
    "vmaf": {"distortion": "vmaf"},
}
METRICS = ("psnr", "ms_ssim", "vmaf", "lpips")


def runs_root() -> Path:
    return Path(os.environ.get("PERCEPTLAB_RUNS", "~/perceptlab-runs")).expanduser() / "perceptual_compression"


def names() -> list[str]:
    return ["proxy_vmaf", *(f"{kind}_{mse_runs.BASE_POINT}" for kind in CODEC_RUNS)]


def codec_recipe(name: str) -> dict:
    kind, point = name.rsplit("_", 1)
    values = mse_runs.recipe(f"hyperprior_{point}") | CODEC_RUNS[kind]
    values |= {"steps": FINE_STEPS, "alpha": ALPHA, "init": str(mse_runs.runs_root() / BASE / "model.safetensors"),
               "sample_every": 500}  # fmt: skip
    if values["distortion"] == "vmaf_proxy":
        values["proxy"] = str(runs_root() / "proxy_vmaf" / "model.safetensors")
    return values


def mse_models() -> list[str]:
    return [str(p) for paths in mse_runs.trained().values() for p in paths]


def train(name: str) -> None:
    if name == "proxy_vmaf":
        from perceptlab.codec.proxy import ProxyTrainConfig, train_proxy

        summary = train_proxy(ProxyTrainConfig.from_dict(PROXY | {"codecs": mse_models()}), runs_root() / name,
                              progress=sys.stderr.isatty())  # fmt: skip
        print(f"{name}: {summary['steps']} steps, {summary['seconds'] / 60:.1f} min, held-back "
              f"SROCC {summary['validation']['srocc']:.3f}, RMSE {summary['validation']['rmse']:.2f}", file=sys.stderr)
        return
    from perceptlab.codec import CodecTrainConfig, train_codec

    values = codec_recipe(name)
    for needed in (values["init"], values.get("proxy")):
        if needed and not Path(needed).is_file():
            raise SystemExit(f"{name} needs {needed}: train it first")
    summary = train_codec(CodecTrainConfig.from_dict(values), runs_root() / name, progress=sys.stderr.isatty())
    print(f"{name}: {summary['steps']} steps, {summary['seconds'] / 60:.1f} min", file=sys.stderr)


def proxies() -> dict[str, Path]:
    """The proxies a model can be judged by: the frozen one, and the one the alternating run ended with."""
    out = {"proxy (frozen)": runs_root() / "proxy_vmaf" / "model.safetensors",
           "proxy (alternated)": runs_root() / f"alternate_{mse_runs.BASE_POINT}" / "proxy.safetensors"}  # fmt: skip
    return {k: v for k, v in out.items() if v.is_file()}


def compared() -> dict[str, Path]:
    """The models of the three-way comparison that are trained, with the MSE model they start from."""
    out = {"mse": mse_runs.runs_root() / BASE / "model.safetensors"}
    out |= {kind: runs_root() / f"{kind}_{mse_runs.BASE_POINT}" / "model.safetensors" for kind in CODEC_RUNS}
    return {k: v for k, v in out.items() if v.is_file()}


def evaluate_point(limit: int | None = None) -> dict:
    """Each compared model on Kodak through real files: bpp, PSNR, MS-SSIM, VMAF, LPIPS and each proxy's VMAF.

    Returns ``{"rows": [{model, image, bpp, metrics..., proxy scores...}], "mean": {model: {...}}}``.
    """
    import torch

    from perceptlab.codec import compress, decompress, load_codec_model
    from perceptlab.codec.proxy import load_proxy
    from perceptlab.io import list_images, read_image
    from perceptlab.metrics.fidelity import color_shift, grid_score
    from perceptlab.metrics.registry import get_metric

    scorers = {m: get_metric(m) for m in METRICS}
    judges = {name: load_proxy(str(path)) for name, path in proxies().items()}
    images = list_images(DATA / "kodak")[:limit]
    rows = []
    for model_name, path in compared().items():
        model = load_codec_model(str(path))
        for image_path in images:
            x = read_image(image_path)
            data = compress(model, x)
            x_hat = decompress(data, model)["image"]
            row = {"model": model_name, "image": image_path.stem, "bpp": 8 * len(data) / (x.shape[-2] * x.shape[-1])}
            with torch.no_grad():
                row |= {m: float(info.compute(x_hat, x)[0]) for m, info in scorers.items()}
                # what VMAF cannot see (it is luma-only, and blind to a fine lattice): the looked-at defects
                row |= {"grid": float(grid_score(x_hat)[0]), "grid_original": float(grid_score(x)[0]),
                        "colour": float(color_shift(x_hat, x)[0])}  # fmt: skip
                row |= {judge: float(proxy(x_hat, x)[0]) for judge, proxy in judges.items()}
            rows.append(row)
            print(f"{model_name} {image_path.stem}: " + ", ".join(f"{k} {v:.4g}" for k, v in row.items()
                                                                   if isinstance(v, float)), file=sys.stderr)  # fmt: skip
    mean = {}
    for model_name in compared():
        group = [r for r in rows if r["model"] == model_name]
        keys = [k for k in group[0] if k not in ("model", "image")]
        mean[model_name] = {k: statistics.fmean(r[k] for r in group) for k in keys}
    return {"rows": rows, "mean": mean, "alpha": ALPHA, "images": [p.stem for p in images]}


FOOLED = 10.0  # VMAF points: a proxy scoring a model's images this much above true VMAF is fooled
PICTURE_IMAGES = ("kodim04", "kodim14", "kodim23")


def fooled(mean: dict) -> dict[str, bool]:
    """Per proxy, whether it scores the model's images ``FOOLED`` points or more above true VMAF."""
    return {k: mean[k] - mean["vmaf"] >= FOOLED for k in mean if k.startswith("proxy")}


def picture(result: dict) -> Path:
    """Decoded crops of every compared model beside the original, each labelled with its proxy and true VMAF."""
    from perceptlab.codec import compress, decompress, load_codec_model
    from perceptlab.io import read_image
    from perceptlab.plot.sheets import crop_sheet

    models = {name: load_codec_model(str(path)) for name, path in compared().items()}
    rows = []
    for image in PICTURE_IMAGES:
        x = read_image(DATA / "kodak" / f"{image}.png")
        row = {}
        for name, model in models.items():
            scores = next(r for r in result["rows"] if r["model"] == name and r["image"] == image)
            judge = scores.get("proxy (frozen)")
            label = f"{name}: VMAF {scores['vmaf']:.0f}" + (f", proxy {judge:.0f}" if judge is not None else "")
            row[label + f", {scores['bpp']:.2f} bpp"] = decompress(compress(model, x), model)["image"]
        row["original"] = x
        rows.append((image, row))
    path = DOCS / "perceptual_compression_crops.jpg"
    crop_sheet(rows, crop=128, zoom=2).save(path, quality=92)
    return path


def mse_curve_at(bpp: float, metric: str) -> float | None:
    """Our MSE hyperprior curve's ``metric`` at ``bpp`` (linear in log-rate between its Kodak points, from the
    last evaluation of experiments/compression), or ``None`` outside its range or without that evaluation."""
    import math

    saved = mse_runs.runs_root() / "eval" / "results.json"
    if not saved.is_file():
        return None
    points = json.loads(saved.read_text())["rd"].get("ours_hyperprior", [])
    for lo, hi in zip(points, points[1:]):
        if lo["bpp"] <= bpp <= hi["bpp"]:
            t = (math.log(bpp) - math.log(lo["bpp"])) / (math.log(hi["bpp"]) - math.log(lo["bpp"]))
            return lo[metric] + t * (hi[metric] - lo[metric])
    return None


def report(result: dict, picture_path: Path | None) -> str:
    mean = result["mean"]
    judges = [k for k in next(iter(mean.values())) if k.startswith("proxy")]
    cols = ["bpp", *METRICS, *judges, *(k for k in ("grid", "colour") if k in next(iter(mean.values())))]
    lines = ["# Perceptual optimisation of the learned codec (VMAF, a VMAF proxy)", "",
             f"Three fine-tunings of our MSE-trained `{BASE}` codec at its λ "
             f"({mse_runs.LAMBDAS[mse_runs.BASE_POINT]}), {FINE_STEPS} steps each, with "
             f"D = {ALPHA}·L_p + {1 - ALPHA:.1f}·255²·MSE (perceptlab.codec.distortion): L_p from the frozen proxy, "
             "from the proxy trained alternately with the codec (Chen et al.), or from VMAF itself "
             "(vmaf-torch, differentiable). Kodak, 24 images, real files; VMAF v0.6.1 on luma, each image a "
             "one-frame still. A proxy column is that proxy's VMAF estimate of the same decoded images.", "",
             "| model | " + " | ".join(cols) + " | fooled |", "|---|" + "---:|" * len(cols) + "---|"]  # fmt: skip
    for name, m in mean.items():
        flags = [judge for judge, yes in fooled(m).items() if yes]
        lines.append(f"| {name} | " + " | ".join(f"{m[c]:.4g}" for c in cols) + f" | {', '.join(flags) or 'no'} |")
    lines += ["", f"A proxy counts as fooled when its mean estimate is {FOOLED:.0f} or more VMAF points above "
                  "true VMAF on the same images. `grid`: `perceptlab.metrics.fidelity.grid_score` (a pattern fixed "
                  "to the pixel grid, period 4; the originals score "
                  f"{statistics.fmean(r['grid_original'] for r in result['rows'] if 'grid_original' in r) if any('grid_original' in r for r in result['rows']) else float('nan'):.3f}); "
                  "`colour`: the largest shift of a channel's mean, in 8-bit levels. VMAF sees neither.", "",
              "The fine-tuned models land at a lower rate than the model they start from, so each is set against "
              "our MSE curve (the four MSE hyperprior models, linear in log-rate) at its own mean bpp:", "",
              "| model | bpp | VMAF | MSE curve's VMAF there | PSNR | MSE curve's PSNR there | LPIPS | MSE curve's LPIPS there |",
              "|---|---:|---:|---:|---:|---:|---:|---:|"]  # fmt: skip
    for name, m in mean.items():
        if name == "mse":
            continue
        ref = {k: mse_curve_at(m["bpp"], k) for k in ("vmaf", "psnr", "lpips")}
        cell = {k: "outside" if v is None else f"{v:.4g}" for k, v in ref.items()}
        lines.append(f"| {name} | {m['bpp']:.3f} | {m['vmaf']:.4g} | {cell['vmaf']} | {m['psnr']:.4g} | "
                     f"{cell['psnr']} | {m['lpips']:.4g} | {cell['lpips']} |")
    lines.append("")
    if picture_path:
        lines += [f"![decoded crops]({picture_path.name})", ""]
    notes = HERE / "notes.md"
    if notes.is_file():
        lines += [notes.read_text()]
    return "\n".join(lines) + "\n"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--train", choices=names(), help="train (or resume) one run, then stop")
    parser.add_argument("--train-all", action="store_true", help="train (or resume) every run in order")
    parser.add_argument("--limit", type=int, help="evaluate the first N Kodak images only (no picture)")
    args = parser.parse_args()
    import torch

    torch.set_num_threads(1)
    if args.train or args.train_all:
        for name in [args.train] if args.train else names():
            try:
                train(name)
            except KeyboardInterrupt as exc:
                print(f"{name}: {exc}", file=sys.stderr)
                return getattr(exc, "exit_code", 130)
        return 0
    result = evaluate_point(args.limit)
    DOCS.mkdir(parents=True, exist_ok=True)
    (DOCS / "perceptual_compression.json").write_text(json.dumps(result, indent=1) + "\n")
    picture_path = picture(result) if not args.limit else None
    (DOCS / "perceptual_compression.md").write_text(report(result, picture_path))
    print(f"wrote {DOCS / 'perceptual_compression.md'}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
