"""The style transfer objective: content + style (Gram) + total variation on one VGG-16 pass.

``L(x) = w_c * content(x, c) + w_s * style(x, s) + w_tv * TV(x)``, shared by
Gatys et al.'s optimisation (:mod:`perceptlab.style.optimize`) and by the
training of Johnson et al.'s feed-forward networks (:mod:`perceptlab.style.train`).

Default weights, for our [0, 1] inputs and ImageNet-normalised VGG-16
(``vgg_weights="vgg16"``), with the style term taken per layer as the *mean*
of the squared Gram differences (the Frobenius norm of Johnson et al.'s eq. 3-4
divided by the C^2 entries, as the authors' code and pytorch/examples do):

- ``content_weight = 1`` on relu2_2 (Johnson et al.).
- ``style_weight = 1e5``: pytorch/examples' fast-neural-style trains with
  1e5 (content) and 1e10 (style) on exactly these features and this Gram
  normalisation, a ratio of 1e5. Independently, Johnson et al.'s content 1 /
  style 5 on Caffe VGG-16 (0-255 inputs) translates to 0.9e5-3.8e5 for
  relu1_2-relu3_3 once both losses are measured on the same images with both
  networks (content losses differ by a factor 2.8e4, the style terms of
  relu1_2-relu3_3 by 5e8-2e9; relu4_3's term is small in both).
- ``tv_weight = 1``: Johnson et al. chose 1e-6 to 1e-4 per style; their TV, a
  sum over 0-255 pixels, is about 6400 times :func:`total_variation` at
  256x256 and their content loss 2.8e4 times ours, so their range is 0.23 to
  23 here and 1 is their 4e-6, in its lower part. Our TV and content loss
  are means, so the weights do not depend on the image size.

The factors were measured on pytorch/examples' ``amber.jpg``, its ``candy``
stylisation and the ``candy`` style image, all at 256 pixels.
"""

from __future__ import annotations

import torch
from torch import nn

from perceptlab._checks import check_image, check_pair
from perceptlab.features import VGG16Features
from perceptlab.losses.perceptual import (
    STYLE_LAYERS,
    _layer_weights,
    feature_reconstruction_loss,
    gram_matrix,
    style_loss,
)
from perceptlab.losses.grid import grid_loss
from perceptlab.losses.tv import total_variation
from perceptlab.ops.resize import resize_longer_side

CONTENT_LAYERS = ("relu2_2",)
CONTENT_WEIGHT = 1.0
STYLE_WEIGHT = 1e5
TV_WEIGHT = 1.0


