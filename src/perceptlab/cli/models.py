"""``perceptlab models [--task sr|style] [--format table|json]``: the models shipped with perceptlab."""

from __future__ import annotations

import argparse
import json
import sys

TASKS = ("sr", "style", "codec", "deepsim")


def add_parser(subparsers) -> None:
    p = subparsers.add_parser(
        "models", help="list the shipped models (SR, style, codec and DeePSiM)",
        description="List the models shipped with perceptlab, trained by its own trainers: task, scale or style, "
                    "a one-line summary from the model card (NAME.md beside the weights) and the file size. "
                    "Use a name with --model of upscale, stylize, eval sr, compress, reconstruct or invert.",
    )  # fmt: skip
    p.add_argument("--task", choices=TASKS, help="only the models of this task")
    p.add_argument("--format", choices=("table", "json"), default="table", help="output format (default: table)")
    p.set_defaults(run=run)


def shipped() -> list[dict]:
    """Every shipped model's :func:`perceptlab.training.model_info`, SR first, the default SR models (one per
    scale) marked."""
    from perceptlab.codec.models import shipped_codec_models
    from perceptlab.deepsim.models import shipped_deepsim_models
    from perceptlab.sr.models import DEFAULT_SR_MODELS, shipped_sr_models
    from perceptlab.style.models import shipped_style_models
    from perceptlab.training import model_info

    rows = []
    for path in [*shipped_sr_models().values(), *shipped_style_models().values(), *shipped_codec_models().values(),
                 *shipped_deepsim_models().values()]:  # fmt: skip
        info = model_info(path)
        info["default"] = info["name"] in DEFAULT_SR_MODELS.values()
        rows.append(info)
    return rows


def run(args: argparse.Namespace) -> int:
    rows = [r for r in shipped() if args.task is None or r["task"] == args.task]
    if args.format == "json":
        sys.stdout.write(json.dumps(rows, indent=2) + "\n")
        return 0
    whats = [f"x{r['scale']}" if "scale" in r else r.get("style", r.get("kind", "")) for r in rows]
    name_width, what_width = (max([22, *(len(v) for v in values)]) for values in ([r["name"] for r in rows], whats))
    for r, what in zip(rows, whats):
        mark = " (default)" if r["default"] else ""
        print(f"{r['name']:{name_width}s} {r['task']:7s} {what:{what_width}s} {r['size_bytes'] / 1e6:5.1f} MB  "
              f"{r['summary']}{mark}")
    return 0
