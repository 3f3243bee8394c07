"""The plain fidelity measures (grid, colour shift, LR-PSNR, detail) and the LR-consistency loss."""

from __future__ import annotations

import math

import pytest
import torch

from conftest import load_rgb, shared_dir
from perceptlab.losses.combined import build_loss
from perceptlab.losses.consistency import LRConsistencyLoss, lr_consistency_loss
from perceptlab.metrics.fidelity import color_shift, detail_ratio, grid_score, lr_psnr
from perceptlab.ops.resize import imresize


def _photo() -> torch.Tensor:
    return load_rgb(shared_dir("Set14") / "image_SRF_4" / "img_005_SRF_4_HR.png")


def test_grid_score_is_low_on_a_photo_and_high_with_a_period_4_pattern():
    photo = _photo()
    assert float(grid_score(photo)) < 0.03
    # A faint fixed pattern of period 4, 2 % of the range: invisible to LPIPS-scale metrics, plain here.
    pattern = torch.tensor([[0.0, 1.0, 0.0, -1.0], [1.0, 0.0, -1.0, 0.0], [0.0, -1.0, 0.0, 1.0], [-1.0, 0.0, 1.0, 0.0]])
    h, w = photo.shape[-2:]
    tiled = pattern.repeat(h // 4 + 1, w // 4 + 1)[:h, :w]
    assert float(grid_score((photo + 0.02 * tiled).clamp(0, 1))) > 5 * float(grid_score(photo))
    # Period 2 shows at period 4 too; a shift of the pattern does not hide it.
    stripes = (torch.arange(w) % 2).float().expand(h, w) - 0.5
    assert float(grid_score((photo + 0.02 * stripes).clamp(0, 1))) > 5 * float(grid_score(photo))
    assert float(grid_score((photo + 0.02 * tiled.roll(1, 1)).clamp(0, 1))) > 5 * float(grid_score(photo))


def test_grid_score_flat_image_shape_and_bad_arguments():
    assert torch.equal(grid_score(torch.full((2, 3, 32, 32), 0.5)), torch.zeros(2, dtype=torch.float64))
    assert grid_score(torch.rand(3, 1, 20, 24)).shape == (3,)
    with pytest.raises(ValueError, match="too small"):
        grid_score(torch.rand(1, 3, 9, 9))
    with pytest.raises(ValueError, match="odd"):
        grid_score(torch.rand(1, 3, 32, 32), window=8)
    with pytest.raises(ValueError, match="period"):
        grid_score(torch.rand(1, 3, 32, 32), period=1)


def test_color_shift_in_8_bit_levels():
    x = torch.rand(2, 3, 16, 16) * 0.5 + 0.25
    shifted = x.clone()
    shifted[1, 2] += 3 / 255
    assert torch.allclose(color_shift(shifted, x), torch.tensor([0.0, 3.0], dtype=torch.float64), atol=1e-6)


def test_chroma_psnr_sees_colour_lost_where_luma_is_kept():
    from perceptlab.metrics.fidelity import chroma_psnr
    from perceptlab.metrics.psnr import rgb_to_y

    photo = _photo()
    # Move every pixel towards grey by the same chroma amount with its luma unchanged: luma PSNR stays near
    # infinite, chroma PSNR falls; a luma-only change leaves chroma PSNR infinite.
    luma = 0.299 * photo[:, 0:1] + 0.587 * photo[:, 1:2] + 0.114 * photo[:, 2:3]
    faded = (luma + 0.7 * (photo - luma)).clamp(0, 1)
    assert float((rgb_to_y(faded) - rgb_to_y(photo)).abs().max()) < 2e-3
    assert 15 < float(chroma_psnr(faded, photo)) < 45
    grey = photo.mean(dim=1, keepdim=True).expand_as(photo)  # chroma gone entirely
    assert float(chroma_psnr(grey, photo)) < float(chroma_psnr(faded, photo))
    assert math.isinf(float(chroma_psnr(photo, photo)))
    with pytest.raises(ValueError, match="RGB"):
        chroma_psnr(luma, luma)


def test_detail_ratio_falls_with_blur_and_rises_with_sharpening():
    photo = _photo()
    assert torch.allclose(detail_ratio(photo, photo), torch.ones(1, dtype=torch.float64))
    blurred = imresize(imresize(photo, scale=0.5), scale=2).clamp(0, 1)[..., : photo.shape[-2], : photo.shape[-1]]
    soft = float(detail_ratio(blurred, photo))
    assert 0.2 < soft < 0.9
    sharpened = (2 * photo - blurred).clamp(0, 1)  # unsharp masking
    assert float(detail_ratio(sharpened, photo)) > 1.2
    # Symmetric: the photo has more detail than its blurred copy by the inverse factor.
    assert float(detail_ratio(photo, blurred)) == pytest.approx(1 / soft)
    flat = torch.full((1, 3, 16, 16), 0.5)
    assert torch.isnan(detail_ratio(torch.rand(1, 3, 16, 16), flat)).all()
    with pytest.raises(ValueError, match="smaller than the 9x9"):
        detail_ratio(torch.rand(1, 3, 8, 8), torch.rand(1, 3, 8, 8))


def test_lr_psnr_is_high_for_bicubic_and_falls_with_a_cast():
    hr = _photo()
    hr = hr[..., : hr.shape[-2] // 4 * 4, : hr.shape[-1] // 4 * 4]
    lr = imresize(hr, scale=0.25).clamp(0, 1)
    bicubic = imresize(lr, scale=4).clamp(0, 1)
    faithful = float(lr_psnr(bicubic, lr, 4))
    assert 30 < faithful < 60
    assert float(lr_psnr(hr, lr, 4)) > 50  # the HR image shrinks back to its input (float32 rounding apart)
    assert float(lr_psnr((bicubic + 0.05).clamp(0, 1), lr, 4)) < faithful - 5
    with pytest.raises(ValueError, match="enlarged 2 times"):
        lr_psnr(bicubic, lr, 2)


def test_lr_consistency_loss_ignores_detail_the_input_cannot_see_and_sees_a_cast():
    hr = torch.rand(2, 3, 32, 32, dtype=torch.float64)
    assert float(lr_consistency_loss(hr, hr, 4)) == 0.0
    # A period-4 pattern that averages out at the input's scale costs little; a brightness shift costs its square.
    stripes = ((torch.arange(32) % 2).double() - 0.5).expand(32, 32) * 0.1
    detail = float(lr_consistency_loss(hr + stripes, hr, 4))
    cast = float(lr_consistency_loss(hr + 0.05, hr, 4))
    assert cast == pytest.approx(0.05**2, rel=1e-6) and detail < cast / 10
    pred = hr.clone().requires_grad_(True)
    assert torch.autograd.gradcheck(lambda p: lr_consistency_loss(p, hr[:, :, :16, :16], 4), (pred[:, :, :16, :16],))
    assert float(LRConsistencyLoss(4, kind="l1")(hr + 0.05, hr)) == pytest.approx(0.05, rel=1e-6)
    assert isinstance(build_loss("lr:l1", scale=4), LRConsistencyLoss)
    with pytest.raises(ValueError, match="needs the SR scale"):
        build_loss("lr")
    with pytest.raises(ValueError, match="multiple of the scale"):
        lr_consistency_loss(torch.rand(1, 3, 18, 16), torch.rand(1, 3, 18, 16), 4)


def test_grid_loss_sees_a_lattice_the_target_lacks_and_not_the_targets_own_detail():
    from perceptlab.losses.grid import GridLoss, grid_loss

    photo = _photo()[..., :96, :96].to(torch.float64)
    assert float(grid_loss(photo, photo)) == 0.0
    lattice = 0.03 * ((torch.arange(96) % 4 == 0).double() - 0.25)
    # About the square of the grid measure for a target without a lattice.
    loss = float(grid_loss(photo + lattice, photo))
    assert loss == pytest.approx(float(grid_score((photo + lattice).clamp(0, 1))) ** 2, rel=0.5)
    # Detail without a lattice (noise, a shift of the target by one pixel) costs a small fraction of that.
    noisy = photo + 0.03 * torch.randn(photo.shape, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    assert float(grid_loss(noisy, photo)) < loss / 10
    assert float(grid_loss(photo.roll(1, -1), photo)) < loss / 10
    # A flat target does not blow the ratio up: its detail counts as (2/255)^2; the gradient is the analytic one.
    flat = torch.full((1, 3, 32, 32), 0.5, dtype=torch.float64)
    # (the phase means are about the lattice less its mean: a 9-pixel box does not hold whole periods of 4)
    high = lattice[:32] - lattice[:32].mean()
    expected = float(high.square().mean()) / (2 / 255) ** 2
    assert expected * 0.6 < float(grid_loss(flat + lattice[:32], flat)) < expected
    pred = (photo[:, :, :24, :24] + lattice[:24]).requires_grad_(True)
    assert torch.autograd.gradcheck(lambda p: grid_loss(p, photo[:, :, :24, :24]), (pred,))
    assert isinstance(build_loss("grid", scale=4), GridLoss) and build_loss("grid", scale=4).period == 4
    assert build_loss("grid:2").period == 2
    with pytest.raises(ValueError, match="needs a period"):
        build_loss("grid")
    with pytest.raises(ValueError, match="whole number"):
        build_loss("grid:x")
    with pytest.raises(ValueError, match="at least 2"):
        build_loss("grid:1")