class StyleTransferLoss(nn.Module):
    """Content, style and total-variation losses against one fixed style image.

    ``loss(pred, content)`` runs VGG-16 **once** on ``pred``, up to the
    deepest layer any term needs, and reads both the content and the style
    layers from that pass. The targets cost nothing per call: the style
    image's Gram matrices are computed once, here, and kept as buffers; a
    content given as a dict from :meth:`content_targets` is used as is (the
    optimisation of one image computes it once), while a content tensor (a
    training batch) takes one more VGG pass without a graph, only as deep as
    the deepest content layer (relu2_2: a third of the pass to relu4_3).

    The style Grams are computed **at the style image's own size**, or after
    resizing its longer side to ``style_size``. Gram matrices do not depend on
    the image size, but what they describe does: the VGG layers see
    brushstrokes of a fixed size in pixels, so a style image shown larger
    gives larger strokes. Johnson et al. resize the style image's longer side
    to 256, the side of their training crops.

    Terms, each averaged over the batch:

    - content: ``sum_j a_j * mean((phi_j(pred) - phi_j(content))**2)``
      (Johnson et al. eq. 2; :func:`feature_reconstruction_loss`);
    - style: ``sum_j b_j * mean((G_j(pred) - G_j(style))**2)``, the mean
      taken over the C_j x C_j Gram entries, i.e. eq. 3-4's squared Frobenius
      norm over ``C_j**2`` (:func:`style_loss` with layer weights ``b_j / C_j**2``),
      so that every layer counts equally whatever its width;
    - tv: :func:`perceptlab.losses.total_variation` (squared differences, a mean).

    Args:
        style_image: the style, (1, 3, H, W) in [0, 1].
        content_layers: a name, names, or ``{name: a_j}``; default relu2_2.
        style_layers: names or ``{name: b_j}``; default relu1_2, relu2_2, relu3_3, relu4_3.
        content_weight, style_weight, tv_weight: the weights of the three terms
            (see the module docstring for the defaults).
        style_size: resize the style image's longer side to this before taking
            its Grams; ``None`` keeps its size.
        vgg_weights: ``"vgg16"``, ``"vgg16_caffe"`` (then the default weights do
            not fit: Caffe features are ~170 times larger) or ``None`` (random, tests).
        weights_file: an explicit local VGG weights file.
        pooling: ``"max"`` or ``"avg"`` (Gatys et al. preferred average pooling).
        channels_last: run VGG in channels-last layout (the default, as for
            :class:`~perceptlab.losses.FeatureLoss`; this loss's step at
            256x256 measured the same either way on our CPUs, for 1 image and 4).

    Returns:
        ``{"loss", "content", "style", "tv"}`` (and ``"grid"`` with a ``grid_weight``): the weighted total and the
        three unweighted terms, scalars (the house convention: logs compare
        across weightings).

    Shape:
        pred (N, 3, H, W) in [0, 1]; content the same shape (or its targets).

    Example:
        >>> loss = StyleTransferLoss(torch.rand(1, 3, 64, 64), vgg_weights=None)
        >>> parts = loss(torch.rand(2, 3, 32, 32), torch.rand(2, 3, 32, 32))
        >>> sorted(parts)
        ['content', 'loss', 'style', 'tv']

    Reference:
        Gatys, Ecker and Bethge, "Image style transfer using convolutional
        neural networks", CVPR 2016; Johnson, Alahi and Fei-Fei, "Perceptual
        losses for real-time style transfer and super-resolution", ECCV 2016.
    """

    def __init__(
        self,
        style_image: torch.Tensor,
        content_layers=CONTENT_LAYERS,
        style_layers=STYLE_LAYERS,
        content_weight: float = CONTENT_WEIGHT,
        style_weight: float = STYLE_WEIGHT,
        tv_weight: float = TV_WEIGHT,
        style_size: int | None = None,
        vgg_weights: str | None = "vgg16",
        weights_file=None,
        pooling: str = "max",
        channels_last: bool = True,
        precision: str = "fp32",
        grid_weight: float = 0.0,
    ):
        super().__init__()
        check_image(style_image, "style_image", channels=3)
        if style_image.shape[0] != 1:
            raise ValueError(f"style_image must be one image (batch 1), got shape {tuple(style_image.shape)}")
        for name, value in (("content_weight", content_weight), ("style_weight", style_weight),
                            ("tv_weight", tv_weight), ("grid_weight", grid_weight)):  # fmt: skip
            if not value >= 0:
                raise ValueError(f"{name} must be a non-negative number, got {value!r}")
        self.content_layers = _layer_weights(content_layers)
        style_layers = _layer_weights(style_layers)
        self.net = VGG16Features(
            (*self.content_layers, *style_layers), weights=vgg_weights, weights_file=weights_file,
            pooling=pooling, channels_last=channels_last, precision=precision,
        )  # fmt: skip
        self.style_layers = {name: w / self._channels(name) ** 2 for name, w in style_layers.items()}
        self.content_weight, self.style_weight, self.tv_weight = content_weight, style_weight, tv_weight
        self.grid_weight = grid_weight
        self.set_style(resize_longer_side(style_image, style_size))

    def _channels(self, layer: str) -> int:
        """Channels of ``layer``'s activations: those of the last convolution up to it."""
        channels = 3
        for name, module in self.net.body.items():
            if isinstance(module, nn.Conv2d):
                channels = module.out_channels
            if name == layer:
                return channels
        raise KeyError(layer)

    def set_style(self, style_image: torch.Tensor) -> None:
        """Compute and keep the Gram matrices of a (new) style image, at its size."""
        check_image(style_image, "style_image", channels=3)
        self.style_size = tuple(style_image.shape[-2:])
        with torch.no_grad():
            features = self.net(style_image.to(self.net.mean.device))
        for name in self.style_layers:
            self.register_buffer(f"gram_{name}", gram_matrix(features[name]), persistent=False)

    @property
    def style_grams(self) -> dict[str, torch.Tensor]:
        """``{layer: (1, C, C)}``, the cached Gram matrices of the style image."""
        return {name: getattr(self, f"gram_{name}") for name in self.style_layers}

    @torch.no_grad()
    def content_targets(self, content: torch.Tensor) -> dict[str, torch.Tensor]:
        """The content layers' activations of ``content``; pass the dict as ``content`` to skip that pass."""
        check_image(content, "content", channels=3)
        deepest = [name for name in self.net.layers if name in self.content_layers][-1]
        features = self.net(content, until=deepest)  # the style layers below it are not needed here
        return {name: features[name] for name in self.content_layers}

    def forward(self, pred: torch.Tensor, content: torch.Tensor | dict) -> dict[str, torch.Tensor]:
        image = None
        if isinstance(content, torch.Tensor):
            check_pair(pred, content, channels=3)
            image, content = content, self.content_targets(content)
        elif self.grid_weight:
            raise ValueError("the grid term compares the output with the content image: pass the image, not its "
                             "features")  # fmt: skip
        features = self.net(pred)
        parts = {
            "content": feature_reconstruction_loss(features, content, self.content_layers).mean(),
            "style": style_loss(features, self.style_grams, self.style_layers).mean(),
            "tv": total_variation(pred),
        }
        total = (self.content_weight * parts["content"] + self.style_weight * parts["style"]
                 + self.tv_weight * parts["tv"])  # fmt: skip
        if self.grid_weight:
            # A lattice fixed to the network's 4-pixel stride (two stride-2 stages), against the photo's phases.
            parts["grid"] = grid_loss(pred, image, period=4)
            total = total + self.grid_weight * parts["grid"]
        return {"loss": total, **parts}
