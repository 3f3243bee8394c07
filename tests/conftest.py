"""Shared fixtures: the reference data beside the checkout (../shared/data), small image helpers,
and the tests' own weights cache.

Weights cache. The tests never write into the user's ``$PERCEPTLAB_CACHE``:

- with ``PERCEPTLAB_TEST_CACHE=DIR`` they use ``DIR`` as it is (an empty folder
  tests the offline behaviour; the user's own cache shares it on purpose);
- otherwise they use ``.pytest_cache/d/perceptlab-weights`` (ignored by git),
  first seeded with a copy of every converted ``*.safetensors`` (and its hash
  record) that the user's cache holds and it lacks, so that a new checkout
  does not download 60 MB again through pip. A copy, not a link: a test may
  rewrite a cached file in place.

A test that needs pretrained weights which neither the cache nor any source
can provide (offline, no package index) is reported as skipped with the
resolver's message instead of failing (:func:`pytest_runtest_makereport`).
"""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from perceptlab import weights

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


# --------------------------------------------------------------------------- weights cache

_SAVED_CACHE = pytest.StashKey[str | None]()


def _test_cache(config: pytest.Config) -> Path:
    explicit = os.environ.get("PERCEPTLAB_TEST_CACHE")
    if explicit:
        return Path(explicit).expanduser()
    pytest_cache = getattr(config, "cache", None)  # None under -p no:cacheprovider
    if pytest_cache is not None:
        folder = pytest_cache.mkdir("perceptlab-weights")
    else:
        folder = Path(tempfile.gettempdir()) / "perceptlab-test-weights"
    user_cache = weights.cache_dir()
    if user_cache.resolve() != folder.resolve():
        _seed(folder, user_cache)
    return folder


def _seed(folder: Path, user_cache: Path) -> None:
    """Copy the user's converted weights that ``folder`` lacks (reading the user's cache only)."""
    folder.mkdir(parents=True, exist_ok=True)
    for source in sorted(user_cache.glob("*.safetensors")):
        target = folder / source.name
        if target.exists():
            continue
        record = source.with_name(source.name + ".sha256")  # the resolver's hash record, where it keeps one
        if record.is_file():
            shutil.copyfile(record, folder / record.name)
        partial = folder / f".{source.name}.partial"
        shutil.copyfile(source, partial)
        partial.replace(target)  # an interrupted copy never looks like a cached file


def pytest_configure(config: pytest.Config) -> None:
    config.stash[_SAVED_CACHE] = os.environ.get("PERCEPTLAB_CACHE")
    os.environ["PERCEPTLAB_CACHE"] = str(_test_cache(config))


def pytest_unconfigure(config: pytest.Config) -> None:
    previous = config.stash.get(_SAVED_CACHE, None)
    if previous is None:
        os.environ.pop("PERCEPTLAB_CACHE", None)
    else:
        os.environ["PERCEPTLAB_CACHE"] = previous


def pytest_report_header(config: pytest.Config) -> str:
    return f"perceptlab weights cache: {os.environ.get('PERCEPTLAB_CACHE')}"


CLI_WEIGHTS_ERROR = "perceptlab: error: could not get the weights"


def weights_unavailable(error: BaseException) -> bool:
    """True for the resolver's "every source failed" error, not for a bad file or an unknown name."""
    return isinstance(error, weights.WeightsError) and str(error).startswith("could not get the weights")


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo):
    """Report a test that failed only because pretrained weights cannot be had as skipped, saying why."""
    outcome = yield
    report = outcome.get_result()
    what = None
    if report.failed and call.excinfo is not None and weights_unavailable(call.excinfo.value):
        what = str(call.excinfo.value).splitlines()[0].removesuffix(" Tried:").rstrip(".")
    elif report.failed and report.when == "call":
        # A command run through main() reports the same error as its one line on stderr, exit status 2.
        line = next((x for x in report.capstderr.splitlines() if x.startswith(CLI_WEIGHTS_ERROR)), None)
        if line is not None:
            what = line.removeprefix("perceptlab: error: ").split(". Tried:")[0].removesuffix(" Tried:").rstrip(".")
    if what is not None:
        reason = (
            f"pretrained weights unavailable: {what} (not in the cache {os.environ.get('PERCEPTLAB_CACHE')}, "
            "and every source failed); provide them with `perceptlab weights fetch NAME --from FILE` "
            "or point PERCEPTLAB_TEST_CACHE at a cache that has them"
        )
        report.outcome = "skipped"
        report.longrepr = (str(item.path), item.location[1] + 1, f"Skipped: {reason}")
