"""The ``.plc`` file: a header that says what made it, then the range-coded symbols.

Layout (integers big-endian; format version 1)::

    offset  size  field
    0       4     magic b"\\x89PLC"
    4       1     format version (1)
    5       1     L, length of the model name
    6       4     P, payload length in bytes
    10      4     CRC-32 of every byte from offset 14 to the end
    14      L     model name, UTF-8 (how a decoder finds an installed model)
    14+L    8     model hash: the first 8 bytes of the SHA-256 of the model's tensors (:func:`model_hash`)
    22+L    4     image height, 4 image width (pixels, before padding)
    30+L    1     mode: 0 RGB, 1 grayscale (L)
    31+L    P     payload: constriction range-coder words, little-endian uint32

The payload holds, for bls2017, ``y``'s symbols; for the hyperprior, ``z``'s
then ``y``'s, each latent grouped by table with its escaped values after it
(:mod:`perceptlab.codec.coding`). Latent sizes follow from the image size:
it is padded by edge replication to a multiple of ``model.stride`` (16 or 64)
and cropped back after decoding.

What is kept of an image file is what :func:`perceptlab.io.read_image` gives:
RGB, 8-bit precision (a 16-bit file is coded at 8 bits), transparency
composited on white (alpha is not coded); a grayscale file is coded as three
equal channels and marked ``L``, and decodes to the luma of the decoded RGB.

Decoding refuses, with a one-line :class:`CodecFileError`: a file too short
for its header or payload (truncated), trailing bytes, another magic or
version, a checksum mismatch (corrupt), a model that is not installed, and a
model whose tensors are not those that wrote the file (a hash mismatch).
"""

from __future__ import annotations

import hashlib
import struct
import zlib
from dataclasses import dataclass

import torch
import torch.nn.functional as F

from perceptlab.codec import coding
from perceptlab.codec.model import CodecModel

MAGIC = b"\x89PLC"
VERSION = 1
MODES = ("RGB", "L")
_FIXED = struct.Struct(">4sBBII")  # magic, version, name length, payload length, crc
_IMAGE = struct.Struct(">IIB")  # height, width, mode
HASH_BYTES = 8
# Refuse headers asking for absurd images (a crafted file must not make us allocate terabytes).
MAX_PIXELS = 1 << 30


class CodecFileError(ValueError):
    """A ``.plc`` file that cannot be decoded; ``str()`` is one line (``"{path}: {problem}"`` with a path)."""

    def __init__(self, problem: str, path=None):
        super().__init__(problem)
        self.problem, self.path = problem, path

    def __str__(self) -> str:
        return f"{self.path}: {self.problem}" if self.path is not None else self.problem


@dataclass(frozen=True)
class Header:
    """The fields of a ``.plc`` header (see the module docstring)."""

    model: str
    model_hash: bytes
    height: int
    width: int
    mode: str
    payload: bytes


def model_hash(model: CodecModel) -> bytes:
    """The first 8 bytes of the SHA-256 of every tensor of ``model`` (name, dtype, shape, bytes; sorted by name).

    The coding tables are tensors too, so a model whose tables were rebuilt
    elsewhere from the same float weights (and came out different) is told apart.
    """
    digest = hashlib.sha256()
    for name, tensor in sorted(model.state_dict().items()):
        t = tensor.detach().cpu().contiguous()
        digest.update(f"{name}|{t.dtype}|{tuple(t.shape)}|".encode())
        digest.update(t.numpy().tobytes() if t.dtype != torch.bfloat16 else t.view(torch.int16).numpy().tobytes())
    return digest.digest()[:HASH_BYTES]


def pad(x: torch.Tensor, stride: int) -> torch.Tensor:
    """``x`` padded on the bottom and right by edge replication to sides that are multiples of ``stride``."""
    h, w = x.shape[-2:]
    return F.pad(x, (0, -w % stride, 0, -h % stride), mode="replicate")


def _check_input(x: torch.Tensor) -> None:
    from perceptlab._checks import check_image, check_range

    check_image(x, "x", channels=3)
    if x.shape[0] != 1:
        raise ValueError(f"x must hold one image (N = 1), got shape {tuple(x.shape)}")
    check_range(x, "x")


@torch.no_grad()
def estimate_bits(model: CodecModel, x: torch.Tensor) -> float:
    """The model's own estimate of the bits of ``x`` (1, 3, H, W) in [0, 1]: ``sum(-log2 p)`` of its rounded
    latents under its float entropy models, for the padded image as :func:`compress` codes it (no header)."""
    _check_input(x)
    training = model.training
    model.eval()
    try:
        out = model(pad(x, model.stride))
    finally:
        model.train(training)
    return float(sum(-torch.log2(p).sum() for p in out["likelihoods"].values()))


@torch.no_grad()
def compress(model: CodecModel, x: torch.Tensor, mode: str = "RGB") -> bytes:
    """The ``.plc`` bytes of one image.

    Args:
        model: a codec with tables (:func:`perceptlab.codec.load_codec_model`, or after ``build_tables()``).
        x: (1, 3, H, W) float in [0, 1].
        mode: ``"RGB"``, or ``"L"`` for a grayscale source (three equal channels), recorded in the header.

    Raises:
        ValueError: a bad input or mode, or a model without tables.
    """
    _check_input(x)
    if mode not in MODES:
        raise ValueError(f"mode must be one of {MODES}, got {mode!r}")
    height, width = x.shape[-2:]
    tables = model.coding_tables()
    symbols = model.symbols(pad(x.float(), model.stride))
    encoder = coding.new_encoder()
    if model.hyper:
        coding.encode(encoder, symbols["z"], _channel_groups(symbols["z"].shape), tables["latent"])
        coding.encode(encoder, symbols["y"], model.scale_indices(symbols["z"]), tables["scale"])
    else:
        coding.encode(encoder, symbols["y"], _channel_groups(symbols["y"].shape), tables["latent"])
    name = model.name.encode("utf-8")
    if not 0 < len(name) < 256:
        raise ValueError(f"a model name must take 1 to 255 bytes in UTF-8, got {model.name!r}")
    payload = coding.finish(encoder)
    body = name + model_hash(model) + _IMAGE.pack(height, width, MODES.index(mode)) + payload
    return _FIXED.pack(MAGIC, VERSION, len(name), len(payload), zlib.crc32(body)) + body


