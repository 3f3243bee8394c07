"""``perceptlab train sr ...``: train a network; flags or a TOML file (flags win)."""

from __future__ import annotations

import argparse

from perceptlab.cli._config import ListFlag, add_config_flags, add_run_flags, load_config, print_summary
from perceptlab.cli.train_codec import add_codec_parser
from perceptlab.cli.train_deepsim import add_deepsim_parsers
from perceptlab.cli.train_proxy import add_proxy_parser
from perceptlab.cli.train_style import add_style_parser
from perceptlab.sr.train import SRTrainConfig, train_sr

# What each field of SRTrainConfig means (the CLI's flags are made from the dataclass; the default is added).
_SR_HELP = {
    "net": "network to train",
    "upsample": "perceptsr only: how its tail doubles the size, sub-pixel convolutions (ICNR) or nearest-neighbour "
                "resize then convolution (Odena et al. 2016); none: the network's own",
    "losses": "loss term TERM[:ARG][*WEIGHT], e.g. feature:relu2_2 or pixel:mse*0.01",
    "data": "folder of HR training images",
    "scale": "upscaling factor ({scales})",
    "steps": "optimisation steps; may be raised when resuming",
    "batch_size": "HR crops per step",
    "hr_crop": "side of the HR training crops, a multiple of --scale",
    "lr": "Adam learning rate of the network",
    "blur_sigma": "Gaussian blur before bicubic downsampling (Johnson et al.: 1.0; 0: plain bicubic)",
    "vgg_weights": "VGG-16 weights of the feature and style loss terms",
    "vgg_precision": "precision of the loss network; bf16 pays off on CPUs with AVX-512 BF16 or AMX and on GPUs, "
                     "and is about 10x slower than fp32 elsewhere",
    "discriminator": "discriminator, used only with an adversarial loss term",
    "d_lr": "Adam learning rate of the discriminator",
    "init": "weights to start from: a model.safetensors of the same --net and --scale (an SRResNet before SRGAN)",
    "val_data": "benchmark folder (Set5 layout) scored every --val-every steps into metrics.csv, with comparison "
                "grids in samples/ (without it, samples/ shows the first training image)",
    "val_every": "steps between validations and samples",
    "ckpt_every": "steps between checkpoints (Ctrl-C or SIGTERM also saves one, then stops)",
    "log_every": "steps between rows of metrics.csv",
    "seed": "seed of every random stream",
    "threads": "torch CPU threads; 0: torch's default, one per core",
}
_SR_CHOICES = {"upsample": ("subpixel", "nearest"), "vgg_weights": ("vgg16", "vgg16_caffe"),
               "vgg_precision": ("fp32", "bf16"), "discriminator": ("srgan", "patch")}  # fmt: skip


def add_parser(subparsers) -> None:
    p = subparsers.add_parser("train", help="train a network (sr, style, codec, proxy, autoencoder, vae, invert)",
                              description="Train a network.")  # fmt: skip
    tasks = p.add_subparsers(dest="task", required=True, metavar="TASK")
    sr = tasks.add_parser(
        "sr",
        help="train a super-resolution network",
        description=(
            "Train a super-resolution network. Options come from --config (TOML, keys as in "
            "perceptlab.sr.train.SRTrainConfig) and are overridden by flags. Running the same command "
            "again resumes from RUN_DIR/checkpoint.pt; Ctrl-C or SIGTERM saves a checkpoint after the step in "
            "progress and exits with 130 or 143."
        ),
    )
    from perceptlab.nets.sr import SR_NETS

    nets = {name: info for name, info in SR_NETS.items() if name != "bicubic"}  # bicubic has nothing to train
    scales = "; ".join(f"{name}: {info.scales_text()}" for name, info in nets.items())
    helps = {**_SR_HELP, "scale": _SR_HELP["scale"].format(scales=scales)}
    add_run_flags(sr)
    lists = {"losses": ListFlag("--loss", "SPEC"), "data": ListFlag("--data", "DIR")}
    sr.set_defaults(config_flags=add_config_flags(sr, SRTrainConfig, helps, {"net": tuple(nets), **_SR_CHOICES},
                                                  lists))  # fmt: skip
    sr.set_defaults(run=run_sr)
    add_style_parser(tasks)
    add_codec_parser(tasks)
    add_proxy_parser(tasks)
    add_deepsim_parsers(tasks)


def sr_config(args: argparse.Namespace) -> SRTrainConfig:
    return load_config(SRTrainConfig, args, args.config_flags)


def run_sr(args: argparse.Namespace) -> int:
    config = sr_config(args)
    summary = train_sr(config, args.out, progress=not args.no_progress)
    print_summary(config, summary)
    return 0
