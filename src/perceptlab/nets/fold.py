"""Inference-time folding of BatchNorm into the convolution before it."""

from __future__ import annotations

from torch import nn
from torch.nn.utils.fusion import fuse_conv_bn_eval


def fold_batchnorm(net: nn.Module) -> nn.Module:
    """Fold every eval-mode BatchNorm into the convolution before it (in place), for faster inference.

    In eval mode a BatchNorm is an affine map per channel, so ``BN(conv(x))``
    is one convolution with rescaled weights and a new bias: the outputs are
    unchanged up to float error and a full pass over each activation is saved.
    """
    if net.training:
        raise ValueError("fold_batchnorm needs a network in eval mode")
    for module in net.modules():
        if not isinstance(module, nn.Sequential):
            continue
        names = list(module._modules)
        for first, second in zip(names, names[1:]):
            conv, bn = module._modules[first], module._modules[second]
            if isinstance(conv, (nn.Conv2d, nn.ConvTranspose2d)) and isinstance(bn, nn.BatchNorm2d):
                module._modules[first] = fuse_conv_bn_eval(conv, bn, transpose=isinstance(conv, nn.ConvTranspose2d))
                module._modules[second] = nn.Identity()
    return net