def _installed(name: str) -> CodecModel:
    """The shipped model a header names."""
    from perceptlab.codec.models import load_codec_model, shipped_codec_models

    shipped = shipped_codec_models()
    if name not in shipped:
        known = ", ".join(shipped) or "none is installed"
        raise CodecFileError(f"written by codec model {name!r}, which is not installed (shipped codec models: "
                             f"{known}); give the model that wrote it (--model)")  # fmt: skip
    return load_codec_model(name)


def _channel_groups(shape: torch.Size) -> torch.Tensor:
    """Each symbol's table for a factorised latent (C, h, w): its channel."""
    return torch.arange(shape[0]).view(-1, 1, 1).expand(shape)


def read_header(data: bytes) -> Header:
    """Parse and check a ``.plc`` file's header and checksum (not the model).

    Raises:
        CodecFileError: truncated, trailing bytes, foreign magic, unknown version, bad checksum, bad fields.
    """
    if len(data) < len(MAGIC) and MAGIC.startswith(bytes(data)):
        raise CodecFileError(f"truncated: {len(data)} bytes, not even a header")
    if bytes(data[: len(MAGIC)]) != MAGIC:
        raise CodecFileError("not a .plc file (no perceptlab codec magic)")
    if len(data) < _FIXED.size:
        raise CodecFileError(f"truncated: {len(data)} bytes, not even a header")
    _, version, name_length, payload_length, crc = _FIXED.unpack_from(data)
    if version != VERSION:
        raise CodecFileError(f"format version {version}, but this perceptlab reads version {VERSION} only")
    expected = _FIXED.size + name_length + HASH_BYTES + _IMAGE.size + payload_length
    if len(data) < expected:
        raise CodecFileError(f"truncated: {len(data)} of {expected} bytes")
    if len(data) > expected:
        raise CodecFileError(f"{len(data) - expected} unexpected bytes after the end of the coded image")
    if zlib.crc32(data[_FIXED.size :]) != crc:
        raise CodecFileError("corrupt: checksum mismatch")
    at = _FIXED.size
    try:
        name = bytes(data[at : at + name_length]).decode("utf-8")
    except UnicodeDecodeError:
        raise CodecFileError("corrupt: the model name is not UTF-8") from None
    at += name_length
    digest = bytes(data[at : at + HASH_BYTES])
    height, width, mode = _IMAGE.unpack_from(data, at + HASH_BYTES)
    if not (height and width and height * width <= MAX_PIXELS) or mode >= len(MODES):
        raise CodecFileError(f"corrupt: an image of {height}x{width} pixels in mode {mode}")
    return Header(name, digest, height, width, MODES[mode], bytes(data[expected - payload_length :]))


@torch.no_grad()
def decompress(data: bytes, model: CodecModel | None = None) -> dict:
    """Decode ``.plc`` bytes.

    Args:
        data: what :func:`compress` wrote.
        model: the codec that wrote it; ``None`` finds the installed (shipped) model the header names.

    Returns:
        ``{"image": (1, 3, H, W) float in [0, 1], "mode": "RGB" | "L", "bpp": 8 * len(data) / (H * W),
        "model": name, "symbols": {latent: int64 (C, h, w)}}``; an ``L`` image has three equal channels
        (the luma of the decoded RGB, Rec. 601 weights).

    Raises:
        CodecFileError: see the module docstring.
    """
    header = read_header(data)
    if model is None:
        model = _installed(header.model)
    digest = model_hash(model)
    if digest != header.model_hash:
        raise CodecFileError(f"written by model {header.model!r} with weights {header.model_hash.hex()}, but the "
                             f"model given ({model.name!r}) has weights {digest.hex()}: decode with the model "
                             "that wrote it")  # fmt: skip
    stride = model.stride
    rows, cols = -(-header.height // stride) * stride, -(-header.width // stride) * stride
    tables = model.coding_tables()
    try:
        decoder = coding.new_decoder(header.payload)
        if model.hyper:
            z = coding.decode(decoder, _channel_groups(torch.Size((model.N, rows // 64, cols // 64))),
                              tables["latent"])  # fmt: skip
            symbols = {"z": z, "y": coding.decode(decoder, model.scale_indices(z), tables["scale"])}
        else:
            shape = torch.Size((model.M, rows // 16, cols // 16))
            symbols = {"y": coding.decode(decoder, _channel_groups(shape), tables["latent"])}
    except coding.CodingError as exc:
        raise CodecFileError(f"corrupt: {exc}") from None
    image = model.reconstruct(symbols)[..., : header.height, : header.width].clamp(0, 1)
    if header.mode == "L":
        luma = (image * image.new_tensor([0.299, 0.587, 0.114]).view(1, 3, 1, 1)).sum(1, keepdim=True)
        image = luma.expand(-1, 3, -1, -1).contiguous()
    return {"image": image, "mode": header.mode, "bpp": 8 * len(data) / (header.height * header.width),
            "model": header.model, "symbols": symbols}  # fmt: skip
