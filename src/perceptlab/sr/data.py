"""Training pairs for super-resolution: HR crops from image folders, LR made on the fly."""

from __future__ import annotations

import math
import os
import warnings
from collections.abc import Iterator, Sequence
from pathlib import Path

import torch
from torch.utils.data import IterableDataset, get_worker_info

from perceptlab._checks import check_image
from perceptlab.io import list_images, read_image
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


class SRTrainingSet(IterableDataset):
    """Random (LR, HR) training pairs cut from the images of one or more folders.

    Every image of the folders (:func:`perceptlab.io.list_images`, not
    recursive) is read once and kept in memory as 8-bit RGB (T91 + BSD200
    take about 100 MB); grayscale files become three equal channels.
    Images smaller than the crop are skipped with a warning.

    A sample picks an image uniformly (not weighted by area, so small T91
    images count as much as large BSD ones), a ``hr_crop`` square uniformly
    inside it, then one of the 8 flips/rotations of the square (horizontal
    flip, vertical flip, transpose, each with probability 1/2). The LR side is
    made by :func:`degrade` on the whole batch at once.

    Use :meth:`sample_batch` in a training loop; iterating the dataset
    yields single pairs forever, for a ``DataLoader`` (each worker draws from
    its own generator, seeded ``seed + worker id``). The dataset has no
    length, being endless; ``paths`` and ``images`` hold what was loaded.

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
        super().__init__()
        check_scale(scale)
        if isinstance(hr_crop, bool) or not isinstance(hr_crop, int) or hr_crop < 1 or hr_crop % scale:
            raise ValueError(f"hr_crop must be a positive multiple of scale={scale}, got {hr_crop!r}")
        if not math.isfinite(blur_sigma) or blur_sigma < 0:
            raise ValueError(f"blur_sigma must be a non-negative number, got {blur_sigma!r}")
        self.scale = scale
        self.hr_crop = hr_crop
        self.blur_sigma = blur_sigma
        self.seed = seed
        self.paths, self.images = self._load(folders)
        self._generator = torch.Generator().manual_seed(seed)

    def _load(self, folders) -> tuple[list[Path], list[torch.Tensor]]:
        if isinstance(folders, (str, os.PathLike)):
            folders = [folders]
        paths, images, skipped = [], [], []
        for path in (p for folder in folders for p in list_images(folder)):
            image = read_image(path)[0]
            h, w = image.shape[-2:]
            if min(h, w) < self.hr_crop:
                skipped.append(f"{path.name}: {h}x{w}")
                continue
            paths.append(path)
            # 8 bits per value is all the files hold (16-bit files lose their extra precision).
            images.append(image.mul(255.0).round().to(torch.uint8))
        if skipped:
            # One warning for the lot: a folder of small images would otherwise print a line each.
            shown = ", ".join(skipped[:3]) + (f" and {len(skipped) - 3} more" if len(skipped) > 3 else "")
            warnings.warn(f"skipped {len(skipped)} image(s) smaller than the {self.hr_crop}-pixel crop ({shown})",
                          stacklevel=3)  # fmt: skip
        if not images:
            where = ", ".join(str(folder) for folder in folders)
            raise ValueError(f"no image of at least {self.hr_crop}x{self.hr_crop} pixels in {where}")
        return paths, images

    def sample_batch(
        self, batch_size: int, generator: torch.Generator | None = None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """A batch of random ``(lr, hr)`` pairs, float32 in ``[0, 1]``.

        Args:
            batch_size: number of pairs.
            generator: the source of randomness; the same seed gives the same
                batch. ``None`` uses the dataset's own generator (seeded ``seed``).

        Returns:
            ``(lr, hr)`` with shapes (B, 3, hr_crop / scale, hr_crop / scale)
            and (B, 3, hr_crop, hr_crop).
        """
        if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
            raise ValueError(f"batch_size must be a positive int, got {batch_size!r}")
        generator = self._generator if generator is None else generator
        which = torch.randint(len(self.images), (batch_size,), generator=generator)
        hr = torch.stack([self._random_crop(self.images[i], generator) for i in which.tolist()])
        hr = hr.to(torch.float32).div_(255.0)
        return degrade(hr, self.scale, self.blur_sigma), hr

    def _random_crop(self, image: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        c = self.hr_crop
        h, w = image.shape[-2:]
        top = int(torch.randint(h - c + 1, (1,), generator=generator))
        left = int(torch.randint(w - c + 1, (1,), generator=generator))
        hflip, vflip, transpose = torch.randint(2, (3,), generator=generator).tolist()
        crop = image[:, top : top + c, left : left + c]
        if hflip:
            crop = crop.flip(-1)
        if vflip:
            crop = crop.flip(-2)
        if transpose:
            crop = crop.transpose(-1, -2)
        return crop

    def __iter__(self) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        worker = get_worker_info()
        generator = torch.Generator().manual_seed(self.seed + (worker.id if worker else 0))
        while True:
            lr, hr = self.sample_batch(1, generator)
            yield lr[0], hr[0]
