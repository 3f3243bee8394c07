"""Standard image codecs behind one small interface, for rate-distortion comparisons.

Every codec encodes an (H, W, 3) uint8 RGB array at one quality parameter to
the bytes a file would hold, and decodes them back; ``available()`` says
whether it runs here (with the library and version) or why not. Nothing is
imported until a codec is used, and a codec that cannot run is reported, not
dropped. All run on one thread, so timings compare and an evaluation leaves
the other cores alone.

=========  ==============================================  =============  ======================================
name       library and settings                            parameter      bytes counted
=========  ==============================================  =============  ======================================
jpeg       Pillow (libjpeg-turbo), 4:2:0, baseline,        quality        the whole JFIF file
           standard (Annex K) tables scaled by quality,
           standard Huffman tables
webp       Pillow (libwebp), lossy, method 4 (default)     quality        the whole RIFF file
avif       Pillow (libavif, aom encoder), 4:2:0, 8-bit,    quality        the whole AVIF (HEIF) file
           full range, speed 6 (default)
jpeg2000   Pillow (OpenJPEG), 9/7 irreversible wavelet,    bpp (target)   the raw J2K codestream (no JP2 box)
           colour transform, one quality layer
           at the target rate
jpegxl     imagecodecs (libjxl), VarDCT, effort 7          distance       the bare codestream (no container)
           (default)
hevc       ffmpeg + libx265, one intra frame, preset       qp             the raw Annex-B .hevc stream
           medium, constant QP, 4:2:0 8-bit BT.601 full                   (VPS/SPS/PPS and slice; x265's info
           range (the JPEG colour transform, done here)                   SEI switched off)
=========  ==============================================  =============  ======================================

Each default sweep spans about 0.05 to 3 bits per pixel on Kodak (768x512),
so that BD-rates against JPEG cover JPEG's whole quality range.
"""

from __future__ import annotations

import functools
import io
import os
import re
import shutil
import subprocess
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np

# The chroma format of the HEVC codec, in ffmpeg's and x265's name.
HEVC_PIX_FMT = "yuv420p"


@dataclass(frozen=True)
class Availability:
    """Whether a codec runs here: ``detail`` names the library and version when it does, the reason when not."""

    ok: bool
    detail: str

    def __bool__(self) -> bool:
        return self.ok


@dataclass(frozen=True)
class ClassicCodec:
    """A standard codec: ``encode(rgb, param) -> bytes``, ``decode(bytes) -> rgb``, and its default sweep.

    Attributes:
        name: registry key (``jpeg``, ``webp``, ...).
        settings: what is fixed, one line (for reports).
        param: the name of the quality parameter (``quality``, ``bpp``, ``distance``, ``qp``).
        params: the default sweep of that parameter.
        encode: ``encode(rgb, param) -> bytes``, ``rgb`` an (H, W, 3) uint8 array.
        decode: ``decode(data) -> rgb``, an (H, W, 3) uint8 array.
        check: returns the :class:`Availability` (called through :meth:`available`).
    """

    name: str
    settings: str
    param: str
    params: tuple[float, ...]
    encode: Callable[[np.ndarray, float], bytes]
    decode: Callable[[bytes], np.ndarray]
    check: Callable[[], Availability]

    def available(self) -> Availability:
        """Whether the codec runs here (library and version) or why not, one line either way."""
        return self.check()


CODECS: dict[str, ClassicCodec] = {}


def register(codec: ClassicCodec) -> ClassicCodec:
    """Add ``codec`` to :data:`CODECS` (names are unique)."""
    if codec.name in CODECS:
        raise ValueError(f"codec {codec.name!r} is already registered")
    CODECS[codec.name] = codec
    return codec


def get_codec(name: str) -> ClassicCodec:
    """The registry entry for ``name``, or a ValueError listing the known names."""
    try:
        return CODECS[name]
    except KeyError:
        raise ValueError(f"unknown codec {name!r}; choose from {', '.join(CODECS)}") from None


def list_codecs() -> list[str]:
    """Registered codec names, in registration order."""
    return list(CODECS)


def check_rgb(rgb: np.ndarray) -> np.ndarray:
    """``rgb`` as a C-contiguous (H, W, 3) uint8 array, or a ValueError saying what it is instead."""
    if not isinstance(rgb, np.ndarray) or rgb.dtype != np.uint8 or rgb.ndim != 3 or rgb.shape[2] != 3:
        what = f"{rgb.dtype} array of shape {rgb.shape}" if isinstance(rgb, np.ndarray) else type(rgb).__name__
        raise ValueError(f"codecs take an (H, W, 3) uint8 RGB array, got a {what}")
    if rgb.shape[0] == 0 or rgb.shape[1] == 0:
        raise ValueError(f"codecs take a non-empty image, got shape {rgb.shape}")
    return np.ascontiguousarray(rgb)


