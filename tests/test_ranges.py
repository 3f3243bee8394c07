"""Input-range checks: targets everywhere, predictions where a value scores images (perceptlab._checks)."""

from __future__ import annotations

import importlib.util

import pytest
import torch

import perceptlab.sr.protocol  # noqa: F401  (registers the SR metrics psnr_y and ssim_y)
from perceptlab._checks import RANGE_TOLERANCE, check_range
from perceptlab.losses import (
    CharbonnierLoss, FeatureLoss, L1Loss, MSELoss, MSSSIMLoss, SSIMLoss, StyleLoss,
    charbonnier_loss, l1_loss, ms_ssim_loss, mse_loss, ssim_loss,
)  # fmt: skip
from perceptlab.metrics import DISTS, LPIPS, METRICS, MSSSIM, PSNR, SSIM, dists, lpips, ms_ssim, psnr, ssim, vmaf

HAS_VMAF = importlib.util.find_spec("vmaf_torch") is not None


def image(side: int = 32, seed: int = 0) -> torch.Tensor:
    return torch.rand(1, 3, side, side, generator=torch.Generator().manual_seed(seed))


def minus_one_to_one(x: torch.Tensor) -> torch.Tensor:
    """The official LPIPS convention, the mistake the check is for."""
    return 2 * x - 1


def overshooting(x: torch.Tensor) -> torch.Tensor:
    """What an untrained network that ends linearly outputs: SRResNet at initialisation gives about -8..8."""
    return x + 4 * torch.randn(x.shape, generator=torch.Generator().manual_seed(1))


def test_message_names_argument_range_and_observed_values():
    with pytest.raises(ValueError) as err:
        check_range(torch.tensor([[[[-0.75, 0.5, 0.25]]]]), "target")
    assert str(err.value).startswith("target must be in [0, 1] (data_range=1), got min -0.75, max 0.5")
    assert "(x + 1) / 2" in str(err.value)
    with pytest.raises(ValueError, match=r"pred must be in \[0, 1\].*max 200.*x / 255"):
        check_range(torch.tensor([[[[0.0, 200.0]]]]), "pred")
    with pytest.raises(ValueError, match=r"target must be in \[0, 255\] \(data_range=255\), got min 0, max 300$"):
        check_range(torch.tensor([[[[0.0, 300.0]]]]), "target", data_range=255)


def test_tolerance_scales_with_the_data_range():
    inside = 1 + RANGE_TOLERANCE / 2
    check_range(torch.tensor([[[[-RANGE_TOLERANCE / 2, inside]]]]), "x")
    check_range(torch.tensor([[[[0.0, 255 * inside]]]]), "x", data_range=255)
    for outside in (1 + 2 * RANGE_TOLERANCE, -2 * RANGE_TOLERANCE):
        with pytest.raises(ValueError):
            check_range(torch.tensor([[[[0.5, outside]]]]), "x")
    with pytest.raises(ValueError):
        check_range(torch.tensor([[[[0.0, 255 * (1 + 2 * RANGE_TOLERANCE)]]]]), "x", data_range=255)


def test_nan_fails_and_empty_passes():
    with pytest.raises(ValueError, match="got min nan"):
        check_range(torch.tensor([[[[0.5, float("nan")]]]]), "target")
    check_range(torch.empty(0, 3, 8, 8), "target")


def test_gradients_are_not_touched():
    pred = image().requires_grad_()
    psnr(pred, image(seed=1)).backward()
    assert pred.grad is not None and torch.isfinite(pred.grad).all()


# Metric functions score images: both arguments are checked. Everything here raises before any
# network is built, so no weights (and no vmaf-torch) are needed.
METRIC_FUNCTIONS = {
    "psnr": psnr,
    "ssim": ssim,
    "ms_ssim": ms_ssim,
    "lpips": lpips,
    "dists": dists,
    "vmaf": vmaf,
    "PSNR": PSNR(),
    "SSIM": SSIM(),
    "MSSSIM": MSSSIM(),
}


