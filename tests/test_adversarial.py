import math

import pytest
import torch
from torch import nn

from perceptlab.losses.adversarial import ADVERSARIAL_KINDS, AdversarialLoss, discriminator_loss, generator_loss
from perceptlab.nets.discriminators import PatchDiscriminator, patch_receptive_field

LOG2 = math.log(2.0)


def logits(value, shape=(4, 1, 3, 3)):
    return torch.full(shape, float(value), dtype=torch.float64)


# ---------------------------------------------------------------- losses on hand-made logits


@pytest.mark.parametrize(
    "kind, real, fake, expected",
    [
        # Hinge: both margins met at real = 2 >= 1 and fake = -2 <= -1.
        ("hinge", 2.0, -2.0, 0.0),
        # Hinge: relu(1 - 0) + relu(1 + 0).
        ("hinge", 0.0, 0.0, 2.0),
        # Cross-entropy with an undecided discriminator: -log(1/2) twice.
        ("nonsaturating", 0.0, 0.0, 2 * LOG2),
        # LSGAN (Mao et al., a=0, b=1): (1/2)(3 - 1)^2 + (1/2)(-1)^2.
        ("lsgan", 3.0, -1.0, 2.5),
        ("lsgan", 1.0, 0.0, 0.0),
        # RaGAN with constant logits: real - mean(fake) = 2, so softplus(-2) + softplus(-2).
        ("ragan", 1.0, -1.0, 2 * math.log1p(math.exp(-2.0))),
    ],
)
def test_discriminator_loss_known_values(kind, real, fake, expected):
    assert discriminator_loss(logits(real), logits(fake), kind).item() == pytest.approx(expected, abs=1e-12)


@pytest.mark.parametrize(
    "kind, fake, real, expected",
    [
        ("nonsaturating", 0.0, None, LOG2),  # -log sigma(0)
        ("lsgan", 3.0, None, 2.0),  # (1/2)(3 - 1)^2
        ("hinge", 1.5, None, -1.5),  # -mean(fake)
        ("ragan", 0.0, 0.0, 2 * LOG2),  # softplus(0) + softplus(-0)
        ("ragan", -1.0, 1.0, 2 * math.log1p(math.exp(2.0))),  # softplus(1 - (-1)) + softplus(-(-1 - 1))
    ],
)
def test_generator_loss_known_values(kind, fake, real, expected):
    real_logits = None if real is None else logits(real)
    assert generator_loss(logits(fake), real_logits, kind).item() == pytest.approx(expected, abs=1e-12)


def test_nonsaturating_is_binary_cross_entropy():
    torch.manual_seed(0)
    real, fake = torch.randn(8, 1), torch.randn(8, 1)
    bce = nn.functional.binary_cross_entropy_with_logits
    expected = bce(real, torch.ones_like(real)) + bce(fake, torch.zeros_like(fake))
    assert torch.allclose(discriminator_loss(real, fake, "nonsaturating"), expected)
    assert torch.allclose(generator_loss(fake, kind="nonsaturating"), bce(fake, torch.ones_like(fake)))


def test_ragan_generator_is_discriminator_with_roles_swapped():
    torch.manual_seed(0)
    real, fake = torch.randn(6, 1, 2, 2), torch.randn(6, 1, 2, 2)
    assert torch.allclose(generator_loss(fake, real, "ragan"), discriminator_loss(fake, real, "ragan"))
    # Relativistic: shifting every logit by the same amount changes nothing.
    assert torch.allclose(generator_loss(fake + 5, real + 5, "ragan"), generator_loss(fake, real, "ragan"))


@pytest.mark.parametrize("kind", ADVERSARIAL_KINDS)
def test_generator_loss_decreases_as_fake_logits_rise(kind):
    torch.manual_seed(0)
    real = torch.randn(4, 1, 3, 3)
    base = torch.randn(4, 1, 3, 3) * 0.1 - 1.0
    # Stay below 1 so the LSGAN target (fake = 1) is not overshot.
    values = [generator_loss(base + shift, real, kind).item() for shift in (-1.0, -0.5, 0.0, 0.5)]
    assert all(a > b for a, b in zip(values, values[1:]))