# --- Pillow: JPEG, WebP, AVIF, JPEG 2000 ----------------------------------------------------------------------


def _pillow_encoder(image_format: str, options: Callable[[float], dict]) -> Callable[[np.ndarray, float], bytes]:
    def encode(rgb: np.ndarray, param: float) -> bytes:
        from PIL import Image

        buffer = io.BytesIO()
        Image.fromarray(check_rgb(rgb), "RGB").save(buffer, format=image_format, **options(param))
        return buffer.getvalue()

    return encode


def _pillow_decode(data: bytes) -> np.ndarray:
    from PIL import Image

    with Image.open(io.BytesIO(data)) as image:
        return np.asarray(image.convert("RGB"))


def _avif_decode(data: bytes) -> np.ndarray:
    from PIL import AvifImagePlugin

    # Pillow takes the AVIF decoder's thread count from this module setting only.
    threads, AvifImagePlugin.DEFAULT_MAX_THREADS = AvifImagePlugin.DEFAULT_MAX_THREADS, 1
    try:
        return _pillow_decode(data)
    finally:
        AvifImagePlugin.DEFAULT_MAX_THREADS = threads


def _pillow_check(feature: str, library: str, upgrade: str = "") -> Callable[[], Availability]:
    @functools.cache
    def check() -> Availability:
        import PIL
        from PIL import features

        if not features.check(feature):
            return Availability(False, f"this Pillow {PIL.__version__} was built without {library}{upgrade}")
        return Availability(True, f"Pillow {PIL.__version__}, {library} {features.version(feature)}")

    return check


@functools.cache
def _avif_check() -> Availability:
    found = _pillow_check("avif", "libavif", " (Pillow >= 11.3 wheels have it: pip install 'perceptlab[codec-eval]')")()
    if not found:
        return found
    from PIL import AvifImagePlugin

    aom = AvifImagePlugin.get_codec_version("aom")
    if aom is None:
        return Availability(False, f"{found.detail} has no aom encoder")
    return Availability(True, f"{found.detail}, aom {aom}")


register(ClassicCodec(
    "jpeg", "Pillow/libjpeg-turbo, 4:2:0, baseline, standard tables scaled by quality, standard Huffman tables",
    "quality", (5, 10, 20, 30, 40, 50, 60, 70, 80, 90, 95),
    _pillow_encoder("JPEG", lambda q: {"quality": int(q), "subsampling": 2}),
    _pillow_decode, _pillow_check("libjpeg_turbo", "libjpeg-turbo", " (install a Pillow wheel from PyPI)"),
))  # fmt: skip
register(ClassicCodec(
    "webp", "Pillow/libwebp, lossy, method 4", "quality", (1, 5, 15, 30, 50, 70, 80, 90, 95),
    _pillow_encoder("WEBP", lambda q: {"quality": int(q), "method": 4}),
    _pillow_decode, _pillow_check("webp", "libwebp"),
))  # fmt: skip
register(ClassicCodec(
    "avif", "Pillow/libavif with aom, 4:2:0, 8-bit, full range, speed 6", "quality",
    (10, 25, 40, 50, 60, 70, 80, 88, 94),
    _pillow_encoder("AVIF", lambda q: {"quality": int(q), "subsampling": "4:2:0", "speed": 6, "max_threads": 1,
                                       "codec": "aom"}),  # fmt: skip
    _avif_decode, _avif_check,
))  # fmt: skip
register(ClassicCodec(
    "jpeg2000", "Pillow/OpenJPEG, raw J2K codestream, 9/7 irreversible wavelet, colour transform, one layer",
    "bpp", (0.05, 0.1, 0.2, 0.35, 0.5, 0.75, 1.0, 1.5, 2.0, 3.0),
    # OpenJPEG's "rates" are compression ratios against the raw 24 bits per pixel.
    _pillow_encoder("JPEG2000", lambda bpp: {"no_jp2": True, "irreversible": True, "mct": 1,
                                             "quality_mode": "rates", "quality_layers": [24.0 / bpp]}),  # fmt: skip
    _pillow_decode, _pillow_check("jpg_2000", "OpenJPEG"),
))  # fmt: skip


# --- imagecodecs: JPEG XL ---------------------------------------------------------------------------------------


