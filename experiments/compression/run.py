"""Our learned codecs against the standard ones on Kodak: RD curves and BD-rates (issue 16).

    python experiments/compression/run.py --train bls2017_q3     # train (resuming) one rate point
    python experiments/compression/run.py --train-all            # every point, base models first
    python experiments/compression/run.py                        # evaluate what is trained, write the report
    python experiments/compression/run.py --ship                 # ... and copy the finished models into the package
    python experiments/compression/run.py --saved                # the report again from the last evaluation
    python experiments/compression/run.py --reuse-standard       # our models measured again, the standard
                                                                 # codecs' rows taken from the last evaluation

Every architecture has a base model at the middle rate (``q3``, CompressAI's
third MSE level) trained from scratch; the other rate points are fine-tuned
from it (``train codec --init``), which costs a fraction of a training from
scratch. The budget is a CPU's, far from the papers' (about a million steps
on a GPU): the report says what that costs in BD-rate.

Runs live in ``$PERCEPTLAB_RUNS/compression/NAME`` (default ``~/perceptlab-runs``)
and resume. Outputs: ``docs/experiments/compression.md``, ``compression.json``,
``compression_rd_*.svg``. Training data: every training photo in
``../shared/data`` but Kodak (the test set), the SR test sets and the style
images: T91, BSD200, BSDS500_test200.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
HERE = Path(__file__).resolve().parent
DATA = ROOT.parent / "shared" / "data"
DOCS = ROOT / "docs" / "experiments"
MODELS_DIR = ROOT / "src" / "perceptlab" / "models"
LAMBDAS = {"q1": 0.0018, "q2": 0.0035, "q3": 0.0067, "q4": 0.013}  # CompressAI's first four MSE levels
ARCHS = ("bls2017", "hyperprior")
BASE_POINT = "q3"
# Shared by every run; the base models get BASE_STEPS from scratch, the others FINE_STEPS from their base.
COMMON = {
    "N": 64, "M": 96, "distortion": "mse", "batch_size": 8, "crop": 128, "lr": 3e-4,
    "data": [str(DATA / d) for d in ("T91", "BSD200", "BSDS500_test200")],
    "sample_every": 1000, "ckpt_every": 100, "log_every": 20, "seed": 0, "threads": 1,
}  # fmt: skip
# The first evaluation (docs/experiments/compression.md) had base models of 8000 steps, loss still falling: the
# bases went on to 30 000 (resumed). The hyperprior's loss was then flat over its last 10 000 steps at lr 3e-4, so
# the learning rate falls tenfold for the last 3000 steps of a base (BASE_DECAY) and the last 500 of a fine-tuned
# point (FINE_DECAY), as Balle et al. end their trainings. The other points are fine-tuned again from each longer
# base (move their old run folders away first, since a finished run is not retrained).
BASE_STEPS, FINE_STEPS = 33000, 2000
BASE_DECAY, FINE_DECAY, DECAY = 30000, 1500, 0.1
CODECS = ("jpeg", "webp", "avif", "jpeg2000", "jpegxl", "hevc")
METRICS = ("psnr", "ms_ssim", "vmaf", "lpips")


def runs_root() -> Path:
    return Path(os.environ.get("PERCEPTLAB_RUNS", "~/perceptlab-runs")).expanduser() / "compression"


def names() -> list[str]:
    """Every run, base models first."""
    return [f"{a}_{BASE_POINT}" for a in ARCHS] + [f"{a}_{q}" for a in ARCHS for q in LAMBDAS if q != BASE_POINT]


def recipe(name: str) -> dict:
    arch, point = name.rsplit("_", 1)
    values = COMMON | {"arch": arch, "lambda_": LAMBDAS[point], "lr_gamma": DECAY}
    if point == BASE_POINT:
        return values | {"steps": BASE_STEPS, "lr_milestones": [BASE_DECAY]}
    return values | {"steps": FINE_STEPS, "lr_milestones": [FINE_DECAY],
                     "init": str(weights(f"{arch}_{BASE_POINT}"))}  # fmt: skip


def weights(name: str) -> Path:
    """A rate point's weights: its run's ``model.safetensors``, or where that run folder is gone (a new machine) and
    the point shipped, the shipped copy (``codec_NAME.safetensors`` in the package: the same model, compacted)."""
    run = runs_root() / name / "model.safetensors"
    shipped = MODELS_DIR / f"codec_{name}.safetensors"
    return shipped if not run.is_file() and shipped.is_file() else run


def train(name: str, steps: int | None = None) -> None:
    from perceptlab.codec import CodecTrainConfig, train_codec

    if not steps and not (runs_root() / name / "checkpoint.pt").is_file() and weights(name).parent == MODELS_DIR:
        print(f"{name}: trained and shipped ({weights(name).name}); its run folder is not here, not trained again",
              file=sys.stderr)  # fmt: skip
        return
    values = recipe(name)
    if steps:
        values["steps"] = steps
    if values.get("init") and not Path(values["init"]).is_file():
        raise SystemExit(f"{name} starts from {values['init']}: train its base model first")
    summary = train_codec(CodecTrainConfig.from_dict(values), runs_root() / name, progress=sys.stderr.isatty())
    print(f"{name}: {summary['steps']} steps, {summary['seconds'] / 60:.1f} min", file=sys.stderr)


def trained() -> dict[str, list[Path]]:
    """Finished models by architecture, in rate order."""
    out: dict[str, list[Path]] = {}
    for arch in ARCHS:
        paths = [weights(f"{arch}_{q}") for q in LAMBDAS]
        out[arch] = [p for p in paths if p.is_file()]
    return out


def shipping_copy(weights: Path) -> Path:
    """The compact copy of a run's ``model.safetensors`` that ships (float16 transform weights, int32 tables:
    :func:`perceptlab.codec.models.compact_model_file`), ``RUN/shipped.safetensors``, made again when the weights
    are newer. The report measures these copies, so the cards' numbers are those of the shipped files."""
    from perceptlab.codec.models import compact_model_file

    if weights.parent == MODELS_DIR:
        return weights  # a shipped file already
    copy = weights.with_name("shipped.safetensors")
    if not copy.is_file() or copy.stat().st_mtime < weights.stat().st_mtime:
        sizes = compact_model_file(weights, copy)
        print(f"{copy}: {sizes['bytes_before'] / 1e6:.1f} MB -> {sizes['bytes_after'] / 1e6:.1f} MB (largest weight "
              f"change {sizes['max_weight_change']:.1e} of its tensor's peak)", file=sys.stderr)  # fmt: skip
    return copy


