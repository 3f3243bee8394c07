"""``perceptlab stylize CONTENT... -o OUT``: style transfer with a trained network or by optimisation.

Feed-forward (Johnson et al.)::

    perceptlab stylize photo.jpg photos/ -o out/ --model runs/candy

Optimisation (Gatys et al.), optionally starting from a feed-forward result::

    perceptlab stylize photo.jpg -o out.png --style candy.jpg --iterations 300
    perceptlab stylize photo.jpg -o out.png --style candy.jpg --iterations 50 --init feedforward --model runs/candy
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from perceptlab.cli._jobs import add_keep_going, image_jobs, raise_if_failed, run_each

# Smallest image side: the style network's, and that of VGG-16 up to relu4_3 (the style loss's deepest layer).
MIN_SIDE = 8

# Optimisation iterations when --style is given without --iterations.
DEFAULT_ITERATIONS = 200


def add_parser(subparsers) -> None:
    p = subparsers.add_parser(
        "stylize",
        help="style transfer: a trained network (--model) or optimisation (--style)",
        description=(
            "Stylise image files or folders of images. With --model, a trained feed-forward network is run; "
            "with --style, each image is optimised against that style image (Gatys et al.), starting from the "
            "content, from noise, or from the --model's output (--init feedforward). With one input file, OUT "
            "may be a file name with an image suffix; otherwise OUT is a folder and each result is OUT/<stem>.png. "
            "Results are in colour, also for a grayscale content image (the style's colours; --preserve-colors "
            "keeps the content's). Images must be at least 8x8 pixels. Every output is checked before any work."
        ),
    )
    p.add_argument("inputs", nargs="+", type=Path, metavar="CONTENT", help="content image file or folder")
    p.add_argument("-o", "--output", type=Path, required=True, metavar="OUT", help="output file or folder")
    p.add_argument("--model", help="style network: a shipped name (list them with `perceptlab models --task style`), model.safetensors, checkpoint.pt or run folder")
    p.add_argument("--size", type=int, metavar="N",
                   help="resize each content image to a longer side of N first (at least 8)")  # fmt: skip
    p.add_argument("--preserve-colors", choices=("luminance", "histogram"),
                   help="keep the content's colours: its chroma (luminance) or its histograms")  # fmt: skip
    p.add_argument("--tile", type=int, help="feed-forward: tile side in pixels, a multiple of 4 (default: whole)")
    g = p.add_argument_group("optimisation (with --style)")
    g.add_argument("--style", type=Path, metavar="IMAGE", help="style image: optimise instead of running a network")
    g.add_argument("--iterations", type=int, help=f"optimiser iterations (default {DEFAULT_ITERATIONS})")
    g.add_argument("--optimizer", choices=("lbfgs", "adam"), default="lbfgs", help="(default: lbfgs)")
    g.add_argument("--init", choices=("content", "noise", "feedforward"), default="content",
                   help="starting image; feedforward runs --model first (default: content)")  # fmt: skip
    g.add_argument("--lr", type=float, help="step size (default: 1 for lbfgs, 0.05 for adam)")
    g.add_argument("--content-weight", type=float, help="(default: 1)")
    g.add_argument("--style-weight", type=float, help="(default: 1e5)")
    g.add_argument("--tv-weight", type=float, help="(default: 1)")
    g.add_argument("--style-size", type=int, metavar="N",
                   help="resize the style image to a longer side of N, at least 8 (default: the content's)")  # fmt: skip
    g.add_argument("--vgg-weights", default="vgg16", choices=("vgg16", "vgg16_caffe"), help="(default: vgg16)")
    g.add_argument("--seed", type=int, default=0, help="seed of the noise initialisation (default 0)")
    g.add_argument("--log", type=Path, metavar="CSV", help="write the per-iteration loss log here")
    add_keep_going(p)
    p.set_defaults(run=run)


def _check_mode(args: argparse.Namespace) -> None:
    if args.style is None:
        if args.model is None:
            raise ValueError("give --model (a trained style network) or --style IMAGE (optimisation)")
        given = [flag for flag, value in (("--iterations", args.iterations), ("--log", args.log)) if value is not None]
        if given or args.init != "content":
            raise ValueError(f"{', '.join(given) or '--init'} needs --style (optimisation)")
    elif args.model is not None and args.init != "feedforward":
        raise ValueError("with --style, --model is used only to start from its output: add --init feedforward")
    elif args.init == "feedforward" and args.model is None:
        raise ValueError("--init feedforward needs --model")
    if args.iterations is not None and args.iterations < 0:
        raise ValueError(f"--iterations must be non-negative, got {args.iterations}")
    for flag, value in (("--size", args.size), ("--style-size", args.style_size)):
        if value is not None and value < MIN_SIDE:
            raise ValueError(f"{flag} must be at least {MIN_SIDE} pixels, got {value}")
    if args.tile is not None and (args.tile < 4 or args.tile % 4):
        raise ValueError(f"--tile must be a positive multiple of 4, got {args.tile}")
    if args.lr is not None and not args.lr > 0:
        raise ValueError(f"--lr must be positive, got {args.lr}")
    for flag in ("content_weight", "style_weight", "tv_weight"):
        if getattr(args, flag) is not None and not getattr(args, flag) >= 0:
            raise ValueError(f"--{flag.replace('_', '-')} must be non-negative, got {getattr(args, flag)}")


def _check_size(path: Path, image, what: str = "") -> None:
    from perceptlab.io import ImageError

    h, w = image.shape[-2:]
    if min(h, w) < MIN_SIDE:
        raise ImageError(path, f"too small for style transfer{what}: {w}x{h} pixels, needs at least "
                               f"{MIN_SIDE}x{MIN_SIDE}")  # fmt: skip


def run(args: argparse.Namespace) -> int:
    from perceptlab._files import check_output_file
    from perceptlab.io import read_image, write_image
    from perceptlab.style.color import preserve_colors
    from perceptlab.ops.resize import resize_longer_side
    from perceptlab.style.models import load_style_model, stylize_feedforward

    _check_mode(args)
    jobs = image_jobs(args.inputs, args.output)
    if args.log is not None:
        check_output_file(args.log)
    net = load_style_model(args.model) if args.model else None
    optimise = _optimiser(args) if args.style is not None else None

    def stylize(job: tuple[Path, Path]) -> None:
        source, target = job
        content = resize_longer_side(read_image(source), args.size)
        _check_size(source, content, f" after --size {args.size}" if args.size else "")
        if optimise is None:
            out = stylize_feedforward(net, content, tile=args.tile)
        else:
            init = stylize_feedforward(net, content, tile=args.tile) if net is not None else args.init
            out = optimise(source, content, init)
        if args.preserve_colors:
            out = preserve_colors(out, content, args.preserve_colors)
        write_image(out, target)
        print(f"{source} -> {target} ({out.shape[-1]}x{out.shape[-2]})", file=sys.stderr)

    failed = run_each(jobs, stylize, args.keep_going, name=lambda job: str(job[0]))
    raise_if_failed(failed, len(jobs))
    return 0


def _optimiser(args: argparse.Namespace):
    """``optimise(source, content, init) -> image``: Gatys et al.'s optimisation against ``args.style``.

    One loss network serves every image; the style Grams are recomputed only
    when the style size changes (by default it follows each content's size).
    Log rows of every image go to ``args.log`` (rewritten after each image).
    """
    from tqdm.auto import tqdm

    from perceptlab._files import atomic_write_text
    from perceptlab.io import read_image
    from perceptlab.ops.resize import resize_longer_side
    from perceptlab.style.losses import StyleTransferLoss
    from perceptlab.style.optimize import stylize_optimize

    style = read_image(args.style)
    _check_size(args.style, style)
    weights = {k: v for k, v in (("content_weight", args.content_weight), ("style_weight", args.style_weight),
                                 ("tv_weight", args.tv_weight)) if v is not None}  # fmt: skip
    iterations = DEFAULT_ITERATIONS if args.iterations is None else args.iterations
    state: dict = {"loss": None, "side": None, "rows": []}

    def optimise(source: Path, content, init):
        side = args.style_size or max(content.shape[-2:])
        if side != state["side"]:
            resized = resize_longer_side(style, side)
            how = "--style-size" if args.style_size else f"the longer side of {source.name}"
            _check_size(args.style, resized, f" once resized to {side} pixels ({how})")
            if state["loss"] is None:
                state["loss"] = StyleTransferLoss(resized, vgg_weights=args.vgg_weights, **weights)
            else:
                state["loss"].set_style(resized)
            state["side"] = side
        with tqdm(total=iterations, desc=f"stylize {source.name}", unit="it", leave=False) as bar:

            def show(row: dict) -> None:  # rows are evaluations: L-BFGS's line search can try several per iteration
                bar.update(row["iteration"] - bar.n)
                bar.set_postfix({k: f"{row[k]:.4g}" for k in ("loss", "content", "style", "tv")}, refresh=False)

            image, rows = stylize_optimize(content, iterations=iterations, optimizer=args.optimizer, init=init,
                                           lr=args.lr, loss=state["loss"], callback=show, seed=args.seed)  # fmt: skip
        if args.log is not None:
            state["rows"] += [{"image": source.name, **row} for row in rows]
            atomic_write_text(args.log, _csv(state["rows"]))
        return image

    return optimise


def _csv(rows: list[dict]) -> str:
    import csv
    import io

    text = io.StringIO()
    writer = csv.DictWriter(text, fieldnames=list(rows[0]), lineterminator="\n")
    writer.writeheader()
    writer.writerows({k: f"{v:.6g}" if isinstance(v, float) else v for k, v in row.items()} for row in rows)
    return text.getvalue()
