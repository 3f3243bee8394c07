"""``perceptlab train codec --data DIR --out RUN_DIR [--arch hyperprior] [--lambda 0.0067]``: train a learned codec."""

from __future__ import annotations

import argparse

from perceptlab.cli._config import ListFlag, add_config_flags, add_run_flags, load_config, print_summary

# What each field of CodecTrainConfig means (the CLI's flags are made from the dataclass; the default is added).
_CODEC_HELP = {
    "arch": "bls2017: Ballé et al. 2017's factorised prior; hyperprior: Ballé et al. 2018's scale hyperprior",
    "N": "channels of the transforms (the papers: 128, or 192 at high rates)",
    "M": "channels of the latent y (the papers: 192, or 320 at high rates)",
    "lambda_": "weight of the distortion in lambda * D + bpp, D = 255^2 * MSE or 1 - MS-SSIM, ... "
               "(CompressAI's MSE levels: 0.0018 to 0.18; its MS-SSIM levels start at 2.4)",
    "distortion": "the distortion D: mse, ms_ssim, lpips, dists, feature:LAYER (VGG-16), vmaf (differentiable, "
                  "vmaf-torch: v0.6.1, luma, motion off) or vmaf_proxy (a trained quality proxy, --proxy); the "
                  "perceptual ones are scaled to 255^2 * MSE's order (perceptlab.codec.distortion)",
    "alpha": "weight of the perceptual distortion against L_d: D = alpha * L_p + (1 - alpha) * L_d",
    "base_distortion": "L_d: mse (255^2 * MSE, as Chen et al.), ms_ssim, lpips, dists or feature:LAYER, scaled as "
                       "the distortions are (needs --alpha below 1)",
    "proxy": "quality proxy for --distortion vmaf_proxy: a model.safetensors or run folder of train proxy",
    "alternate": "with vmaf_proxy: train the proxy on the codec's outputs (true VMAF labels) after every codec "
                 "step, as Chen et al. do; without it the proxy stays frozen and can be fooled",
    "proxy_lr": "Adam learning rate of the proxy with --alternate",
    "grid_weight": "weight of a penalty on patterns fixed to the pixel grid (the lattice a codec that fools its "
                   "proxy prints; 0: off)",
    "grid_period": "period in pixels of the lattice the grid penalty looks for (16 also holds 2, 4 and 8)",
    "chroma_weight": "weight C of a chroma term C * 255^2 * MSE(Cb, Cr) added to D: VMAF is luma-only, and 1.5 "
                     "with --alpha 0.8 gives colour the weight it has in an MSE codec (0: off)",
    "data": "folder of training images",
    "steps": "optimisation steps; may be raised when resuming",
    "batch_size": "crops per step",
    "crop": "side of the square training crops, a multiple of 16 (bls2017) or 64 (hyperprior); "
            "at least 161 for ms_ssim",
    "lr": "Adam learning rate",
    "init": "weights to start from: a codec model.safetensors or run folder of the same --arch, N and M "
            "(fine-tune one model to another --lambda)",
    "val_data": "folder of images whose estimated bpp and PSNR go into metrics.csv every --sample-every steps",
    "sample_every": "steps between samples and validations",
    "ckpt_every": "steps between checkpoints (Ctrl-C or SIGTERM also saves one, then stops)",
    "log_every": "steps between rows of metrics.csv",
    "seed": "seed of every random stream",
    "threads": "torch CPU threads; 0: torch's default, one per core",
}
_CODEC_CHOICES = {"arch": ("bls2017", "hyperprior")}


def add_codec_parser(tasks) -> None:
    """Add ``codec`` to the task subparsers of ``perceptlab train``."""
    from perceptlab.codec.train import CodecTrainConfig

    p = tasks.add_parser(
        "codec",
        help="train a learned image codec (bls2017, hyperprior)",
        description=(
            "Train a learned image codec for one rate-distortion trade-off, lambda * D + bpp. Options come from "
            "--config (TOML, keys as in perceptlab.codec.train.CodecTrainConfig) and are overridden by flags. "
            "Running the same command again resumes from RUN_DIR/checkpoint.pt; Ctrl-C or SIGTERM saves a "
            "checkpoint after the step in progress and exits with 130 or 143. The final RUN_DIR/model.safetensors "
            "holds the integer coding tables that compress and decompress use."
        ),
    )
    add_run_flags(p)
    flags = add_config_flags(p, CodecTrainConfig, _CODEC_HELP, _CODEC_CHOICES, {"data": ListFlag("--data", "DIR")})
    p.set_defaults(config_flags=flags, run=run_codec)


def codec_config(args: argparse.Namespace):
    from perceptlab.codec.train import CodecTrainConfig

    return load_config(CodecTrainConfig, args, args.config_flags)


def run_codec(args: argparse.Namespace) -> int:
    from perceptlab.codec.train import train_codec

    config = codec_config(args)
    summary = train_codec(config, args.out, progress=not args.no_progress)
    print_summary(config, summary)
    return 0
