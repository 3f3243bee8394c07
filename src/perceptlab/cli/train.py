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


def add_parser(subparsers) -> None:
    p = subparsers.add_parser("train", help="train a network (sr, style)", description="Train a network.")
    tasks = p.add_subparsers(dest="task", required=True, metavar="TASK")
    sr = tasks.add_parser(
        "sr",
        help="train a super-resolution network",
        description=(
            "Train a super-resolution network. Options come from --config (TOML, keys as in "
            "perceptlab.sr.train.SRTrainConfig) and are overridden by flags. Running the same command "
            "again resumes from RUN_DIR/checkpoint.pt."
        ),
    )
    sr.add_argument("--config", type=Path, help="TOML file with the run's settings")
    sr.add_argument("--out", type=Path, required=True, help="run folder (checkpoints, metrics.csv, samples)")
    sr.add_argument("--loss", action="append", dest="losses", metavar="SPEC",
                    help="loss term TERM[:ARG][*WEIGHT], repeatable, e.g. feature:relu2_2 or pixel:mse*0.01")  # fmt: skip
    sr.add_argument("--data", action="append", metavar="DIR", help="folder of HR training images, repeatable")
    for flag, kind in _SR_FLAGS.items():
        default = SRTrainConfig.__dataclass_fields__[flag].default
        sr.add_argument(f"--{flag.replace('_', '-')}", type=kind, dest=flag, help=f"(default: {default})")
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
