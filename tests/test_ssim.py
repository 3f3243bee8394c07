from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from perceptlab.metrics.ssim import MSSSIM, SSIM, ms_ssim, ssim

pytorch_msssim = pytest.importorskip("pytorch_msssim")

TID2013 = Path(__file__).resolve().parents[2] / "shared" / "data" / "tid2013_examples"
TID2013_NAMES = ("I03", "I04", "I06", "I08", "I19")


def noisy_pair(shape, noise=0.1, seed=0, dtype=torch.float32):
    """A target with some structure and a noisy prediction of it, both in [0, 1]."""
    generator = torch.Generator().manual_seed(seed)
    coarse = torch.rand(shape[0], shape[1], shape[2] // 4 + 1, shape[3] // 4 + 1, generator=generator, dtype=dtype)
    target = torch.nn.functional.interpolate(coarse, size=shape[2:], mode="bilinear", align_corners=False)
    pred = (target + noise * torch.randn(shape, generator=generator, dtype=dtype)).clamp(0, 1)
    return pred, target


def reference_ssim(pred, target, **kwargs):
    return pytorch_msssim.ssim(pred, target, size_average=False, **kwargs)


def reference_ms_ssim(pred, target, **kwargs):
    return pytorch_msssim.ms_ssim(pred, target, size_average=False, **kwargs)


@pytest.fixture(scope="module")
def tid2013_batch():
    if not TID2013.is_dir():
        pytest.skip(f"reference data not found at {TID2013}")

    def load(folder):
        arrays = [np.asarray(Image.open(TID2013 / folder / f"{n}.bmp").convert("RGB")) for n in TID2013_NAMES]
        return torch.from_numpy(np.stack(arrays)).permute(0, 3, 1, 2).float() / 255.0

    return load("dist_dir"), load("ref_dir")


def test_smoke_shapes_and_reductions():
    pred, target = noisy_pair((3, 2, 32, 24))
    per_image = ssim(pred, target, reduction="none")
    assert per_image.shape == (3,)
    assert torch.allclose(ssim(pred, target), per_image.mean())
    assert torch.allclose(ssim(pred, target, reduction="sum"), per_image.sum())
    assert ((per_image > 0) & (per_image < 1)).all()
    assert ms_ssim(*noisy_pair((2, 1, 176, 176)), reduction="none").shape == (2,)


def test_identical_images_score_one():
    _, target = noisy_pair((1, 3, 176, 180))
    assert torch.allclose(ssim(target, target), torch.tensor(1.0))
    assert torch.allclose(ms_ssim(target, target), torch.tensor(1.0))


@pytest.mark.parametrize("a, b", [(0.2, 0.6), (0.5, 0.5), (0.9, 0.1)])
def test_known_value_on_constant_images(a, b):
    # Constant images have zero variances and covariance, so contrast-structure is
    # C2 / C2 = 1 and SSIM reduces to the luminance term of Wang et al. 2004, eq. 6:
    # (2ab + C1) / (a^2 + b^2 + C1). MS-SSIM keeps only its coarsest-scale power.
    # Float64 because the variances are E[x^2] - E[x]^2, which cancels badly in float32.
    pred = torch.full((1, 1, 176, 176), a, dtype=torch.float64)
    target = torch.full((1, 1, 176, 176), b, dtype=torch.float64)
    c1 = 0.01**2
    luminance = (2 * a * b + c1) / (a * a + b * b + c1)
    assert ssim(pred, target).item() == pytest.approx(luminance, abs=1e-9)
    assert ms_ssim(pred, target).item() == pytest.approx(luminance**0.1333, abs=1e-9)


@pytest.mark.parametrize(
    "shape, kwargs",
    [
        ((2, 3, 64, 64), {}),
        ((3, 2, 37, 23), {}),  # odd sides
        ((1, 1, 11, 11), {}),  # exactly one window
        ((2, 3, 40, 33), {"win_size": 7, "sigma": 1.0}),
        ((2, 3, 32, 32), {"k1": 0.02, "k2": 0.05}),
    ],
)
def test_ssim_matches_pytorch_msssim_on_random_images(shape, kwargs):
    pred, target = noisy_pair(shape)
    theirs_kwargs = {"win_size": kwargs.get("win_size", 11), "win_sigma": kwargs.get("sigma", 1.5)}
    theirs_kwargs["K"] = (kwargs.get("k1", 0.01), kwargs.get("k2", 0.03))
    ours = ssim(pred, target, reduction="none", **kwargs)
    assert torch.allclose(ours, reference_ssim(pred, target, data_range=1.0, **theirs_kwargs), atol=1e-4)


@pytest.mark.parametrize(
    "shape, kwargs",
    [
        ((2, 3, 192, 192), {}),
        ((2, 3, 173, 199), {}),  # odd sides, padded before pooling at several scales
        ((1, 1, 161, 161), {}),  # the smallest accepted
        ((1, 3, 170, 181), {"win_size": 7, "sigma": 1.0}),
        ((1, 3, 176, 176), {"weights": (0.2, 0.3, 0.5)}),
    ],
)
def test_ms_ssim_matches_pytorch_msssim_on_random_images(shape, kwargs):
    pred, target = noisy_pair(shape)
    theirs_kwargs = {"win_size": kwargs.get("win_size", 11), "win_sigma": kwargs.get("sigma", 1.5)}
    if "weights" in kwargs:
        theirs_kwargs["weights"] = list(kwargs["weights"])
    ours = ms_ssim(pred, target, reduction="none", **kwargs)
    assert torch.allclose(ours, reference_ms_ssim(pred, target, data_range=1.0, **theirs_kwargs), atol=1e-4)


def test_data_range_255_matches_pytorch_msssim():
    pred, target = noisy_pair((2, 3, 176, 165))
    pred, target = 255 * pred, 255 * target
    assert torch.allclose(
        ssim(pred, target, data_range=255, reduction="none"), reference_ssim(pred, target, data_range=255), atol=1e-4
    )
    assert torch.allclose(
        ms_ssim(pred, target, data_range=255, reduction="none"),
        reference_ms_ssim(pred, target, data_range=255),
        atol=1e-4,
    )


def test_matches_pytorch_msssim_on_tid2013(tid2013_batch):
    pred, target = tid2013_batch
    ours_ssim = ssim(pred, target, reduction="none")
    ours_ms_ssim = ms_ssim(pred, target, reduction="none")
    assert torch.allclose(ours_ssim, reference_ssim(pred, target, data_range=1.0), atol=1e-4)
    assert torch.allclose(ours_ms_ssim, reference_ms_ssim(pred, target, data_range=1.0), atol=1e-4)
    # The distortions are visible: none of the pairs may look identical.
    assert (ours_ssim < 0.995).all() and (ours_ms_ssim < 0.995).all()


def test_ssim_drops_as_noise_grows():
    values = [ssim(*noisy_pair((1, 3, 48, 48), noise=noise)).item() for noise in (0.01, 0.05, 0.2)]
    assert values[0] > values[1] > values[2]


@pytest.mark.parametrize(
    "call, message",
    [
        (lambda: ssim(torch.rand(1, 3, 10, 32), torch.rand(1, 3, 10, 32)), "at least 11x11"),
        (lambda: ssim(torch.rand(1, 3, 32, 32), torch.rand(1, 3, 32, 32), win_size=4), "odd"),
        (lambda: ssim(torch.rand(1, 3, 32, 32), torch.rand(1, 3, 32, 31)), "same shape"),
        (lambda: ssim(torch.rand(1, 3, 32, 32), torch.rand(1, 3, 32, 32), reduction="avg"), "reduction"),
        (lambda: ms_ssim(torch.rand(1, 3, 160, 300), torch.rand(1, 3, 160, 300)), "at least 161x161"),
        (lambda: ms_ssim(torch.rand(1, 3, 64, 64), torch.rand(1, 3, 64, 64), win_size=5), "at least 65x65"),
        (lambda: ms_ssim(torch.rand(1, 3, 64, 64), torch.rand(1, 3, 64, 64), weights=()), "at least one scale"),
        (lambda: SSIM(sigma=0.0), "sigma"),
    ],
)
def test_bad_input_raises(call, message):
    with pytest.raises(ValueError, match=message):
        call()


def test_integer_input_raises():
    x = torch.zeros(1, 3, 16, 16, dtype=torch.uint8)
    with pytest.raises(TypeError, match="floating-point"):
        ssim(x, x)


def test_function_equals_module():
    pred, target = noisy_pair((2, 3, 170, 170))
    assert torch.equal(
        SSIM(win_size=7, reduction="none")(pred, target), ssim(pred, target, win_size=7, reduction="none")
    )
    assert torch.equal(MSSSIM(reduction="sum")(pred, target), ms_ssim(pred, target, reduction="sum"))


def test_gradcheck_ssim():
    pred, target = noisy_pair((1, 2, 12, 13), dtype=torch.float64)
    pred.requires_grad_()
    assert torch.autograd.gradcheck(lambda p: ssim(p, target), (pred,))


def test_gradcheck_ms_ssim():
    # Two scales and a 3x3 window keep the input tiny; the odd side takes the padded pooling path.
    pred, target = noisy_pair((1, 2, 9, 10), dtype=torch.float64)
    pred.requires_grad_()
    assert torch.autograd.gradcheck(lambda p: ms_ssim(p, target, weights=(0.4, 0.6), win_size=3), (pred,))
