"""Frozen ImageNet feature networks with layers named as in the papers; input RGB NCHW in [0, 1]."""

from perceptlab.features.alexnet import ALEXNET_LAYERS, AlexNetFeatures
from perceptlab.features.base import FeatureNet
from perceptlab.features.vgg import VGG16_LAYERS, L2Pool, VGG16Features

__all__ = ["ALEXNET_LAYERS", "VGG16_LAYERS", "AlexNetFeatures", "FeatureNet", "L2Pool", "VGG16Features"]
