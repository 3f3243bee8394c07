"""Tests for perceptlab.io: every file kind read to the expected values, every error as ImageError."""

from __future__ import annotations

import os
import pickle
import stat
import struct
import zlib
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from perceptlab.io import IMAGE_SUFFIXES, ImageError, list_images, pair_by_stem, read_image, write_image

RED, BLUE = (255, 0, 0), (0, 0, 255)


def _random_rgb(height: int = 12, width: int = 16, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (height, width, 3), dtype=np.uint8)


def _png_bytes(width: int, height: int, bit_depth: int, colour_type: int, rows: bytes) -> bytes:
    """A minimal PNG, for the kinds Pillow cannot write (16-bit RGB, zero width)."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    header = struct.pack(">IIBBBBB", width, height, bit_depth, colour_type, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", header)
        + chunk(b"IDAT", zlib.compress(rows))
        + chunk(b"IEND", b"")
    )


def _pixel(x: torch.Tensor, row: int = 0, col: int = 0) -> list[float]:
    return x[0, :, row, col].tolist()


# --- reading: every mode to the expected values ---------------------------------------


def test_rgb_png_reads_exactly(tmp_path):
    pixels = _random_rgb()
    Image.fromarray(pixels).save(tmp_path / "x.png")
    x = read_image(tmp_path / "x.png")
    assert x.shape == (1, 3, 12, 16) and x.dtype == torch.float32
    expected = torch.from_numpy(pixels).permute(2, 0, 1).float() / 255
    torch.testing.assert_close(x[0], expected, rtol=0, atol=1e-7)


def test_grayscale_is_copied_to_three_channels(tmp_path):
    Image.new("L", (5, 4), 128).save(tmp_path / "g.png")
    x = read_image(tmp_path / "g.png")
    assert x.shape == (1, 3, 4, 5)
    torch.testing.assert_close(x, torch.full_like(x, 128 / 255))


def test_16bit_grayscale_png_keeps_16_bits(tmp_path):
    values = np.array([[0, 1000, 32768, 65535]], dtype=np.uint16)
    Image.fromarray(values).save(tmp_path / "g16.png")
    x = read_image(tmp_path / "g16.png")
    assert x[0, 0, 0, 2].item() == pytest.approx(0.5000, abs=1e-4)
    # 1000/65535 lies between two 8-bit levels: only a 16-bit read gets it right.
    expected = torch.from_numpy(values.astype(np.float32) / 65535).expand(3, 1, 4)
    torch.testing.assert_close(x[0], expected, rtol=0, atol=1e-6)


def test_32bit_integer_mode_is_scaled_as_16_bit(tmp_path):
    Image.new("I", (3, 2), 32768).save(tmp_path / "i.tif")
    assert read_image(tmp_path / "i.tif").unique().item() == pytest.approx(32768 / 65535, abs=1e-6)


def test_16bit_rgb_png_reads_as_8_bit(tmp_path):
    # Pillow has no 16-bit colour mode: 0x8000 becomes 8-bit 128, as the docstring says.
    row = b"\x00" + struct.pack(">HHH", 0x8000, 0xFFFF, 0x0000) * 2
    (tmp_path / "rgb16.png").write_bytes(_png_bytes(2, 2, 16, 2, row * 2))
    assert _pixel(read_image(tmp_path / "rgb16.png")) == pytest.approx([128 / 255, 1.0, 0.0])


def test_palette_is_expanded(tmp_path):
    image = Image.new("P", (2, 1))
    image.putpalette([*RED, *BLUE])
    image.putpixel((1, 0), 1)
    image.save(tmp_path / "p.png")
    x = read_image(tmp_path / "p.png")
    assert _pixel(x, col=0) == [1.0, 0.0, 0.0]
    assert _pixel(x, col=1) == [0.0, 0.0, 1.0]


def test_palette_transparency_becomes_white(tmp_path):
    image = Image.new("P", (2, 1))
    image.putpalette([*RED, *BLUE])
    image.putpixel((1, 0), 1)
    image.save(tmp_path / "p.png", transparency=0)
    x = read_image(tmp_path / "p.png")
    assert _pixel(x, col=0) == [1.0, 1.0, 1.0]
    assert _pixel(x, col=1) == [0.0, 0.0, 1.0]


def test_half_transparent_red_over_white_is_pink(tmp_path):
    Image.new("RGBA", (3, 3), (255, 0, 0, 128)).save(tmp_path / "rgba.png")
    alpha = 128 / 255
    assert _pixel(read_image(tmp_path / "rgba.png")) == pytest.approx([1.0, 1 - alpha, 1 - alpha])


def test_palette_with_alpha_channel_is_composited_on_white(tmp_path):
    image = Image.new("PA", (3, 3), (0, 128))
    image.putpalette([*RED])
    image.save(tmp_path / "pa.tif")  # Pillow writes PA only as TIFF
    alpha = 128 / 255
    assert _pixel(read_image(tmp_path / "pa.tif")) == pytest.approx([1.0, 1 - alpha, 1 - alpha])


def test_grayscale_with_alpha_is_composited_on_white(tmp_path):
    Image.new("LA", (3, 3), (0, 64)).save(tmp_path / "la.png")
    assert _pixel(read_image(tmp_path / "la.png")) == pytest.approx([1 - 64 / 255] * 3)


def test_cmyk_is_converted_to_rgb(tmp_path):
    Image.new("CMYK", (3, 3), (0, 255, 0, 0)).save(tmp_path / "cmyk.tif")
    assert _pixel(read_image(tmp_path / "cmyk.tif")) == [1.0, 0.0, 1.0]  # full magenta ink


def test_exif_rotated_jpeg_comes_out_upright(tmp_path):
    # Stored 40 wide x 20 high, left half red; orientation 6 means "rotate 90
    # degrees clockwise to display", which puts the left half on top.
    stored = Image.new("RGB", (40, 20), BLUE)
    stored.paste(Image.new("RGB", (20, 20), RED), (0, 0))
    exif = Image.Exif()
    exif[0x0112] = 6
    stored.save(tmp_path / "rot.jpg", exif=exif, quality=95)
    x = read_image(tmp_path / "rot.jpg")
    assert x.shape == (1, 3, 40, 20)
    assert _pixel(x, row=5, col=10) == pytest.approx([1.0, 0.0, 0.0], abs=0.05)
    assert _pixel(x, row=35, col=10) == pytest.approx([0.0, 0.0, 1.0], abs=0.05)


# --- reading: errors -------------------------------------------------------------------


def _write(path: Path, data: bytes) -> Path:
    path.write_bytes(data)
    return path


def _truncated(path: Path) -> Path:
    Image.fromarray(_random_rgb(64, 64)).save(path)
    data = path.read_bytes()
    return _write(path, data[: len(data) // 2])


BROKEN_FILES = {
    "missing": (lambda d: d / "missing.png", "no such file"),
    "directory": (lambda d: d, "is a directory"),
    "text": (lambda d: _write(d / "x.png", b"not a picture"), "not an image file (format not recognised)"),
    "empty": (lambda d: _write(d / "e.png", b""), "empty file"),
    # Pillow refuses zero-size headers at identification already.
    "zero-width": (lambda d: _write(d / "w0.png", _png_bytes(0, 5, 8, 2, b"")), "not an image file"),
    "truncated-png": (lambda d: _truncated(d / "t.png"), "corrupt or truncated"),
    "truncated-jpeg": (lambda d: _truncated(d / "t.jpg"), "corrupt or truncated"),
}


@pytest.mark.parametrize(("make", "problem"), BROKEN_FILES.values(), ids=BROKEN_FILES.keys())
def test_read_errors_are_image_errors_naming_the_file(tmp_path, make, problem):
    path = make(tmp_path)
    with pytest.raises(ImageError) as info:
        read_image(path)
    assert problem in info.value.problem
    assert str(info.value) == f"{path}: {info.value.problem}"
    assert "\n" not in str(info.value)


def test_decompression_bomb_is_an_image_error(tmp_path, monkeypatch):
    Image.new("RGB", (10, 10)).save(tmp_path / "big.png")
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 10)  # Pillow refuses more than twice this
    with pytest.raises(ImageError, match="too large to decode safely"):
        read_image(tmp_path / "big.png")


def test_image_error_fields_and_pickling(tmp_path):
    error = ImageError(tmp_path / "a.png", "no such file")
    assert isinstance(error, ValueError)
    assert error.path == tmp_path / "a.png" and error.problem == "no such file"
    copy = pickle.loads(pickle.dumps(error))
    assert str(copy) == str(error) and copy.path == error.path


# --- writing ---------------------------------------------------------------------------


@pytest.mark.parametrize("suffix", [".png", ".bmp", ".tif", ".tiff", ".webp", ".PNG"])
def test_lossless_formats_round_trip_exactly(tmp_path, suffix):
    x = torch.from_numpy(_random_rgb()).permute(2, 0, 1).unsqueeze(0).float() / 255
    write_image(x, tmp_path / f"x{suffix}")
    torch.testing.assert_close(read_image(tmp_path / f"x{suffix}"), x, rtol=0, atol=1e-7)


@pytest.mark.parametrize("suffix", [".jpg", ".jpeg"])
def test_jpeg_is_written_at_high_quality(tmp_path, suffix):
    gradient = torch.linspace(0, 1, 64).expand(1, 3, 64, 64).contiguous()
    write_image(gradient, tmp_path / f"x{suffix}")
    assert Image.open(tmp_path / f"x{suffix}").format == "JPEG"
    assert (read_image(tmp_path / f"x{suffix}") - gradient).abs().max() < 3 / 255


def test_write_accepts_chw_clips_and_creates_folders(tmp_path):
    x = torch.tensor([-0.5, 0.5, 1.5]).view(3, 1, 1).expand(3, 2, 2)
    target = tmp_path / "new" / "deeper" / "x.png"
    write_image(x, target)
    assert _pixel(read_image(target)) == pytest.approx([0.0, 128 / 255, 1.0])


def test_write_replaces_an_existing_file(tmp_path):
    write_image(torch.zeros(1, 3, 2, 2), tmp_path / "x.png")
    write_image(torch.ones(1, 3, 2, 2), tmp_path / "x.png")
    assert read_image(tmp_path / "x.png").min().item() == 1.0


def test_written_file_has_usual_permissions(tmp_path):
    umask = os.umask(0)
    os.umask(umask)
    write_image(torch.zeros(1, 3, 2, 2), tmp_path / "x.png")
    assert stat.S_IMODE((tmp_path / "x.png").stat().st_mode) == 0o666 & ~umask


@pytest.mark.parametrize(("raised", "expected"), [(OSError("disk full"), ImageError), (RuntimeError("boom"), RuntimeError)])
def test_failed_write_leaves_no_file(tmp_path, monkeypatch, raised, expected):
    def save_half_then_fail(self, fp, *args, **kwargs):
        fp.write(b"\x89PNG half an image")
        raise raised

    monkeypatch.setattr(Image.Image, "save", save_half_then_fail)
    with pytest.raises(expected):
        write_image(torch.zeros(1, 3, 2, 2), tmp_path / "x.png")
    assert list(tmp_path.iterdir()) == []


def test_failed_write_keeps_the_old_file(tmp_path, monkeypatch):
    write_image(torch.zeros(1, 3, 2, 2), tmp_path / "x.png")
    old = (tmp_path / "x.png").read_bytes()

    def fail(self, fp, *args, **kwargs):
        fp.write(b"partial")
        raise OSError("disk full")

    monkeypatch.setattr(Image.Image, "save", fail)
    with pytest.raises(ImageError, match="disk full"):
        write_image(torch.ones(1, 3, 2, 2), tmp_path / "x.png")
    assert (tmp_path / "x.png").read_bytes() == old
    assert [p.name for p in tmp_path.iterdir()] == ["x.png"]


def test_unknown_suffix_is_an_image_error(tmp_path):
    with pytest.raises(ImageError, match=r"unknown image suffix '\.gif'") as info:
        write_image(torch.zeros(1, 3, 2, 2), tmp_path / "x.gif")
    assert str(tmp_path / "x.gif") in str(info.value)
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize(
    ("x", "error"),
    [
        (np.zeros((2, 2, 3)), TypeError),
        (torch.zeros(1, 3, 2, 2, dtype=torch.uint8), TypeError),
        (torch.zeros(2, 3, 2, 2), ValueError),
        (torch.zeros(1, 1, 2, 2), ValueError),
        (torch.zeros(3, 0, 2), ValueError),
        (torch.full((3, 2, 2), float("nan")), ValueError),
    ],
    ids=["numpy", "integer", "batch-of-2", "one-channel", "empty", "nan"],
)
def test_write_rejects_bad_tensors(tmp_path, x, error):
    with pytest.raises(error):
        write_image(x, tmp_path / "x.png")
    assert list(tmp_path.iterdir()) == []


# --- listing and pairing ---------------------------------------------------------------


def _touch_images(folder: Path, *names: str) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    for name in names:
        (folder / name).write_bytes(b"")


def test_list_images_filters_and_sorts(tmp_path):
    _touch_images(tmp_path, "b.PNG", "a.jpg", "c.webp", "notes.txt", ".hidden.png", "z.tiff")
    (tmp_path / "sub.png").mkdir()
    _touch_images(tmp_path / "sub.png", "inner.png")
    assert [p.name for p in list_images(tmp_path)] == ["a.jpg", "b.PNG", "c.webp", "z.tiff"]


def test_image_suffixes_are_lowercase_with_dot():
    assert all(s.startswith(".") and s == s.lower() for s in IMAGE_SUFFIXES)
    assert {".png", ".jpg", ".jpeg", ".bmp", ".webp", ".tif"} <= set(IMAGE_SUFFIXES)


def test_list_images_of_missing_folder(tmp_path):
    with pytest.raises(ImageError, match="no such folder"):
        list_images(tmp_path / "nope")
    _touch_images(tmp_path, "file.png")
    with pytest.raises(ImageError, match="not a folder"):
        list_images(tmp_path / "file.png")


def test_pair_by_stem(tmp_path):
    _touch_images(tmp_path / "ref", "a.png", "b.png", "c.png")
    _touch_images(tmp_path / "dist", "b.png", "a.jpg", "d.webp")
    pairs, ref_only, dist_only = pair_by_stem(tmp_path / "ref", tmp_path / "dist")
    assert pairs == [
        (tmp_path / "ref" / "a.png", tmp_path / "dist" / "a.jpg"),
        (tmp_path / "ref" / "b.png", tmp_path / "dist" / "b.png"),
    ]
    assert ref_only == [tmp_path / "ref" / "c.png"]
    assert dist_only == [tmp_path / "dist" / "d.webp"]


def test_pair_by_stem_refuses_ambiguous_stems(tmp_path):
    _touch_images(tmp_path / "ref", "a.png")
    _touch_images(tmp_path / "dist", "a.png", "a.jpg")
    with pytest.raises(ImageError, match="two images share the stem 'a'"):
        pair_by_stem(tmp_path / "ref", tmp_path / "dist")
