"""Trained DeePSiM generators on images: load a run's model, reconstruct, invert, sample."""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path

import torch
import torch.nn.functional as F

from perceptlab.deepsim.train import DeepSimTrainConfig, build_comparator

# Trained by experiments/deepsim_ablation (all three loss terms), with model cards beside the weights.
SHIPPED_DEEPSIM = ("deepsim_autoencoder", "deepsim_invert_alexnet_relu3")


def shipped_deepsim_models() -> dict[str, Path]:
    """The shipped DeePSiM models present in this installation, ``{name: weights file}``."""
    from perceptlab.training import shipped_models

    return shipped_models(SHIPPED_DEEPSIM)


def _build(settings: Mapping) -> torch.nn.Module:
    from perceptlab.nets.deepsim import build_deepsim_net

    # A model file's metadata holds the configuration as JSON; a checkpoint holds it as a dict.
    config = DeepSimTrainConfig.from_dict(json.loads(settings["config"]) if "config" in settings else settings)
    net = build_deepsim_net(config.kind, **config.net_options())
    return net


def load_deepsim_model(spec: str) -> torch.nn.Module:
    """The generator of a ``train autoencoder|vae|invert`` run (a shipped name of :func:`shipped_deepsim_models`, a
    ``model.safetensors``, ``checkpoint.pt`` or run folder), in eval mode; ``net.name`` says which. Raises
    ``ValueError`` for another task's file."""
    from perceptlab.training import load_trained

    return load_trained(spec, shipped_deepsim_models(), "deepsim", _build, lambda config: config.get("kind") in ("autoencoder", "vae", "invert"))


@torch.no_grad()
def reconstruct(net: torch.nn.Module, x: torch.Tensor) -> torch.Tensor:
    """An autoencoder's or VAE's reconstruction (the VAE's mean code) of images ``x`` (N, 3, H, W) in [0, 1].

    Sides that are not multiples of the code's stride are padded by reflection, and the result cropped back.
    """
    if net.name == "invert":
        raise ValueError("an invert model reconstructs from features: use `perceptlab invert`")
    h, w = x.shape[-2:]
    f = net.downsample
    padded = F.pad(x, (0, -w % f, 0, -h % f), mode="replicate")
    return net(padded)["x_hat"][..., :h, :w]


@torch.no_grad()
def invert(net: torch.nn.Module, x: torch.Tensor) -> torch.Tensor:
    """An inverter's image from the comparator features of ``x`` (N, 3, H, W) in [0, 1], same size."""
    if net.name != "invert":
        raise ValueError(f"a {net.name} model is not an inverter: use `perceptlab reconstruct`")
    features = build_comparator(net.network, net.layer)(x)[net.layer]
    return net(features, tuple(x.shape[-2:]))["x_hat"]


@torch.no_grad()
def sample(net: torch.nn.Module, n: int, side: int = 64, generator: torch.Generator | None = None) -> torch.Tensor:
    """``n`` new ``side x side`` images from a VAE: codes drawn from its prior N(0, 1), decoded."""
    if net.name != "vae":
        raise ValueError(f"only a vae model samples new images, not a {net.name}")
    if side % net.downsample:
        raise ValueError(f"side must be a multiple of {net.downsample}, got {side}")
    z = torch.randn(n, net.bottleneck, side // net.downsample, side // net.downsample, generator=generator)
    return net.decode(z)
