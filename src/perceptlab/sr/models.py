"""Finding and loading SR models: shipped names, run folders, weight files, checkpoints.

Shipped models are our own, trained with :mod:`perceptlab.sr.train`; each is a
small safetensors file in ``perceptlab/models/`` with a model card beside it
(``NAME.md``: data, losses, steps, wall time, hardware, evaluation).
"""

from __future__ import annotations

from pathlib import Path

import torch

from perceptlab.nets.fold import fold_batchnorm
from perceptlab.training import load_trained, shipped_models

SHIPPED_SR = ("perceptsr_x4", "johnson_x4_vgg_pixel", "perceptsr_x4_psnr", "srcnn_x4_vgg", "srcnn_x4_mse",
              "johnson_x4_vgg", "johnson_x4_mse", "perceptsr_x2", "perceptsr_x8")
# Perceptual by default, without a grid or a colour cast: the perceptsr net with VGG terms, an L1 anchor,
# LR consistency and the grid penalty, better than the old default (johnson_x4_vgg_pixel) on all 15
# measures of docs/experiments/sr_default.md.
DEFAULT_SR_MODEL = "perceptsr_x4"
# The default at each scale: the same recipe trained at x2 and x8 (experiments/sr_default); a scale's default
# is used once its file ships (SHIPPED_SR lists it ahead; absent files are skipped).
DEFAULT_SR_MODELS = {4: DEFAULT_SR_MODEL, 2: "perceptsr_x2", 8: "perceptsr_x8"}


def shipped_sr_models() -> dict[str, Path]:
    """The shipped SR models present in this installation, ``{name: weights file}``."""
    return shipped_models(SHIPPED_SR)


def default_sr_model(scale: int | None = None) -> str:
    """The shipped default model for ``scale`` (``None``: x4, :data:`DEFAULT_SR_MODEL`).

    Raises:
        ValueError: no default of that scale is installed (naming the scales that have one).
    """
    scale = 4 if scale is None else scale
    name = DEFAULT_SR_MODELS.get(scale)
    if name is not None and name in shipped_sr_models():
        return name
    have = sorted(s for s, n in DEFAULT_SR_MODELS.items() if n in shipped_sr_models())
    raise ValueError(f"no shipped x{scale} model (shipped defaults: {', '.join(f'x{s}' for s in have) or 'none'}); "
                     f"--model bicubic --scale {scale} upscales by bicubic interpolation")


def net_options(upsample: str | None) -> dict:
    """The constructor options a run's settings give its network (none for the network's own upsampling)."""
    return {} if upsample is None else {"upsample": upsample}


def load_sr_model(spec: str, scale: int = 4) -> torch.nn.Module:
    """Build an SR network ready for inference (eval mode, no gradients).

    Args:
        spec: ``"bicubic"``, a shipped name (:data:`SHIPPED_SR`), a ``model.safetensors``
            written by training, a ``checkpoint.pt``, or a run folder.
        scale: only for ``bicubic``; trained models know their own scale.
    """
    from perceptlab.nets.sr import build_sr_net

    if spec == "bicubic":
        return build_sr_net("bicubic", scale=scale).eval()
    net = load_trained(spec, shipped_sr_models(), "sr",
                       lambda settings: build_sr_net(settings["net"], scale=int(settings["scale"]),
                                                    **net_options(settings.get("upsample"))),
                       what="SR")  # fmt: skip
    net = fold_batchnorm(net.eval())
    # Channels-last roughly doubles CPU convolution speed for these nets (benchmarks/bench_upscale.py).
    return net.to(memory_format=torch.channels_last)
