"""Finding and loading SR models: shipped names, run folders, weight files, checkpoints.

Shipped models are our own, trained with :mod:`perceptlab.sr.train`; each is a
small safetensors file in ``perceptlab/models/`` with a model card beside it
(``NAME.md``: data, losses, steps, wall time, hardware, evaluation).
"""

from __future__ import annotations

from pathlib import Path

import torch

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
    return net.eval()
