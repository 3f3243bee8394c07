"""Image sheets for reports and training samples: images side by side, whole or as enlarged crops.

Both take rows ``(name, {column label: image})`` of NCHW images in ``[0, 1]``
(the first of a batch is shown) and return a PIL image; the first cell of a
row is labelled ``"label (name)"``, the others by their label.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
from PIL import Image, ImageDraw

Rows = Sequence[tuple[str, dict[str, torch.Tensor]]]
PAD, HEAD = 6, 18  # pixels between cells; height of a cell's label


def to_pil(x: torch.Tensor) -> Image.Image:
    """The first image of an (N, 3, H, W) batch in [0, 1] as 8-bit RGB."""
    return Image.fromarray((x[0].clamp(0, 1).permute(1, 2, 0).numpy() * 255 + 0.5).astype(np.uint8))


def busiest_window(image: torch.Tensor, size: int) -> tuple[int, int]:
    """Top-left corner of the ``size`` window with the most gradient energy: where differences show."""
    gray = image[0].mean(0)
    energy = (gray[1:, :-1] - gray[:-1, :-1]).abs() + (gray[:-1, 1:] - gray[:-1, :-1]).abs()
    stride = max(1, size // 4)
    # The energy map is a pixel smaller than the image: a window as large as the image fits once.
    window = min(size, *energy.shape)
    pooled = torch.nn.functional.avg_pool2d(energy[None, None], window, stride=stride)[0, 0]
    index = int(pooled.argmax())
    return (index // pooled.shape[1]) * stride, (index % pooled.shape[1]) * stride


def _sheet(rows: Rows, width: int, height: int, cell) -> Image.Image:
    columns = max(len(row) for _, row in rows)
    sheet = Image.new("RGB", (columns * (width + PAD) + PAD, len(rows) * (height + PAD + HEAD) + PAD), "white")
    draw = ImageDraw.Draw(sheet)
    for r, (name, row) in enumerate(rows):
        for k, (label, image) in enumerate(row.items()):
            left, top = PAD + k * (width + PAD), PAD + r * (height + PAD + HEAD)
            draw.text((left, top), f"{label} ({name})" if k == 0 else label, fill="black")
            sheet.paste(cell(r, image), (left, top + HEAD))
    return sheet


def whole_image_sheet(rows: Rows, shrink: int = 2) -> Image.Image:
    """Whole images side by side, shrunk ``shrink`` times (Lanczos).

    Every image of a row should have the same size (an SR output and its HR
    image, say); cells are as large as the largest image.
    """
    width = max(x.shape[-1] for _, row in rows for x in row.values()) // shrink
    height = max(x.shape[-2] for _, row in rows for x in row.values()) // shrink

    def cell(r: int, image: torch.Tensor) -> Image.Image:
        pil = to_pil(image)
        return pil.resize((max(1, pil.width // shrink), max(1, pil.height // shrink)), Image.LANCZOS)

    return _sheet(rows, width, height, cell)


def crop_sheet(rows: Rows, crop: int = 96, zoom: int = 3, focus: str | None = None) -> Image.Image:
    """The same ``crop`` square of every image of a row, enlarged ``zoom`` times (nearest neighbour, pixels visible).

    The square is where the row's ``focus`` image (default: its last, the
    reference) has the most detail (:func:`busiest_window`).
    """
    windows = []
    for _, row in rows:
        reference = row[focus] if focus else list(row.values())[-1]
        c = min(crop, *reference.shape[-2:])
        windows.append((c, *busiest_window(reference, c)))

    def cell(r: int, image: torch.Tensor) -> Image.Image:
        c, y, x = windows[r]
        return to_pil(image[..., y : y + c, x : x + c]).resize((c * zoom, c * zoom), Image.NEAREST)

    return _sheet(rows, crop * zoom, crop * zoom, cell)
