"""``perceptlab train autoencoder|vae|invert --data DIR --out RUN_DIR [--loss SPEC ...]``: DeePSiM generators."""

from __future__ import annotations

import argparse

from perceptlab.cli._config import ListFlag, add_config_flags, add_run_flags, load_config, print_summary

# What each field of DeepSimTrainConfig means (the CLI's flags are made from the dataclass; the default is added).
_DEEPSIM_HELP = {
    "kind": "the network trained; set by the command",
    "network": "invert only: the comparator network whose features are inverted",
    "layer": "invert only: the comparator's layer inverted (alexnet: conv1..pool5, e.g. relu3; vgg16: e.g. relu4_3)",
    "bottleneck": "autoencoder and vae: channels of the code",
    "downsample": "autoencoder and vae: the code is 1/DOWNSAMPLE of the image's side, 8 or 16",
    "width": "channels of the generator's narrowest layer (its widest has 4x as many)",
    "losses": "loss term TERM[:ARG][*WEIGHT] as in train sr, e.g. feature:relu4_3*0.01, "
              "adversarial:nonsaturating*100 or pixel:mse*2e-6 (feature terms use VGG-16)",
    "kl_weight": "vae only: weight of the KL term (nats per code element)",
    "d_channels": "width of the PatchDiscriminator's first layer (with an adversarial term)",
    "data": "folder of training images",
    "steps": "optimisation steps; may be raised when resuming",
    "batch_size": "crops per step",
    "crop": "side of the square training crops (a multiple of --downsample for autoencoder and vae)",
    "lr": "Adam learning rate of the generator",
    "d_lr": "Adam learning rate of the discriminator",
    "val_data": "folder of images whose mean PSNR goes into metrics.csv every --sample-every steps",
    "sample_every": "steps between samples and validations",
    "ckpt_every": "steps between checkpoints (Ctrl-C or SIGTERM also saves one, then stops)",
    "log_every": "steps between rows of metrics.csv",
    "seed": "seed of every random stream",
    "threads": "torch CPU threads; 0: torch's default, one per core",
}
_HELPS = {
    "autoencoder": "train a convolutional autoencoder with DeePSiM losses",
    "vae": "train a variational autoencoder with DeePSiM losses",
    "invert": "train a generator that inverts AlexNet or VGG-16 features",
}


def add_deepsim_parsers(tasks) -> None:
    """Add ``autoencoder``, ``vae`` and ``invert`` to the task subparsers of ``perceptlab train``."""
    from perceptlab.deepsim.train import KINDS, DeepSimTrainConfig
    from perceptlab.nets.deepsim import COMPARATORS

    for kind in KINDS:
        p = tasks.add_parser(
            kind,
            help=_HELPS[kind],
            description=(
                f"{_HELPS[kind][0].upper()}{_HELPS[kind][1:]} (Dosovitskiy & Brox 2016): a weighted sum of loss terms, "
                "lambda_feat * L_feat + lambda_adv * L_adv + lambda_img * L_img. Options come from --config (TOML, "
                "keys as in perceptlab.deepsim.train.DeepSimTrainConfig) and are overridden by flags. Running the "
                "same command again resumes from RUN_DIR/checkpoint.pt; Ctrl-C or SIGTERM saves a checkpoint after "
                "the step in progress and exits with 130 or 143."
            ),
        )
        add_run_flags(p)
        choices = {"kind": (kind,), "network": COMPARATORS}
        lists = {"losses": ListFlag("--loss", "SPEC"), "data": ListFlag("--data", "DIR")}
        flags = add_config_flags(p, DeepSimTrainConfig, _DEEPSIM_HELP, choices, lists)
        # The command is the kind: its flag stays (a TOML file's kind is overridden) but is not shown.
        next(a for a in p._actions if a.dest == "kind").help = argparse.SUPPRESS
        p.set_defaults(config_flags=flags, run=run_deepsim, kind=kind)


def deepsim_config(args: argparse.Namespace):
    from perceptlab.deepsim.train import DeepSimTrainConfig

    return load_config(DeepSimTrainConfig, args, args.config_flags)


def run_deepsim(args: argparse.Namespace) -> int:
    from perceptlab.deepsim.train import train_deepsim

    config = deepsim_config(args)
    summary = train_deepsim(config, args.out, progress=not args.no_progress)
    print_summary(config, summary)
    return 0
