"""Finding and loading SR models: shipped names, run folders, weight files, checkpoints.

Shipped models are our own, trained with :mod:`perceptlab.sr.train`; each is a
small safetensors file in ``perceptlab/models/`` with a model card beside it
(``NAME.md``: data, losses, steps, wall time, hardware, evaluation).
"""

from __future__ import annotations

from pathlib import Path

import torch
from torch import nn
from torch.nn.utils.fusion import fuse_conv_bn_eval

MODELS_DIR = Path(__file__).resolve().parents[1] / "models"
SHIPPED_SR = ("johnson_x4_vgg", "johnson_x4_mse", "srcnn_x4_vgg", "srcnn_x4_mse")
# Perceptual by default: the point of this library.
DEFAULT_SR_MODEL = "johnson_x4_vgg"


def shipped_sr_models() -> dict[str, Path]:
    """The shipped SR models present in this installation, ``{name: weights file}``."""
    return {name: MODELS_DIR / f"{name}.safetensors" for name in SHIPPED_SR if (MODELS_DIR / f"{name}.safetensors").is_file()}


def _weights_file(spec: str) -> Path:
    shipped = shipped_sr_models()
    if spec in shipped:
        return shipped[spec]
    path = Path(spec)
    if path.is_dir():
        for candidate in (path / "model.safetensors", path / "checkpoint.pt"):
            if candidate.is_file():
                return candidate
        raise ValueError(f"{path}: a run folder without model.safetensors or checkpoint.pt")
    if path.is_file():
        return path
    known = ", ".join(["bicubic", *shipped]) or "bicubic"
    raise ValueError(f"unknown model {spec!r}: not a shipped model ({known}), nor a file or run folder")


def load_sr_model(spec: str, scale: int = 4) -> torch.nn.Module:
    """Build an SR network ready for inference (eval mode, no gradients).

    Args:
        spec: ``"bicubic"``, a shipped name (:data:`SHIPPED_SR`), a ``model.safetensors``
            written by training, a ``checkpoint.pt``, or a run folder.
        scale: only for ``bicubic``; trained models know their own scale.
    """
    from perceptlab.nets.sr import build_sr_net
    from perceptlab.sr.train import load_sr_weights

    if spec == "bicubic":
        return build_sr_net("bicubic", scale=scale).eval()
    path = _weights_file(spec)
    if path.suffix == ".pt":
        from perceptlab.training import load_checkpoint

        state = load_checkpoint(path)
        net = build_sr_net(state["config"]["net"], scale=int(state["config"]["scale"]))
        net.load_state_dict(state["net"])
    else:
        tensors, metadata = load_sr_weights(path)
        if metadata.get("task") != "sr":
            raise ValueError(f"{path}: not an SR model written by perceptlab (no 'task: sr' metadata)")
        net = build_sr_net(metadata["net"], scale=int(metadata["scale"]))
        net.load_state_dict(tensors)
    net.requires_grad_(False)
    net = fold_batchnorm(net.eval())
    # Channels-last roughly doubles CPU convolution speed for these nets (benchmarks/bench_upscale.py).
    return net.to(memory_format=torch.channels_last)


def fold_batchnorm(net: nn.Module) -> nn.Module:
    """Fold every eval-mode BatchNorm into the convolution before it (in place), for faster inference.

    In eval mode a BatchNorm is an affine map per channel, so ``BN(conv(x))``
    is one convolution with rescaled weights and a new bias: the outputs are
    unchanged up to float error and a full pass over each activation is saved.
    """
    if net.training:
        raise ValueError("fold_batchnorm needs a network in eval mode")
    for module in net.modules():
        if not isinstance(module, nn.Sequential):
            continue
        names = list(module._modules)
        for first, second in zip(names, names[1:]):
            conv, bn = module._modules[first], module._modules[second]
            if isinstance(conv, (nn.Conv2d, nn.ConvTranspose2d)) and isinstance(bn, nn.BatchNorm2d):
                module._modules[first] = fuse_conv_bn_eval(conv, bn, transpose=isinstance(conv, nn.ConvTranspose2d))
                module._modules[second] = nn.Identity()
    return net
