"""``perceptlab train sr ...``: train a network; flags or a TOML file (flags win)."""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
from pathlib import Path

from perceptlab.cli.train_style import add_style_parser
from perceptlab.sr.train import SRTrainConfig, train_sr

# flag -> config key, for the options that are plain values.
_SR_FLAGS = {
    "net": str, "scale": int, "steps": int, "batch_size": int, "hr_crop": int, "lr": float,
    "blur_sigma": float, "vgg_weights": str, "vgg_precision": str, "discriminator": str, "d_lr": float, "init": str,
    "val_data": str, "val_every": int, "ckpt_every": int, "log_every": int, "seed": int, "threads": int,
}  # fmt: skip
# What each flag means; the default is added from SRTrainConfig.
_SR_HELP = {
    "net": "network to train",
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
_SR_CHOICES = {"vgg_weights": ("vgg16", "vgg16_caffe"), "vgg_precision": ("fp32", "bf16"),
               "discriminator": ("srgan", "patch")}  # fmt: skip


def add_parser(subparsers) -> None:
    p = subparsers.add_parser("train", help="train a network (sr, style)", description="Train a network.")
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
    sr.add_argument("--config", type=Path, help="TOML file with the run's settings")
    sr.add_argument("--out", type=Path, required=True,
                    help="run folder (checkpoints, metrics.csv, samples), checked before training")  # fmt: skip
    defaults = dataclasses.asdict(SRTrainConfig())
    sr.add_argument("--loss", action="append", dest="losses", metavar="SPEC",
                    help="loss term TERM[:ARG][*WEIGHT], repeatable, e.g. feature:relu2_2 or pixel:mse*0.01 "
                         f"(default: {' '.join(defaults['losses'])})")  # fmt: skip
    sr.add_argument("--data", action="append", metavar="DIR", help="folder of HR training images, repeatable")
    from perceptlab.nets.sr import SR_NETS

    nets = {name: info for name, info in SR_NETS.items() if name != "bicubic"}  # bicubic has nothing to train
    choices = {"net": tuple(nets), **_SR_CHOICES}
    scales = "; ".join(f"{name}: {info.scales_text()}" for name, info in nets.items())
    for flag, kind in _SR_FLAGS.items():
        given = f"choices: {', '.join(choices[flag])}; " if flag in choices else ""
        default = "none" if defaults[flag] is None else defaults[flag]
        sr.add_argument(f"--{flag.replace('_', '-')}", type=kind, dest=flag, choices=choices.get(flag),
                        metavar=flag.upper() if flag in choices else None,
                        help=f"{_SR_HELP[flag].format(scales=scales)} ({given}default: {default})")  # fmt: skip
    sr.add_argument("--no-progress", action="store_true", help="no progress bar")
    sr.set_defaults(run=run_sr)
    add_style_parser(tasks)


def sr_config(args: argparse.Namespace) -> SRTrainConfig:
    return SRTrainConfig.load(args.config, {key: getattr(args, key) for key in (*_SR_FLAGS, "losses", "data")})


def run_sr(args: argparse.Namespace) -> int:
    config = sr_config(args)
    summary = train_sr(config, args.out, progress=not args.no_progress)
    print(json.dumps({"config": dataclasses.asdict(config), **summary}, indent=2), file=sys.stdout)
    return 0
