"""``perceptlab upscale INPUT... -o OUT``: super-resolve images of any size, tile by tile."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
from PIL import Image

from perceptlab.io import IMAGE_SUFFIXES, ImageError, list_images, read_image, save_image
from perceptlab.ops.color import match_histograms
from perceptlab.sr.models import DEFAULT_SR_MODEL, load_sr_model
from perceptlab.sr.upscale import upscale_tiled


def add_parser(subparsers) -> None:
    p = subparsers.add_parser(
        "upscale",
        help="upscale images with a super-resolution model",
        description=(
            "Upscale image files or folders of images. With one input file, OUT may be a file name; "
            "otherwise OUT is a folder and each result is OUT/<stem>.png."
        ),
    )
    p.add_argument("inputs", nargs="+", type=Path, metavar="INPUT", help="image file or folder")
    p.add_argument("-o", "--output", type=Path, required=True, metavar="OUT", help="output file or folder")
    p.add_argument("--model", default=DEFAULT_SR_MODEL, help=f"model name or file (default: {DEFAULT_SR_MODEL})")
    p.add_argument("--scale", type=int, default=4, help="scale, for --model bicubic (default 4)")
    p.add_argument("--tile", type=int, default=64, help="tile side in input pixels (default 64)")
    p.add_argument("--overlap", type=int, default=None,
                   help="context around each tile in input pixels (default: the model's receptive field)")  # fmt: skip
    p.add_argument("--match-colors", action="store_true", help="match the output's colour histograms to the input's")
    p.set_defaults(run=run)


def _jobs(inputs: list[Path], output: Path) -> list[tuple[Path, Path]]:
    files: list[Path] = []
    for path in inputs:
        if path.is_dir():
            found = list_images(path)
            if not found:
                raise ImageError(path, "folder holds no image files")
            files += found
        elif path.exists():
            files.append(path)
        else:
            raise ImageError(path, "no such file or folder")
    if len(files) == 1 and not inputs[0].is_dir() and output.suffix.lower() in IMAGE_SUFFIXES:
        return [(files[0], output)]
    if output.suffix.lower() in IMAGE_SUFFIXES:
        raise ImageError(output, "several inputs need an output folder, not a file name")
    return [(f, output / f"{f.stem}.png") for f in files]


def run(args: argparse.Namespace) -> int:
    jobs = _jobs(args.inputs, args.output)
    for _, target in jobs:
        if target.suffix.lower() not in IMAGE_SUFFIXES:
            raise ImageError(target, f"unknown image suffix, expected one of {', '.join(IMAGE_SUFFIXES)}")
    net = load_sr_model(args.model, scale=args.scale)
    scale = int(net.scale)
    for source, target in jobs:
        lr = read_image(source)
        overlap = args.overlap if args.overlap is not None else net.tile_context
        out = upscale_tiled(net, lr, scale, tile=args.tile, overlap=overlap, progress=True)
        if args.match_colors:
            reference = (lr[0].permute(1, 2, 0).numpy() * 255 + 0.5).astype(np.uint8)
            out = match_histograms(out, reference)
        save_image(Image.fromarray(out), target)
        print(f"{source} -> {target} ({out.shape[1]}x{out.shape[0]})", file=sys.stderr)
    return 0
