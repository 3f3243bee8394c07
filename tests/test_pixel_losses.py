import math

import pytest
import torch

from perceptlab.losses.pixel import CharbonnierLoss, L1Loss, MSELoss, charbonnier_loss, l1_loss, mse_loss
from perceptlab.losses.structural import MSSSIMLoss, SSIMLoss, ms_ssim_loss, ssim_loss
from perceptlab.losses.tv import TVLoss, total_variation
from perceptlab.metrics.ssim import ms_ssim, ssim


def random_pair(shape=(3, 2, 8, 8), dtype=torch.float32, seed=0):
    generator = torch.Generator().manual_seed(seed)
    return torch.rand(shape, generator=generator, dtype=dtype), torch.rand(shape, generator=generator, dtype=dtype)


PAIR_LOSSES = [
    (l1_loss, L1Loss, {}),
    (mse_loss, MSELoss, {}),
    (charbonnier_loss, CharbonnierLoss, {"eps": 1e-2}),
    (ssim_loss, SSIMLoss, {"win_size": 5}),
]
PAIR_IDS = ["l1", "mse", "charbonnier", "ssim"]


# ---------------------------------------------------------------- shared contract


@pytest.mark.parametrize("function, module, kwargs", PAIR_LOSSES, ids=PAIR_IDS)
def test_reductions(function, module, kwargs):
    pred, target = random_pair()
    per_image = function(pred, target, reduction="none", **kwargs)
    assert per_image.shape == (3,)
    assert torch.allclose(function(pred, target, **kwargs), per_image.mean())
    assert torch.allclose(function(pred, target, reduction="sum", **kwargs), per_image.sum())
    # "none" really is per image: each value depends on its own image only.
    assert torch.allclose(function(pred[1:2], target[1:2], reduction="none", **kwargs), per_image[1:2])


@pytest.mark.parametrize("function, module, kwargs", PAIR_LOSSES, ids=PAIR_IDS)
def test_function_equals_module(function, module, kwargs):
    pred, target = random_pair()
    for reduction in ("none", "mean", "sum"):
        expected = function(pred, target, reduction=reduction, **kwargs)
        assert torch.equal(module(reduction=reduction, **kwargs)(pred, target), expected)


@pytest.mark.parametrize("function, module, kwargs", PAIR_LOSSES, ids=PAIR_IDS)
def test_bad_input_raises(function, module, kwargs):
    pred, target = random_pair()
    with pytest.raises(ValueError, match="same shape"):
        function(pred, target[..., :-1], **kwargs)
    with pytest.raises(ValueError, match="NCHW"):
        function(pred[0], target[0], **kwargs)
    with pytest.raises(ValueError, match="reduction"):
        function(pred, target, reduction="avg", **kwargs)


@pytest.mark.parametrize("function, module, kwargs", PAIR_LOSSES, ids=PAIR_IDS)
def test_gradcheck(function, module, kwargs):
    pred, target = random_pair((2, 1, 6, 5), dtype=torch.float64)
    pred.requires_grad_()
    assert torch.autograd.gradcheck(lambda p: function(p, target, **kwargs), (pred,))


# ---------------------------------------------------------------- known values


def test_l1_and_mse_known_values():
    # |0.25 - 0.75| = 0.5 everywhere: L1 = 0.5, MSE = 0.25.
    pred, target = torch.full((2, 3, 4, 4), 0.25), torch.full((2, 3, 4, 4), 0.75)
    assert torch.allclose(l1_loss(pred, target), torch.tensor(0.5))
    assert torch.allclose(mse_loss(pred, target), torch.tensor(0.25))


def test_charbonnier_known_values():
    # sqrt(0.3^2 + 0.4^2) = 0.5 (3-4-5 triangle); identical images give eps.
    pred, target = torch.zeros(1, 1, 2, 2), torch.full((1, 1, 2, 2), 0.3)
    assert torch.allclose(charbonnier_loss(pred, target, eps=0.4), torch.tensor(0.5))
    assert torch.allclose(charbonnier_loss(target, target, eps=1e-3), torch.tensor(1e-3))
    # Far from zero it is the L1 loss.
    pred, target = random_pair()
    assert torch.allclose(charbonnier_loss(pred + 10, target, eps=1e-6), l1_loss(pred + 10, target))


def test_charbonnier_rejects_non_positive_eps():
    pred, target = random_pair()
    with pytest.raises(ValueError, match="eps"):
        charbonnier_loss(pred, target, eps=0.0)


