"""``perceptlab train style --style STYLE.jpg --data DIR --out RUN_DIR``: train a feed-forward style network."""

from __future__ import annotations

import argparse

from perceptlab.cli._config import ListFlag, add_config_flags, add_run_flags, load_config, print_summary

# What each field of StyleTrainConfig means (the CLI's flags are made from the dataclass; the default is added).
_STYLE_HELP = {
    "style": "the style image",
    "data": "folder of content images",
    "content_layers": "VGG-16 layers of the content term",
    "style_layers": "VGG-16 layers of the style term",
    "steps": "optimisation steps; may be raised when resuming",
    "batch_size": "content crops per step",
    "image_size": "side of the square training crops (at least 8)",
    "lr": "Adam learning rate",
    "content_weight": "weight of the content term",
    "style_weight": "weight of the style term",
    "tv_weight": "weight of the total-variation term",
    "grid_weight": "weight of a penalty on a lattice of the network's 4-pixel stride (the grid loss against the "
                   "content crop); 0: the paper's objective",
    "saturation_weight": "weight of a penalty keeping the output tanh out of saturation, where an instance-norm "
                         "network grows black blobs that no other gradient reaches; 0: the paper's objective",
    "style_size": "longer side the style image is resized to; 0 keeps its size (else at least 8)",
    "norm": "normalisation layers of the network",
    "padding": "padding of the network's convolutions",
    "upsample": "how the network doubles the resolution: the paper's transposed convolutions, or a nearest-neighbour "
                "resize then a convolution, which leaves no checkerboard (Odena et al. 2016)",
    "vgg_weights": "VGG-16 weights of the loss (the default weights are tuned for vgg16)",
    "vgg_precision": "precision of the loss network; bf16 pays off on CPUs with AVX-512 BF16 or AMX and on GPUs, "
                     "and is about 10x slower than fp32 elsewhere",
    "sample_image": "content image stylised into samples/ every --sample-every steps; none: the first training image",
    "sample_every": "steps between samples",
    "ckpt_every": "steps between checkpoints (Ctrl-C or SIGTERM also saves one, then stops)",
    "log_every": "steps between rows of metrics.csv",
    "seed": "seed of every random stream",
    "threads": "torch CPU threads; 0: torch's default, one per core",
}
_STYLE_CHOICES = {"norm": ("instance", "batch"), "padding": ("reflect", "zeros"), "upsample": ("transpose", "nearest"),
                  "vgg_weights": ("vgg16", "vgg16_caffe"), "vgg_precision": ("fp32", "bf16")}  # fmt: skip


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
    add_run_flags(p)
    lists = {"data": ListFlag("--data", "DIR"), "content_layers": ListFlag(metavar="LAYERS", repeat=False),
             "style_layers": ListFlag(metavar="LAYERS", repeat=False)}  # fmt: skip
    p.set_defaults(config_flags=add_config_flags(p, StyleTrainConfig, _STYLE_HELP, _STYLE_CHOICES, lists))
    p.set_defaults(run=run_style)


def style_config(args: argparse.Namespace):
    from perceptlab.style.train import StyleTrainConfig

    return load_config(StyleTrainConfig, args, args.config_flags)


def run_style(args: argparse.Namespace) -> int:
    from perceptlab.style.train import train_style

    config = style_config(args)
    summary = train_style(config, args.out, progress=not args.no_progress)
    print_summary(config, summary)
    return 0
