"""The hyper-synthesis in integer arithmetic, so that encoder and decoder choose the same scale tables everywhere.

A hyperprior decoder picks the table of each symbol of ``y`` from scales it
computes itself from ``ẑ``. Computed in floating point, a scale that falls
within rounding error of a boundary between two tables can land on either
side on another CPU, BLAS or thread count, and the rest of the file then
decodes to garbage (CompressAI issue #279). Here the choice never touches a
float:

- when the model's tables are built, the weights of ``h_s`` are quantised
  once to integers with :data:`WEIGHT_BITS` fractional bits, the biases to
  :data:`WEIGHT_BITS` + :data:`ACTIVATION_BITS` (:func:`quantize_layers`),
  and stored in the model file;
- at coding time, ``ẑ`` (integers plus the dyadic medians) enters as an
  integer with :data:`ACTIVATION_BITS` fractional bits; each convolution is an
  int64 matrix product (transposed ones as zero-insertion then convolution),
  rescaled by a rounding right shift, with an integer ReLU
  (:func:`run_layers`);
- the table index is the number of integer thresholds below the integer
  scale (:func:`table_indices`).

Integer addition and multiplication are exact and associative, so any
machine, library or summation order gives the same indices; the accumulators'
range is checked once, when the layers are quantised, to stay far from int64
overflow. The integer scales differ from the float network's by the
quantisation of the weights (checked to pick the same table almost
everywhere in ``tests/test_codec.py``); the float network remains what
training and the rate estimate use.
"""

from __future__ import annotations

import torch
from torch import nn

# Fractional bits of the activations (and of the medians of z) and of the weights.
ACTIVATION_BITS = 16
WEIGHT_BITS = 16
# Activations are clamped to +-2**30 after every layer (16384 in value, far beyond the table's largest scale,
# 256), which bounds every accumulator by (sum of |weights|) * 2**30 + |bias|.
ACTIVATION_LIMIT = 2**30
_ACCUMULATOR_LIMIT = 2**62


@torch.no_grad()
def quantize_layers(layers: nn.Sequential, prefix: str = "hs") -> dict[str, torch.Tensor]:
    """Integer weights of a sequence of ``Conv2d`` / ``ConvTranspose2d`` layers, each optionally followed by ReLU.

    Returns:
        ``{f"{prefix}{i}_weight": (O, C, k, k) int64, f"{prefix}{i}_bias": (O,) int64,
        f"{prefix}{i}_geometry": [transposed, stride, padding, output_padding, relu] int64}``,
        transposed weights already turned into those of the equivalent convolution.

    Raises:
        ValueError: another kind of layer, or weights so large that an accumulator could overflow.
    """
    out: dict[str, torch.Tensor] = {}
    modules = list(layers)
    index = 0
    for i, layer in enumerate(modules):
        if isinstance(layer, nn.ReLU):
            continue
        if not isinstance(layer, (nn.Conv2d, nn.ConvTranspose2d)) or layer.groups != 1 or layer.dilation != (1, 1):
            raise ValueError(f"cannot run {layer} in integer arithmetic")
        transposed = isinstance(layer, nn.ConvTranspose2d)
        weight = layer.weight.double()
        if transposed:  # the equivalent convolution of the zero-inserted input: flipped, in/out swapped
            weight = weight.flip(-1, -2).transpose(0, 1)
        relu = i + 1 < len(modules) and isinstance(modules[i + 1], nn.ReLU)
        w = torch.round(weight * 2**WEIGHT_BITS).to(torch.int64).contiguous()
        bias = layer.bias.double() if layer.bias is not None else torch.zeros(w.shape[0], dtype=torch.float64)
        b = torch.round(bias * 2 ** (WEIGHT_BITS + ACTIVATION_BITS)).to(torch.int64)
        bound = int(w.abs().flatten(1).sum(1).max()) * ACTIVATION_LIMIT + int(b.abs().max())
        if bound >= _ACCUMULATOR_LIMIT:
            raise ValueError(f"layer {i} of the hyper-synthesis has weights too large for 64-bit integer coding")
        output_padding = layer.output_padding[0] if transposed else 0
        geometry = [int(transposed), layer.stride[0], layer.padding[0], output_padding, int(relu)]
        out |= {f"{prefix}{index}_weight": w, f"{prefix}{index}_bias": b,
                f"{prefix}{index}_geometry": torch.tensor(geometry, dtype=torch.int64)}  # fmt: skip
        index += 1
    return out


def run_layers(x: torch.Tensor, tables: dict[str, torch.Tensor], prefix: str = "hs") -> torch.Tensor:
    """Run the layers of :func:`quantize_layers` on one int64 input (C, H, W) with ACTIVATION_BITS fractional bits."""
    if x.dtype != torch.int64 or x.dim() != 3:
        raise TypeError(f"expected a (C, H, W) int64 tensor, got {x.dtype} {tuple(x.shape)}")
    index = 0
    while f"{prefix}{index}_weight" in tables:
        weight, bias = tables[f"{prefix}{index}_weight"], tables[f"{prefix}{index}_bias"]
        transposed, stride, padding, output_padding, relu = tables[f"{prefix}{index}_geometry"].tolist()
        k = weight.shape[-1]
        if transposed:
            c, h, w = x.shape
            spread = x.new_zeros(c, (h - 1) * stride + 1, (w - 1) * stride + 1)
            spread[:, ::stride, ::stride] = x
            before, after = k - 1 - padding, k - 1 - padding + output_padding
            x = _convolve(spread, weight, bias, 1, before, after)
        else:
            x = _convolve(x, weight, bias, stride, padding, padding)
        if relu:
            x = x.clamp_min(0)
        x = x.clamp(-ACTIVATION_LIMIT, ACTIVATION_LIMIT)
        index += 1
    return x


def _convolve(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor, stride: int, before: int,
              after: int) -> torch.Tensor:  # fmt: skip
    """Integer convolution: zero padding, im2col by strided views, one int64 matrix product, rounding shift."""
    k = weight.shape[-1]
    x = torch.nn.functional.pad(x, (before, after, before, after))
    patches = x.unfold(1, k, stride).unfold(2, k, stride)  # (C, Ho, Wo, k, k)
    c, ho, wo = patches.shape[:3]
    columns = patches.permute(0, 3, 4, 1, 2).reshape(c * k * k, ho * wo)
    acc = weight.reshape(weight.shape[0], -1) @ columns + bias[:, None]
    return ((acc + (1 << (WEIGHT_BITS - 1))) >> WEIGHT_BITS).reshape(-1, ho, wo)


def thresholds(scales: torch.Tensor) -> torch.Tensor:
    """Integer boundaries between the tables of ``scales`` (float64, increasing): ``floor(s * 2**ACTIVATION_BITS)``
    of every scale but the last, int64."""
    return torch.floor(scales[:-1] * 2**ACTIVATION_BITS).to(torch.int64)


def table_indices(scales: torch.Tensor, bounds: torch.Tensor) -> torch.Tensor:
    """For integer scales, the index of the table to use: how many ``bounds`` lie strictly below each
    (the smallest table scale at least as large, up to rounding)."""
    return torch.searchsorted(bounds, scales.reshape(-1), right=False).reshape(scales.shape)
