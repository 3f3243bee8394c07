"""Feature reconstruction and style losses (Johnson et al. eq. 2-4) and weighted combinations."""

from __future__ import annotations

import pytest
import torch

from perceptlab.features import VGG16Features
from perceptlab.losses import (
    LOSS_TERMS, CombinedLoss, FeatureLoss, MSELoss, StyleLoss, build_loss, gram_matrix, parse_spec,
)  # fmt: skip
from perceptlab.nets import PatchDiscriminator


def test_gram_matrix_normalised_by_chw():
    f = torch.ones(2, 4, 3, 5)
    g = gram_matrix(f)
    assert g.shape == (2, 4, 4)
    assert torch.allclose(g, torch.full((2, 4, 4), 15 / (4 * 15)))  # H*W / (C*H*W) = 1/C
    f = torch.randn(1, 3, 4, 4)
    flat = f.reshape(3, 16)
    assert torch.allclose(g := gram_matrix(f)[0], flat @ flat.T / 48) and torch.allclose(g, g.T)


def test_feature_loss_is_eq2_on_the_chosen_layers():
    loss = FeatureLoss({"relu1_2": 1.0, "relu2_2": 0.5}, weights=None, reduction="none")
    net = VGG16Features(("relu1_2", "relu2_2"), weights=None)
    net.load_state_dict(loss.net.state_dict())
    pred, target = torch.rand(2, 3, 16, 16), torch.rand(2, 3, 16, 16)
    fp, ft = net(pred), net(target)
    expected = (fp["relu1_2"] - ft["relu1_2"]).pow(2).mean(dim=(1, 2, 3)) + 0.5 * (
        fp["relu2_2"] - ft["relu2_2"]
    ).pow(2).mean(dim=(1, 2, 3))
    assert torch.allclose(loss(pred, target), expected, rtol=1e-5)
    assert loss(pred, pred).abs().max() == 0


def test_style_loss_is_eq4_and_accepts_one_style_image_of_another_size():
    loss = StyleLoss(("relu1_2", "relu2_2"), weights=None, reduction="none")
    pred, style = torch.rand(3, 3, 16, 16), torch.rand(1, 3, 24, 20)
    fp, fs = loss.net(pred), loss.net(style)
    expected = sum((gram_matrix(fp[k]) - gram_matrix(fs[k])).pow(2).sum(dim=(1, 2)) for k in fp)
    assert torch.allclose(loss(pred, style), expected, rtol=1e-5)
    assert torch.allclose(loss(pred, loss.target_grams(style)), expected, rtol=1e-5)
    with pytest.raises(ValueError, match="target batch must be 1 or 3"):
        loss(pred, torch.rand(2, 3, 16, 16))


def test_losses_are_differentiable_gradcheck():
    torch.manual_seed(0)
    feat = FeatureLoss("relu1_2", weights=None).double()
    style = StyleLoss(("relu1_1",), weights=None).double()
    pred = torch.rand(1, 3, 6, 6, dtype=torch.float64, requires_grad=True)
    target = torch.rand(1, 3, 6, 6, dtype=torch.float64)
    # Inputs near a ReLU kink would make finite differences disagree; these random ones do not.
    assert torch.autograd.gradcheck(lambda p: feat(p, target), (pred,), eps=1e-6, atol=1e-4)
    assert torch.autograd.gradcheck(lambda p: style(p, target), (pred,), eps=1e-6, atol=1e-4)


def test_target_features_carry_no_graph():
    loss = FeatureLoss("relu2_2", weights=None)
    pred = torch.rand(1, 3, 16, 16, requires_grad=True)
    target = torch.rand(1, 3, 16, 16, requires_grad=True)
    loss(pred, target).backward()
    assert pred.grad is not None and target.grad is None


def test_parse_spec():
    assert parse_spec("pixel:mse") == ("pixel", "mse", 1.0)
    assert parse_spec("feature:relu2_2,relu3_3*0.5") == ("feature", "relu2_2,relu3_3", 0.5)
    assert parse_spec("tv*1e-5") == ("tv", None, 1e-5)
    with pytest.raises(ValueError, match="unknown loss term"):
        parse_spec("perceptual:relu2_2")
    with pytest.raises(ValueError, match="must be a number"):
        parse_spec("pixel:mse*lots")
    with pytest.raises(ValueError, match="unknown option"):
        build_loss("pixel:l3")
    with pytest.raises(ValueError, match="needs a discriminator"):
        build_loss("adversarial:hinge")


def test_combined_loss_returns_every_part_and_the_weighted_total():
    combo = CombinedLoss.from_specs(["pixel:mse*2", "tv:l1*0.5"])
    pred, target = torch.rand(2, 3, 8, 8, requires_grad=True), torch.rand(2, 3, 8, 8)
    out = combo(pred, target)
    assert set(out) == {"loss", "pixel:mse", "tv:l1"}
    assert torch.allclose(out["loss"], 2 * out["pixel:mse"] + 0.5 * out["tv:l1"])
    assert torch.allclose(out["pixel:mse"], (pred - target).pow(2).mean())
    out["loss"].backward()
    with pytest.raises(ValueError, match="given twice"):
        CombinedLoss.from_specs(["pixel:mse", "pixel:mse*3"])


def test_deepsim_objective_by_configuration_alone():
    # Dosovitskiy & Brox 2016: λ_feat·L_feat + λ_adv·L_adv + λ_img·L_img.
    disc = PatchDiscriminator(n_layers=1)
    deepsim = CombinedLoss({
        "feat": (FeatureLoss("relu2_2", weights=None), 0.01),
        "adv": (build_loss("adversarial:nonsaturating", discriminator=disc), 100.0),
        "img": (MSELoss(), 2e-6),
    })  # fmt: skip
    pred, target = torch.rand(2, 3, 32, 32, requires_grad=True), torch.rand(2, 3, 32, 32)
    out = deepsim(pred, target)
    assert set(out) == {"loss", "feat", "adv", "img"}
    assert torch.allclose(out["loss"], 0.01 * out["feat"] + 100 * out["adv"] + 2e-6 * out["img"])
    out["loss"].backward()
    assert pred.grad.abs().sum() > 0


