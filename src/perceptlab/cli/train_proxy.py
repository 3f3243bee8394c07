"""``perceptlab train proxy --data DIR --out RUN_DIR``: train a small network to predict VMAF (ProxIQA)."""

from __future__ import annotations

import argparse

from perceptlab.cli._config import ListFlag, add_config_flags, add_run_flags, load_config, print_summary

# What each field of ProxyTrainConfig means (the CLI's flags are made from the dataclass; the default is added).
_PROXY_HELP = {
    "data": "folder of training photos (every --holdout-th image is held back for validation)",
    "kinds": "distortions of the training pairs: jpeg, webp, jpeg2000, blur, noise, sharpen, codec, none",
    "codecs": "learned codec models (shipped names, model files or run folders) whose outputs the codec "
              "kind uses",
    "width": "channels of the proxy's first layer (4 convolutions: w, 2w, 2w, 4w)",
    "crop": "side of the square training crops",
    "steps": "optimisation steps; may be raised when resuming",
    "batch_size": "pairs per step (each labelled with true VMAF as it is drawn)",
    "lr": "Adam learning rate",
    "holdout": "every N-th training image is held back: the proxy's accuracy (SROCC, PLCC, RMSE) is "
               "measured on distorted crops of those",
    "val_patches": "held-back pairs scored at each validation",
    "sample_every": "steps between validations",
    "ckpt_every": "steps between checkpoints (Ctrl-C or SIGTERM also saves one, then stops)",
    "log_every": "steps between rows of metrics.csv",
    "seed": "seed of every random stream",
    "threads": "torch CPU threads; 0: torch's default, one per core",
}


def add_proxy_parser(tasks) -> None:
    """Add ``proxy`` to the task subparsers of ``perceptlab train``."""
    from perceptlab.codec.proxy import ProxyTrainConfig

    p = tasks.add_parser(
        "proxy",
        help="train a VMAF proxy (a small CNN predicting VMAF, for train codec --distortion vmaf_proxy)",
        description=(
            "Train a quality proxy: a 4-layer CNN mapping (reference, distorted) crops to an estimate of their "
            "VMAF, on distorted crops of the training photos labelled with true VMAF (needs vmaf-torch). "
            "Options come from --config (TOML, keys as in perceptlab.codec.proxy.ProxyTrainConfig) and are "
            "overridden by flags. Running the same command again resumes from RUN_DIR/checkpoint.pt."
        ),
    )
    add_run_flags(p)
    lists = {"data": ListFlag("--data", "DIR"), "kinds": ListFlag("--kinds", "KIND,...", repeat=False),
             "codecs": ListFlag("--codec", "MODEL")}  # fmt: skip
    flags = add_config_flags(p, ProxyTrainConfig, _PROXY_HELP, {}, lists)
    p.set_defaults(config_flags=flags, run=run_proxy)


def run_proxy(args: argparse.Namespace) -> int:
    from perceptlab.codec.proxy import ProxyTrainConfig, train_proxy

    config = load_config(ProxyTrainConfig, args, args.config_flags)
    summary = train_proxy(config, args.out, progress=not args.no_progress)
    print_summary(config, summary)  # with the held-back pairs' SROCC, PLCC and RMSE
    return 0
