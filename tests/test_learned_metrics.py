"""LPIPS and DISTS against the official implementations' published values."""

from __future__ import annotations

import pytest
import torch

from conftest import TID2013_PAIRS, load_rgb
from perceptlab.metrics import DISTS, LPIPS, dists, get_metric, lpips
from perceptlab.features import AlexNetFeatures, VGG16Features

# tid2013_examples/REFERENCE_VALUES.md: the official lpips 0.1.4 (v0.1 heads) and
# DISTS_pytorch 0.1 on RGB inputs in [0, 1], rounded to 4 decimals.
GOLDEN = {
    "I03": (0.7237, 0.7614, 0.4742),
    "I04": (0.2572, 0.2090, 0.1424),
    "I06": (0.0508, 0.0544, 0.0682),
    "I08": (0.0521, 0.0475, 0.0287),
    "I19": (0.4253, 0.5971, 0.3123),
}


@pytest.fixture(scope="module")
def metrics():
    return {"lpips_alex": LPIPS("alex", reduction="none"), "lpips_vgg": LPIPS("vgg", reduction="none"),
            "dists": DISTS(reduction="none")}  # fmt: skip


@pytest.fixture(scope="module")
def tid_batch():
    from conftest import TID2013

    if not TID2013.is_dir():
        pytest.skip(f"reference data not found at {TID2013}")
    ref = torch.cat([load_rgb(TID2013 / "ref_dir" / f"{k}.bmp") for k in TID2013_PAIRS])
    dist = torch.cat([load_rgb(TID2013 / "dist_dir" / f"{k}.bmp") for k in TID2013_PAIRS])
    return dist, ref


@pytest.mark.parametrize("column,name", [(0, "lpips_alex"), (1, "lpips_vgg"), (2, "dists")])
def test_reproduces_official_values(metrics, tid_batch, column, name):
    dist, ref = tid_batch
    with torch.no_grad():
        ours = metrics[name](dist, ref)
    expected = torch.tensor([GOLDEN[k][column] for k in TID2013_PAIRS])
    # The golden values are rounded to 4 decimals: 0.5e-4 of rounding plus float noise.
    assert torch.allclose(ours, expected, atol=1e-4, rtol=0), (name, ours, expected)


def test_functions_match_modules(metrics, tid_batch):
    dist, ref = (t[:2, :, :96, :128] for t in tid_batch)
    with torch.no_grad():
        assert torch.allclose(lpips(dist, ref, net="alex", reduction="none"), metrics["lpips_alex"](dist, ref))
        assert torch.allclose(lpips(dist, ref, net="vgg", reduction="none"), metrics["lpips_vgg"](dist, ref))
        assert torch.allclose(dists(dist, ref, reduction="none"), metrics["dists"](dist, ref))


@pytest.mark.parametrize("name", ["lpips_alex", "lpips_vgg", "dists"])
def test_identical_is_zero_symmetric_and_batch_independent(metrics, name):
    x = torch.rand(2, 3, 64, 64)
    y = (x + 0.1 * torch.randn_like(x)).clamp(0, 1)
    m = metrics[name]
    with torch.no_grad():
        assert m(x, x).abs().max() < 1e-5
        both = m(y, x)
        assert torch.allclose(both, m(x, y), atol=1e-5)
        assert torch.allclose(both[1:], m(y[1:], x[1:]), atol=1e-5)
        assert (both > 1e-3).all()


@pytest.mark.parametrize("name", ["lpips_alex", "lpips_vgg", "dists"])
def test_usable_as_loss(metrics, name):
    target = torch.rand(1, 3, 48, 48)
    pred = torch.rand(1, 3, 48, 48, requires_grad=True)
    metrics[name](pred, target).sum().backward()
    assert pred.grad is not None and pred.grad.abs().sum() > 0
    assert not any(p.requires_grad for p in metrics[name].parameters())


def test_too_small_input_names_minimum(metrics):
    with pytest.raises(ValueError, match="at least 31x31"):
        metrics["lpips_alex"](torch.rand(1, 3, 30, 40), torch.rand(1, 3, 30, 40))


def test_registry_min_sizes_match_the_networks():
    assert get_metric("lpips").min_size == AlexNetFeatures(("relu5",), weights=None).min_size
    assert get_metric("lpips_vgg").min_size == VGG16Features(("relu5_3",), weights=None).min_size


def test_bad_input_raises(metrics):
    with pytest.raises(ValueError, match="same shape"):
        metrics["dists"](torch.rand(1, 3, 32, 32), torch.rand(1, 3, 32, 40))
    with pytest.raises(ValueError, match="3 channels"):
        metrics["lpips_vgg"](torch.rand(1, 1, 32, 32), torch.rand(1, 1, 32, 32))
    with pytest.raises(ValueError, match="net must be one of"):
        LPIPS("squeeze")
