"""The published super-resolution evaluation protocol: benchmark files in, PSNR-Y / SSIM-Y out.

The numbers in SR papers (SRCNN, EDSR, RCAN, ESRGAN tables) come from MATLAB
code that reads 8-bit PNGs, takes the luma of MATLAB's ``rgb2ycbcr`` as an 8-bit
image, shaves ``scale`` pixels off every border and compares with a peak of
255. Skipping a step moves the mean by hundredths to tenths of a dB (rounding
Y: 0.013 dB on Set5; the grayscale rule: 0.095 dB on Set14), as much as the
gaps papers argue over, so :func:`sr_metrics` does every one of them.
With it, MATLAB-bicubic x4 on the benchmark files gives the published
28.42 / 25.99 / 25.96 dB (Set5 / Set14 / BSD100).
"""

from __future__ import annotations

import math
import os
import re
from dataclasses import dataclass
from pathlib import Path

import torch
from PIL import Image

from perceptlab._checks import check_image, check_pair, check_range
from perceptlab.io import ImageError, list_images, read_image
from perceptlab.metrics.psnr import rgb_to_y
from perceptlab.metrics.registry import METRICS, MetricInfo, register
from perceptlab.metrics.psnr import psnr as _psnr
from perceptlab.metrics.ssim import ssim as _ssim
from perceptlab.ops import imresize
from perceptlab.sr._checks import check_divisible, check_scale

NAME_MAP = "NAME_MAP.tsv"
# Pillow band names of single-channel images (8/16/32-bit, 1-bit, float), alpha or not.
_GRAY_BANDS = frozenset({"1", "L", "I", "F"})


@dataclass(frozen=True)
class BenchmarkImage:
    """One HR/LR pair of an SR benchmark.

    Attributes:
        name: the image's original name (``"baby"``) when the benchmark has a
            ``NAME_MAP.tsv``, else its number (``"img_001"``).
        lr: the low-resolution input, (1, 3, h, w) float32 in ``[0, 1]``.
        hr: the ground truth, (1, 3, h * scale, w * scale) float32 in ``[0, 1]``.
        is_gray: the HR file is a single-channel (grayscale) image. This is what
            the MATLAB evaluation code tests (``size(im, 3) == 1``) to compare on
            raw intensity instead of Y; pass it on to :func:`sr_metrics`.
            In Set14 it is true of ``bridge`` (img_003) only.
        equal_channels: every HR pixel has R = G = B, true of single-channel
            files and of grayscale pictures stored as RGB (Set14 ``man``,
            img_010). The protocol treats the latter as colour images.
    """

    name: str
    lr: torch.Tensor
    hr: torch.Tensor
    is_gray: bool
    equal_channels: bool


