"""``perceptlab eval sr --model M --data BENCHMARK --scale 4``: the published SR protocol, report and grid.

``perceptlab eval codec --codecs jpeg,webp,... --data DIR --out DIR``: RD curves and BD-rates of image codecs.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from perceptlab.sr.evaluate import SR_METRICS

# What the command writes into --out (write_report's two files and the grid).
REPORT_FILES = ("results.md", "results.json", "grid.png")


def add_parser(subparsers) -> None:
    p = subparsers.add_parser("eval", help="evaluate a model on a benchmark (sr, codec)", description="Evaluate a model.")
    tasks = p.add_subparsers(dest="task", required=True, metavar="TASK")
    sr = tasks.add_parser("sr", help="evaluate a super-resolution model",
                          description="PSNR-Y/SSIM-Y (shaved), LPIPS and DISTS on a Set5/Set14/BSD100-style folder.")  # fmt: skip
    sr.add_argument("--model", required=True, help="bicubic, a shipped model, a model.safetensors, a checkpoint or a run folder")
    sr.add_argument("--data", type=Path, required=True, help="benchmark folder with image_SRF_<scale>/ inside")
    sr.add_argument("--scale", type=int, default=4, help="scale (default 4)")
    sr.add_argument("--metrics", default=",".join(SR_METRICS), help=f"subset of {','.join(SR_METRICS)}")
    sr.add_argument("--out", type=Path,
                    help="report folder, checked before the evaluation (default: eval/<model>-<benchmark>-x<scale>)")  # fmt: skip
    sr.set_defaults(run=run_sr)
    _add_codec_parser(tasks)


def run_sr(args: argparse.Namespace) -> int:
    from perceptlab._files import check_output_dir, check_output_file
    from perceptlab.io import save_image
    from perceptlab.sr.evaluate import comparison_grid, evaluate_sr, markdown_table, write_report
    from perceptlab.sr.models import load_sr_model
    from perceptlab.sr.protocol import load_benchmark

    if args.scale < 1:
        raise ValueError(f"--scale must be a positive integer, got {args.scale}")
    metrics = [m for m in args.metrics.split(",") if m]
    unknown = set(metrics) - set(SR_METRICS)
    if unknown or not metrics:
        raise ValueError(f"--metrics must be a subset of {','.join(SR_METRICS)}, got {args.metrics!r}")
    model = load_sr_model(args.model, scale=args.scale)
    if getattr(model, "scale", args.scale) != args.scale:
        raise ValueError(f"model {args.model} upscales x{model.scale}, not x{args.scale}")
    bench = args.data.resolve().name
    out = args.out or Path("eval") / f"{Path(args.model).stem}-{bench}-x{args.scale}"
    check_output_dir(out)
    for name in REPORT_FILES:
        check_output_file(out / name)
    rows, mean, outputs = evaluate_sr(model, args.data, args.scale, metrics, progress=True)
    info = {"model": args.model, "benchmark": bench, "scale": args.scale}
    write_report(out, f"{args.model} on {bench} x{args.scale}", rows, mean, metrics, info)
    items = load_benchmark(args.data, args.scale)
    save_image(comparison_grid(items, outputs, args.scale, label=Path(args.model).stem), out / "grid.png")
    sys.stdout.write(markdown_table(rows, mean, metrics))
    print(f"report: {', '.join(str(out / name) for name in REPORT_FILES)}", file=sys.stderr)
    return 0


def _add_codec_parser(tasks) -> None:
    from perceptlab.codec.evaluate import DEFAULT_CODECS, DEFAULT_METRICS

    codec = tasks.add_parser("codec", help="rate-distortion curves and BD-rates of image codecs",
                             description="Encode every image at every point of each codec's sweep; real bpp, "
                             "metrics on the decoded images, BD-rates against an anchor.")  # fmt: skip
    codec.add_argument("--codecs", default=",".join(DEFAULT_CODECS),
                       help=f"standard codecs (default {','.join(DEFAULT_CODECS)})")  # fmt: skip
    codec.add_argument("--models", action="append", default=[], metavar="[NAME=]SPEC[,SPEC...]",
                       help="a learned codec curve, one model per RD point (repeat for more curves)")  # fmt: skip
    codec.add_argument("--data", type=Path, required=True, help="folder of images (Kodak, say)")
    codec.add_argument("--out", type=Path,
                       help="report folder, checked before the evaluation (default: eval/codec-<data>)")  # fmt: skip
    codec.add_argument("--anchor", default="jpeg", help="the codec BD-rates are measured against (default jpeg)")
    codec.add_argument("--metrics", default=",".join(DEFAULT_METRICS),
                       help=f"metric registry names (default {','.join(DEFAULT_METRICS)})")  # fmt: skip
    codec.add_argument("--limit", type=int, help="evaluate the first N images only")
    codec.set_defaults(run=run_codec)


def run_codec(args: argparse.Namespace) -> int:
    from perceptlab._files import check_output_dir, check_output_file
    from perceptlab.codec.evaluate import bd_markdown, evaluate_codecs, load_learned, report_files, write_report

    codecs = [c for c in args.codecs.split(",") if c]
    metrics = [m for m in args.metrics.split(",") if m]
    out = args.out or Path("eval") / f"codec-{args.data.resolve().name}"
    check_output_dir(out)
    for name in report_files(metrics):
        check_output_file(out / name)
    learned, missing = [], {}
    for value in args.models:
        name, _, specs = value.rpartition("=")
        specs = [s for s in specs.split(",") if s]
        if not specs:
            raise ValueError(f"--models {value!r} names no model")
        name = name or Path(specs[0]).stem
        models, reason = load_learned(specs, name)
        if reason:
            missing[name] = reason
        learned += models
    # Missing codecs are warned about before the work, and listed in the report.
    result = evaluate_codecs(args.data, codecs, learned, metrics, anchor=args.anchor, limit=args.limit,
                             missing=missing, progress=True)  # fmt: skip
    written = write_report(out, result)
    sys.stdout.write(bd_markdown(result))
    print(f"report: {', '.join(str(p) for p in written)}", file=sys.stderr)
    return 0
