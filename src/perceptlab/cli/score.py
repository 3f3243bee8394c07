"""``perceptlab score REFERENCE DISTORTED``: full-reference metrics of two images or two folders."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from perceptlab import report
from perceptlab._files import atomic_write_text, check_output_file
from perceptlab.cli._jobs import add_keep_going, raise_if_failed, run_each
from perceptlab.io import ImageError, pair_by_stem
from perceptlab.score import DEFAULT_METRICS, check_scorable, score_pair, scorable_metrics, summarize


def add_parser(subparsers) -> None:
    p = subparsers.add_parser(
        "score",
        help="score distorted images against references",
        description=(
            "Score DISTORTED against REFERENCE: two image files, or two folders whose images are paired "
            "by file stem. Metrics: " + ", ".join(scorable_metrics()) + "."
        ),
    )
    p.add_argument("reference", type=Path, help="reference image file or folder")
    p.add_argument("distorted", type=Path, help="distorted image file or folder")
    p.add_argument(
        "--metrics", default=",".join(DEFAULT_METRICS),
        help=f"comma-separated metric names (default: {','.join(DEFAULT_METRICS)})",
    )  # fmt: skip
    p.add_argument("--format", choices=tuple(report.FORMATS), default="table", help="output format (default: table)")
    p.add_argument("--output", "-o", type=Path, metavar="FILE",
                   help="write the result to this file instead of standard output (checked before scoring)")  # fmt: skip
    p.add_argument("--resize", action="store_true", help="resize a distorted image whose size differs (bicubic)")
    add_keep_going(p, "pair")
    p.set_defaults(run=run)


def _pairs(reference: Path, distorted: Path) -> tuple[list[tuple[Path, Path]], dict[str, list[str]]]:
    for path in (reference, distorted):
        if not path.exists():
            raise ImageError(path, "no such file or folder")
    if reference.is_dir() != distorted.is_dir():
        raise ImageError(distorted, "REFERENCE and DISTORTED must both be files or both be folders")
    if not reference.is_dir():
        return [(reference, distorted)], {"reference": [], "distorted": []}
    pairs, lone_ref, lone_dist = pair_by_stem(reference, distorted)
    if not pairs:
        raise ImageError(distorted, f"no image shares a file name (without suffix) with an image in {reference}")
    return pairs, {"reference": [str(p) for p in lone_ref], "distorted": [str(p) for p in lone_dist]}


def run(args: argparse.Namespace) -> int:
    metrics = [m.strip() for m in args.metrics.split(",") if m.strip()]
    if not metrics:
        raise ValueError("--metrics needs at least one metric name")
    for name in metrics:
        check_scorable(name)
    pairs, unmatched = _pairs(args.reference, args.distorted)
    if args.output:
        check_output_file(args.output)
    for side, files in unmatched.items():
        if files:
            print(f"perceptlab: {len(files)} {side} file(s) without partner: {', '.join(files)}", file=sys.stderr)
    rows: list[dict] = []
    failed = run_each(pairs, lambda pair: rows.append(score_pair(*pair, metrics, resize=args.resize)),
                      args.keep_going, name=lambda pair: str(pair[1]), what="pairs", progress="scoring")  # fmt: skip
    if rows:  # with --keep-going, the pairs that were scored; the failures set the exit status
        _write(args, rows, metrics, unmatched)
    raise_if_failed(failed, len(pairs), "pairs")
    return 0


def _write(args: argparse.Namespace, rows: list[dict], metrics: list[str], unmatched: dict) -> None:
    mean = summarize(rows, metrics)
    if args.format == "json":
        text = report.to_json(rows, mean, metrics, unmatched)
    else:
        text = report.FORMATS[args.format](rows, mean, metrics)
    if args.output:
        atomic_write_text(args.output, text)
    else:
        sys.stdout.write(text)
