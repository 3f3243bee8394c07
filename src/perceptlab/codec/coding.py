"""Symbols to bytes and back with ``constriction``'s range coder and the models' integer tables.

A latent is coded as groups: every symbol has a table (its channel's for a
factorised density, its scale's for the Gaussian conditional); the groups go
in increasing table order, each in raster order of the flattened latent. The
decoder knows every symbol's table before it decodes it (the hyperprior's
from the already decoded ``ẑ``), so it can cut the stream the same way.

A symbol outside its table's range is coded as the table's escape symbol;
after all the symbols of a latent, each escaped value follows in that order:
``e = 2 (first - s) - 1`` below the range, ``2 (s - last) - 2`` above
(``first``, ``last``: the table's range; ``e >= 0``), as its bit length
(uniform over 0..32) then its bits below the leading one, in uniform chunks
of at most 16 bits, low first.

``constriction`` takes each table as probabilities; our tables are integers
summing to 2**16, exact in float64, and constriction's (non-"perfect")
quantisation to its own precision is a deterministic function of them, so
encoder and decoder build identical models.
"""

from __future__ import annotations

import numpy as np
import torch

# Escaped values are below 2**32 (symbols are int32).
_LENGTH_SYMBOLS = 33
_CHUNK_BITS = 16


class CodingError(ValueError):
    """The coder could not decode the stream (a corrupt payload that passed its checksum, or a bug)."""


def _constriction():
    try:
        import constriction
    except ImportError as exc:  # a declared dependency; say how to get it rather than trace
        raise ImportError("the codec needs the constriction package: pip install 'constriction>=0.4'") from exc
    return constriction


class Tables:
    """A set of integer tables (:func:`perceptlab.codec.entropy.factorized_tables`) with their constriction models."""

    def __init__(self, pmf: torch.Tensor, start: torch.Tensor, length: torch.Tensor, offset: torch.Tensor):
        self.pmf = pmf.numpy().astype(np.float64)
        self.start = start.numpy().astype(np.int64)
        self.length = length.numpy().astype(np.int64)
        self.offset = offset.numpy().astype(np.int64)
        self._models: dict[int, object] = {}

    def __len__(self) -> int:
        return len(self.length)

    def model(self, k: int):
        if k not in self._models:
            categorical = _constriction().stream.model.Categorical
            start = self.start[k]
            self._models[k] = categorical(self.pmf[start : start + self.length[k] + 1], perfect=False)
        return self._models[k]


def encode(encoder, symbols: torch.Tensor, groups: torch.Tensor, tables: Tables) -> None:
    """Append ``symbols`` (int64, any shape) to a constriction ``RangeEncoder``, symbol ``i`` with table ``groups[i]``."""
    values = symbols.reshape(-1).numpy().astype(np.int64)
    which = groups.reshape(-1).numpy().astype(np.int64)
    escaped: list[np.ndarray] = []
    for k in np.unique(which).tolist():
        chosen = values[which == k]
        index = chosen - tables.offset[k]
        length = tables.length[k]
        outside = (index < 0) | (index >= length)
        encoder.encode(np.where(outside, length, index).astype(np.int32), tables.model(k))
        index = index[outside]
        escaped.append(np.where(index < 0, -2 * index - 1, 2 * (index - length)))
    _encode_escapes(encoder, np.concatenate(escaped) if escaped else np.zeros(0, np.int64))