def test_structural_losses_are_one_minus_the_metrics():
    # A noisy copy, not two independent noises, so MS-SSIM is far from its ReLU floor of 0.
    _, target = random_pair((2, 1, 164, 170))
    pred = (target + 0.1 * torch.randn(target.shape, generator=torch.Generator().manual_seed(1))).clamp(0, 1)
    assert 0.5 < ms_ssim(pred, target) < 0.99
    assert torch.allclose(ssim_loss(pred, target, reduction="none"), 1 - ssim(pred, target, reduction="none"))
    assert torch.allclose(ms_ssim_loss(pred, target), 1 - ms_ssim(pred, target))
    # sum of (1 - s) is not 1 - sum of s: the loss reduces after subtracting.
    assert torch.allclose(ssim_loss(pred, target, reduction="sum"), 2 - ssim(pred, target, reduction="sum"))
    assert ssim_loss(target, target).abs() < 1e-6


def test_ms_ssim_loss_module_matches_function_and_raises_on_small_input():
    pred, target = random_pair((1, 1, 161, 161))
    module = MSSSIMLoss(weights=(0.5, 0.5), reduction="none")
    assert torch.equal(module(pred, target), ms_ssim_loss(pred, target, weights=(0.5, 0.5), reduction="none"))
    with pytest.raises(ValueError, match="161x161"):
        ms_ssim_loss(pred[..., :160, :], target[..., :160, :])


# ---------------------------------------------------------------- total variation


@pytest.mark.parametrize("size", [8, 32])
def test_tv_known_value_does_not_scale_with_size(size):
    # A ramp rising by g per pixel horizontally and h vertically has every difference
    # equal: TV_l1 = |g| + |h| and TV_l2 = g^2 + h^2, whatever the size.
    g, h = 0.02, -0.01
    rows = h * torch.arange(size, dtype=torch.float64).view(size, 1)
    cols = g * torch.arange(size, dtype=torch.float64).view(1, size)
    ramp = (rows + cols).expand(2, 3, size, size)
    assert math.isclose(total_variation(ramp, kind="l1").item(), abs(g) + abs(h), rel_tol=1e-9)
    assert math.isclose(total_variation(ramp, kind="l2").item(), g * g + h * h, rel_tol=1e-9)


def test_tv_checkerboard_known_value():
    # A 0/1 checkerboard: every neighbour differs by 1, so both kinds give 1 + 1 = 2.
    board = (torch.arange(4).view(4, 1) + torch.arange(4).view(1, 4)).remainder(2).float().expand(1, 1, 4, 4)
    assert torch.allclose(total_variation(board, kind="l1"), torch.tensor(2.0))
    assert torch.allclose(total_variation(board, kind="l2"), torch.tensor(2.0))
    assert total_variation(torch.full((1, 3, 5, 5), 0.7)) == 0


def test_tv_reductions_and_module():
    x, _ = random_pair()
    per_image = total_variation(x, reduction="none", kind="l1")
    assert per_image.shape == (3,)
    assert torch.allclose(total_variation(x, kind="l1"), per_image.mean())
    assert torch.allclose(total_variation(x, reduction="sum", kind="l1"), per_image.sum())
    for kind in ("l1", "l2"):
        assert torch.equal(TVLoss(reduction="none", kind=kind)(x), total_variation(x, reduction="none", kind=kind))
    # In a loss(pred, target) combination the target is ignored.
    assert torch.equal(TVLoss()(x, torch.zeros_like(x)), total_variation(x))


def test_tv_bad_input_raises():
    with pytest.raises(ValueError, match="kind"):
        total_variation(torch.rand(1, 1, 4, 4), kind="l3")
    with pytest.raises(ValueError, match="kind"):
        TVLoss(kind="iso")
    with pytest.raises(ValueError, match="at least 2x2"):
        total_variation(torch.rand(1, 1, 1, 4))
    with pytest.raises(ValueError, match="NCHW"):
        total_variation(torch.rand(4, 4))


@pytest.mark.parametrize("kind", ["l1", "l2"])
def test_tv_gradcheck(kind):
    x, _ = random_pair((2, 2, 4, 5), dtype=torch.float64)
    x.requires_grad_()
    assert torch.autograd.gradcheck(lambda t: total_variation(t, kind=kind), (x,))
