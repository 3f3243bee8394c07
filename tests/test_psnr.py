import math
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from perceptlab.metrics.psnr import PSNR, psnr, rgb_to_y

TID2013 = Path(__file__).resolve().parents[2] / "shared" / "data" / "tid2013_examples"


def load_rgb(path: Path) -> torch.Tensor:
    array = np.asarray(Image.open(path).convert("RGB"), dtype=np.float64) / 255.0
    return torch.from_numpy(array).permute(2, 0, 1).unsqueeze(0)


def test_smoke_shapes_and_reductions():
    torch.manual_seed(0)
    pred, target = torch.rand(3, 3, 16, 16), torch.rand(3, 3, 16, 16)
    per_image = psnr(pred, target, reduction="none")
    assert per_image.shape == (3,)
    assert torch.allclose(psnr(pred, target), per_image.mean())
    assert torch.allclose(psnr(pred, target, reduction="sum"), per_image.sum())


def test_known_value_from_mse():
    # MSE = 0.1^2 = 0.01, so PSNR = 10 log10(1 / 0.01) = 20 dB; on the 255 scale the same.
    target = torch.full((2, 3, 8, 8), 0.5)
    assert torch.allclose(psnr(target + 0.1, target), torch.tensor(20.0))
    assert torch.allclose(psnr(255 * (target + 0.1), 255 * target, data_range=255), torch.tensor(20.0))


def test_identical_images_give_inf():
    x = torch.rand(2, 3, 8, 8)
    assert torch.isinf(psnr(x, x, reduction="none")).all()


def test_shave_ignores_the_border():
    target = torch.zeros(1, 1, 10, 10)
    pred = target.clone()
    pred[..., 0, :] = 1.0  # a wrong top row only
    pred[..., 2:8, 2:8] = 0.1  # MSE 0.01 inside the 2-pixel border
    assert torch.allclose(psnr(pred, target, shave=2), torch.tensor(20.0))
    assert psnr(pred, target) < 15.0


def test_rgb_to_y_matches_matlab_anchor_points():
    # rgb2ycbcr maps black to Y = 16 and white to 235 (16 + 65.481 + 128.553 + 24.966) on the 8-bit scale.
    black, white = torch.zeros(1, 3, 2, 2), torch.ones(1, 3, 2, 2)
    assert torch.allclose(rgb_to_y(black), torch.full((1, 1, 2, 2), 16 / 255))
    assert torch.allclose(rgb_to_y(white), torch.full((1, 1, 2, 2), 235 / 255))
    assert torch.allclose(rgb_to_y(255 * white, data_range=255), torch.full((1, 1, 2, 2), 235.0))
    red = torch.zeros(1, 3, 1, 1)
    red[:, 0] = 1.0
    assert torch.allclose(rgb_to_y(red), torch.full((1, 1, 1, 1), (16 + 65.481) / 255))


def test_y_channel_is_the_psnr_of_the_luma():
    torch.manual_seed(0)
    target = torch.rand(2, 3, 16, 16)
    pred = (target + 0.05 * torch.randn_like(target)).clamp(0, 1)
    y = psnr(pred, target, channel="y")
    manual = psnr(rgb_to_y(pred), rgb_to_y(target))
    assert torch.allclose(y, manual)
    assert not torch.allclose(y, psnr(pred, target))


@pytest.mark.parametrize(
    "kwargs, pred_shape, target_shape, message",
    [
        ({}, (1, 3, 8, 7), (1, 3, 8, 8), "same shape"),
        ({}, (3, 8, 8), (3, 8, 8), "NCHW"),
        ({"channel": "y"}, (1, 1, 8, 8), (1, 1, 8, 8), "3 channels"),
        ({"channel": "lab"}, (1, 3, 8, 8), (1, 3, 8, 8), "channel must be"),
        ({"shave": 4}, (1, 3, 8, 8), (1, 3, 8, 8), "shave=4"),
        ({"shave": -1}, (1, 3, 8, 8), (1, 3, 8, 8), "non-negative"),
        ({"reduction": "max"}, (1, 3, 8, 8), (1, 3, 8, 8), "reduction"),
    ],
)
def test_bad_input_raises(kwargs, pred_shape, target_shape, message):
    with pytest.raises(ValueError, match=message):
        psnr(torch.rand(pred_shape), torch.rand(target_shape), **kwargs)


def test_function_equals_module():
    torch.manual_seed(0)
    pred, target = torch.rand(2, 3, 16, 16), torch.rand(2, 3, 16, 16)
    module = PSNR(data_range=1.0, channel="y", shave=2, reduction="none")
    assert torch.equal(module(pred, target), psnr(pred, target, channel="y", shave=2, reduction="none"))


def test_gradcheck():
    torch.manual_seed(0)
    target = torch.rand(1, 3, 4, 4, dtype=torch.float64)
    pred = (target + 0.1 * torch.randn_like(target)).clamp(0, 1).requires_grad_()
    assert torch.autograd.gradcheck(lambda p: psnr(p, target, channel="y"), (pred,))


# PSNR of the 8-bit images over all RGB channels, from the IQA-PyTorch calibration
# table (pyiqa 0.1.16, ResultsCalibra), as listed in tid2013_examples/REFERENCE_VALUES.md.
TID2013_PSNR = {"I03": 21.11, "I04": 20.99, "I06": 27.01, "I08": 23.30, "I19": 21.62}


@pytest.mark.parametrize("name", sorted(TID2013_PSNR))
def test_tid2013_golden_values(name):
    if not TID2013.is_dir():
        pytest.skip(f"reference data not found at {TID2013}")
    target = load_rgb(TID2013 / "ref_dir" / f"{name}.bmp")
    pred = load_rgb(TID2013 / "dist_dir" / f"{name}.bmp")
    # The table rounds to 2 decimals, so a correct value lies within half a unit of it.
    assert math.isclose(psnr(pred, target).item(), TID2013_PSNR[name], abs_tol=0.005)