def decode(decoder, groups: torch.Tensor, tables: Tables) -> torch.Tensor:
    """The symbols :func:`encode` wrote with these ``groups``, int64 of their shape."""
    which = groups.reshape(-1).numpy().astype(np.int64)
    values = np.zeros(which.size, dtype=np.int64)
    escapes = []  # (positions, length, offset) of the escaped symbols, group by group
    for k in np.unique(which).tolist():
        where = np.flatnonzero(which == k)
        codes = _decode(decoder, tables.model(k), where.size).astype(np.int64)
        length = tables.length[k]
        values[where] = codes + tables.offset[k]
        outside = codes == length
        if outside.any():
            escapes.append((where[outside], length, tables.offset[k]))
    count = sum(len(e[0]) for e in escapes)
    raw = _decode_escapes(decoder, count)
    start = 0
    for where, length, offset in escapes:
        e = raw[start : start + len(where)]
        start += len(where)
        values[where] = np.where(e % 2 == 1, -(e + 1) // 2, e // 2 + length) + offset
    return torch.from_numpy(values).reshape(groups.shape)


def _encode_escapes(encoder, escaped: np.ndarray) -> None:
    if escaped.size == 0:
        return
    if escaped.max() >= 2**32:
        raise ValueError("a latent value is too large to code")
    model = _constriction().stream.model
    lengths = np.array([int(e).bit_length() for e in escaped.tolist()], dtype=np.int32)
    encoder.encode(lengths, model.Uniform(_LENGTH_SYMBOLS))
    chunks, sizes = _chunks(escaped, lengths)
    if chunks:
        encoder.encode(np.array(chunks, dtype=np.int32), model.Uniform(), np.array(sizes, dtype=np.int32))


def _chunks(escaped: np.ndarray, lengths: np.ndarray) -> tuple[list[int], list[int]]:
    """The bits below each value's leading one, in chunks of at most 16, low first; and each chunk's alphabet size."""
    chunks, sizes = [], []
    for e, n in zip(escaped.tolist(), lengths.tolist()):
        rest, bits = e - (1 << (n - 1)) if n else 0, max(n - 1, 0)
        while bits > 0:
            take = min(bits, _CHUNK_BITS)
            chunks.append(rest & ((1 << take) - 1))
            sizes.append(1 << take)
            rest >>= take
            bits -= take
    return chunks, sizes


def _decode_escapes(decoder, count: int) -> np.ndarray:
    if count == 0:
        return np.zeros(0, dtype=np.int64)
    model = _constriction().stream.model
    lengths = _decode(decoder, model.Uniform(_LENGTH_SYMBOLS), count).astype(np.int64)
    sizes = [1 << min(bits, _CHUNK_BITS) for n in lengths.tolist() for bits in _chunk_bits(n)]
    chunks = (_decode(decoder, model.Uniform(), np.array(sizes, dtype=np.int32)) if sizes
              else np.zeros(0, np.int64)).astype(np.int64).tolist()  # fmt: skip
    values, used = [], 0
    for n in lengths.tolist():
        value, shift = (1 << (n - 1)) if n else 0, 0
        for bits in _chunk_bits(n):
            value += chunks[used] << shift
            used += 1
            shift += bits
        values.append(value)
    return np.array(values, dtype=np.int64)


def _chunk_bits(n: int) -> list[int]:
    """Sizes in bits of the chunks of a value of bit length ``n`` (as :func:`_chunks` cuts them)."""
    bits = max(n - 1, 0)
    return [min(_CHUNK_BITS, bits - start) for start in range(0, bits, _CHUNK_BITS)]


def _decode(decoder, model, amount):
    try:
        if isinstance(amount, np.ndarray):
            return np.asarray(decoder.decode(model, amount))
        return np.asarray(decoder.decode(model, int(amount))) if amount else np.zeros(0, np.int32)
    except (ValueError, RuntimeError, AssertionError) as exc:
        raise CodingError(f"the coded data does not decode ({exc})") from None


def new_encoder():
    """An empty constriction range encoder."""
    return _constriction().stream.queue.RangeEncoder()


def finish(encoder) -> bytes:
    """The encoder's compressed words as little-endian bytes."""
    return encoder.get_compressed().astype("<u4").tobytes()


def new_decoder(payload: bytes):
    """A constriction range decoder over :func:`finish`'s bytes."""
    if len(payload) % 4:
        raise CodingError(f"the coded data is {len(payload)} bytes, not whole 32-bit words")
    words = np.frombuffer(payload, dtype="<u4").astype(np.uint32)
    return _constriction().stream.queue.RangeDecoder(words)
