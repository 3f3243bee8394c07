"""``perceptlab upscale INPUT... -o OUT``: super-resolve images of any size, tile by tile."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
from PIL import Image

from perceptlab.cli._jobs import add_keep_going, image_jobs, raise_if_failed, run_each
from perceptlab.io import is_grayscale, read_image, save_image
from perceptlab.ops.color import match_histograms
from perceptlab.sr.models import DEFAULT_SR_MODEL, default_sr_model, load_sr_model
from perceptlab.tiling import upscale_tiled

# The factor of --model bicubic when --scale is not given.
BICUBIC_SCALE = 4


def add_parser(subparsers) -> None:
    p = subparsers.add_parser(
        "upscale",
        help="upscale images with a super-resolution model",
        description=(
            "Upscale image files or folders of images. With one input file, OUT may be a file name with an image "
            "suffix; otherwise OUT is a folder and each result is OUT/<stem>.png. A grayscale input gives a "
            "grayscale output; 16-bit inputs give 8-bit outputs; transparency is composited on white and not kept. "
            "Every output is checked before any work and written whole or not at all."
        ),
    )
    p.add_argument("inputs", nargs="+", type=Path, metavar="INPUT", help="image file or folder")
    p.add_argument("-o", "--output", type=Path, required=True, metavar="OUT", help="output file or folder")
    p.add_argument("--model", default=None, help="a shipped model (list them with `perceptlab models --task sr`), "
                   "a model.safetensors, checkpoint.pt or run folder, or bicubic (default: the shipped default of "
                   f"--scale, {DEFAULT_SR_MODEL} at x4)")  # fmt: skip
    p.add_argument("--scale", type=int, default=None,
                   help=f"upscaling factor: without --model, the shipped default of that scale; for --model bicubic "
                        f"(default {BICUBIC_SCALE}); a trained model has its own factor, and asking it for another is "
                        "an error")  # fmt: skip
    p.add_argument("--tile", type=int, default=64, help="tile side in input pixels (default 64)")
    p.add_argument("--overlap", type=int, default=None,
                   help="context around each tile in input pixels (default: the model's receptive field)")  # fmt: skip
    p.add_argument("--match-colors", action="store_true", help="match the output's colour histograms to the input's")
    add_keep_going(p)
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    if args.tile < 1 or (args.overlap is not None and args.overlap < 0):
        raise ValueError(f"--tile must be at least 1 and --overlap at least 0, got {args.tile} and {args.overlap}")
    if args.scale is not None and args.scale < 1:
        raise ValueError(f"--scale must be a positive integer, got {args.scale}")
    if args.model is None:
        args.model = default_sr_model(args.scale)
    jobs = image_jobs(args.inputs, args.output)
    net = load_sr_model(args.model, scale=args.scale or BICUBIC_SCALE)
    scale = int(net.scale)
    if args.scale is not None and args.scale != scale:
        raise ValueError(f"--scale {args.scale}: model {args.model} upscales x{scale} only "
                         "(--scale chooses the factor of --model bicubic)")  # fmt: skip
    overlap = args.overlap if args.overlap is not None else net.tile_context

    def upscale(job: tuple[Path, Path]) -> None:
        source, target = job
        lr = read_image(source)
        out = upscale_tiled(net, lr, scale, tile=args.tile, overlap=overlap, progress=True)
        if args.match_colors:
            reference = (lr[0].permute(1, 2, 0).numpy() * 255 + 0.5).astype(np.uint8)
            out = match_histograms(out, reference)
        image = Image.fromarray(out)
        if is_grayscale(source):  # the network saw three equal channels; its output is gray up to float error
            image = image.convert("L")
        save_image(image, target)
        print(f"{source} -> {target} ({out.shape[1]}x{out.shape[0]})", file=sys.stderr)

    failed = run_each(jobs, upscale, args.keep_going, name=lambda job: str(job[0]))
    raise_if_failed(failed, len(jobs))
    return 0
