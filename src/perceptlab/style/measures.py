"""Does a stylisation keep its photo, carry its style, and stay free of a grid and of blobs? Four plain measures.

Issue 14's criteria for a shipped style, measured on photos the network never
trained on (a set of several, each stylised):

* :func:`content_ratio`: at VGG-16 relu2_2, the stylisation's distance to its
  own photo over its distance to the nearest *other* photo of the set. Near 1,
  the output is as close to any photo as to its own: the photo is gone (the
  style image itself scores 0.94-0.96 on that measure); a recognisable photo
  scores lower (Gatys et al.'s optimisation: 0.73-0.81). Target: <= 0.85.
* :func:`style_ratio`: the Gram distance (the style loss's layers and
  normalisation) of the stylisation to the style image over that of the
  photo itself. Below 1 the output moved towards the style; target <= 0.5.
* the grid: :func:`perceptlab.metrics.fidelity.grid_score` with period 4 (the
  network's two stride-2 stages); target <= 0.03.
* :func:`blob_fraction`: the share of pixels the network burnt to pure black or
  white where the photo is neither: the "droplets" an instance-norm network
  grows to steer its own normalisation statistics (its output tanh saturates
  there). The other three measures do not see them: a few blobs barely move a
  Gram matrix or a feature distance. Target: <= 0.002.

Every image is NCHW float in [0, 1], batch 1, in lists (the photos may differ in size).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F

from perceptlab._checks import check_image
from perceptlab.features import VGG16Features
from perceptlab.losses.perceptual import STYLE_LAYERS, gram_matrix
from perceptlab.ops.resize import resize_longer_side

# Side of the square every image is resized to before comparing relu2_2 features (photos differ in size).
COMPARE_SIDE = 256
CONTENT_TARGET, STYLE_TARGET, GRID_TARGET, BLOB_TARGET = 0.85, 0.5, 0.03, 0.002
# A blob pixel: every channel within BLOB_LEVEL of 0 (or of 1) in the output while the photo's pixel is at
# least PHOTO_MARGIN away from that extreme in some channel.
BLOB_LEVEL, PHOTO_MARGIN = 0.02, 0.1


def _square(x: torch.Tensor, side: int) -> torch.Tensor:
    return F.interpolate(x, size=(side, side), mode="bicubic", align_corners=False, antialias=True).clamp(0, 1)


@torch.no_grad()
def content_ratio(outputs: Sequence[torch.Tensor], photos: Sequence[torch.Tensor], layer: str = "relu2_2",
                  side: int = COMPARE_SIDE, vgg: VGG16Features | None = None) -> torch.Tensor:  # fmt: skip
    """Per stylisation ``i``: ``d(out_i, photo_i) / min_{j != i} d(out_i, photo_j)``, ``d`` the relu2_2 MSE.

    Args:
        outputs: stylisations, ``outputs[i]`` made from ``photos[i]``; at least two.
        photos: the photos, any sizes; every image is resized to ``side`` x ``side`` first.
        vgg: a VGG-16 feature net that returns ``layer`` (default: built here, ImageNet weights).

    Returns:
        (N,) float64.
    """
    if len(outputs) != len(photos) or len(photos) < 2:
        raise ValueError(f"need two or more photos and one stylisation of each, got {len(photos)} and {len(outputs)}")
    vgg = vgg or VGG16Features([layer])
    feats = {}
    for key, images in (("out", outputs), ("photo", photos)):
        for image in images:
            check_image(image, key, channels=3)
        feats[key] = torch.cat([vgg(_square(x, side))[layer] for x in images]).flatten(1).double()
    distance = torch.cdist(feats["out"], feats["photo"]).square() / feats["out"].shape[1]  # (N, N) MSE
    own = distance.diagonal()
    others = distance + torch.diag(torch.full_like(own, float("inf")))
    return own / others.min(dim=1).values


@torch.no_grad()
def style_ratio(outputs: Sequence[torch.Tensor], photos: Sequence[torch.Tensor], style: torch.Tensor,
                style_size: int = 256, layers: Sequence[str] = STYLE_LAYERS,
                vgg: VGG16Features | None = None) -> torch.Tensor:  # fmt: skip
    """Per stylisation: Gram distance to the style image over its photo's Gram distance to it.

    The Gram distance is the style loss's: the sum over ``layers`` of the squared Gram
    differences over ``C^2`` (:class:`perceptlab.style.StyleTransferLoss`), the style image's
    longer side resized to ``style_size`` as in training, every output and photo at its own size.

    Returns:
        (N,) float64.
    """
    if len(outputs) != len(photos) or not photos:
        raise ValueError(f"need one stylisation of each photo, got {len(photos)} photos and {len(outputs)}")
    vgg = vgg or VGG16Features(list(layers))
    target = vgg(resize_longer_side(style, style_size))

    def distance(x: torch.Tensor) -> float:
        features = vgg(x)
        return sum(float((gram_matrix(features[k]) - gram_matrix(target[k])).double().square().sum())
                   / features[k].shape[1] ** 2 for k in layers)  # fmt: skip

    return torch.tensor([distance(o) / distance(p) for o, p in zip(outputs, photos)], dtype=torch.float64)


def blob_fraction(outputs: Sequence[torch.Tensor], photos: Sequence[torch.Tensor]) -> torch.Tensor:
    """Per pair, the fraction of pixels that are pure black or pure white in the output but not in the photo.

    Black: every output channel ``<= BLOB_LEVEL`` where some photo channel is ``>= PHOTO_MARGIN``;
    white: every output channel ``>= 1 - BLOB_LEVEL`` where some photo channel is ``<= 1 - PHOTO_MARGIN``.
    Each output must have its photo's size.

    Returns:
        (len(outputs),) fractions in [0, 1].
    """
    if len(outputs) != len(photos):
        raise ValueError(f"{len(outputs)} outputs for {len(photos)} photos")
    values = []
    for out, photo in zip(outputs, photos):
        check_image(out, "output", channels=3)
        check_image(photo, "photo", channels=3)
        if out.shape != photo.shape:
            raise ValueError(f"output {tuple(out.shape)} and photo {tuple(photo.shape)} differ in shape")
        black = (out.amax(1) <= BLOB_LEVEL) & (photo.amax(1) >= PHOTO_MARGIN)
        white = (out.amin(1) >= 1 - BLOB_LEVEL) & (photo.amin(1) <= 1 - PHOTO_MARGIN)
        values.append((black | white).float().mean())
    return torch.stack(values)
