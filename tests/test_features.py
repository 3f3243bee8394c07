"""VGG-16 and AlexNet feature networks: layer names, early stop, sizes, normalisation, frozen weights."""

from __future__ import annotations

import pytest
import torch

from perceptlab.features import ALEXNET_LAYERS, VGG16_LAYERS, AlexNetFeatures, L2Pool, VGG16Features
from perceptlab.features import base


def test_vgg_layer_names_follow_the_papers():
    assert VGG16_LAYERS[:5] == ("conv1_1", "relu1_1", "conv1_2", "relu1_2", "pool1")
    assert {"relu2_2", "relu3_3", "relu4_3", "relu5_3", "pool5"} <= set(VGG16_LAYERS)
    assert len(VGG16_LAYERS) == 13 * 2 + 5
    assert ALEXNET_LAYERS[:3] == ("conv1", "relu1", "pool1") and ALEXNET_LAYERS[-2] == "relu5"


def test_returns_requested_layers_only_and_stops_after_the_deepest():
    net = VGG16Features(("relu2_2", "relu1_2"), weights=None)
    out = net(torch.rand(2, 3, 32, 32))
    assert list(out) == ["relu1_2", "relu2_2"]
    assert out["relu1_2"].shape == (2, 64, 32, 32) and out["relu2_2"].shape == (2, 128, 16, 16)
    assert list(net.body)[-1] == "relu2_2"  # nothing deeper is built



@pytest.mark.parametrize("precision", ["fp32", "bf16"])
def test_until_stops_after_a_layer_with_the_same_activations(precision, monkeypatch):
    net = VGG16Features(("conv2_2", "relu1_2", "relu2_2", "relu4_3"), weights=None, precision=precision)
    x = torch.rand(2, 3, 32, 32)
    whole = net(x)
    for until, expected in (("relu1_2", ["relu1_2"]), ("conv2_2", ["relu1_2", "conv2_2"]),
                            ("relu2_2", ["relu1_2", "conv2_2", "relu2_2"])):  # fmt: skip
        part = net(x, until=until)
        assert list(part) == expected and all(torch.equal(part[k], whole[k]) for k in part)
    ran = []
    pool = torch.nn.MaxPool2d.forward
    monkeypatch.setattr(torch.nn.MaxPool2d, "forward", lambda self, t: ran.append(1) or pool(self, t))
    net(x, until="relu2_2")
    assert ran == [1]  # pool1 only: the pass stopped before pool2
    with pytest.raises(ValueError, match="until must be one of the requested layers"):
        net(x, until="relu3_3")


def test_style_content_targets_are_the_full_pass_activations():
    from perceptlab.style import StyleTransferLoss

    loss = StyleTransferLoss(torch.rand(1, 3, 48, 48), vgg_weights=None)
    photo = torch.rand(2, 3, 40, 40)
    targets = loss.content_targets(photo)
    assert list(targets) == list(loss.content_layers)
    assert all(torch.equal(v, loss.net(photo)[k]) for k, v in targets.items())


def test_shapes_for_every_vgg_block():
    out = VGG16Features(("relu3_3", "relu4_3", "relu5_3", "pool5"), weights=None)(torch.rand(1, 3, 64, 48))
    assert out["relu3_3"].shape == (1, 256, 16, 12)
    assert out["relu4_3"].shape == (1, 512, 8, 6)
    assert out["relu5_3"].shape == (1, 512, 4, 3)
    assert out["pool5"].shape == (1, 512, 2, 1)


def test_conv_output_is_not_overwritten_by_an_inplace_relu():
    net = VGG16Features(("conv1_2", "relu1_2"), weights=None)
    out = net(torch.rand(1, 3, 16, 16) * 2 - 0.5)
    assert (out["conv1_2"] < 0).any()
    assert torch.equal(out["relu1_2"], out["conv1_2"].clamp(min=0))


@pytest.mark.parametrize(
    "make,size,layer",
    [
        (lambda: VGG16Features(("relu5_3",), weights=None), 16, "relu5_3"),
        (lambda: VGG16Features(("relu2_2",), weights=None), 2, "relu2_2"),
        (lambda: AlexNetFeatures(("relu5",), weights=None), 31, "relu5"),
        (lambda: AlexNetFeatures(("relu1",), weights=None), 7, "relu1"),
    ],
)
def test_minimum_size_is_exact_and_named_in_the_error(make, size, layer):
    net = make()
    assert net.min_size == size
    net(torch.rand(1, 3, size, size + 3))
    with pytest.raises(ValueError, match=f"up to {layer} needs images of at least {size}x{size}"):
        net(torch.rand(1, 3, size - 1, 64))


