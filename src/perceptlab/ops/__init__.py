"""Image operations shared by data pipelines, metrics and networks."""

from perceptlab.ops.blur import gaussian_blur
from perceptlab.ops.resize import imresize, resize_longer_side

__all__ = ["gaussian_blur", "imresize", "resize_longer_side"]
