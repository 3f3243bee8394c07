"""A frozen feature network: named layers, run up to the deepest one asked for."""

from __future__ import annotations

import torch
from torch import nn

from perceptlab._checks import check_image
from perceptlab.weights import load_weights


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
    """

    def __init__(self, stack: list[tuple[str, nn.Module]], layers: tuple[str, ...] | list[str], channels_last: bool):
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
        self.channels_last = channels_last
        if channels_last:
            # Before any weights are loaded: load_state_dict copies into these channels-last parameters.
            self.to(memory_format=torch.channels_last)
        self.min_size = self._min_size()
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

    def normalize(self, x: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def forward(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        """Args: x: RGB images, (N, 3, H, W) in [0, 1]. Returns: ``{layer: (N, C, h, w)}``."""
        check_image(x, "input", channels=3)
        h, w = x.shape[-2:]
        if min(h, w) < self.min_size:
            raise ValueError(
                f"{type(self).__name__} up to {self.layers[-1]} needs images of at least "
                f"{self.min_size}x{self.min_size} pixels, got {h}x{w}"
            )
        x = self.normalize(x)
        if self.channels_last:
            x = x.contiguous(memory_format=torch.channels_last)
        out = {}
        for name, module in self.body.items():
            x = module(x)
            if name in self.layers:
                out[name] = x
        return out

    def train(self, mode: bool = True) -> FeatureNet:
        # A frozen loss network never switches to training behaviour.
        return super().train(False)
