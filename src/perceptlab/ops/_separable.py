"""Separable linear filters as one dense weight matrix per axis.

A resize or blur along one axis is ``out = M @ in`` with ``M`` of shape
(out_length, in_length). Building ``M`` once and applying it as a matrix
product keeps the operation exact (no padding copies), batched and
differentiable, and lets boundary handling be folded into ``M``: taps that
fall outside the image are added to the input pixel they stand for.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import torch


BOUNDARIES = ("symmetric", "replicate")


def fold(indices: torch.Tensor, length: int, boundary: str) -> torch.Tensor:
    """Map 0-based indices, possibly outside ``[0, length)``, onto the pixels they stand for.

    ``symmetric`` mirrors with the edge pixel repeated (``1 0 | 0 1 ... n-1 | n-1 n-2``),
    MATLAB's ``symmetric`` padding; ``replicate`` repeats the edge pixel (``0 0 | 0 1 ...``).
    """
    if boundary == "replicate":
        return indices.clamp(0, length - 1)
    if boundary == "symmetric":
        period = indices.remainder(2 * length)
        return torch.where(period < length, period, 2 * length - 1 - period)
    raise ValueError(f"boundary must be one of {BOUNDARIES}, got {boundary!r}")


def axis_matrix(
    in_length: int,
    centres: torch.Tensor,
    kernel: Callable[[torch.Tensor], torch.Tensor],
    width: float,
    boundary: str = "symmetric",
) -> torch.Tensor:
    """Float64 weight matrix (len(centres), in_length) of a kernel sampled around each centre.

    Args:
        in_length: number of input pixels along the axis.
        centres: for every output pixel, where it lies in the input, in
            MATLAB's 1-based pixel coordinates (pixel ``k`` is centred on ``k``).
        kernel: weight as a function of the distance (in input pixels) from the centre.
        width: the kernel's support, in input pixels; taps beyond it are not visited.
        boundary: how taps outside the image are mapped inside, see :func:`fold`.

    Rows are normalised to sum to 1, then out-of-range taps are folded inside.
    """
    centres = centres.to(torch.float64)
    taps = math.ceil(width) + 2
    left = torch.floor(centres - width / 2)
    positions = left.unsqueeze(1) + torch.arange(taps, dtype=torch.float64)
    weights = kernel(centres.unsqueeze(1) - positions)
    weights = weights / weights.sum(dim=1, keepdim=True)
    columns = fold(positions.long() - 1, in_length, boundary)
    matrix = torch.zeros(len(centres), in_length, dtype=torch.float64)
    return matrix.scatter_add_(1, columns, weights)


def apply_separable(
    x: torch.Tensor, rows: torch.Tensor | None, cols: torch.Tensor | None, rows_first: bool = True
) -> torch.Tensor:
    """``rows @ x @ cols.T`` over the last two axes of ``x``, in ``x``'s dtype and device.

    ``None`` stands for the identity: that axis is left alone. The result is
    always a new tensor, never ``x`` itself.
    """
    if rows is None and cols is None:
        return x.clone()

    def along_rows(y: torch.Tensor) -> torch.Tensor:
        return y if rows is None else torch.matmul(rows.to(dtype=y.dtype, device=y.device), y)

    def along_cols(y: torch.Tensor) -> torch.Tensor:
        return y if cols is None else torch.matmul(y, cols.to(dtype=y.dtype, device=y.device).T)

    return along_cols(along_rows(x)) if rows_first else along_rows(along_cols(x))
