"""Weighted sums of loss terms, and the ``TERM[:ARG][*WEIGHT]`` spec strings that build them.

DeePSiM's generator objective ``λ_feat·L_feat + λ_adv·L_adv + λ_img·L_img``
(Dosovitskiy & Brox 2016) is a configuration, not a class::

    loss = CombinedLoss.from_specs(
        ["feature:relu4_3*0.01", "adversarial:nonsaturating*100", "pixel:mse*2e-6"],
        discriminator=disc,
    )
    parts = loss(pred, target)      # {"loss": total, "feature:relu4_3": ..., "adversarial:...": ..., "pixel:mse": ...}

Every term is a module called as ``term(pred, target)`` that returns a scalar.
Parts are reported unweighted so that logs compare across weightings.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable

import torch
from torch import nn


def _pixel(arg: str | None, **_) -> nn.Module:
    from perceptlab.losses.pixel import CharbonnierLoss, L1Loss, MSELoss

    kinds = {"l1": L1Loss, "mse": MSELoss, "charbonnier": CharbonnierLoss}
    return _choose("pixel", kinds, arg or "mse")()


def _feature(arg: str | None, vgg_weights: str = "vgg16", channels_last: bool = True, vgg_precision: str = "fp32",
             **_) -> nn.Module:  # fmt: skip
    from perceptlab.losses.perceptual import NETWORKS, FeatureLoss

    network, _, layer_text = (arg or "").rpartition(":")
    if layer_text in NETWORKS:  # "feature:alexnet": the network with its default layer
        network, layer_text = layer_text, ""
    network = network or "vgg16"  # "feature:relu2_2" is VGG-16's; "feature:alexnet:relu5" names the network
    if network not in NETWORKS:
        raise ValueError(f"feature loss: unknown network {network!r}; choose from {', '.join(NETWORKS)}")
    layers = _layers(layer_text or None, "relu2_2" if network == "vgg16" else "relu5")
    jitter = layers.pop("jitter", 0)  # "jitter=16" is an option, not a layer
    if jitter != int(jitter):
        raise ValueError(f"feature loss: jitter must be a whole number of pixels, got {jitter}")
    # vgg_weights names VGG-16's weights (torchvision's or Caffe's); None (random, for tests) holds for both.
    weights = vgg_weights if network == "vgg16" or vgg_weights is None else "imagenet"
    return FeatureLoss(layers, weights=weights, channels_last=channels_last, precision=vgg_precision,
                       jitter=int(jitter), network=network)  # fmt: skip


def _layers(arg: str | None, default: str) -> dict[str, float]:
    """``"relu2_2,relu5_3=4"`` -> ``{"relu2_2": 1.0, "relu5_3": 4.0}``: layers, each with an optional weight."""
    layers: dict[str, float] = {}
    for item in (arg or default).split(","):
        name, _, weight = item.strip().partition("=")
        try:
            layers[name] = float(weight) if weight else 1.0
        except ValueError:
            raise ValueError(f"layer weight must be a number in {item!r}") from None
    return layers


def _style(arg: str | None, vgg_weights: str = "vgg16", channels_last: bool = True, vgg_precision: str = "fp32",
           **_) -> nn.Module:  # fmt: skip
    from perceptlab.losses.perceptual import STYLE_LAYERS, StyleLoss

    layers = arg.split(",") if arg else STYLE_LAYERS
    return StyleLoss(layers, weights=vgg_weights, channels_last=channels_last, precision=vgg_precision)


def _tv(arg: str | None, **_) -> nn.Module:
    from perceptlab.losses.tv import TVLoss

    return TVLoss(kind=_choose("tv", {"l1": "l1", "l2": "l2"}, arg or "l2"))


def _lpips(arg: str | None, **_) -> nn.Module:
    from perceptlab.metrics.lpips import LPIPS

    return LPIPS(_choose("lpips", {"alex": "alex", "vgg": "vgg"}, arg or "alex"))


def _dists(arg: str | None, **_) -> nn.Module:
    from perceptlab.metrics.dists import DISTS

    return DISTS()


def _ssim(arg: str | None, **_) -> nn.Module:
    from perceptlab.losses.structural import SSIMLoss

    return SSIMLoss()


def _ms_ssim(arg: str | None, **_) -> nn.Module:
    from perceptlab.losses.structural import MSSSIMLoss

    return MSSSIMLoss()


def _adversarial(arg: str | None, discriminator: nn.Module | None = None, **_) -> nn.Module:
    from perceptlab.losses.adversarial import ADVERSARIAL_KINDS, AdversarialLoss

    if discriminator is None:
        raise ValueError("the adversarial loss term needs a discriminator (discriminator=...)")
    kind = _choose("adversarial", {k: k for k in ADVERSARIAL_KINDS}, arg or "nonsaturating")
    return AdversarialLoss(discriminator, kind=kind)


def _lr(arg: str | None, scale: int | None = None, **_) -> nn.Module:
    from perceptlab.losses.consistency import LRConsistencyLoss

    if scale is None:
        raise ValueError("the lr consistency term needs the SR scale (scale=...; train sr passes it)")
    return LRConsistencyLoss(scale, kind=_choose("lr", {"mse": "mse", "l1": "l1"}, arg or "mse"))


def _grid(arg: str | None, scale: int | None = None, **_) -> nn.Module:
    from perceptlab.losses.grid import GridLoss

    if arg is None:
        if scale is None:
            raise ValueError("the grid term needs a period: grid:P, or the SR scale (scale=...; train sr passes it)")
        period = scale
    else:
        try:
            period = int(arg)
        except ValueError:
            raise ValueError(f"grid loss: the period must be a whole number of pixels, got {arg!r}") from None
    if period < 2:
        raise ValueError(f"grid loss: the period must be at least 2, got {period}")
    return GridLoss(period)


def _choose(term: str, options: dict, arg: str):
    if arg not in options:
        raise ValueError(f"{term} loss: unknown option {arg!r}; choose from {', '.join(options)}")
    return options[arg]


# name -> (builder, one-line help). Explicit, so that `perceptlab` lists exactly what exists.
LOSS_TERMS: dict[str, tuple[Callable[..., nn.Module], str]] = {
    "pixel": (_pixel, "pixel:l1|mse|charbonnier (default mse)"),
    "feature": (_feature, "feature:[NET:]LAYER[=W][,LAYER[=W]...][,jitter=N] feature reconstruction on NET vgg16 "
                          "(default; layers relu1_1..relu5_3, default relu2_2) or alexnet (relu1..relu5, default "
                          "relu5), each layer weighted W (default 1); jitter: random crop offset 0..N-1 per call"),
    "style": (_style, "style:LAYER[,LAYER...] Gram-matrix style loss (default relu1_2,relu2_2,relu3_3,relu4_3)"),
    "tv": (_tv, "tv:l1|l2 total variation (default l2)"),
    "lpips": (_lpips, "lpips:alex|vgg LPIPS distance (default alex)"),
    "dists": (_dists, "dists: DISTS distance"),
    "ssim": (_ssim, "ssim: 1 - SSIM"),
    "ms_ssim": (_ms_ssim, "ms_ssim: 1 - MS-SSIM"),
    "lr": (_lr, "lr:mse|l1 the output shrunk by the SR scale against the input (LR consistency, default mse)"),
    "grid": (_grid, "grid[:P] phase means of the high-passed luma against the target's: a lattice of period P "
                    "(default the SR scale)"),
    "adversarial": (_adversarial, "adversarial:nonsaturating|lsgan|hinge|ragan generator loss (needs a discriminator)"),
}


def parse_spec(spec: str) -> tuple[str, str | None, float]:
    """Split ``"TERM[:ARG][*WEIGHT]"`` into ``(term, arg, weight)``.

    Example:
        >>> parse_spec("feature:relu2_2,relu3_3*0.5")
        ('feature', 'relu2_2,relu3_3', 0.5)
    """
    body, _, weight_text = spec.strip().partition("*")
    term, _, arg = body.partition(":")
    if term not in LOSS_TERMS:
        raise ValueError(f"unknown loss term {term!r} in {spec!r}; known: {', '.join(LOSS_TERMS)}")
    try:
        weight = float(weight_text) if weight_text else 1.0
    except ValueError:
        raise ValueError(f"loss weight must be a number in {spec!r}, got {weight_text!r}") from None
    return term, arg or None, weight


def build_loss(spec: str, **options) -> nn.Module:
    """Build one loss term from its spec (the weight, if any, is ignored here).

    Args:
        spec: ``"TERM[:ARG]"``, see :data:`LOSS_TERMS`.
        options: ``vgg_weights``, ``channels_last``, ``vgg_precision``, ``discriminator``, ``scale`` where the
            term uses them.
    """
    term, arg, _ = parse_spec(spec)
    return LOSS_TERMS[term][0](arg, **options)


class CombinedLoss(nn.Module):
    """``sum_k weight_k * term_k(pred, target)``, returned as a dict with every part.

    Args:
        terms: ``{part name: (module, weight)}``.

    Returns (forward):
        ``{"loss": weighted total, "<part>": unweighted value, ...}``, all scalars.
    """

    def __init__(self, terms: dict[str, tuple[nn.Module, float]]):
        super().__init__()
        if not terms:
            raise ValueError("CombinedLoss needs at least one term")
        self.terms = nn.ModuleDict({name: module for name, (module, _) in terms.items()})
        self.weights = {name: float(weight) for name, (_, weight) in terms.items()}

    @classmethod
    def from_specs(cls, specs: Iterable[str], **options) -> CombinedLoss:
        """Build from spec strings such as ``["feature:relu2_2", "pixel:mse*0.01"]``; parts are named by spec."""
        terms = {}
        for spec in specs:
            term, arg, weight = parse_spec(spec)
            name = f"{term}:{arg}" if arg else term
            if name in terms:
                raise ValueError(f"loss term {name!r} given twice")
            terms[name] = (LOSS_TERMS[term][0](arg, **options), weight)
        return cls(terms)

    def forward(self, pred: torch.Tensor, target: torch.Tensor) -> dict[str, torch.Tensor]:
        parts = {name: module(pred, target) for name, module in self.terms.items()}
        total = sum(self.weights[name] * value for name, value in parts.items())
        return {"loss": total, **parts}
