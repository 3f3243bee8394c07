"""Finding and loading codec models: shipped names, run folders, weight files, checkpoints.

Shipped codec models will be our own, trained with :mod:`perceptlab.codec.train`,
each ``perceptlab/models/NAME.safetensors`` with its card ``NAME.md``; none is
trained yet (:data:`SHIPPED_CODEC` is empty), so files are decoded with
``--model`` (a run folder or its ``model.safetensors``).
"""

from __future__ import annotations

from pathlib import Path

from perceptlab.codec.model import CodecModel
from perceptlab.training import load_trained, shipped_models

# Our own, from experiments/compression/run.py (each listed once trained; absent files are skipped).
SHIPPED_CODEC: tuple[str, ...] = tuple(f"codec_{a}_q{q}" for a in ("bls2017", "hyperprior") for q in (1, 2, 3, 4))


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

