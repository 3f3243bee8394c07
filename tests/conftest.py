"""Shared fixtures: the reference data beside the checkout (../shared/data) and small image helpers."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

SHARED_DATA = Path(__file__).resolve().parents[2] / "shared" / "data"
TID2013 = SHARED_DATA / "tid2013_examples"
TID2013_PAIRS = ("I03", "I04", "I06", "I08", "I19")


def shared_dir(name: str) -> Path:
    """``../shared/data/NAME``, or skip the test saying where it was looked for."""
    path = SHARED_DATA / name
    if not path.is_dir():
        pytest.skip(f"reference data {name} not found at {path}")
    return path


def load_rgb(path: Path) -> torch.Tensor:
    """Read an 8-bit RGB file with PIL alone, independent of perceptlab.io."""
    array = np.asarray(Image.open(path).convert("RGB"), dtype=np.float32) / 255.0
    return torch.from_numpy(array).permute(2, 0, 1).unsqueeze(0).contiguous()


@pytest.fixture(autouse=True)
def _seed():
    torch.manual_seed(0)
    np.random.seed(0)


@pytest.fixture(scope="module")
def one_thread():
    """One torch thread for a module of small tensors: on a shared 2-core CPU a second OpenMP
    thread only adds synchronisation (measured: 13 s for test_sr_nets.py with 2 threads, 2 s with 1).
    Use with ``pytestmark = pytest.mark.usefixtures("one_thread")``."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture
def tid2013() -> Path:
    return shared_dir("tid2013_examples")