def test_bad_input_and_unknown_layer():
    with pytest.raises(ValueError, match="unknown layer"):
        VGG16Features(("relu9_9",), weights=None)
    with pytest.raises(ValueError, match="3 channels"):
        VGG16Features(("relu1_2",), weights=None)(torch.rand(1, 1, 16, 16))
    with pytest.raises(ValueError, match="weights must be"):
        VGG16Features(("relu1_2",), weights="resnet")


def test_frozen_eval_and_gradient_reaches_the_input():
    net = VGG16Features(("relu2_2",), weights=None)
    net.train()
    assert not net.training and not any(p.requires_grad for p in net.parameters())
    x = torch.rand(1, 3, 16, 16, requires_grad=True)
    net(x)["relu2_2"].sum().backward()
    assert x.grad.abs().sum() > 0


def test_channels_last_gives_the_same_features():
    a = VGG16Features(("relu1_2", "relu3_3"), weights=None, channels_last=False)
    b = VGG16Features(("relu1_2", "relu3_3"), weights=None, channels_last=True)
    b.load_state_dict(a.state_dict())
    b.to(memory_format=torch.channels_last)
    x = torch.rand(2, 3, 40, 40)
    for layer in ("relu1_2", "relu3_3"):
        assert torch.allclose(a(x)[layer], b(x)[layer], atol=1e-5)


def test_caffe_normalisation_is_bgr_0_255_minus_mean():
    net = VGG16Features(("conv1_1",), weights="vgg16_caffe")
    x = torch.rand(1, 3, 4, 4)
    expected = x.flip(1) * 255 - torch.tensor([103.939, 116.779, 123.68]).view(1, 3, 1, 1)
    assert torch.allclose(net.normalize(x), expected, atol=1e-4)
    imagenet = VGG16Features(("conv1_1",), weights=None).normalize(x)
    assert torch.allclose(imagenet[:, 0], (x[:, 0] - 0.485) / 0.229)


def test_pretrained_caffe_and_torchvision_vgg_agree_on_what_matters():
    # Two independent trainings of the same architecture: their conv1_1 filters differ
    # but both respond to a vertical edge much more than to a flat image.
    edge = torch.zeros(1, 3, 32, 32)
    edge[..., 16:] = 1.0
    flat = torch.full((1, 3, 32, 32), 0.5)
    for weights in ("vgg16", "vgg16_caffe"):
        net = VGG16Features(("relu1_2",), weights=weights)
        with torch.no_grad():
            e, f = net(edge)["relu1_2"], net(flat)["relu1_2"]
        assert e[..., 8:24, 14:18].mean() > 2 * f[..., 8:24, 14:18].mean(), weights


def test_l2_pooling_of_a_constant_is_the_constant_inside():
    pool = L2Pool(2)
    y = pool(torch.full((1, 2, 8, 8), 3.0))
    assert y.shape == (1, 2, 4, 4)
    assert torch.allclose(y[..., 1:, 1:], torch.full_like(y[..., 1:, 1:], 3.0), atol=1e-5)


@pytest.mark.parametrize("precision", ["fp32", "bf16"])
@pytest.mark.parametrize("layers", [("relu2_2",), ("relu1_2", "conv2_1", "relu3_3")])
def test_fused_convolution_relu_equals_the_modules(precision, layers):
    # On CPU channels-last input, conv + ReLU run as one oneDNN call (forward, and the input
    # gradient by a custom backward); the plain modules give the same values and gradients.
    if precision == "bf16" and torch.bfloat16 not in base._FUSED_DTYPES:
        pytest.skip("oneDNN cannot run bfloat16 convolutions on this CPU (no AVX-512): nothing is fused")
    torch.manual_seed(0)
    net = VGG16Features(layers, weights=None, precision=precision)
    x = torch.rand(2, 3, 36, 36, requires_grad=True)
    results = []
    for fuse in (False, True):
        net.fuse = fuse
        out = net(x)
        (grad,) = torch.autograd.grad(sum(v.square().mean() for v in out.values()), x)
        with torch.no_grad():
            no_grad = net(x)
        results.append((out, grad, no_grad))
    (a, ga, na), (b, gb, nb) = results
    for name in layers:
        torch.testing.assert_close(b[name], a[name], rtol=1e-6, atol=1e-6)
        torch.testing.assert_close(nb[name], na[name], rtol=1e-6, atol=1e-6)
    torch.testing.assert_close(gb, ga, rtol=1e-5, atol=1e-7)
    assert any(relu is not None for _, _, relu in net._plan)  # something was fused
