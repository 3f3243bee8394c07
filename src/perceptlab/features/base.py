"""A frozen feature network: named layers, run up to the deepest one asked for."""

from __future__ import annotations

import torch
from torch import nn

from perceptlab._checks import check_image
from perceptlab.weights import load_weights


PRECISIONS = {"fp32": torch.float32, "bf16": torch.bfloat16}


def native_bf16() -> bool:
    """Whether oneDNN runs bfloat16 convolutions on this CPU.

    oneDNN needs AVX-512 (BW, VL, DQ) or AVX-NE-CONVERT for them, and is fast with
    bfloat16 units (AVX512-BF16, AMX). Elsewhere (an AVX2-only CPU, say) PyTorch's
    reference convolution runs bfloat16, much slower than float32.
    """
    try:
        return bool(torch.ops.mkldnn._is_mkldnn_bf16_supported())
    except (AttributeError, RuntimeError):
        return False


def _fused_op():
    """oneDNN's convolution with a fused ReLU (the op torch.compile uses on CPU), or None where missing."""
    if not torch.backends.mkldnn.is_available():
        return None
    return getattr(getattr(torch.ops, "mkldnn", None), "_convolution_pointwise", None)


_FUSED = _fused_op()
# The fused op refuses bfloat16 where oneDNN cannot run it (it raises instead of falling back).
_FUSED_DTYPES = (torch.float32,) + ((torch.bfloat16,) if _FUSED is not None and native_bf16() else ())


class _ConvReLU(torch.autograd.Function):
    """relu(conv2d(x, weight, bias, padding)) in one oneDNN call; the gradient reaches ``x`` only.

    The backward needs no extra pass for the ReLU's mask (it is ``y > 0``) and
    computes only the input gradient: the feature networks are frozen.
    """

    @staticmethod
    def forward(ctx, x, weight, bias, padding):
        y = _FUSED(x, weight, bias, padding, [1, 1], [1, 1], 1, "relu", [], "")
        ctx.save_for_backward(x, weight, y)
        ctx.padding = padding
        return y

    @staticmethod
    def backward(ctx, grad):
        x, weight, y = ctx.saved_tensors
        grad = torch.ops.aten.threshold_backward(grad, y, 0)
        gx = torch.ops.aten.convolution_backward(
            grad, x, weight, None, [1, 1], ctx.padding, [1, 1], False, [0, 0], 1, [True, False, False]
        )[0]
        return gx, None, None, None


def _fusable(conv: nn.Module) -> bool:
    return (type(conv) is nn.Conv2d and conv.stride == (1, 1) and conv.dilation == (1, 1) and conv.groups == 1
            and conv.padding_mode == "zeros" and not isinstance(conv.padding, str))  # fmt: skip


def _out_size(layer: nn.Module, size: int) -> int:
    if isinstance(layer, (nn.Conv2d, nn.MaxPool2d, nn.AvgPool2d)):
        k, s, p = (v if isinstance(v, int) else v[0] for v in (layer.kernel_size, layer.stride, layer.padding))
        return (size + 2 * p - k) // s + 1
    return size