def _jpegxl_encode(rgb: np.ndarray, distance: float) -> bytes:
    import imagecodecs

    return bytes(imagecodecs.jpegxl_encode(check_rgb(rgb), distance=float(distance), effort=7, numthreads=1))


def _jpegxl_decode(data: bytes) -> np.ndarray:
    import imagecodecs

    return np.asarray(imagecodecs.jpegxl_decode(data, numthreads=1))


@functools.cache
def _jpegxl_check() -> Availability:
    try:
        import imagecodecs
    except ImportError:
        return Availability(False, "needs imagecodecs: pip install 'perceptlab[codec-eval]'")
    if not imagecodecs.JPEGXL.available:
        return Availability(False, f"imagecodecs {imagecodecs.__version__} was built without libjxl")
    return Availability(True, f"imagecodecs {imagecodecs.__version__}, {imagecodecs.jpegxl_version()}")


register(ClassicCodec(
    "jpegxl", "imagecodecs/libjxl, lossy (VarDCT), effort 7, bare codestream", "distance",
    (15.0, 10.0, 7.0, 5.0, 3.5, 2.5, 1.5, 1.0, 0.6, 0.4),
    _jpegxl_encode, _jpegxl_decode, _jpegxl_check,
))  # fmt: skip


# --- ffmpeg + x265: HEVC intra ------------------------------------------------------------------------------------


def _ffmpeg_candidates() -> list[str]:
    """The bundled ffmpeg of imageio-ffmpeg (or its IMAGEIO_FFMPEG_EXE), then an ``ffmpeg`` on the PATH."""
    found = []
    try:
        import imageio_ffmpeg

        found.append(imageio_ffmpeg.get_ffmpeg_exe())
    except (ImportError, RuntimeError):
        pass
    on_path = shutil.which("ffmpeg")
    if on_path and on_path not in found:
        found.append(on_path)
    return found


@functools.cache
def _hevc_ffmpeg() -> tuple[str | None, str]:
    """``(ffmpeg path, detail)`` for the first ffmpeg that encodes with libx265, or ``(None, reason)``."""
    candidates = _ffmpeg_candidates()
    if not candidates:
        return None, "needs an ffmpeg with libx265: pip install 'perceptlab[codec-eval]' (imageio-ffmpeg)"
    for exe in candidates:
        try:
            # Encoding a small frame for real proves the encoder works and makes x265 print its version.
            run = subprocess.run([exe, "-hide_banner", "-nostdin", "-loglevel", "info", "-f", "rawvideo",
                                  "-pix_fmt", "gray", "-s", "16x16", "-i", "pipe:0", "-frames:v", "1", "-c:v",
                                  "libx265", "-x265-params", "pools=1:frame-threads=1", "-f", "null", "-"],
                                 input=bytes(256), capture_output=True, timeout=60)  # fmt: skip
        except (OSError, subprocess.TimeoutExpired):
            continue
        if run.returncode == 0:
            banner = subprocess.run([exe, "-version"], capture_output=True, text=True, timeout=30).stdout
            ffmpeg = banner.split(" Copyright")[0].removeprefix("ffmpeg version ").strip()
            x265 = re.search(r"HEVC encoder version (\S+)", run.stderr.decode(errors="replace"))
            return exe, f"ffmpeg {ffmpeg} ({exe}), x265 {x265.group(1) if x265 else '(version unknown)'}"
    return None, f"no ffmpeg with a working libx265 encoder ({', '.join(candidates)})"


def _hevc_check() -> Availability:
    exe, detail = _hevc_ffmpeg()
    return Availability(exe is not None, detail)


def _rgb_to_ycbcr(rgb: np.ndarray) -> np.ndarray:
    """Full-range BT.601 YCbCr (the JPEG/JFIF transform), float, (H, W, 3)."""
    m = np.array([[0.299, 0.587, 0.114], [-0.168736, -0.331264, 0.5], [0.5, -0.418688, -0.081312]])
    return rgb.astype(np.float64) @ m.T + np.array([0.0, 128.0, 128.0])


def _ycbcr_to_rgb(ycc: np.ndarray) -> np.ndarray:
    y, cb, cr = ycc[..., 0], ycc[..., 1] - 128.0, ycc[..., 2] - 128.0
    rgb = np.stack([y + 1.402 * cr, y - 0.344136 * cb - 0.714136 * cr, y + 1.772 * cb], axis=-1)
    return np.clip(np.round(rgb), 0, 255).astype(np.uint8)


