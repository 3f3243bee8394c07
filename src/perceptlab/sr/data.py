"""Training pairs for super-resolution: HR crops (:class:`perceptlab.data.ImageCrops`), LR made on the fly."""

from __future__ import annotations

import math
import os
from collections.abc import Sequence

import torch

from perceptlab._checks import check_image
from perceptlab.data import ImageCrops
from perceptlab.ops import gaussian_blur, imresize
from perceptlab.sr._checks import check_divisible, check_scale


def degrade(hr: torch.Tensor, scale: int, blur_sigma: float = 0.0) -> torch.Tensor:
    """Make the low-resolution input of an SR pair from its high-resolution image.

    The standard degradation: an optional Gaussian blur of ``blur_sigma``
    pixels (Johnson et al. 2016 use 1.0; the benchmark files use none), then
    MATLAB's bicubic reduction by ``1 / scale`` with antialiasing
    (:func:`perceptlab.ops.imresize`), then a clamp to ``[0, 1]`` (bicubic
    overshoots near edges). No rounding to 8 bits: the network trains on the
    exact values; the benchmark LR files are rounded, a difference below half
    an 8-bit level.

    Args:
        hr: high-resolution images in ``[0, 1]``.
        scale: the reduction factor, a positive int dividing H and W.
        blur_sigma: standard deviation of the Gaussian blur in HR pixels; 0 for none.

    Returns:
        The low-resolution images, same dtype and device as ``hr``.

    Shape:
        ``hr``: (N, C, H, W); output: (N, C, H / scale, W / scale).

    Raises:
        ValueError: ``scale`` is not a positive int or does not divide H and W,
            or ``blur_sigma`` is negative.

    Example:
        >>> degrade(torch.rand(4, 3, 96, 96), scale=4, blur_sigma=1.0).shape
        torch.Size([4, 3, 24, 24])

    Reference:
        Johnson, Alahi and Fei-Fei, "Perceptual losses for real-time style
        transfer and super-resolution", ECCV 2016, section 4.2.
    """
    check_image(hr, "hr")
    check_scale(scale)
    check_divisible(hr, scale)
    h, w = hr.shape[-2:]
    blurred = gaussian_blur(hr, blur_sigma)
    # The output size is given rather than the scale, so no 1/3-style rounding can add a pixel.
    return imresize(blurred, size=(h // scale, w // scale)).clamp(0.0, 1.0)


class SRTrainingSet(ImageCrops):
    """Random (LR, HR) training pairs: :class:`perceptlab.data.ImageCrops` HR crops, LR made by :func:`degrade`.

    The LR side is made on the whole batch at once. Iterating yields single
    ``(lr, hr)`` pairs forever, for a ``DataLoader``.

    Args:
        folders: a folder or a sequence of folders of images.
        scale: the SR factor; must divide ``hr_crop``.
        hr_crop: side of the HR crops, in pixels.
        blur_sigma: Gaussian blur before the reduction (see :func:`degrade`).
        seed: seed of the generator used when :meth:`sample_batch` is given none.

    Raises:
        ImageError: a folder is missing or an image cannot be read.
        ValueError: bad ``scale``/``hr_crop``, or no image is large enough.

    Example:
        >>> data = SRTrainingSet(["data/T91", "data/BSD200"], scale=4)  # doctest: +SKIP
        >>> lr, hr = data.sample_batch(16, torch.Generator().manual_seed(0))  # doctest: +SKIP
        >>> lr.shape, hr.shape  # doctest: +SKIP
        (torch.Size([16, 3, 24, 24]), torch.Size([16, 3, 96, 96]))
    """

    def __init__(
        self,
        folders: str | os.PathLike | Sequence[str | os.PathLike],
        scale: int,
        hr_crop: int = 96,
        blur_sigma: float = 0.0,
        seed: int = 0,
    ):
        check_scale(scale)
        if isinstance(hr_crop, bool) or not isinstance(hr_crop, int) or hr_crop < 1 or hr_crop % scale:
            raise ValueError(f"hr_crop must be a positive multiple of scale={scale}, got {hr_crop!r}")
        if not math.isfinite(blur_sigma) or blur_sigma < 0:
            raise ValueError(f"blur_sigma must be a non-negative number, got {blur_sigma!r}")
        self.scale = scale
        self.hr_crop = hr_crop
        self.blur_sigma = blur_sigma
        super().__init__(folders, crop=hr_crop, seed=seed)

    def sample_batch(
        self, batch_size: int, generator: torch.Generator | None = None, shard: tuple[int, int] = (0, 1)
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """A batch of random ``(lr, hr)`` pairs, float32 in ``[0, 1]``.

        Args:
            batch_size: number of pairs.
            generator: the source of randomness; the same seed gives the same
                batch. ``None`` uses the dataset's own generator (seeded ``seed``).
            shard: ``(index, count)``: only that slice of the batch (see
                :meth:`perceptlab.data.ImageCrops.sample_crops`); only its LR side is made.

        Returns:
            ``(lr, hr)`` with shapes (B, 3, hr_crop / scale, hr_crop / scale)
            and (B, 3, hr_crop, hr_crop).
        """
        hr = self.sample_crops(batch_size, generator, shard)
        return degrade(hr, self.scale, self.blur_sigma), hr

    def _item(self, generator: torch.Generator):
        lr, hr = self.sample_batch(1, generator)
        return lr[0], hr[0]
