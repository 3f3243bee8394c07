"""``perceptlab compress IMAGE... -o OUT`` and ``perceptlab decompress FILE... -o OUT``: the learned codec on files."""

from __future__ import annotations

import argparse
from pathlib import Path

from perceptlab._files import atomic_write
from perceptlab.cli._jobs import add_keep_going, file_jobs, raise_if_failed, run_each
from perceptlab.io import IMAGE_SUFFIXES, ImageError, list_images

SUFFIX = ".plc"


def add_parser(subparsers) -> None:
    p = subparsers.add_parser(
        "compress",
        help="compress images with a learned codec into .plc files",
        description=(
            "Compress image files or folders of images with a learned codec (Ballé et al.'s bls2017 or scale "
            "hyperprior). With one input file, OUT may be a file name ending in .plc; otherwise OUT is a folder "
            "and each result is OUT/<stem>.plc. Prints each file's rate, 8 x its size / pixels, beside the model's "
            "estimate. Images are coded as io.read_image reads them: RGB at 8 bits, transparency composited on "
            "white; grayscale files are marked and decode to grayscale. Every output is checked before any work "
            "and written whole or not at all."
        ),
    )
    p.add_argument("inputs", nargs="+", type=Path, metavar="IMAGE", help="image file or folder")
    p.add_argument("-o", "--output", type=Path, required=True, metavar="OUT", help="output .plc file or folder")
    p.add_argument("--model", required=True,
                   help="a shipped codec model (`perceptlab models --task codec`), a model.safetensors, "
                        "checkpoint.pt or run folder")  # fmt: skip
    add_keep_going(p)
    p.set_defaults(run=run_compress)

    p = subparsers.add_parser(
        "decompress",
        help="decode .plc files to images",
        description=(
            "Decode .plc files or folders of them. With one input file, OUT may be an image file name; otherwise "
            "OUT is a folder and each result is OUT/<stem>.png. The model is the installed one the file names, "
            "or --model. A truncated, corrupt or foreign file, or one another model wrote, is refused with one "
            "line; no output is left behind."
        ),
    )
    p.add_argument("inputs", nargs="+", type=Path, metavar="FILE", help=".plc file or folder of them")
    p.add_argument("-o", "--output", type=Path, required=True, metavar="OUT", help="output image file or folder")
    p.add_argument("--model", default=None,
                   help="the model that wrote the files (as for compress; default: the installed model their "
                        "headers name)")  # fmt: skip
    add_keep_going(p, "file")
    p.set_defaults(run=run_decompress)


def _coded_files(folder: Path) -> list[Path]:
    if not folder.is_dir():
        raise ImageError(folder, "no such folder")
    found = [p for p in folder.iterdir() if p.suffix.lower() == SUFFIX and not p.name.startswith(".") and p.is_file()]
    return sorted(found, key=lambda p: p.name)


def run_compress(args: argparse.Namespace) -> int:
    from perceptlab.codec import compress, estimate_bits, load_codec_model
    from perceptlab.io import is_grayscale, read_image

    pairs = file_jobs(args.inputs, args.output, list_images, SUFFIX, (SUFFIX,), "image files")
    model = load_codec_model(args.model)

    def work(job: tuple[Path, Path]) -> None:
        source, target = job
        x = read_image(source)
        data = compress(model, x, mode="L" if is_grayscale(source) else "RGB")
        atomic_write(target, lambda tmp: tmp.write_bytes(data))
        pixels = x.shape[-2] * x.shape[-1]
        print(f"{source} -> {target}: {x.shape[-1]}x{x.shape[-2]}, {8 * len(data) / pixels:.4f} bpp "
              f"({len(data)} bytes; model estimate {estimate_bits(model, x) / pixels:.4f} bpp)")  # fmt: skip

    raise_if_failed(run_each(pairs, work, args.keep_going, name=lambda job: str(job[0])), len(pairs))
    return 0


def run_decompress(args: argparse.Namespace) -> int:
    from PIL import Image

    from perceptlab.codec import CodecFileError, decompress, load_codec_model, read_header, shipped_codec_models
    from perceptlab.io import save_image

    pairs = file_jobs(args.inputs, args.output, _coded_files, ".png", IMAGE_SUFFIXES, f"{SUFFIX} files",
                      kind="image ")
    given = load_codec_model(args.model) if args.model else None
    installed = {}  # the shipped models files name, each loaded once

    def model_for(data: bytes):
        if given is not None:
            return given
        try:
            name = read_header(data).model
        except CodecFileError:
            return None  # decompress says what is wrong with the file
        if name not in installed and name in shipped_codec_models():
            installed[name] = load_codec_model(name)
        return installed.get(name)  # None: decompress says it is not installed

    def work(job: tuple[Path, Path]) -> None:
        source, target = job
        try:
            data = source.read_bytes()
        except OSError as err:
            raise ImageError(source, f"cannot read ({err.strerror or err})") from None
        try:
            out = decompress(data, model_for(data))
        except CodecFileError as exc:
            raise CodecFileError(exc.problem, source) from None
        array = out["image"][0].mul(255).round().byte().permute(1, 2, 0).numpy()
        image = Image.fromarray(array)
        if out["mode"] == "L":
            image = image.convert("L")
        save_image(image, target)
        print(f"{source} -> {target}: {array.shape[1]}x{array.shape[0]}, {out['bpp']:.4f} bpp")

    raise_if_failed(run_each(pairs, work, args.keep_going, name=lambda job: str(job[0]), what="files"), len(pairs),
                    what="files")  # fmt: skip
    return 0
