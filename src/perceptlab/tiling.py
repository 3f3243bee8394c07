"""Running image-to-image networks on images of any size with bounded memory: overlapping tiles, 8-bit output.

Task-neutral: an SR network (scale > 1) or a style network (scale 1) alike.

The LR image is cut into ``tile x tile`` pieces; each is run with ``overlap``
pixels of context on every side, and only its centre is kept. Where
``overlap`` covers the network's receptive field, the result equals untiled
inference up to float error (tests check it); the image borders are the
network's own borders in both cases. The output is assembled in an 8-bit
array, a quarter of the memory of a float image: a 4000x3000 -> 16000x12000
upscale needs 576 MB for it.

Networks that work at input resolution first and upsample at the end (Johnson
et al.'s net, SRResNet) say so with a ``tiling_stages()`` method returning
``(head, tail, tail_context)``: ``tail(head(lr))`` is the network, ``head``
keeps the input's size and ``tail`` needs ``tail_context`` input pixels of
context. They are tiled in two levels. The head runs on regions of
``4 * tile`` pixels, with the context of its own receptive field; the tail, where
the activations are ``scale**2`` times larger, runs on ``tile x tile`` pieces of
the head's features with its small context. Most of the work then runs on large
tiles with little overlap: for the Johnson x4 net with tile 128 and overlap 16, a
2048x2048 output computes 1.08 times the untiled work instead of 1.41 (a single
level of tiles), and the largest activation stays the size of one tail tile's.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator

import numpy as np
import torch

# Head regions are this many tiles on a side.
REGION_TILES = 4


def _stages(net, overlap: int):
    """(head or None, tail, head context, tail context) for ``net`` and a total context of ``overlap``."""
    split = getattr(net, "tiling_stages", None)
    if split is None:
        return None, net, 0, overlap
    head, tail, tail_context = split()
    tail_context = min(tail_context, overlap)
    return head, tail, overlap - tail_context, tail_context


@torch.no_grad()
def upscale_tiled(
    net: Callable[[torch.Tensor], torch.Tensor],
    lr: torch.Tensor,
    scale: int,
    tile: int = 64,
    overlap: int = 16,
    progress: bool = False,
) -> np.ndarray:
    """Upscale one image tile by tile.

    Args:
        net: maps (1, 3, h, w) in [0, 1] to (1, 3, scale*h, scale*w); tiled in
            two levels when it has ``tiling_stages()`` (see the module note).
        lr: the image, (1, 3, h, w) in [0, 1].
        scale: the network's factor.
        tile: tile side in input pixels (memory grows with its square).
        overlap: context in input pixels on each side of a tile (for a
            two-level network, the head's and the tail's together: the tail
            gets up to its ``tail_context``, the head the rest).
        progress: show a bar over the tiles.

    Returns:
        (scale*h, scale*w, 3) uint8 array.
    """
    if tile < 1 or overlap < 0:
        raise ValueError(f"tile must be >= 1 and overlap >= 0, got tile={tile}, overlap={overlap}")
    _, _, h, w = lr.shape
    out = np.empty((h * scale, w * scale, 3), dtype=np.uint8)
    bar = None
    n_tiles = len(range(0, h, tile)) * len(range(0, w, tile))
    if progress and n_tiles > 1:
        from tqdm.auto import tqdm

        bar = tqdm(total=n_tiles, desc="upscale", unit="tile", leave=False)
    for (y0, x0, y1, x1), centre in tiles(net, lr, scale, tile, overlap):
        out[y0 * scale : y1 * scale, x0 * scale : x1 * scale] = (
            centre.clamp(0, 1).mul(255).round().to(torch.uint8).permute(1, 2, 0).numpy()
        )
        if bar is not None:
            bar.update()
    if bar is not None:
        bar.close()
    return out


@torch.no_grad()
def tiles(
    net: Callable[[torch.Tensor], torch.Tensor], lr: torch.Tensor, scale: int, tile: int, overlap: int
) -> Iterator[tuple[tuple[int, int, int, int], torch.Tensor]]:
    """The tiles of :func:`upscale_tiled` as they are computed, in float.

    Yields:
        ``((y0, x0, y1, x1), centre)``: the tile's box in input pixels and the
        network's output for it, (3, scale * (y1 - y0), scale * (x1 - x0)),
        unclamped.
    """
    _, _, h, w = lr.shape
    lr = lr.contiguous(memory_format=torch.channels_last)
    head, tail, head_context, tail_context = _stages(net, overlap)
    region = tile if head is None else REGION_TILES * tile
    for ry0 in range(0, h, region):
        for rx0 in range(0, w, region):
            ry1, rx1 = min(ry0 + region, h), min(rx0 + region, w)
            # The region's features with the tail's context around them (clipped to the image).
            fy0, fx0 = max(0, ry0 - tail_context), max(0, rx0 - tail_context)
            fy1, fx1 = min(h, ry1 + tail_context), min(w, rx1 + tail_context)
            if head is None:
                features = lr[..., fy0:fy1, fx0:fx1]
            else:
                iy0, ix0 = max(0, fy0 - head_context), max(0, fx0 - head_context)
                iy1, ix1 = min(h, fy1 + head_context), min(w, fx1 + head_context)
                features = head(lr[..., iy0:iy1, ix0:ix1])[..., fy0 - iy0 : fy1 - iy0, fx0 - ix0 : fx1 - ix0]
            for y0 in range(ry0, ry1, tile):
                for x0 in range(rx0, rx1, tile):
                    y1, x1 = min(y0 + tile, ry1), min(x0 + tile, rx1)
                    ya, xa = max(0, y0 - tail_context), max(0, x0 - tail_context)
                    yb, xb = min(h, y1 + tail_context), min(w, x1 + tail_context)
                    piece = features[..., ya - fy0 : yb - fy0, xa - fx0 : xb - fx0]
                    sr = tail(piece.contiguous(memory_format=torch.channels_last))
                    top, left = (y0 - ya) * scale, (x0 - xa) * scale
                    yield (y0, x0, y1, x1), sr[0, :, top : top + (y1 - y0) * scale, left : left + (x1 - x0) * scale]
            del features
