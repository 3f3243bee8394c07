"""DeePSiM (Dosovitskiy & Brox 2016): generators trained with feature, adversarial and image losses.

- :func:`train_deepsim` / :class:`DeepSimTrainConfig`: train an autoencoder, a VAE or an inverter of a
  comparator's features (the networks are :mod:`perceptlab.nets.deepsim`'s).
- :func:`build_comparator`: the frozen AlexNet or VGG-16 an inverter reads.
- :func:`load_deepsim_model`, :func:`reconstruct`, :func:`invert`, :func:`sample`: a trained run on images.
"""

from perceptlab.deepsim.models import invert, load_deepsim_model, reconstruct, sample
from perceptlab.deepsim.train import KINDS, DeepSimTrainConfig, build_comparator, save_deepsim_weights, train_deepsim

__all__ = [
    "KINDS", "DeepSimTrainConfig", "build_comparator", "invert", "load_deepsim_model", "reconstruct", "sample",
    "save_deepsim_weights", "train_deepsim",
]  # fmt: skip
