"""Feed-forward style models: finding them (shipped names, run folders, files) and running them on any image.

Shipped models are our own, trained with :mod:`perceptlab.style.train`
(recipes in ``experiments/style_models``), one safetensors file per style in
``perceptlab/models/`` (``style_NAME.safetensors``, float16 weights, with a
model card ``style_NAME.md``); only those whose files are present are offered.
"""

from __future__ import annotations

from pathlib import Path

import torch

from perceptlab._checks import check_image
from perceptlab.training import load_trained, shipped_models

SHIPPED_STYLE = ("style_composition_vii", "style_starry_night", "style_udnie", "style_wave")
# Enough context around a tile for a batch-norm network (its receptive field reaches 57 pixels),
# and a multiple of 4, which keeps the tiles on the network's stride-4 grid.
TILE_OVERLAP = 64


def shipped_style_models() -> dict[str, Path]:
    """The shipped style models present in this installation, ``{name: weights file}``."""
    return shipped_models(SHIPPED_STYLE)


def load_style_model(spec: str) -> torch.nn.Module:
    """A :class:`~perceptlab.nets.style.JohnsonStyleNet` ready for inference (eval mode, no gradients).

    Args:
        spec: a shipped name (:func:`shipped_style_models`), a ``model.safetensors``
            written by :func:`perceptlab.style.train_style`, a ``checkpoint.pt``, or a run folder.

    Batch norms are folded into the convolutions before them and such a
    network's weights put in channels-last layout, for speed (1.3 times; an
    instance-norm network is slower in that layout, see
    :class:`~perceptlab.nets.style.JohnsonStyleNet`); the outputs are unchanged.

    Raises:
        ValueError: unknown spec, or a file that is not a perceptlab style model.
    """
    from perceptlab.nets.style import JohnsonStyleNet
    from perceptlab.nets.fold import fold_batchnorm

    def build(settings) -> JohnsonStyleNet:
        # Files written before the option existed hold the paper's transposed convolutions.
        return JohnsonStyleNet(norm=settings["norm"], padding=settings["padding"],
                               upsample=settings.get("upsample", "transpose"))  # fmt: skip

    net = load_trained(spec, shipped_style_models(), "style", build, lambda config: "style" in config)
    if net.norm == "batch":
        net = fold_batchnorm(net.eval()).to(memory_format=torch.channels_last)
    return net.eval()


@torch.no_grad()
def stylize_feedforward(net: torch.nn.Module, image: torch.Tensor, tile: int | None = None,
                        overlap: int = TILE_OVERLAP) -> torch.Tensor:  # fmt: skip
    """Run a style network on one image of any size, whole or tile by tile.

    Args:
        net: maps (1, 3, H, W) in [0, 1] to the same shape (a ``JohnsonStyleNet``).
        image: (1, 3, H, W) in [0, 1].
        tile: ``None`` for the whole image at once; else the tile side in
            pixels, a multiple of 4, to bound memory on large images.
        overlap: context on every side of a tile, a multiple of 4.

    Tiles: each tile is run with ``overlap`` pixels of context and only its
    centre is kept (:func:`perceptlab.tiling.upscale_tiled`), the result
    is assembled in 8 bits. For a batch-norm network, whose every output pixel
    depends on a 115x115 window, the result equals whole-image inference up
    to rounding when ``overlap >= 64``. An instance-norm network normalises
    each tile with that tile's own statistics, so its tiles differ slightly
    from the whole image and from each other: use tiles as large as memory
    allows (whole-image inference peaks at about 0.5 KB per pixel, 500 MB
    at 1024x1024).

    Returns:
        The stylised image, (1, 3, H, W) in [0, 1].
    """
    check_image(image, "image", channels=3)
    if tile is None:
        return net(image).contiguous()
    if tile < 4 or tile % 4 or overlap < 0 or overlap % 4:
        raise ValueError(f"tile must be a positive multiple of 4 and overlap a multiple of 4, got {tile}, {overlap}")
    from perceptlab.tiling import upscale_tiled

    out = upscale_tiled(net, image, 1, tile=tile, overlap=overlap)
    return torch.from_numpy(out).permute(2, 0, 1).unsqueeze(0).float().div(255.0)