@pytest.mark.parametrize("name", METRIC_FUNCTIONS)
@pytest.mark.parametrize("bad", ["pred", "target"])
def test_metric_functions_check_both_images(name, bad):
    good = image()
    pred = minus_one_to_one(good) if bad == "pred" else good
    target = minus_one_to_one(good) if bad == "target" else good
    with pytest.raises(ValueError, match=rf"^{bad} must be in \[0, 1\] \(data_range=1\), got min -0\.\d+, max 0\.9"):
        METRIC_FUNCTIONS[name](pred, target)


@pytest.mark.parametrize("name", ["psnr", "ssim"])
def test_data_range_255_is_accepted_and_checked(name):
    metric = METRIC_FUNCTIONS[name]
    pred, target = 255 * image(), 255 * image(seed=1)
    assert torch.isfinite(metric(pred, target, data_range=255))
    with pytest.raises(ValueError, match=r"target must be in \[0, 1\].*x / 255"):
        metric(pred.clamp(max=1), target)


@pytest.mark.parametrize("name", list(METRICS))
def test_every_registered_metric_checks_its_inputs(name):
    info = METRICS[name]
    good = image(info.min_size + 31)
    side = good.shape[-1] // 4 * 4
    good = good[..., :side, :side]
    # The SR measures' context: the scale, and an LR input (what lr_psnr compares against: its "target").
    context = {"scale": 4, "is_gray": False, "lr": good[..., ::4, ::4].contiguous()}
    with pytest.raises(ValueError, match=r"^pred must be in \[0, 1\]"):
        info(minus_one_to_one(good), good, **context)
    if name == "lr_psnr":
        with pytest.raises(ValueError, match=r"^target must be in \[0, 1\]"):
            info(good, good, **context | {"lr": 255 * context["lr"]})
    elif info.needs_reference:
        with pytest.raises(ValueError, match=r"^target must be in \[0, 1\]"):
            info(good, 255 * good, **context)


# Losses (and the modules of the learned metrics, which are loss terms) check the target only.
def _loss_modules() -> dict:
    modules = {
        "l1": L1Loss(),
        "mse": MSELoss(),
        "charbonnier": CharbonnierLoss(),
        "ssim": SSIMLoss(),
        "ms_ssim": MSSSIMLoss(),
        "feature": FeatureLoss("relu2_2", weights=None),
        "style": StyleLoss(("relu1_2", "relu2_2"), weights=None),
        "LPIPS": LPIPS("alex", pretrained=False),
        "DISTS": DISTS(pretrained=False),
    }
    if HAS_VMAF:
        from perceptlab.metrics import VMAF

        modules["VMAF"] = VMAF()
    return modules


LOSS_MODULES = _loss_modules()


@pytest.mark.parametrize("name", LOSS_MODULES)
def test_losses_take_overshooting_predictions(name):
    target = image(161 if name == "ms_ssim" else 48)
    pred = overshooting(target).requires_grad_()
    value = LOSS_MODULES[name](pred, target)
    value.backward()
    assert torch.isfinite(value) and pred.grad is not None


@pytest.mark.parametrize("name", LOSS_MODULES)
def test_losses_reject_a_target_in_minus_one_to_one(name):
    target = image(48)
    with pytest.raises(ValueError, match=r"^target must be in \[0, 1\].*\(x \+ 1\) / 2"):
        LOSS_MODULES[name](target, minus_one_to_one(target))


@pytest.mark.parametrize("function", [l1_loss, mse_loss, charbonnier_loss, ssim_loss, ms_ssim_loss])
def test_loss_functions_check_the_target_against_their_data_range(function):
    target = 255 * image(16)
    pred = overshooting(target)
    with pytest.raises(ValueError, match=r"^target must be in \[0, 1\]"):
        function(pred, target)
    if function is not ms_ssim_loss:  # 16 px is below MS-SSIM's minimum size; its range check comes first
        assert torch.isfinite(function(pred, target, data_range=255))


def test_style_loss_checks_a_style_image():
    loss = LOSS_MODULES["style"]
    with pytest.raises(ValueError, match=r"^target must be in \[0, 1\]"):
        loss.target_grams(minus_one_to_one(image()))