@pytest.mark.parametrize("kind", ADVERSARIAL_KINDS)
def test_discriminator_loss_decreases_as_it_separates(kind):
    torch.manual_seed(0)
    real, fake = torch.randn(4, 1, 3, 3) * 0.1, torch.randn(4, 1, 3, 3) * 0.1 + 0.9
    # Real logits rise from 0 towards 1, fake ones fall from 0.9 towards 0: the LSGAN targets.
    values = [discriminator_loss(real + s, fake - s, kind).item() for s in (0.0, 0.3, 0.6, 0.9)]
    assert all(a > b for a, b in zip(values, values[1:]))


@pytest.mark.parametrize("kind", ADVERSARIAL_KINDS)
def test_gradcheck_losses(kind):
    torch.manual_seed(0)
    # Away from the hinge kinks at +-1.
    real = (torch.rand(3, 1, 2, 2, dtype=torch.float64) * 0.8 + 0.1).requires_grad_()
    fake = (-torch.rand(3, 1, 2, 2, dtype=torch.float64) * 0.8 - 0.1).requires_grad_()
    assert torch.autograd.gradcheck(lambda r, f: discriminator_loss(r, f, kind), (real, fake))
    assert torch.autograd.gradcheck(lambda f, r: generator_loss(f, r, kind), (fake, real))


def test_bad_kind_and_missing_real_logits_raise():
    with pytest.raises(ValueError, match="kind must be one of"):
        discriminator_loss(logits(0), logits(0), "wgan")
    with pytest.raises(ValueError, match="kind must be one of"):
        generator_loss(logits(0), kind="wgan")
    with pytest.raises(ValueError, match="real_logits"):
        generator_loss(logits(0), kind="ragan")
    with pytest.raises(ValueError, match="kind must be one of"):
        AdversarialLoss(nn.Identity(), kind="vanilla")


# ---------------------------------------------------------------- PatchDiscriminator


@pytest.mark.parametrize("norm", ["batch", "instance", "none"])
def test_patch_discriminator_shape_and_gradient(norm):
    torch.manual_seed(0)
    net = PatchDiscriminator(base_channels=8, norm=norm)
    x = torch.rand(2, 3, 64, 64, requires_grad=True)
    out = net(x)
    # 64 -> 32 -> 16 -> 8 (stride 2) -> 7 -> 6 (stride 1, kernel 4, padding 1).
    assert out.shape == (2, 1, 6, 6)
    out.mean().backward()
    assert x.grad is not None and x.grad.abs().sum() > 0
    assert all(p.grad is not None for p in net.parameters())


def test_patch_discriminator_default_shape():
    # pix2pix: a 256x256 image gives a 30x30 map of logits.
    net = PatchDiscriminator(n_layers=3)
    assert net(torch.rand(1, 3, 256, 256)).shape == (1, 1, 30, 30)
    assert sum(isinstance(m, nn.Conv2d) for m in net.modules()) == 5