@pytest.mark.parametrize("term", sorted(LOSS_TERMS))
def test_every_registered_term_builds_and_backpropagates(term):
    options = {"adversarial": {"discriminator": PatchDiscriminator(n_layers=1)}, "lr": {"scale": 4},
               "grid": {"scale": 4}}.get(term, {})
    size = 161 if term == "ms_ssim" else 32
    module = build_loss(term, **options)
    pred = torch.rand(1, 3, size, size, requires_grad=True)
    value = module(pred, torch.rand(1, 3, size, size))
    assert value.dim() == 0 and torch.isfinite(value)
    value.backward()
    assert pred.grad is not None


def test_channels_last_and_default_layout_give_the_same_loss_and_gradient():
    fast = FeatureLoss(("relu1_2", "relu2_2"), weights=None, channels_last=True)
    plain = FeatureLoss(("relu1_2", "relu2_2"), weights=None, channels_last=False)
    plain.load_state_dict(fast.state_dict())
    target = torch.rand(2, 3, 20, 20)
    grads = []
    for loss in (fast, plain):
        pred = torch.rand(2, 3, 20, 20, generator=torch.Generator().manual_seed(1), requires_grad=True)
        loss(pred, target).backward()
        grads.append(pred.grad)
    assert torch.allclose(grads[0], grads[1], atol=1e-6)


def test_feature_spec_weights_each_layer():
    from perceptlab.losses.perceptual import FeatureLoss

    loss = build_loss("feature:relu1_2,relu2_2=4", vgg_weights=None)
    assert loss.layer_weights == {"relu1_2": 1.0, "relu2_2": 4.0}
    one, two = FeatureLoss("relu1_2", weights=None), FeatureLoss("relu2_2", weights=None)
    one.load_state_dict(loss.state_dict(), strict=False)
    two.load_state_dict(loss.state_dict(), strict=False)
    pred, target = torch.rand(1, 3, 16, 16), torch.rand(1, 3, 16, 16)
    assert torch.allclose(loss(pred, target), one(pred, target) + 4 * two(pred, target), rtol=1e-5)
    with pytest.raises(ValueError, match="layer weight must be a number"):
        build_loss("feature:relu2_2=x", vgg_weights=None)


def test_feature_loss_jitter_crops_both_images_by_the_same_random_offset():
    from perceptlab.losses.perceptual import FeatureLoss

    loss = build_loss("feature:relu1_2,relu2_2=4,jitter=8", vgg_weights=None)
    assert loss.jitter == 8 and loss.layer_weights == {"relu1_2": 1.0, "relu2_2": 4.0}
    plain = FeatureLoss({"relu1_2": 1.0, "relu2_2": 4.0}, weights=None)
    plain.load_state_dict(loss.state_dict())
    pred, target = torch.rand(1, 3, 24, 24), torch.rand(1, 3, 24, 24)
    torch.manual_seed(3)
    dy, dx = (int(v) for v in torch.randint(8, (2,)))
    torch.manual_seed(3)
    got = loss(pred, target)
    assert torch.allclose(got, plain(pred[..., dy:, dx:], target[..., dy:, dx:]), rtol=1e-5)
    # A pattern fixed to the pixel grid is seen at varying phases: the loss of a shifted pair varies by call.
    values = {round(float(loss(pred, target)), 6) for _ in range(6)}
    assert len(values) > 1
    assert build_loss("feature:relu2_2", vgg_weights=None).jitter == 0
    with pytest.raises(ValueError, match="jitter"):
        FeatureLoss("relu1_2", weights=None, jitter=-1)


def test_feature_spec_names_the_comparator_network():
    from perceptlab.features import AlexNetFeatures, VGG16Features
    from perceptlab.losses.perceptual import FeatureLoss, feature_reconstruction_loss

    alex = build_loss("feature:alexnet:relu3,relu5=2", vgg_weights=None)
    assert isinstance(alex.net, AlexNetFeatures) and alex.layer_weights == {"relu3": 1.0, "relu5": 2.0}
    assert isinstance(build_loss("feature:vgg16:relu2_2", vgg_weights=None).net, VGG16Features)
    assert isinstance(build_loss("feature:relu2_2", vgg_weights=None).net, VGG16Features)  # VGG-16 by default
    assert build_loss("feature:alexnet", vgg_weights=None).layer_weights == {"relu5": 1.0}  # its default layer
    # The value is eq. 2 on AlexNet's activations, and gradients reach the prediction.
    pred, target = torch.rand(2, 3, 64, 64, requires_grad=True), torch.rand(2, 3, 64, 64)
    value = alex(pred, target)
    expected = feature_reconstruction_loss(alex.net(pred), alex.net(target), {"relu3": 1.0, "relu5": 2.0}).mean()
    assert torch.allclose(value, expected, rtol=1e-5)
    value.backward()
    assert pred.grad.abs().sum() > 0
    with pytest.raises(ValueError, match="unknown network 'resnet'"):
        build_loss("feature:resnet:relu5", vgg_weights=None)
    with pytest.raises(ValueError, match="relu2_2"):
        build_loss("feature:alexnet:relu2_2", vgg_weights=None)  # a VGG layer on AlexNet
    with pytest.raises(ValueError, match="max pooling"):
        FeatureLoss("relu5", weights=None, network="alexnet", pooling="avg")
