"""Weights file formats: readers (bytes of one file -> {original name: array}) and converters
({original name: array} -> {our tensor name: tensor}) for the networks of :mod:`perceptlab.weights`.
Nothing here unpickles with plain :mod:`pickle`."""

from __future__ import annotations

import io
import pickle
import re
from collections.abc import Callable

import numpy as np
import torch


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
