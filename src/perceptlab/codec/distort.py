"""Distorted copies of image crops, the quality proxy's training material.

Each kind takes a level ``u`` in ``[0, 1]`` (0 mild, 1 strong) and gives an 8-bit
image, as a decoded file would be:

=========  ============================================  =====================
kind       what                                          parameter at u=0 .. 1
=========  ============================================  =====================
jpeg       Pillow JPEG, 4:2:0                            quality 95 .. 5
webp       Pillow WebP, lossy                            quality 95 .. 5
jpeg2000   Pillow/OpenJPEG, raw codestream               2 .. 0.1 bpp
blur       Gaussian blur                                 sigma 0.5 .. 3 px
noise      white Gaussian noise                          sigma 1 .. 25 levels
sharpen    unsharp mask, Gaussian sigma 1                amount 0.25 .. 2
codec      one of the given learned codecs (rounded      the codec's own rate
           latents, no file)
none       the reference itself
=========  ============================================  =====================

Sharpening is there because VMAF rewards it (its "enhancement gain"): a proxy
that never saw it would mis-score a codec that learns to sharpen. A kind whose
library is missing here (``jpeg2000`` without OpenJPEG) is refused by
:func:`check_kinds` with the reason.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch

KINDS = ("jpeg", "webp", "jpeg2000", "blur", "noise", "sharpen", "codec", "none")
DEFAULT_KINDS = ("jpeg", "webp", "jpeg2000", "blur", "noise", "sharpen", "none")


def check_kinds(kinds: Sequence[str], codecs: Sequence) -> None:
    """ValueError when a kind is unknown, cannot run here, or is ``codec`` without codecs."""
    from perceptlab.codec.classic import get_codec

    if not kinds:
        raise ValueError(f"no distortion kinds; choose from {', '.join(KINDS)}")
    for kind in kinds:
        if kind not in KINDS:
            raise ValueError(f"unknown distortion {kind!r}; choose from {', '.join(KINDS)}")
        if kind in ("jpeg", "webp", "jpeg2000"):
            available = get_codec(kind).available()
            if not available:
                raise ValueError(f"distortion {kind} cannot run here: {available.detail}")
    if "codec" in kinds and not codecs:
        raise ValueError("distortion 'codec' needs learned codec models (--codecs)")


def _to_uint8(x: torch.Tensor) -> np.ndarray:
    return x.clamp(0, 1).mul(255).round().to(torch.uint8).permute(1, 2, 0).numpy()


def _from_uint8(rgb: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(np.array(rgb, dtype=np.uint8)).permute(2, 0, 1).to(torch.float32) / 255


def _quantize(x: torch.Tensor) -> torch.Tensor:
    return x.clamp(0, 1).mul(255).round().div(255)


def distort(x: torch.Tensor, kind: str, level: float, generator: torch.Generator | None = None,
            codec=None) -> torch.Tensor:  # fmt: skip
    """One image (3, H, W) in ``[0, 1]`` distorted by ``kind`` at ``level`` (module docstring), 8-bit valued."""
    from perceptlab.codec.classic import get_codec
    from perceptlab.ops.blur import gaussian_blur

    u = min(max(float(level), 0.0), 1.0)
    if kind in ("jpeg", "webp", "jpeg2000"):
        param = 0.1 * 20 ** (1 - u) if kind == "jpeg2000" else round(95 - 90 * u)
        c = get_codec(kind)
        return _from_uint8(c.decode(c.encode(_to_uint8(x), param)))
    if kind == "blur":
        return _quantize(gaussian_blur(x[None], 0.5 + 2.5 * u)[0])
    if kind == "noise":
        sigma = (1 + 24 * u) / 255
        return _quantize(x + sigma * torch.randn(x.shape, generator=generator))
    if kind == "sharpen":
        amount = 0.25 + 1.75 * u
        return _quantize(x + amount * (x - gaussian_blur(x[None], 1.0)[0]))
    if kind == "codec":
        if codec is None:
            raise ValueError("distortion 'codec' needs a codec model")
        from perceptlab.codec.bitstream import pad

        h, w = x.shape[-2:]
        with torch.no_grad():
            return _quantize(codec(pad(x[None], codec.stride))["x_hat"][0, :, :h, :w])
    if kind == "none":
        return x.clone()
    raise ValueError(f"unknown distortion {kind!r}; choose from {', '.join(KINDS)}")


def random_distortions(x: torch.Tensor, generator: torch.Generator, kinds: Sequence[str] = DEFAULT_KINDS,
                       codecs: Sequence = (), shard: tuple[int, int] = (0, 1)) -> tuple[torch.Tensor, list[str]]:  # fmt: skip
    """Each image of the batch ``x`` (B, 3, H, W) distorted by a random kind at a random level.

    The kind, level and codec of every image, and the seed of its own noise, are drawn from ``generator``
    (the same state gives the same batch). With ``shard = (index, count)``, ``x`` is the ``index``-th of
    ``count`` equal slices of a batch (as ``ImageCrops.sample_crops`` cuts them under torchrun): the
    draws are made for the whole batch and this slice's are used, so ``count`` processes distort their
    slices exactly as one process distorts the batch, and their generators stay in step.

    Returns:
        The distorted batch and the kind of each image.
    """
    index, count = shard
    draws = []
    for _ in range(len(x) * count):
        kind = kinds[int(torch.randint(len(kinds), (1,), generator=generator))]
        level = float(torch.rand((), generator=generator))
        codec = codecs[int(torch.randint(len(codecs), (1,), generator=generator))] if kind == "codec" else None
        seed = int(torch.randint(2**62, (1,), generator=generator))
        draws.append((kind, level, codec, seed))
    out, names = [], []
    for image, (kind, level, codec, seed) in zip(x, draws[index * len(x) : (index + 1) * len(x)]):
        out.append(distort(image, kind, level, torch.Generator().manual_seed(seed), codec))
        names.append(kind)
    return torch.stack(out), names
