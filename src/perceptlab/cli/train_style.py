"""``perceptlab train style --style STYLE.jpg --data DIR --out RUN_DIR``: train a feed-forward style network."""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
from pathlib import Path

# flag -> config key, for the options that are plain values.
_STYLE_FLAGS = {
    "steps": int, "batch_size": int, "image_size": int, "lr": float, "content_weight": float,
    "style_weight": float, "tv_weight": float, "style_size": int, "norm": str, "padding": str, "vgg_weights": str,
    "sample_image": str, "sample_every": int, "ckpt_every": int, "log_every": int, "seed": int, "threads": int,
}  # fmt: skip
# What each flag means; the default is added from StyleTrainConfig.
_STYLE_HELP = {
    "steps": "optimisation steps; may be raised when resuming",
    "batch_size": "content crops per step",
    "image_size": "side of the square training crops (at least 8)",
    "lr": "Adam learning rate",
    "content_weight": "weight of the content term",
    "style_weight": "weight of the style term",
    "tv_weight": "weight of the total-variation term",
    "style_size": "longer side the style image is resized to; 0 keeps its size (else at least 8)",
    "norm": "normalisation layers of the network",
    "padding": "padding of the network's convolutions",
    "vgg_weights": "VGG-16 weights of the loss (the default weights are tuned for vgg16)",
    "sample_image": "content image stylised into samples/ every --sample-every steps (default: the first training image)",
    "sample_every": "steps between samples",
    "ckpt_every": "steps between checkpoints (Ctrl-C or SIGTERM also saves one, then stops)",
    "log_every": "steps between rows of metrics.csv",
    "seed": "seed of every random stream",
    "threads": "torch CPU threads; 0: torch's default, one per core",
}
_STYLE_CHOICES = {"norm": ("instance", "batch"), "padding": ("reflect", "zeros"), "vgg_weights": ("vgg16", "vgg16_caffe")}
# flag -> config key, for the layer lists, given comma-separated.
_LAYER_FLAGS = ("content_layers", "style_layers")


def _layers(text: str) -> list[str]:
    return [name.strip() for name in text.split(",") if name.strip()]


def add_style_parser(tasks) -> None:
    """Add ``style`` to the task subparsers of ``perceptlab train``."""
    from perceptlab.style.train import StyleTrainConfig

    p = tasks.add_parser(
        "style",
        help="train a feed-forward style transfer network for one style",
        description=(
            "Train Johnson et al.'s style transformation network for one style image on folders of content "
            "images. Options come from --config (TOML, keys as in perceptlab.style.train.StyleTrainConfig) and are "
            "overridden by flags. Running the same command again resumes from RUN_DIR/checkpoint.pt; Ctrl-C or "
            "SIGTERM saves a checkpoint after the step in progress and exits with 130 or 143."
        ),
    )
    p.add_argument("--config", type=Path, help="TOML file with the run's settings")
    p.add_argument("--out", type=Path, required=True,
                   help="run folder (checkpoints, metrics.csv, samples), checked before training")  # fmt: skip
    p.add_argument("--style", metavar="IMAGE", help="the style image")
    p.add_argument("--data", action="append", metavar="DIR", help="folder of content images, repeatable")
    defaults = dataclasses.asdict(StyleTrainConfig())
    for key in _LAYER_FLAGS:
        p.add_argument(f"--{key.replace('_', '-')}", type=_layers, dest=key, metavar="LAYERS",
                       help=f"comma-separated VGG-16 layers (default: {','.join(defaults[key])})")  # fmt: skip
    for flag, kind in _STYLE_FLAGS.items():
        given = f"choices: {', '.join(_STYLE_CHOICES[flag])}; " if flag in _STYLE_CHOICES else ""
        default = "" if defaults[flag] is None else f"default: {defaults[flag]}"
        p.add_argument(f"--{flag.replace('_', '-')}", type=kind, dest=flag, choices=_STYLE_CHOICES.get(flag),
                       metavar=flag.upper() if flag in _STYLE_CHOICES else None,
                       help=f"{_STYLE_HELP[flag]}" + (f" ({given}{default})" if given or default else ""))  # fmt: skip
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.set_defaults(run=run_style)


def style_config(args: argparse.Namespace):
    from perceptlab.style.train import StyleTrainConfig

    keys = (*_STYLE_FLAGS, *_LAYER_FLAGS, "style", "data")
    return StyleTrainConfig.load(args.config, {key: getattr(args, key) for key in keys})


def run_style(args: argparse.Namespace) -> int:
    from perceptlab.style.train import train_style

    config = style_config(args)
    summary = train_style(config, args.out, progress=not args.no_progress)
    print(json.dumps({"config": dataclasses.asdict(config), **summary}, indent=2), file=sys.stdout)
    return 0