@pytest.mark.parametrize("n_layers, expected", [(1, 16), (2, 34), (3, 70)])
def test_receptive_field_is_measured_by_gradient(n_layers, expected):
    # The 70x70 PatchGAN of pix2pix; the other sides from the same recursion.
    assert patch_receptive_field(n_layers) == expected
    torch.manual_seed(0)
    net = PatchDiscriminator(in_channels=1, base_channels=2, n_layers=n_layers, norm="none").double()
    x = torch.rand(1, 1, 160, 160, dtype=torch.float64, requires_grad=True)
    out = net(x)
    out[0, 0, out.shape[2] // 2, out.shape[3] // 2].backward()
    rows = x.grad[0, 0].abs().sum(dim=1).nonzero()
    cols = x.grad[0, 0].abs().sum(dim=0).nonzero()
    assert rows.max() - rows.min() + 1 == expected
    assert cols.max() - cols.min() + 1 == expected


def test_patch_discriminator_bad_input_raises():
    net = PatchDiscriminator(base_channels=4)
    with pytest.raises(ValueError, match="3 channels"):
        net(torch.rand(1, 1, 64, 64))
    with pytest.raises(ValueError, match="at least 24x24"):
        net(torch.rand(1, 3, 23, 64))
    with pytest.raises(ValueError, match="norm"):
        PatchDiscriminator(norm="layer")
    with pytest.raises(ValueError, match="n_layers"):
        PatchDiscriminator(n_layers=0)


# ---------------------------------------------------------------- AdversarialLoss


def tiny_discriminator(norm="none"):
    torch.manual_seed(0)
    return PatchDiscriminator(base_channels=2, n_layers=1, norm=norm).double()


@pytest.mark.parametrize("kind", ADVERSARIAL_KINDS)
def test_adversarial_loss_gradcheck(kind):
    adversarial = AdversarialLoss(tiny_discriminator(), kind=kind)
    torch.manual_seed(1)
    pred = torch.rand(2, 3, 6, 6, dtype=torch.float64, requires_grad=True)
    target = torch.rand(2, 3, 6, 6, dtype=torch.float64)
    assert torch.autograd.gradcheck(lambda p: adversarial(p, target), (pred,))


@pytest.mark.parametrize("kind", ADVERSARIAL_KINDS)
def test_adversarial_loss_matches_the_functions(kind):
    discriminator = tiny_discriminator()
    adversarial = AdversarialLoss(discriminator, kind=kind)
    pred, target = torch.rand(2, 3, 8, 8, dtype=torch.float64), torch.rand(2, 3, 8, 8, dtype=torch.float64)
    real, fake = discriminator(target), discriminator(pred)
    assert torch.equal(adversarial(pred, target), generator_loss(fake, real, kind))
    assert torch.equal(adversarial.discriminator_step_loss(pred, target), discriminator_loss(real, fake, kind))


def test_generator_step_does_not_reach_target_and_discriminator_step_does_not_reach_pred():
    adversarial = AdversarialLoss(tiny_discriminator(norm="batch"), kind="ragan")
    pred = torch.rand(2, 3, 8, 8, dtype=torch.float64, requires_grad=True)
    target = torch.rand(2, 3, 8, 8, dtype=torch.float64, requires_grad=True)
    adversarial(pred, target).backward()
    assert pred.grad.abs().sum() > 0 and target.grad is None
    pred.grad = None
    adversarial.zero_grad()
    adversarial.discriminator_step_loss(pred, target).backward()
    assert pred.grad is None
    # RaGAN compares D(real) with the mean D(fake): the last layer's bias cancels, its gradient is 0
    # analytically (about 1e-17 or exactly 0, by CPU); every other parameter must learn.
    last_bias = adversarial.discriminator.layers[-1].bias
    assert all(p.grad is not None for p in adversarial.discriminator.parameters())
    assert float(last_bias.grad.abs().sum()) < 1e-12
    assert all(p.grad.abs().sum() > 0 for p in adversarial.discriminator.parameters() if p is not last_bias)


def test_discriminator_is_only_called_on_real_images_when_needed():
    calls = []

    class Recorder(nn.Module):
        def forward(self, x):
            calls.append(x)
            return x.mean(dim=(1, 2, 3))

    pred, target = torch.rand(2, 3, 4, 4), torch.rand(2, 3, 4, 4)
    AdversarialLoss(Recorder(), kind="hinge")(pred, target)
    assert len(calls) == 1 and calls[0] is pred
    calls.clear()
    AdversarialLoss(Recorder(), kind="ragan")(pred, target)
    assert len(calls) == 2


def test_adversarial_loss_checks_its_inputs():
    adversarial = AdversarialLoss(tiny_discriminator())
    with pytest.raises(ValueError, match="same shape"):
        adversarial(torch.rand(1, 3, 8, 8), torch.rand(1, 3, 8, 9))