def finished(arch: str) -> tuple[bool, str]:
    """Has ``arch`` every rate point of the current recipe: the base at its full steps, each other point
    fine-tuned to its steps from that base (after it was finished)? And if not, why not."""
    from perceptlab.training import load_model_file

    base = weights(f"{arch}_{BASE_POINT}")
    for q in [BASE_POINT, *(q for q in LAMBDAS if q != BASE_POINT)]:  # the base first
        name = f"{arch}_{q}"
        path = weights(name)
        if not path.is_file():
            return False, f"{name} is not trained"
        steps = int(load_model_file(path)[1].get("steps", 0))
        if steps < recipe(name)["steps"]:
            return False, f"{name} has {steps} of its {recipe(name)['steps']} steps"
        if q != BASE_POINT and base.parent != MODELS_DIR and path.stat().st_mtime < base.stat().st_mtime:
            return False, f"{name} was fine-tuned from an earlier {arch}_{BASE_POINT}"
    return True, ""


# The last whole evaluation, per image (about 40 min of CPU to measure again), kept in git: a run folder lives only
# as long as its machine, and experiments/perceptual_compression builds its curves on these rows.
KEPT_RESULTS = HERE / "kept" / "results.json.gz"


def keep_results(path: Path) -> None:
    import gzip

    KEPT_RESULTS.parent.mkdir(parents=True, exist_ok=True)
    tmp = KEPT_RESULTS.with_name(KEPT_RESULTS.name + ".tmp")
    with gzip.GzipFile(tmp, "wb", mtime=0) as handle:  # mtime 0: the same rows give the same bytes
        handle.write(path.read_bytes())
    os.replace(tmp, KEPT_RESULTS)