def load_benchmark(root: str | os.PathLike, scale: int) -> list[BenchmarkImage]:
    """Read the HR/LR pairs of one SR benchmark at one scale.

    The layout is that of the SelfExSR release (Huang et al. 2015), from which
    Set5, Set14, BSD100 and Urban100 are usually taken:
    ``root/image_SRF_{scale}/img_XXX_SRF_{scale}_HR.png`` and ``..._LR.png``,
    the HR cropped to a multiple of ``scale`` and the LR made from it by
    MATLAB's bicubic ``imresize``. An optional ``root/NAME_MAP.tsv``
    (``img_001<TAB>baby.png`` lines, ``#`` comments) gives the original names.
    Grayscale files come out as RGB with three equal channels, like every
    image :func:`perceptlab.io.read_image` reads; ``is_gray`` remembers them.

    Args:
        root: the benchmark folder (``.../Set5``).
        scale: the upscaling factor, 2, 3, 4, ...

    Returns:
        The pairs, sorted by file number.

    Raises:
        ImageError: the ``image_SRF_{scale}`` folder is missing or holds no
            pairs, an HR file has no LR partner or the reverse, or a file
            cannot be read.
        ValueError: ``scale`` is not a positive int, or an LR is not exactly
            ``1 / scale`` of its HR.

    Example:
        >>> images = load_benchmark("data/Set5", 4)  # doctest: +SKIP
        >>> images[0].name, images[0].lr.shape, images[0].hr.shape  # doctest: +SKIP
        ('baby', torch.Size([1, 3, 128, 128]), torch.Size([1, 3, 512, 512]))

    Reference:
        Huang, Singh and Ahuja, "Single image super-resolution from transformed
        self-exemplars", CVPR 2015 (github.com/jbhuang0604/SelfExSR).
    """
    check_scale(scale)
    root = Path(root)
    folder = root / f"image_SRF_{scale}"
    if not folder.is_dir():
        raise ImageError(folder, f"no such folder (expected {root}/image_SRF_{scale}/img_XXX_SRF_{scale}_HR.png)")
    pattern = re.compile(rf"(img_\d+)_SRF_{scale}_(HR|LR)\.png")
    files: dict[str, dict[str, Path]] = {}
    for path in list_images(folder):
        match = pattern.fullmatch(path.name)
        if match:
            files.setdefault(match[1], {})[match[2]] = path
    if not files:
        raise ImageError(folder, f"no img_XXX_SRF_{scale}_HR.png / _LR.png pairs")
    names = _read_name_map(root / NAME_MAP)
    return [_load_pair(key, files[key], folder, scale, names.get(key, key)) for key in sorted(files)]


def _load_pair(key: str, pair: dict[str, Path], folder: Path, scale: int, name: str) -> BenchmarkImage:
    for kind, partner in (("HR", "LR"), ("LR", "HR")):
        if kind not in pair:
            missing = folder / f"{key}_SRF_{scale}_{kind}.png"
            raise ImageError(missing, f"no such file (the {kind} partner of {pair[partner].name})")
    hr, lr = read_image(pair["HR"]), read_image(pair["LR"])
    if tuple(hr.shape[-2:]) != (lr.shape[-2] * scale, lr.shape[-1] * scale):
        lr_size, hr_size = "x".join(map(str, lr.shape[-2:])), "x".join(map(str, hr.shape[-2:]))
        raise ValueError(f"{pair['LR']}: LR of {lr_size} is not 1/{scale} of its HR, {hr_size}")
    with Image.open(pair["HR"]) as image:
        is_gray = image.getbands()[0] in _GRAY_BANDS
    equal_channels = bool((hr[:, 0] == hr[:, 1]).all() and (hr[:, 1] == hr[:, 2]).all())
    return BenchmarkImage(name=name, lr=lr, hr=hr, is_gray=is_gray, equal_channels=equal_channels)


def _read_name_map(path: Path) -> dict[str, str]:
    """``img_001 -> baby`` from a NAME_MAP.tsv, or nothing when there is none."""
    if not path.is_file():
        return {}
    names = {}
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        fields = line.split("\t")
        if len(fields) != 2:
            raise ValueError(f"{path}:{number}: expected 'img_XXX<TAB>name', got {line!r}")
        names[fields[0]] = Path(fields[1]).stem
    return names


