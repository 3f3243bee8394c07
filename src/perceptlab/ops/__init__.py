"""Image operations shared by data pipelines, metrics and networks."""

from perceptlab.ops.blur import gaussian_blur
from perceptlab.ops.resize import imresize

__all__ = ["gaussian_blur", "imresize"]
