"""Style transfer: Gatys et al.'s optimisation and Johnson et al.'s feed-forward networks, colour preservation.

- :class:`StyleTransferLoss`: content + style (Gram) + total variation, one VGG-16 pass.
- :func:`stylize_optimize`: optimise the pixels of one image (L-BFGS or Adam).
- :func:`train_style` / :class:`StyleTrainConfig`: train a
  :class:`~perceptlab.nets.style.JohnsonStyleNet` for one style.
- :func:`load_style_model` / :func:`stylize_feedforward`: run a trained network on images of any size.
- :func:`preserve_colors`: keep the content's colours (luminance-only transfer or histogram matching).
"""

from perceptlab.style.color import COLOR_METHODS, preserve_colors
from perceptlab.style.losses import StyleTransferLoss
from perceptlab.style.models import load_style_model, shipped_style_models, stylize_feedforward
from perceptlab.style.optimize import INITS, OPTIMIZERS, stylize_optimize
from perceptlab.style.train import StyleTrainConfig, train_style

__all__ = [
    "COLOR_METHODS", "INITS", "OPTIMIZERS",
    "StyleTrainConfig", "StyleTransferLoss",
    "load_style_model", "preserve_colors", "shipped_style_models", "stylize_feedforward",
    "stylize_optimize", "train_style",
]  # fmt: skip