def benchmark_lr(hr: torch.Tensor, scale: int) -> torch.Tensor:
    """The LR image exactly as the benchmark files were made from their HR.

    Emulates MATLAB's ``imresize(hr, 1/scale)`` (bicubic, antialiased) on a
    ``uint8`` image in the release the benchmark LR files come from: indices
    beyond the border are clamped (``boundary="replicate"``), the columns
    are resized first (height, then width: MATLAB's order for equal scales)
    and the intermediate image is stored as ``uint8``, i.e. clamped to
    [0, 255] and rounded half away from zero, as is the result. This
    reproduces every LR file of Set5 and Set14 (x2, x3, x4) and of BSD100
    (x4) bit for bit; a single float64 pass rounded once at the end differs
    on about 10 % of the pixels (by up to 12 levels, where the intermediate
    clamp matters). Use it to make missing scales (BSD100 x2, x3) or new
    benchmark sets; train on :func:`perceptlab.sr.degrade`, which has no
    rounding.

    Args:
        hr: high-resolution images in ``[0, 1]``, on the 8-bit grid (values
            are rounded to it first).
        scale: the reduction factor, a positive int dividing H and W.

    Returns:
        The LR images in ``[0, 1]``, multiples of 1/255, dtype of ``hr``.

    Shape:
        ``hr``: (N, C, H, W); output: (N, C, H / scale, W / scale).

    Raises:
        ValueError: ``scale`` is not a positive int or does not divide H and W.

    Example:
        >>> hr = torch.rand(1, 3, 64, 48)
        >>> benchmark_lr(hr, 4).shape
        torch.Size([1, 3, 16, 12])
    """
    check_image(hr, "hr")
    check_scale(scale)
    check_divisible(hr, scale)
    h, w = hr.shape[-2:]
    x = _to_8bit(hr)
    x = _quantize(imresize(x, size=(h // scale, w), boundary="replicate"))
    x = _quantize(imresize(x, size=(h // scale, w // scale), boundary="replicate"))
    return (x / 255.0).to(hr.dtype)


def make_benchmark(hr_folder: str | os.PathLike, scale: int, out: str | os.PathLike) -> Path:
    """Write the HR photos of ``hr_folder`` as a benchmark at ``scale``, in the layout :func:`load_benchmark` reads.

    The SelfExSR release's recipe: the photos in name order become ``img_001``, ``img_002``, ...; each HR
    file is the photo's top-left crop to a multiple of ``scale``, each LR file :func:`benchmark_lr` of it,
    and ``out/NAME_MAP.tsv`` maps the numbers to the names. From Set5's and Set14's original photos this
    gives their released ``image_SRF_2/3/4`` files pixel for pixel; use it for scales the releases lack
    (x8) or for new sets. Grayscale photos stay single-channel files (the protocol's ``is_gray``).

    Args:
        hr_folder: a folder of 8-bit RGB or grayscale photos.
        scale: the reduction factor, a positive int.
        out: the benchmark folder; ``out/image_SRF_{scale}`` must not exist yet.

    Returns:
        The ``image_SRF_{scale}`` folder, written whole (into a temporary folder first, then renamed).

    Raises:
        ImageError: no photos, a photo that is not 8-bit RGB or grayscale, smaller than ``scale``, or a
            ``NAME_MAP.tsv`` in ``out`` that names other photos.
        FileExistsError: ``out/image_SRF_{scale}`` exists.
    """
    import shutil
    import tempfile

    import numpy as np

    check_scale(scale)
    photos = list_images(hr_folder)
    if not photos:
        raise ImageError(hr_folder, "no images")
    out = Path(out)
    folder = out / f"image_SRF_{scale}"
    if folder.exists():
        raise FileExistsError(f"{folder} exists")
    names = {f"img_{i:03d}": p.name for i, p in enumerate(photos, 1)}
    if (out / NAME_MAP).is_file() and _read_name_map(out / NAME_MAP) != {k: Path(v).stem for k, v in names.items()}:
        raise ImageError(out / NAME_MAP, f"names other photos than {hr_folder}")
    out.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{folder.name}.", dir=out))
    try:
        for key, name in names.items():
            with Image.open(Path(hr_folder) / name) as image:
                if image.mode not in ("L", "RGB"):
                    raise ImageError(image.filename, f"mode {image.mode}, not 8-bit RGB or grayscale")
                array = np.array(image)
            h, w = (side - side % scale for side in array.shape[:2])
            if not h or not w:
                raise ImageError(Path(hr_folder) / name, f"{array.shape[1]}x{array.shape[0]} is smaller than the scale {scale}")
            hr = array[:h, :w]
            planes = torch.from_numpy(np.ascontiguousarray(hr.reshape(h, w, -1))).permute(2, 0, 1)[None].double()
            lr = (benchmark_lr(planes / 255.0, scale) * 255.0).round().to(torch.uint8)[0].permute(1, 2, 0).numpy()
            mode = "L" if hr.ndim == 2 else "RGB"
            Image.fromarray(hr, mode).save(tmp / f"{key}_SRF_{scale}_HR.png")
            Image.fromarray(lr[..., 0] if mode == "L" else lr, mode).save(tmp / f"{key}_SRF_{scale}_LR.png")
        os.replace(tmp, folder)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    if not (out / NAME_MAP).is_file():
        from perceptlab._files import atomic_write_text

        atomic_write_text(out / NAME_MAP, "".join(f"{k}\t{v}\n" for k, v in names.items()))
    return folder


def sr_metrics(sr: torch.Tensor, hr: torch.Tensor, scale: int, is_gray: bool = False) -> dict[str, float]:
    """PSNR-Y and SSIM-Y of super-resolved images, exactly as SR papers report them.

    The protocol, step by step (each one changes the result measurably):

    1. ``sr`` is clamped to ``[0, 1]`` and rounded to 8 bits, since the
       reference code scores the PNG files a method saves; ``hr`` is taken to
       be 8-bit already (a benchmark file) and rounded too. Rounding is half
       away from zero, as MATLAB's ``uint8`` conversion.
    2. Y is the luma of MATLAB's ``rgb2ycbcr`` on the 8-bit images,
       ``16 + (65.481 R + 128.553 G + 24.966 B) / 255`` (BT.601, range
       [16, 235]), itself rounded to 8 bits, because ``rgb2ycbcr`` returns a
       ``uint8`` image for ``uint8`` input.
    3. When ``is_gray`` (the reference file is single-channel), Y is not used:
       the reference code compares raw intensities (``size(im, 3) == 1``
       branch). A 3-channel ``sr`` is reduced to the mean of its 8-bit
       channels, rounded to 8 bits (equal to any channel when they agree, as
       for a bicubic upscale of a gray image). On Set14 this rule moves the
       mean from 26.09 to 25.99 dB for bicubic x4.
    4. ``scale`` pixels are shaved off every border.
    5. PSNR with a peak of 255 on the shaved planes, in float64.
    6. SSIM with the standard Gaussian window (11 taps, sigma 1.5, K1 = 0.01,
       K2 = 0.03, no padding: Wang et al.'s ``ssim_index``) on the same shaved
       Y planes, with a data range of 255, via :func:`perceptlab.metrics.ssim.ssim`.
       Bicubic x4 gives 0.8102 / 0.7024 / 0.6673 on Set5 / Set14 / BSD100,
       where the EDSR-era tables print 0.8104 / 0.7027 / 0.6675.

    For a batch the two values are averaged over its images.

    Args:
        sr: super-resolved images in ``[0, 1]`` (values outside are clamped).
        hr: the ground truth in ``[0, 1]``, as read from 8-bit files.
        scale: the upscaling factor, also the number of border pixels shaved.
        is_gray: the reference is a grayscale file (see
            :attr:`BenchmarkImage.is_gray`): compare intensities, not Y.

    Returns:
        ``{"psnr_y": dB, "ssim_y": SSIM}`` as floats. PSNR is ``inf`` when the
        shaved planes are identical.

    Shape:
        ``sr``, ``hr``: (N, 3, H, W); (N, 1, H, W) also accepted when
        ``is_gray``. ``H, W >= 2 * scale + 11``.

    Raises:
        ValueError: shapes differ, an RGB input is needed and is missing, or
            shaving leaves less than the 11x11 SSIM window.

    Example:
        >>> hr = torch.rand(1, 3, 64, 64)
        >>> sorted(sr_metrics(hr, hr, scale=4))
        ['psnr_y', 'ssim_y']

    Reference:
        Lim et al., "Enhanced deep residual networks for single image
        super-resolution", CVPR Workshops 2017 (evaluation protocol);
        Wang et al., "Image quality assessment: from error visibility to
        structural similarity", IEEE TIP 2004.
    """
    sr_plane, hr_plane = _shaved_planes(sr, hr, scale, is_gray)
    return {
        "psnr_y": _psnr(sr_plane, hr_plane, data_range=255.0).item(),
        "ssim_y": _ssim(sr_plane, hr_plane, data_range=255.0).item(),
    }


def _shaved_planes(sr: torch.Tensor, hr: torch.Tensor, scale: int, is_gray: bool) -> tuple[torch.Tensor, torch.Tensor]:
    """Steps 1-4 of :func:`sr_metrics`: the 8-bit Y (or gray) planes of both images, ``scale`` pixels shaved."""
    check_pair(sr, hr)
    check_scale(scale, allow_zero=True)
    if not is_gray and sr.shape[1] != 3:
        raise ValueError(f"Y needs RGB images (N, 3, H, W), got {tuple(sr.shape)}; for gray ones pass is_gray=True")
    if is_gray and sr.shape[1] not in (1, 3):
        raise ValueError(f"gray images must have 1 or 3 channels, got {tuple(sr.shape)}")
    h, w = sr.shape[-2:]
    if min(h, w) - 2 * scale < 11:
        raise ValueError(f"shaving {scale} pixels off a {h}x{w} image leaves less than the 11x11 SSIM window")
    sr_plane, hr_plane = _plane(sr, is_gray), _plane(hr, is_gray)
    return sr_plane[..., scale : h - scale, scale : w - scale], hr_plane[..., scale : h - scale, scale : w - scale]


def _quantize(x: torch.Tensor) -> torch.Tensor:
    """What MATLAB's conversion to uint8 does to values on the 0-255 scale: clamp, round half up."""
    return torch.floor(x.clamp(0.0, 255.0) + 0.5)


def _to_8bit(x: torch.Tensor) -> torch.Tensor:
    """Float64 values in [0, 255] on the integer grid, from an image in [0, 1]."""
    return _quantize(x.detach().to(torch.float64) * 255.0)


def _plane(x: torch.Tensor, is_gray: bool) -> torch.Tensor:
    """The 8-bit (N, 1, H, W) float64 plane the protocol compares: Y, or the gray intensity."""
    x8 = _to_8bit(x)
    if is_gray:
        return _quantize(x8.mean(dim=1, keepdim=True))
    return _quantize(rgb_to_y(x8, data_range=255.0))


def _psnr_y(pred: torch.Tensor, target: torch.Tensor, scale: int, is_gray: bool) -> torch.Tensor:
    check_range(pred, "pred")
    check_range(target, "target")
    return _psnr(*_shaved_planes(pred, target, scale, is_gray), data_range=255.0, reduction="none")


def _ssim_y(pred: torch.Tensor, target: torch.Tensor, scale: int, is_gray: bool) -> torch.Tensor:
    check_range(pred, "pred")
    check_range(target, "target")
    return _ssim(*_shaved_planes(pred, target, scale, is_gray), data_range=255.0, reduction="none")


for _info in (
    MetricInfo("psnr_y", _psnr_y, True, (0.0, math.inf), 1, (),
               "PSNR-Y as SR papers report it: 8-bit BT.601 luma, scale pixels shaved (perceptlab.sr.protocol)",
               context=("scale", "is_gray"), group="sr"),
    MetricInfo("ssim_y", _ssim_y, True, (-1.0, 1.0), 11, (),
               "SSIM-Y as SR papers report it: 8-bit BT.601 luma, scale pixels shaved (perceptlab.sr.protocol)",
               context=("scale", "is_gray"), group="sr"),
):  # fmt: skip
    if _info.name not in METRICS:
        register(_info)