def saved_results() -> dict | None:
    """The last evaluation's result (rows per image included): the runs folder's ``eval/results.json``, else the
    copy kept in git (:data:`KEPT_RESULTS`), else ``None``."""
    import gzip

    path = runs_root() / "eval" / "results.json"
    if path.is_file():
        return json.loads(path.read_text())
    if KEPT_RESULTS.is_file():
        return json.loads(gzip.decompress(KEPT_RESULTS.read_bytes()))
    return None


def evaluate(limit: int | None, saved: dict | None = None) -> dict:
    """Every trained model and standard codec on Kodak; with ``saved`` (an earlier result), the standard
    codecs' rows are taken from it instead of measured again (same protocol, same images)."""
    from perceptlab.codec.evaluate import bd_table, evaluate_codecs, load_learned, rd_points

    learned = []
    for arch, paths in trained().items():
        if paths:
            # a shipped file by its shipped name (what a user passes to --model), a run's by its path
            specs = [p.stem if p.parent == MODELS_DIR else str(shipping_copy(p)) for p in paths]
            models, reason = load_learned(specs, name=f"ours_{arch}")
            if reason:
                raise SystemExit(reason)
            learned += models
    if saved is None:
        return evaluate_codecs(DATA / "kodak", CODECS, learned=learned, metrics=METRICS, limit=limit,
                               progress=sys.stderr.isatty())  # fmt: skip
    ours = evaluate_codecs(DATA / "kodak", (), learned=learned, metrics=METRICS, limit=limit,
                           anchor=next(iter({m.name: m for m in learned})), progress=sys.stderr.isatty())  # fmt: skip
    if set(ours["images"]) - set(saved["images"]) or saved["metrics"] != ours["metrics"] or saved["protocol"] != ours["protocol"]:
        raise SystemExit("the saved evaluation has other images, metrics or protocol: evaluate everything again")
    standard = [c for c in saved["codecs"] if c in CODECS]
    rows = [r for r in saved["rows"] if r["codec"] in standard and r["image"] in ours["images"]] + ours["rows"]
    result = ours | {"codecs": {c: saved["codecs"][c] for c in standard} | ours["codecs"], "anchor": saved["anchor"],
                     "missing": saved["missing"], "rows": rows,
                     "standard_from": "an earlier evaluation (experiments/compression/run.py --reuse-standard)"}  # fmt: skip
    result["rd"] = {c: rd_points(result["rows"], c, METRICS) for c in result["codecs"]}
    return result | bd_table(result["rd"], result["anchor"], METRICS, saved["bd_method"], result["missing"])


def model_card(name: str, result: dict) -> str:
    from perceptlab.training import load_model_file

    arch, point = name.rsplit("_", 1)
    _, meta = load_model_file(runs_root() / name / "model.safetensors")
    r = recipe(name)
    # evaluate_codecs labels a learned codec's points ("param") by the spec it was loaded from.
    spec = str(runs_root() / name / "shipped.safetensors")
    rows = [row for row in result["rows"] if row["codec"] == f"ours_{arch}" and row["param"] == spec]
    mean = {m: sum(row[m] for row in rows) / len(rows) for m in ("bpp", *METRICS)} if rows else {}
    lines = [f"# codec_{name}", "",
             f"Learned image codec, `{arch}` (Ballé et al. {'2017, factorised prior' if arch == 'bls2017' else '2018, scale hyperprior'}), "
             f"N={r['N']}, M={r['M']}, MSE-optimised at lambda {r['lambda_']} (`{point}`).", "",
             "- stored compact: convolution weights in float16, coding tables in integers (computed in float32 and "
             "int64); the numbers below are this file's",
             f"- training data: T91, BSD200, BSDS500_test200 (never Kodak); random {r['crop']} px crops, batch "
             f"{r['batch_size']}, Adam lr {r['lr']}" + (f", {1 / r['lr_gamma']:.0f} times lower after step "
             f"{r['lr_milestones'][0]}" if r.get("lr_milestones") else ""),
             f"- steps: {meta.get('steps')}" + (f", fine-tuned from `codec_{arch}_{BASE_POINT}`" if r.get("init") else
                                                 " from scratch")
             + f"; training wall time {float(meta.get('train_seconds', 0)) / 60:.0f} min on one CPU thread",
             "- hardware: the 2-core CPU machines of our sessions (one thread, sharing the machine with other "
             f"trainings: the wall time is an upper bound); evaluated on {result['machine']}",
             f"- use: `perceptlab compress photo.png -o photo.plc --model codec_{name}`, then "
             "`perceptlab decompress photo.plc -o photo.png`",
             f"- picture: `docs/experiments/compression_crops.jpg` (decoded Kodak crops of the `{BASE_POINT}` models "
             "next to JPEG and AVIF at the nearest rate); RD curves and BD-rates: `docs/experiments/compression.md`",
             "- recipe: `experiments/compression/run.py`", ""]  # fmt: skip
    if mean:
        lines += ["Kodak (24 images, real .plc files): " + ", ".join(f"{k} {v:.4g}" for k, v in mean.items()), ""]
    return "\n".join(lines)


