"""Image files to tensors and back: the first and last step of every data path.

Everything read comes out in the house convention, a (1, 3, H, W) float32 RGB
tensor in ``[0, 1]``, whatever the file held (grayscale, 16-bit, palette, alpha,
CMYK, EXIF-rotated). Every problem with a file is an :class:`ImageError` whose
message names the file, so a command-line tool can print it as is.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import torch
from PIL import Image, ImageOps, UnidentifiedImageError

from perceptlab._files import atomic_write

# Suffix -> Pillow format name, for the formats both read_image and write_image handle.
_FORMATS = {
    ".bmp": "BMP",
    ".jpeg": "JPEG",
    ".jpg": "JPEG",
    ".png": "PNG",
    ".tif": "TIFF",
    ".tiff": "TIFF",
    ".webp": "WEBP",
}
# JPEG at 95 is visually lossless; WebP can be truly lossless, so it is.
_SAVE_OPTIONS = {"JPEG": {"quality": 95}, "WEBP": {"lossless": True}}

IMAGE_SUFFIXES: tuple[str, ...] = tuple(_FORMATS)

# Pillow names 16-bit grayscale "I;16" (and byte-order variants); "I" is 32-bit but
# is what older Pillow and some TIFFs give for 16-bit data.
_MAX_16BIT = 65535.0
# Modes with an alpha channel; palette and other modes mark a transparent
# colour in info["transparency"] instead.
_ALPHA_MODES = frozenset({"RGBA", "RGBa", "LA", "La", "PA"})
# Modes of one gray channel (plus alpha); "I;16" variants are matched by prefix.
_GRAY_MODES = frozenset({"1", "L", "LA", "La", "I", "F"})


class ImageError(ValueError):
    """A file that cannot be read or written as an image.

    Attributes:
        path: the file concerned.
        problem: what is wrong with it, a short phrase.

    ``str(error)`` is ``"{path}: {problem}"``, one line meant for the user.
    """

    def __init__(self, path: str | os.PathLike, problem: str):
        super().__init__(path, problem)
        self.path = Path(path)
        self.problem = problem

    def __str__(self) -> str:
        return f"{self.path}: {self.problem}"


def read_image(path: str | os.PathLike) -> torch.Tensor:
    """Read an image file as an RGB tensor in ``[0, 1]``.

    The whole file is decoded at once, so a truncated or corrupt file fails
    here rather than later (Pillow's ``LOAD_TRUNCATED_IMAGES`` is left off).
    Conversions, chosen so every file gives the same kind of tensor:

    - EXIF orientation is applied, so a rotated camera JPEG comes out upright.
    - Grayscale (``L``, ``1``) is copied to the three channels; 16-bit grayscale
      (``I;16``, ``I``) is scaled by 65535, keeping its full precision.
    - Palette images are expanded to their colours.
    - Transparency (``RGBA``, ``LA``, ``PA``, palette or grayscale with a
      transparent colour) is composited on a **white** background, the way
      viewers and browsers show such images.
    - 16-bit RGB(A) PNGs: Pillow has no 16-bit colour mode and reads them as
      8-bit RGB(A), so only 8 bits of precision survive.
    - CMYK and other colour modes go through Pillow's conversion to RGB.
    - Of a multi-frame file (GIF, multi-page TIFF), the first frame is read.

    Args:
        path: the image file.

    Returns:
        The image, float32, values in ``[0, 1]``.

    Shape:
        (1, 3, H, W), H and W being the upright height and width.

    Raises:
        ImageError: the path does not exist, is a directory, is empty, is not
            an image Pillow recognises, or cannot be decoded fully.

    Example:
        >>> x = read_image("kodim01.png")  # doctest: +SKIP
        >>> x.shape  # doctest: +SKIP
        torch.Size([1, 3, 512, 768])
    """
    path = Path(path)
    image = _open_upright(path)
    try:
        rgb = _to_rgb_array(image, path)
    finally:
        image.close()
    return torch.from_numpy(rgb).permute(2, 0, 1).unsqueeze(0).contiguous()


def _open_upright(path: Path) -> Image.Image:
    """The fully decoded image at ``path``, EXIF orientation applied."""
    if path.is_dir():
        raise ImageError(path, "is a directory, not an image file")
    # Opening the file ourselves separates "cannot open" from "cannot decode".
    try:
        file = open(path, "rb")
    except FileNotFoundError:
        raise ImageError(path, "no such file") from None
    except OSError as err:
        raise ImageError(path, f"cannot open ({err.strerror or err})") from err
    with file:
        if os.fstat(file.fileno()).st_size == 0:
            raise ImageError(path, "empty file (0 bytes)")
        try:
            with Image.open(file) as image:
                # Image.open only parses the header; load() decodes every byte,
                # which is what exposes truncated and corrupt files.
                image.load()
                return ImageOps.exif_transpose(image)
        except UnidentifiedImageError:
            raise ImageError(path, "not an image file (format not recognised)") from None
        except Image.DecompressionBombError as err:
            raise ImageError(path, f"too large to decode safely ({err})") from err
        except (OSError, SyntaxError, ValueError, EOFError) as err:
            raise ImageError(path, f"corrupt or truncated image ({err})") from err


def is_grayscale(path: str | os.PathLike) -> bool:
    """Whether the image file at ``path`` holds gray values only (8- or 16-bit, with or without alpha).

    Only the header is read. :func:`read_image` gives such a file as three equal
    channels; a command that writes an image per input uses this to write
    grayscale back.

    Raises:
        ImageError: as :func:`read_image`, for a file that cannot be opened.
    """
    path = Path(path)
    if path.is_dir():
        raise ImageError(path, "is a directory, not an image file")
    try:
        with Image.open(path) as image:
            return image.mode in _GRAY_MODES or image.mode.startswith("I;16")
    except FileNotFoundError:
        raise ImageError(path, "no such file") from None
    except (OSError, UnidentifiedImageError, SyntaxError, ValueError) as err:
        raise ImageError(path, f"not an image file ({err})") from None


def _to_rgb_array(image: Image.Image, path: Path) -> np.ndarray:
    """(H, W, 3) float32 array in [0, 1] from any Pillow image."""
    if image.mode == "I" or image.mode.startswith("I;16"):
        gray = np.asarray(image, dtype=np.float32) / _MAX_16BIT
        return np.repeat(np.clip(gray, 0.0, 1.0)[..., None], 3, axis=2)
    try:
        if image.mode in _ALPHA_MODES or "transparency" in image.info:
            rgba = np.asarray(image.convert("RGBA"), dtype=np.float32) / 255.0
            rgb, alpha = rgba[..., :3], rgba[..., 3:]
            return rgb * alpha + (1.0 - alpha)
        return np.asarray(image.convert("RGB"), dtype=np.float32) / 255.0
    except ValueError as err:
        raise ImageError(path, f"unsupported image mode {image.mode!r} ({err})") from err


def write_image(x: torch.Tensor, path: str | os.PathLike) -> None:
    """Write an RGB tensor in ``[0, 1]`` to an image file, atomically.

    The format follows the suffix (see :data:`IMAGE_SUFFIXES`): PNG, BMP and
    TIFF are lossless; JPEG is written at quality 95; WebP losslessly. Values
    are clipped to ``[0, 1]`` and rounded to 8 bits. The file is written to a
    temporary file in the same folder and moved into place with
    :func:`os.replace`, so an interrupted write never leaves a partial file
    (the temporary file is removed) and readers see the old file or the new
    one, never a mix. Missing parent folders are created.

    Args:
        x: the image, values in ``[0, 1]``.
        path: the file to write; an existing file is replaced.

    Shape:
        ``x``: (1, 3, H, W) or (3, H, W).

    Raises:
        TypeError: ``x`` is not a floating-point tensor.
        ValueError: ``x`` has the wrong shape or non-finite values.
        ImageError: unknown suffix, or the file system refused the write.
        OutputError: the folder cannot be created or written, or ``path`` is a folder
            (:func:`perceptlab._files.check_output_file` checks this before any work).

    Example:
        >>> write_image(torch.rand(1, 3, 64, 64), "out/noise.png")  # doctest: +SKIP
    """
    save_image(Image.fromarray(_to_uint8(x)), path)


def save_image(image: Image.Image, path: str | os.PathLike) -> None:
    """Write a Pillow image atomically, format from the suffix (as :func:`write_image`).

    For pictures made with Pillow (comparison grids) and for 8-bit arrays
    (``Image.fromarray``) too large to hold as a float tensor.
    """
    path = Path(path)
    image_format = _format_for(path)
    options = _SAVE_OPTIONS.get(image_format, {})

    def save(tmp: Path) -> None:
        with open(tmp, "wb") as handle:
            image.save(handle, format=image_format, **options)

    try:
        atomic_write(path, save)
    except OSError as err:
        raise ImageError(path, f"cannot write ({err.strerror or err})") from err


def _format_for(path: Path) -> str:
    try:
        return _FORMATS[path.suffix.lower()]
    except KeyError:
        raise ImageError(
            path, f"unknown image suffix {path.suffix!r}, expected one of {', '.join(IMAGE_SUFFIXES)}"
        ) from None


def _to_uint8(x: torch.Tensor) -> np.ndarray:
    """(H, W, 3) uint8 array from a (1, 3, H, W) or (3, H, W) float tensor."""
    if not isinstance(x, torch.Tensor):
        raise TypeError(f"image must be a torch.Tensor, got {type(x).__name__}")
    if not x.is_floating_point():
        raise TypeError(f"image must be a floating-point tensor in [0, 1], got {x.dtype}")
    image = x[0] if x.dim() == 4 and x.shape[0] == 1 else x
    if image.dim() != 3 or image.shape[0] != 3 or image.numel() == 0:
        raise ValueError(f"image must have shape (1, 3, H, W) or (3, H, W), got {tuple(x.shape)}")
    if not torch.isfinite(image).all():
        raise ValueError("image contains NaN or infinite values")
    return image.detach().clamp(0.0, 1.0).mul(255.0).round().to(torch.uint8).permute(1, 2, 0).cpu().numpy()


def list_images(folder: str | os.PathLike) -> list[Path]:
    """The image files directly in ``folder``, sorted by name.

    Only regular files whose suffix (in any case) is in :data:`IMAGE_SUFFIXES`
    are listed; sub-folders are not searched, and hidden files (name starting
    with ``.``, such as macOS ``._x.png`` resource forks) are skipped.

    Args:
        folder: the folder to list.

    Returns:
        The image paths, sorted by file name.

    Raises:
        ImageError: ``folder`` does not exist or is not a folder.

    Example:
        >>> [p.name for p in list_images("kodak")][:2]  # doctest: +SKIP
        ['kodim01.png', 'kodim02.png']
    """
    folder = Path(folder)
    if not folder.is_dir():
        raise ImageError(folder, "not a folder" if folder.exists() else "no such folder")
    images = [
        p
        for p in folder.iterdir()
        if p.suffix.lower() in IMAGE_SUFFIXES and not p.name.startswith(".") and p.is_file()
    ]
    return sorted(images, key=lambda p: p.name)


def pair_by_stem(
    ref_dir: str | os.PathLike, dist_dir: str | os.PathLike
) -> tuple[list[tuple[Path, Path]], list[Path], list[Path]]:
    """Match reference and distorted images by file name without suffix.

    ``ref/kodim01.png`` pairs with ``dist/kodim01.jpg``. Stems are compared
    exactly (case matters).

    Args:
        ref_dir: folder of reference images.
        dist_dir: folder of distorted images.

    Returns:
        ``(pairs, ref_only, dist_only)``: the ``(reference, distorted)`` pairs
        sorted by stem, then the reference images without a distorted partner
        and the distorted images without a reference, each sorted by stem.

    Raises:
        ImageError: a folder is missing, or holds two images with the same
            stem (``a.png`` and ``a.jpg``), which would make the pairing ambiguous.

    Example:
        >>> pairs, ref_only, dist_only = pair_by_stem("ref", "dist")  # doctest: +SKIP
    """
    refs, dists = _by_stem(Path(ref_dir)), _by_stem(Path(dist_dir))
    pairs = [(refs[stem], dists[stem]) for stem in sorted(refs.keys() & dists.keys())]
    ref_only = [refs[stem] for stem in sorted(refs.keys() - dists.keys())]
    dist_only = [dists[stem] for stem in sorted(dists.keys() - refs.keys())]
    return pairs, ref_only, dist_only


def _by_stem(folder: Path) -> dict[str, Path]:
    by_stem: dict[str, Path] = {}
    for path in list_images(folder):
        if path.stem in by_stem:
            raise ImageError(
                folder, f"two images share the stem {path.stem!r} ({by_stem[path.stem].name}, {path.name})"
            )
        by_stem[path.stem] = path
    return by_stem
