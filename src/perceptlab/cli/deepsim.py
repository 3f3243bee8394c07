"""``perceptlab reconstruct IMAGE -o OUT --model RUN``, ``perceptlab invert IMAGE -o OUT --model RUN`` and
``perceptlab sample --model RUN -n 16 -o DIR``: trained DeePSiM generators on files."""

from __future__ import annotations

import argparse
from pathlib import Path

_MODEL_HELP = ("a shipped model (`perceptlab models --task deepsim` lists them), or a model.safetensors, "
               "checkpoint.pt or run folder of `perceptlab train {kinds}`")


def add_parser(subparsers) -> None:
    for name, kinds, text in (("reconstruct", "autoencoder|vae", "an autoencoder's or VAE's reconstruction"),
                              ("invert", "invert", "an inverter's image from the comparator features")):  # fmt: skip
        p = subparsers.add_parser(name, help=f"write {text} of an image",
                                  description=f"Write {text} of IMAGE to OUT (an image file, same size).")  # fmt: skip
        p.add_argument("input", type=Path, metavar="IMAGE", help="image file")
        p.add_argument("-o", "--output", type=Path, required=True, metavar="OUT", help="output image file")
        p.add_argument("--model", required=True, help=_MODEL_HELP.format(kinds=kinds))
        p.set_defaults(run=run_image)
    p = subparsers.add_parser("sample", help="write new images sampled from a VAE",
                              description="Decode N codes drawn from a VAE's prior into DIR/sample_NNN.png.")  # fmt: skip
    p.add_argument("--model", required=True, help=_MODEL_HELP.format(kinds="vae"))
    p.add_argument("-n", type=int, default=16, help="number of images (default: 16)")
    p.add_argument("--side", type=int, default=64, help="side of the square images, a multiple of the code's "
                                                         "stride (default: 64)")  # fmt: skip
    p.add_argument("--seed", type=int, default=0, help="seed of the codes (default: 0)")
    p.add_argument("-o", "--output", type=Path, required=True, metavar="DIR", help="output folder")
    p.set_defaults(run=run_sample)


def run_image(args: argparse.Namespace) -> int:
    from perceptlab._files import check_output_file
    from perceptlab.deepsim import invert, load_deepsim_model, reconstruct
    from perceptlab.io import read_image, write_image

    check_output_file(args.output)
    x = read_image(args.input)  # a bad image is said before the model is loaded
    net = load_deepsim_model(args.model)
    write_image((invert if args.command == "invert" else reconstruct)(net, x), args.output)
    return 0


def run_sample(args: argparse.Namespace) -> int:
    import torch

    from perceptlab._files import check_output_dir
    from perceptlab.deepsim import load_deepsim_model, sample
    from perceptlab.io import write_image

    if args.n < 1:
        raise ValueError(f"-n must be positive, got {args.n}")
    check_output_dir(args.output)
    images = sample(load_deepsim_model(args.model), args.n, args.side, torch.Generator().manual_seed(args.seed))
    args.output.mkdir(parents=True, exist_ok=True)
    for i, image in enumerate(images):
        write_image(image[None], args.output / f"sample_{i:03d}.png")
    return 0