class FeatureNet(nn.Module):
    """Named layers applied in order; ``forward`` returns ``{name: activation}`` for the requested names.

    Subclasses give the layer list, the input normalisation and the weights.
    Parameters are frozen and the network is in eval mode; gradients still flow
    to the input, so it can serve as a loss network.

    ``precision="bf16"`` runs the layers in bfloat16 (weights and activations;
    the normalisation stays float32) and returns float32 activations. Input
    gradients come back in float32. On CPUs with bfloat16 matrix units
    (:func:`native_bf16`) it is several times faster than float32; elsewhere
    slower. Values differ from float32 by bfloat16's rounding (8 bits of mantissa):
    tests bound the change of the feature loss and of its gradient.
    """

    def __init__(self, stack: list[tuple[str, nn.Module]], layers: tuple[str, ...] | list[str], channels_last: bool,
                 precision: str = "fp32"):  # fmt: skip
        super().__init__()
        names = [name for name, _ in stack]
        unknown = [name for name in layers if name not in names]
        if not layers or unknown:
            raise ValueError(f"unknown layer(s) {unknown or '(none given)'}; choose from {', '.join(names)}")
        self.layers = tuple(sorted(set(layers), key=names.index))
        depth = max(names.index(name) for name in self.layers) + 1
        # Nothing after the deepest requested layer is built or run.
        self.body = nn.ModuleDict(stack[:depth])
        for name, module in self.body.items():
            if isinstance(module, nn.ReLU):
                # In place is safe only when the conv output it overwrites is not returned.
                previous = names[names.index(name) - 1]
                module.inplace = previous not in self.layers
        if precision not in PRECISIONS:
            raise ValueError(f"precision must be one of {', '.join(PRECISIONS)}, got {precision!r}")
        self.precision = precision
        self.channels_last = channels_last
        if channels_last:
            # Before any weights are loaded: load_state_dict copies into these channels-last parameters.
            self.to(memory_format=torch.channels_last)
        self.min_size = self._min_size()
        # (name, module, fused ReLU's name or None): a convolution followed by a ReLU runs as one
        # oneDNN call on CPU channels-last input, unless the convolution's own output is requested.
        self._plan: list[tuple[str, nn.Module, str | None]] = []
        items = list(self.body.items())
        i = 0
        while i < len(items):
            name, module = items[i]
            nxt = items[i + 1] if i + 1 < len(items) else None
            if nxt is not None and isinstance(nxt[1], nn.ReLU) and _fusable(module) and name not in self.layers:
                self._plan.append((name, module, nxt[0]))
                i += 2
            else:
                self._plan.append((name, module, None))
                i += 1
        self.fuse = True
        self.requires_grad_(False)
        self.eval()

    def _min_size(self) -> int:
        size = 1
        while True:
            s = size
            for module in self.body.values():
                s = _out_size(module, s)
                if s < 1:
                    break
            else:
                return size
            size += 1

    def load(self, weights: str | None, file=None) -> None:
        """Load converted weights by spec name (``None`` keeps the random initialisation)."""
        if weights is None:
            return
        state = load_weights(weights, file=file)
        # Only the layers that were built take weights: the rest of the file is ignored.
        result = self.body.load_state_dict({k: v for k, v in state.items() if k.split(".")[0] in self.body}, strict=False)
        if result.missing_keys:
            raise RuntimeError(f"weights {weights!r} lack {result.missing_keys}")

    def _set_precision(self) -> None:
        """Cast the layers to the working precision; subclasses call it after loading weights."""
        self.body.to(PRECISIONS[self.precision])

    def normalize(self, x: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def forward(self, x: torch.Tensor, until: str | None = None) -> dict[str, torch.Tensor]:
        """Args: x: RGB images, (N, 3, H, W) in [0, 1]; until: stop after this requested layer (the layers up
        to it, computed as without it; a target that needs only shallow layers skips the rest). Returns:
        ``{layer: (N, C, h, w)}``."""
        check_image(x, "input", channels=3)
        if until is not None and until not in self.layers:
            raise ValueError(f"until must be one of the requested layers {', '.join(self.layers)}, got {until!r}")
        h, w = x.shape[-2:]
        if min(h, w) < self.min_size:
            raise ValueError(
                f"{type(self).__name__} up to {self.layers[-1]} needs images of at least "
                f"{self.min_size}x{self.min_size} pixels, got {h}x{w}"
            )
        x = self.normalize(x)
        if self.channels_last:
            x = x.contiguous(memory_format=torch.channels_last)
        # "fp32" keeps the network's own dtype (float64 in gradient checks); "bf16" casts.
        bf16 = self.precision == "bf16"
        if bf16:
            x = x.to(torch.bfloat16)
        fuse = (self.fuse and _FUSED is not None and x.device.type == "cpu" and x.dtype in _FUSED_DTYPES
                and x.is_contiguous(memory_format=torch.channels_last))  # fmt: skip
        out = {}
        for name, module, relu in self._plan:
            if relu is None or not fuse:
                x = module(x)
                if relu is not None:
                    if name in self.layers:
                        out[name] = x.float() if bf16 else x
                    name, x = relu, self.body[relu](x)
            elif torch.is_grad_enabled() and x.requires_grad:
                x, name = _ConvReLU.apply(x, module.weight, module.bias, list(module.padding)), relu
            else:
                x, name = _FUSED(x, module.weight, module.bias, list(module.padding), [1, 1], [1, 1], 1,
                                 "relu", [], ""), relu  # fmt: skip
            if name in self.layers:
                out[name] = x.float() if bf16 else x
            if until is not None and until in out:
                break
        return out

    def train(self, mode: bool = True) -> FeatureNet:
        # A frozen loss network never switches to training behaviour.
        return super().train(False)
