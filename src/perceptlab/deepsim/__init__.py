"""DeePSiM (Dosovitskiy & Brox 2016): generators trained with feature, adversarial and image losses.

- :func:`train_deepsim` / :class:`DeepSimTrainConfig`: train an autoencoder, a VAE or an inverter of a
  comparator's features (the networks are :mod:`perceptlab.nets.deepsim`'s).
- :func:`build_comparator`: the frozen AlexNet or VGG-16 an inverter reads.
- :func:`load_deepsim_model`, :func:`reconstruct`, :func:`invert`, :func:`sample`: a trained run on images;
  :func:`shipped_deepsim_models` (:data:`SHIPPED_DEEPSIM`): the autoencoder and inverter shipped with perceptlab.
"""

from perceptlab.deepsim.models import (
    SHIPPED_DEEPSIM, invert, load_deepsim_model, reconstruct, sample, shipped_deepsim_models,
)  # fmt: skip
from perceptlab.deepsim.train import KINDS, DeepSimTrainConfig, build_comparator, save_deepsim_weights, train_deepsim

__all__ = [
    "KINDS", "SHIPPED_DEEPSIM", "DeepSimTrainConfig", "build_comparator", "invert", "load_deepsim_model",
    "reconstruct", "sample", "save_deepsim_weights", "shipped_deepsim_models", "train_deepsim",
]  # fmt: skip
