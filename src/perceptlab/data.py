"""Training crops for every task: random squares cut from folders of images, flipped and rotated.

:class:`ImageCrops` reads every image of some folders once and serves random
crops; the SR trainer adds the degradation that makes the LR input
(:class:`perceptlab.sr.SRTrainingSet`), the style trainer uses the crops as
they are, and so will the codec and DeePSiM trainers.
"""

from __future__ import annotations

import os
import warnings
from collections.abc import Iterator, Sequence
from pathlib import Path

import torch
from torch.utils.data import IterableDataset, get_worker_info

from perceptlab.io import list_images, read_image


class ImageCrops(IterableDataset):
    """Random ``crop x crop`` squares cut from the images of one or more folders.

    Every image of the folders (:func:`perceptlab.io.list_images`, not
    recursive) is read once and kept in memory as 8-bit RGB (T91 + BSD200
    take about 100 MB); grayscale files become three equal channels.
    Images smaller than the crop are skipped with one warning.

    A sample picks an image uniformly (not weighted by area, so small T91
    images count as much as large BSD ones), a square uniformly inside it, then
    one of the 8 flips/rotations of the square (horizontal flip, vertical flip,
    transpose, each with probability 1/2).

    Use :meth:`sample_crops` in a training loop; iterating the dataset yields
    single crops forever, for a ``DataLoader`` (each worker draws from its own
    generator, seeded ``seed + worker id``). ``paths`` and ``images`` hold what
    was loaded.

    Args:
        folders: a folder or a sequence of folders of images.
        crop: side of the squares, in pixels.
        seed: seed of the generator used when :meth:`sample_crops` is given none.

    Raises:
        ImageError: a folder is missing or an image cannot be read.
        ValueError: a bad ``crop``, or no image is large enough.
    """

    def __init__(self, folders: str | os.PathLike | Sequence[str | os.PathLike], crop: int = 96, seed: int = 0):
        super().__init__()
        if isinstance(crop, bool) or not isinstance(crop, int) or crop < 1:
            raise ValueError(f"crop must be a positive int, got {crop!r}")
        self.crop = crop
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
            if min(h, w) < self.crop:
                skipped.append(f"{path.name}: {h}x{w}")
                continue
            paths.append(path)
            # 8 bits per value is all the files hold (16-bit files lose their extra precision).
            images.append(image.mul(255.0).round().to(torch.uint8))
        if skipped:
            # One warning for the lot: a folder of small images would otherwise print a line each.
            shown = ", ".join(skipped[:3]) + (f" and {len(skipped) - 3} more" if len(skipped) > 3 else "")
            warnings.warn(f"skipped {len(skipped)} image(s) smaller than the {self.crop}-pixel crop ({shown})",
                          stacklevel=4)  # fmt: skip
        if not images:
            where = ", ".join(str(folder) for folder in folders)
            raise ValueError(f"no image of at least {self.crop}x{self.crop} pixels in {where}")
        return paths, images

    def holdout(self, every: int) -> ImageCrops:
        """Move every ``every``-th image (the 1st, the ``every+1``-th, ...) out of this set into a new one.

        A validation set from the same folders that training never sees; this set keeps the rest.
        The new set has the same crop and seed.

        Raises:
            ValueError: ``every`` below 2, or too few images to leave one on each side.
        """
        if isinstance(every, bool) or not isinstance(every, int) or every < 2:
            raise ValueError(f"holdout needs every >= 2, got {every!r}")
        if len(self.images) < 2:
            raise ValueError(f"holdout needs at least 2 images, got {len(self.images)}")
        held = type(self).__new__(type(self))
        IterableDataset.__init__(held)
        held.crop, held.seed = self.crop, self.seed
        held.paths, held.images = self.paths[::every], self.images[::every]
        held._generator = torch.Generator().manual_seed(self.seed)
        keep = [i for i in range(len(self.images)) if i % every]
        self.paths, self.images = [self.paths[i] for i in keep], [self.images[i] for i in keep]
        return held

    def sample_crops(self, batch_size: int, generator: torch.Generator | None = None,
                     shard: tuple[int, int] = (0, 1)) -> torch.Tensor:  # fmt: skip
        """A batch of random crops, (B, 3, crop, crop) float32 in ``[0, 1]``.

        ``generator`` is the source of randomness (the same seed gives the same
        batch); ``None`` uses the dataset's own (seeded ``seed``).

        ``shard = (index, count)`` returns only the ``index``-th of ``count``
        equal slices of the batch, ``batch_size / count`` crops: the generator
        still draws the whole batch (and is left where the whole batch leaves
        it), so ``count`` processes with the same generator state, one per
        index, get together exactly the batch one process gets, and stay in
        step (:mod:`perceptlab.distributed`). Only this slice is cut.
        """
        if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
            raise ValueError(f"batch_size must be a positive int, got {batch_size!r}")
        index, count = shard
        if not 0 <= index < count or batch_size % count:
            raise ValueError(f"shard {shard!r}: need 0 <= index < count and count dividing batch_size {batch_size}")
        generator = self._generator if generator is None else generator
        which = torch.randint(len(self.images), (batch_size,), generator=generator).tolist()
        boxes = [self._random_box(self.images[i], generator) for i in which]
        part = slice(index * batch_size // count, (index + 1) * batch_size // count)
        crops = torch.stack([self._cut(self.images[i], box) for i, box in zip(which[part], boxes[part])])
        return crops.to(torch.float32).div_(255.0)

    def _random_box(self, image: torch.Tensor, generator: torch.Generator) -> tuple[int, int, int, int, int]:
        """``(top, left, hflip, vflip, transpose)`` of a random crop of ``image``."""
        c = self.crop
        h, w = image.shape[-2:]
        top = int(torch.randint(h - c + 1, (1,), generator=generator))
        left = int(torch.randint(w - c + 1, (1,), generator=generator))
        hflip, vflip, transpose = torch.randint(2, (3,), generator=generator).tolist()
        return top, left, hflip, vflip, transpose

    def _cut(self, image: torch.Tensor, box: tuple[int, int, int, int, int]) -> torch.Tensor:
        c = self.crop
        top, left, hflip, vflip, transpose = box
        crop = image[:, top : top + c, left : left + c]
        if hflip:
            crop = crop.flip(-1)
        if vflip:
            crop = crop.flip(-2)
        if transpose:
            crop = crop.transpose(-1, -2)
        return crop

    def _item(self, generator: torch.Generator):
        return self.sample_crops(1, generator)[0]

    def __iter__(self) -> Iterator:
        worker = get_worker_info()
        generator = torch.Generator().manual_seed(self.seed + (worker.id if worker else 0))
        while True:
            yield self._item(generator)