PICTURE_IMAGES = ("kodim04", "kodim14", "kodim23")  # a face, a busy outdoor scene, smooth colour


def pictures(point: str = BASE_POINT) -> Path | None:
    """Decoded crops of our ``point`` models next to JPEG and AVIF at the nearest rate, and the original.

    Every image goes through a real file; each standard codec takes the setting of its sweep whose
    file size is nearest to our hyperprior model's on that image. Writes ``compression_crops.jpg``.
    """
    import torch

    from perceptlab.codec import compress, decompress, load_codec_model
    from perceptlab.codec.classic import get_codec
    from perceptlab.io import read_image
    from perceptlab.plot.sheets import crop_sheet

    models = {arch: weights(f"{arch}_{point}") for arch in ARCHS}
    if not all(p.is_file() for p in models.values()):
        return None
    models = {arch: load_codec_model(str(shipping_copy(p))) for arch, p in models.items()}
    rows = []
    for name in PICTURE_IMAGES:
        x = read_image(DATA / "kodak" / f"{name}.png")
        pixels = x.shape[-2] * x.shape[-1]
        row, target = {}, None
        for arch in ("hyperprior", "bls2017"):
            data = compress(models[arch], x)
            bpp = 8 * len(data) / pixels
            target = target or bpp
            row[f"{arch} {bpp:.2f} bpp"] = decompress(data, models[arch])["image"]
        rgb = (x[0].permute(1, 2, 0).numpy() * 255 + 0.5).astype("uint8")
        for codec_name in ("jpeg", "avif"):
            codec = get_codec(codec_name)
            if not codec.available():
                continue
            coded = {q: codec.encode(rgb, q) for q in codec.params}
            q = min(coded, key=lambda q: abs(8 * len(coded[q]) / pixels - target))
            decoded = torch.from_numpy(codec.decode(coded[q]).copy()).permute(2, 0, 1)[None].float() / 255
            row[f"{codec_name} {8 * len(coded[q]) / pixels:.2f} bpp"] = decoded
        row["original"] = x
        rows.append((name, row))
    path = DOCS / "compression_crops.jpg"
    crop_sheet(rows, crop=128, zoom=2).save(path, quality=92)
    return path


# The targets: (codec, metric, what its BD-rate against JPEG must be at or below, where it comes from).
TARGETS = (("ours_bls2017", "psnr", -45.0, "Ballé 2017's published MSE curve"),
           ("ours_hyperprior", "psnr", "avif", "AVIF (aom), measured here"))  # fmt: skip


