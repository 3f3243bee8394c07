"""Learned image compression: Ballé et al.'s codecs, trained here, coding real files.

- :class:`CodecModel`: a network of :mod:`perceptlab.nets.codec` (``bls2017``,
  ``hyperprior``) with its entropy models (:mod:`.entropy`) and, once built,
  its integer coding tables.
- :func:`compress` / :func:`decompress`: one image to ``.plc`` bytes and back
  (:mod:`.bitstream` documents the format); :func:`estimate_bits`: the model's
  own estimate of the rate, to set beside the file's ``8 * len(data) / pixels``.
- :func:`load_codec_model`: a shipped name, a ``model.safetensors``, a
  ``checkpoint.pt`` or a run folder.
- :func:`train_codec` / :class:`CodecTrainConfig`: train a model for one
  trade-off ``λ · D + R``; ``D`` is MSE or a perceptual measure (:mod:`.distortion`).
- :mod:`.proxy`: a small network trained to predict VMAF (ProxIQA), on
  distorted crops (:mod:`.distort`), frozen or trained alternately with a codec.

Decoding is exact across machines: the decoded symbols depend on integers
only (the hyperprior's table choice runs in integer arithmetic,
:mod:`.fixed_point`); the symbols are entropy coded with ``constriction``.

Example::

    model = load_codec_model("runs/my_codec")       # a run folder of `perceptlab train codec`
    x = read_image("kodim01.png")                   # (1, 3, H, W) in [0, 1]
    data = compress(model, x)                       # bytes of a .plc file
    out = decompress(data, model)                   # {"image", "mode", "bpp", "model", "symbols"}
    out["bpp"], estimate_bits(model, x) / (x.shape[-2] * x.shape[-1])
"""

from perceptlab.codec.bitstream import CodecFileError, compress, decompress, estimate_bits, model_hash, read_header
from perceptlab.codec.model import CodecModel
from perceptlab.codec.models import SHIPPED_CODEC, load_codec_model, shipped_codec_models
from perceptlab.codec.train import CodecTrainConfig, train_codec

__all__ = [
    "SHIPPED_CODEC",
    "CodecFileError", "CodecModel", "CodecTrainConfig",
    "compress", "decompress", "estimate_bits", "load_codec_model", "model_hash", "read_header",
    "shipped_codec_models", "train_codec",
]  # fmt: skip
