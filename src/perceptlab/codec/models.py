"""Finding and loading codec models: shipped names, run folders, weight files, checkpoints.

Shipped codec models are our own, trained with :mod:`perceptlab.codec.train`, each
``perceptlab/models/NAME.safetensors`` with its card ``NAME.md`` (:data:`SHIPPED_CODEC`; the
ones present are listed by ``perceptlab models --task codec``); other models are given to
``--model`` as a run folder or its ``model.safetensors``. :func:`compact_model_file` makes the
smaller copy that ships.
"""

from __future__ import annotations

import os
from pathlib import Path

import torch

from perceptlab.codec.model import CodecModel
from perceptlab.training import load_trained, shipped_models

# Our own, from experiments/compression/run.py (each listed once trained; absent files are skipped).
# hyperprior_alternate, _alternategrid10, _alternategrid10chroma, _vmaf: the perceptually optimised points of
# experiments/perceptual_compression (issue 17).
CODEC_KINDS = ("bls2017", "hyperprior", "hyperprior_alternate", "hyperprior_alternategrid10",
               "hyperprior_alternategrid10chroma", "hyperprior_vmaf")  # fmt: skip
SHIPPED_CODEC: tuple[str, ...] = tuple(f"codec_{a}_q{q}" for a in CODEC_KINDS for q in (1, 2, 3, 4))


def shipped_codec_models() -> dict[str, Path]:
    """The shipped codec models present in this installation, ``{name: weights file}``."""
    return shipped_models(SHIPPED_CODEC)


def load_codec_model(spec: str) -> CodecModel:
    """A :class:`~perceptlab.codec.model.CodecModel` ready to code (eval mode, no gradients, tables built).

    Args:
        spec: a shipped name (:func:`shipped_codec_models`), a ``model.safetensors`` written by
            :func:`perceptlab.codec.train_codec`, a ``checkpoint.pt``, or a run folder.

    The model's ``name`` (what its files' headers say) is the shipped name, or
    the name its trainer recorded (the run folder's name). A ``model.safetensors``
    holds the integer coding tables made at the end of training; a checkpoint
    does not, and gets them built here from its float weights: a file coded
    so decodes only with the same checkpoint loaded on a machine that builds
    the same tables (the header's model hash tells), so share ``model.safetensors``.

    Raises:
        ValueError: unknown spec, or a file that is not a perceptlab codec model.
    """
    shipped = shipped_codec_models()
    names = []

    def build(settings) -> CodecModel:
        names.append(settings.get("name"))
        return CodecModel(settings["arch"], N=int(settings["N"]), M=int(settings["M"]))

    model = load_trained(spec, shipped, "codec", build, lambda config: "lambda_" in config and "arch" in config)
    if spec in shipped:
        model.name = spec
    else:
        path = Path(spec)
        model.name = names[0] or (path.name if path.is_dir() else path.parent.name) or model.arch
    if model.tables is None:
        model.build_tables()
    return model



def compact_model_file(src: str | os.PathLike, dst: str | os.PathLike) -> dict:
    """Write a smaller copy of the codec model file ``src`` to ``dst`` (atomically), for shipping.

    The convolution weights of the transforms are stored in float16 (their biases, the GDN layers and
    the densities stay float32), and the integer hyper-synthesis weights of the coding tables
    (``tables.hs*_weight``, int64 in memory) in int32. Loading widens them again: the copy codes with
    float32 arithmetic and the same integer tables, as a model whose weights are the float16 values,
    so it has its own hash in the files' headers and its own rate-distortion points, to be measured
    on the copy, not assumed from ``src``.

    Returns:
        ``{"bytes_before", "bytes_after", "max_weight_change"}``: file sizes and the largest change of a
        weight relative to its tensor's largest magnitude.

    Raises:
        ValueError: ``src`` is not a codec model with coding tables, or a weight does not fit the
            narrower type.
    """
    from perceptlab._files import atomic_write
    from perceptlab.training import load_model_file

    tensors, metadata = load_model_file(src)
    if metadata.get("task") != "codec" or not any(k.startswith("tables.") for k in tensors):
        raise ValueError(f"{src}: not a codec model file with coding tables")
    out, change = {}, 0.0
    for key, value in tensors.items():
        if key.startswith("net.") and key.endswith(".weight") and value.dtype == torch.float32:
            half = value.to(torch.float16)
            if not torch.isfinite(half).all():
                raise ValueError(f"{src}: {key} does not fit float16")
            peak = float(value.abs().max()) or 1.0
            change = max(change, float((half.to(torch.float32) - value).abs().max()) / peak)
            value = half
        elif _is_table_weight(key) and value.dtype == torch.int64:
            info = torch.iinfo(torch.int32)
            if value.numel() and not (info.min <= int(value.min()) and int(value.max()) <= info.max):
                raise ValueError(f"{src}: {key} does not fit int32")
            value = value.to(torch.int32)
        out[key] = value.contiguous()
    from safetensors.torch import save_file

    atomic_write(dst, lambda tmp: save_file(out, str(tmp), metadata=dict(metadata)))
    return {"bytes_before": Path(src).stat().st_size, "bytes_after": Path(dst).stat().st_size,
            "max_weight_change": change}  # fmt: skip


def _is_table_weight(key: str) -> bool:
    """The integer hyper-synthesis weights among the coding tables (``tables.hs0_weight``, ...)."""
    return key.startswith("tables.hs") and key.endswith("_weight")