def targets(result: dict) -> str:
    """The issue's targets against this evaluation, as a markdown table."""
    bd = result["bd_rate"]
    lines = ["## Targets", "", "| codec | metric | BD-rate | target | met |", "|---|---|---:|---:|---|"]
    for codec, metric, goal, source in TARGETS:
        ours = bd.get(codec, {}).get(metric)
        bound = bd.get(goal, {}).get(metric) if isinstance(goal, str) else goal
        met = "yes" if ours is not None and bound is not None and ours <= bound else "no"
        shown = "missing" if ours is None else f"{ours:+.1f} %"
        lines.append(f"| {codec} | {metric} | {shown} | {'?' if bound is None else f'{bound:+.1f} %'} ({source}) | {met} |")
    return "\n".join(lines) + "\n"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--train", choices=names(), help="train (or resume) one run, then stop")
    parser.add_argument("--train-all", action="store_true", help="train (or resume) every run, base models first")
    parser.add_argument("--steps", type=int, help="with --train: the step budget")
    parser.add_argument("--limit", type=int, help="evaluate the first N Kodak images only")
    parser.add_argument("--ship", action="store_true", help="after the report, copy the finished models into the package")
    parser.add_argument("--pictures", action="store_true", help="only write the decoded-crops picture")
    parser.add_argument("--reuse-standard", action="store_true", help="measure our models only; the standard "
                        "codecs' rows come from the last evaluation saved in the runs folder")
    parser.add_argument("--saved", action="store_true", help="write the report (and ship) from the last evaluation "
                        "saved in the runs folder instead of evaluating again")
    args = parser.parse_args()
    import torch

    torch.set_num_threads(1)
    if args.train or args.train_all:
        for name in [args.train] if args.train else names():
            try:
                train(name, args.steps)
            except KeyboardInterrupt as exc:
                print(f"{name}: {exc}", file=sys.stderr)
                return getattr(exc, "exit_code", 130)
        return 0
    if args.pictures:
        print(f"wrote {pictures()}", file=sys.stderr)
        return 0
    from perceptlab.codec.evaluate import write_report

    out = runs_root() / "eval"
    if args.saved or args.reuse_standard:
        saved = saved_results()
        if saved is None:
            raise SystemExit(f"{out / 'results.json'}: no saved evaluation; run without --saved or "
                             "--reuse-standard first")
        result = saved if args.saved else evaluate(args.limit, saved)
    else:
        result = evaluate(args.limit)
    written = write_report(out, result, title="Learned and standard codecs on Kodak")
    if not args.limit:
        keep_results(out / "results.json")
    DOCS.mkdir(parents=True, exist_ok=True)
    for path in written:
        if path.suffix == ".svg":
            shutil.copyfile(path, DOCS / f"compression_{path.name}")
    report = (out / "results.md").read_text().replace("](rd_", "](compression_rd_")
    # a learned codec's points are named by their run folder, not by this machine's path to it
    report = report.replace(f"{runs_root()}/", "runs/").replace("/shipped.safetensors", "")
    picture = pictures()
    if picture:
        report += (f"\n## Decoded crops\n\nOur `{BASE_POINT}` models next to JPEG and AVIF at the nearest rate of their "
                   f"sweeps, from real files, 128-pixel crops at 2x: ![decoded crops]({picture.name})\n")
    if result.get("standard_from"):
        report += (f"\nThe standard codecs' rows come from {result['standard_from']}, measured with the same protocol on "
                   "the same images; our models were measured again.\n")
    report += "\n" + targets(result) + "\n" + (HERE / "notes.md").read_text()
    (DOCS / "compression.md").write_text(report)
    (DOCS / "compression.json").write_text(json.dumps({k: v for k, v in result.items() if k != "rows"},
                                                      indent=1, default=str) + "\n")  # fmt: skip
    print(f"wrote {DOCS / 'compression.md'}", file=sys.stderr)
    if args.ship:
        for arch, paths in trained().items():
            ready, why = finished(arch)
            if not ready:
                print(f"not shipping {arch}: {why}", file=sys.stderr)
                continue
            for path in paths:
                if path.parent == MODELS_DIR:
                    print(f"{path.name}: shipped already (its run folder is not here)", file=sys.stderr)
                    continue
                name = path.parent.name
                shutil.copyfile(shipping_copy(path), MODELS_DIR / f"codec_{name}.safetensors")
                (MODELS_DIR / f"codec_{name}.md").write_text(model_card(name, result))
                print(f"shipped codec_{name}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