def _upsample2(c: np.ndarray) -> np.ndarray:
    """Double both sides with the triangle filter (bilinear, chroma sited between pixels, as JPEG's)."""
    for axis in (0, 1):
        before = np.concatenate([np.take(c, [0], axis), np.take(c, range(c.shape[axis] - 1), axis)], axis)
        after = np.concatenate([np.take(c, range(1, c.shape[axis]), axis), np.take(c, [-1], axis)], axis)
        even, odd = 0.75 * c + 0.25 * before, 0.75 * c + 0.25 * after
        c = np.stack([even, odd], axis=axis + 1).reshape(*c.shape[:axis], -1, *c.shape[axis + 1:])
    return c


def _hevc_encode(rgb: np.ndarray, qp: float) -> bytes:
    rgb = check_rgb(rgb)
    h, w = rgb.shape[:2]
    if HEVC_PIX_FMT == "yuv420p" and (h % 2 or w % 2):
        raise ValueError(f"hevc in 4:2:0 needs an even width and height, got {w}x{h}")
    ycc = _rgb_to_ycbcr(rgb)
    planes = [ycc[..., 0]]
    for c in (ycc[..., 1], ycc[..., 2]):
        planes.append(c.reshape(h // 2, 2, w // 2, 2).mean(axis=(1, 3)) if HEVC_PIX_FMT == "yuv420p" else c)
    raw = b"".join(np.clip(np.round(p), 0, 255).astype(np.uint8).tobytes() for p in planes)
    exe = _require_ffmpeg()
    # keyint=1: one intra frame; info=0: no SEI with x265's version and settings (about 2 KB of text);
    # range, matrix and chroma siting describe what we feed in (JPEG's YCbCr, chroma between pixels).
    params = (f"qp={int(qp)}:keyint=1:info=0:pools=1:frame-threads=1:log-level=error:range=full:"
              "colormatrix=bt470bg:chromaloc=1")  # fmt: skip
    cmd = [exe, "-hide_banner", "-nostdin", "-loglevel", "error", "-f", "rawvideo", "-pix_fmt", HEVC_PIX_FMT,
           "-s", f"{w}x{h}", "-i", "pipe:0", "-frames:v", "1", "-c:v", "libx265", "-preset", "medium",
           "-x265-params", params, "-f", "hevc", "pipe:1"]  # fmt: skip
    return _ffmpeg(cmd, raw)


def _hevc_decode(data: bytes) -> np.ndarray:
    exe = _require_ffmpeg()
    cmd = [exe, "-hide_banner", "-nostdin", "-loglevel", "error", "-threads", "1", "-f", "hevc", "-i", "pipe:0",
           "-f", "yuv4mpegpipe", "-pix_fmt", HEVC_PIX_FMT, "pipe:1"]  # fmt: skip
    out = _ffmpeg(cmd, data)
    header, _, rest = out.partition(b"\n")
    w = int(re.search(rb" W(\d+)", header).group(1))
    h = int(re.search(rb" H(\d+)", header).group(1))
    frame = rest.partition(b"\n")[2]
    cw, ch = (w // 2, h // 2) if HEVC_PIX_FMT == "yuv420p" else (w, h)
    y = np.frombuffer(frame, np.uint8, h * w).reshape(h, w).astype(np.float64)
    cb, cr = (np.frombuffer(frame, np.uint8, ch * cw, h * w + k * ch * cw).reshape(ch, cw).astype(np.float64)
              for k in (0, 1))  # fmt: skip
    if HEVC_PIX_FMT == "yuv420p":
        cb, cr = _upsample2(cb), _upsample2(cr)
    return _ycbcr_to_rgb(np.stack([y, cb, cr], axis=-1))


def _require_ffmpeg() -> str:
    exe, detail = _hevc_ffmpeg()
    if exe is None:
        raise RuntimeError(f"hevc is not available: {detail}")
    return exe


def _ffmpeg(cmd: Sequence[str], data: bytes) -> bytes:
    run = subprocess.run(list(cmd), input=data, capture_output=True, timeout=600,
                         env={**os.environ, "AV_LOG_FORCE_NOCOLOR": "1"})  # fmt: skip
    if run.returncode != 0:
        last = (run.stderr.decode(errors="replace").strip().splitlines() or ["(no message)"])[-1]
        raise RuntimeError(f"ffmpeg failed (exit {run.returncode}): {last}")
    return run.stdout


register(ClassicCodec(
    "hevc", f"ffmpeg/libx265, one intra frame, preset medium, constant QP, {HEVC_PIX_FMT} 8-bit, BT.601 full range, "
    "raw Annex-B stream", "qp", (47, 42, 38, 34, 31, 28, 25, 22, 19, 16),
    _hevc_encode, _hevc_decode, _hevc_check,
))  # fmt: skip
